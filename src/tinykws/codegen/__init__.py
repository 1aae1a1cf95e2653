"""`tinykws compile`: a trained run -> C for the Cortex-M4 (featurizer, model, detector).

`compile_run(run_dir)` loads the run's checkpoint (`tinykws.run`) and the run's detector
(``RUN_DIR/detector.json``, else the defaults), writes ``featurizer.{c,h}``,
``model.{c,h}``, ``detector.{c,h}`` and the runtime sources they #include, then
cross-compiles each generated ``.c`` into one self-contained ``.S`` (``featurizer.S``,
``model.S``, ``detector.S``) with `tinykws.toolchain` (arm-none-eabi-gcc, or the ziglang
wheel's clang).

The C API keeps ELL's conventions (see docs/architecture.md, "Code generation"):
``mfcc_Filter`` / ``mfcc_Reset`` and ``completemodel_Predict`` / ``completemodel_Reset``.

One module per artifact, each holding its float and its integer variant over the shared
`glue`: `featurizer` (``featurizer.{h,c}``), `model` (``model.{h,c}``; the layers' C in
`cells`, the weight layouts in `writers`) and `detector` (``detector.{h,c}``).

``precision="int8"`` builds the integer path instead (cores without an FPU): the integer
featurizer, the integer model from ``RUN_DIR/quant/model_int.npz`` (`tinykws quantize`
writes it; when it is missing or was quantized from another checkpoint, by the SHA-256 it
records, this function says so and runs the quantize stage first) and the integer
detector on its Q15 scores.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from rich.console import Console

from tinykws.codegen.detector import emit_detector, emit_int_detector
from tinykws.codegen.featurizer import emit_featurizer, emit_int_featurizer
from tinykws.codegen.glue import copy_runtime
from tinykws.codegen.model import emit_int_model, emit_model
from tinykws.detector_config import DetectorConfig, load_detector, save_detector
from tinykws.errors import TinyKWSError
from tinykws.quant.calibrate import int_model_is_current, load_int_model, quantize_run
from tinykws.checkpoint import Checkpoint, load_model
from tinykws.run import (
    COMPILED_RUN, DETECTOR_FILE, INT_MODEL_STAMP, PRECISIONS, Build, RunDir, atomic_write_text, file_sha256, record_compiled_run,
)
from tinykws.toolchain import check_float_abi, find_toolchain

console = Console(stderr=True)

TARGETS = ("cortex-m4",)


@dataclass(frozen=True)
class CompileResult:
    """What `compile_run` wrote."""

    out_dir: Path
    float_abi: str  # hard | soft | softfp
    target: str  # cortex-m4
    toolchain: str  # compiler name and version
    use_libm: bool
    files: dict[str, Path] = field(default_factory=dict)  # file name -> path
    precision: str = "float"  # float | int8

    @property
    def featurizer_S(self) -> Path:
        return self.files["featurizer.S"]

    @property
    def model_S(self) -> Path:
        return self.files["model.S"]

    @property
    def detector_S(self) -> Path:
        return self.files["detector.S"]


def _check_asm(path: Path, float_abi: str, use_libm: bool) -> None:
    """Refuse a .S that calls anything but the EABI float helpers (no libc on the device)."""
    text = path.read_text()
    calls = set(re.findall(r"^\s*(?:bl|b(?:\.w)?)\s+([A-Za-z_][\w.$]*)\s*$", text, re.M))
    defined = set(re.findall(r"^([A-Za-z_][\w.$]*):", text, re.M))
    external = {
        c for c in calls
        if c not in defined and not c.startswith((".L", "__aeabi_"))
        and not (use_libm and c in {"expf", "logf", "tanhf", "sqrtf"})
    }
    if external:
        raise TinyKWSError(
            f"{path.name} calls functions that a bare-metal image may lack: {sorted(external)}"
        )


def _gnu_as_compatible(path: Path) -> None:
    """Drop clang's `.addrsig` directives (linker hints GNU as rejects), so that a .S made
    with the ziglang clang assembles with `arm-none-eabi-gcc -c` as firmware builds do."""
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.lstrip().startswith((".addrsig", "\t.addrsig"))]
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(kept))


def compile_run(
    run_dir: Path | str,
    out_dir: Optional[Path | str] = None,
    target: str = "cortex-m4",
    float_abi: str = "hard",
    use_libm: bool = False,
    checkpoint: Optional[Path | str] = None,
    precision: str = "float",
) -> CompileResult:
    """The run's checkpoint (`RunDir.checkpoint()`) + RUN_DIR/detector.json -> OUT (default
    RUN_DIR/device/<build>, `Build.of(float_abi, precision)`): .c, .h and .S files, and
    `run.json`, the run the folder was compiled from.

    `precision`: "float" (the float featurizer and model) or "int8" (the integer path)."""
    if target not in TARGETS:
        raise TinyKWSError(f"unknown target {target!r}; supported: {', '.join(TARGETS)}")
    check_float_abi(float_abi)
    if precision not in PRECISIONS:
        raise TinyKWSError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    run = RunDir(run_dir)
    ckpt = Path(checkpoint) if checkpoint else run.checkpoint()
    model, ck = load_model(ckpt)
    out = Path(out_dir) if out_dir else run.device(Build.of(float_abi, precision))
    if out.exists() and not out.is_dir():
        raise TinyKWSError(f"--out {out} is a file; give a folder (it is created if missing)")
    detector, op = load_detector(run_dir)
    if detector.second_look is not None:
        console.print(f"note: {run.detector} has a second look; the C runs the first stage only "
                      "(the second look is Python only so far)", soft_wrap=True, highlight=False)
        detector = detector.first_stage()
    if precision == "int8":
        files = _write_int_sources(Path(run_dir), ckpt, out, ck, detector)
    else:
        files = write_sources(out, ck.feature_params, model, list(ck.categories), detector=detector)
    files[DETECTOR_FILE] = save_detector(out, detector, op)  # what detector.S was made from
    files[COMPILED_RUN] = record_compiled_run(out, run.root)

    tc = find_toolchain()
    defines = ["TKWS_USE_LIBM"] if use_libm else []
    for stem in ("featurizer", "model", "detector"):
        S = tc.compile_to_asm([files[f"{stem}.c"]], out / f"{stem}.S", float_abi,
                              include_dirs=[out], defines=defines)
        _gnu_as_compatible(S)
        _check_asm(S, float_abi, use_libm)
        files[f"{stem}.S"] = S
    return CompileResult(out, float_abi, target, tc.version, use_libm, files, precision)


def _write_int_sources(run_dir: Path, ckpt: Path, out: Path, checkpoint: Checkpoint,
                       detector: DetectorConfig) -> dict[str, Path]:
    """The integer featurizer, model and detector C: no floating-point arithmetic but the
    float interfaces' conversions. A missing or stale integer model is made first by the
    quantize stage, and the user is told so."""
    qpath = RunDir(run_dir).int_model
    if not int_model_is_current(run_dir, ckpt):  # missing, or made from another checkpoint
        console.print(f"{qpath} is missing or was quantized from another checkpoint: running "
                      f"`tinykws quantize {run_dir}` first", soft_wrap=True, highlight=False)
        quantize_run(run_dir, checkpoint=ckpt)
    im = load_int_model(run_dir)
    params = checkpoint.feature_params
    if list(im.categories) != list(checkpoint.categories):
        raise TinyKWSError(f"{qpath} has other categories than {ckpt}: run `tinykws quantize` again")
    files = {p.name: p for p in copy_runtime(out)}
    # which integer model this build is: `verify` refuses a build whose run was re-quantized
    files[INT_MODEL_STAMP] = out / INT_MODEL_STAMP
    atomic_write_text(files[INT_MODEL_STAMP], json.dumps({"model_int_sha256": file_sha256(qpath)}) + "\n")
    texts = {**emit_int_featurizer(params), **emit_int_model(im),
             **emit_int_detector(detector, im.categories, params.frame_ms)}
    return _write(out, texts, files)


def write_sources(out_dir: Path, params: Any, model: Any, categories: Sequence[str],
                  extra_meta: Optional[dict[str, str]] = None,
                  detector: Optional[DetectorConfig] = None) -> dict[str, Path]:
    """Write featurizer.{h,c}, model.{h,c}, detector.{h,c} (`detector`: a DetectorConfig,
    default the defaults) and the runtime into out_dir; name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {p.name: p for p in copy_runtime(out_dir)}
    texts = {**emit_featurizer(params), **emit_model(model, categories, extra_meta=extra_meta),
             **emit_detector(detector or DetectorConfig(), categories, params.frame_ms)}
    return _write(out_dir, texts, files)


def _write(out: Path, texts: dict[str, str], files: dict[str, Path]) -> dict[str, Path]:
    """Write every generated text into `out`; `files` plus them, name -> path."""
    for name, text in texts.items():
        atomic_write_text(out / name, text)
        files[name] = out / name
    return files


__all__ = ["CompileResult", "TARGETS", "compile_run", "write_sources"]
