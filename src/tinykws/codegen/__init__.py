"""`tinykws compile`: a trained run -> C for the Cortex-M4 (featurizer, model, detector).

`compile_run(run_dir)` loads the run's checkpoint (`tinykws.run`) and the run's detector
(``RUN_DIR/detector.json``, else the defaults), writes ``featurizer.{c,h}``,
``model.{c,h}``, ``detector.{c,h}`` and the runtime sources they #include, then
cross-compiles each generated ``.c`` into one self-contained ``.S`` (``featurizer.S``,
``model.S``, ``detector.S``) with `tinykws.toolchain` (arm-none-eabi-gcc, or the ziglang
wheel's clang).

The C API keeps ELL's conventions (see docs/architecture.md, "Code generation"):
``mfcc_Filter`` / ``mfcc_Reset`` and ``completemodel_Predict`` / ``completemodel_Reset``.

``precision="int8"`` builds the integer path instead (cores without an FPU): the integer
featurizer (`tinykws.codegen.int_featurizer`), the integer model from
``RUN_DIR/quant/model_int.npz`` (`tinykws.codegen.emit_int`; `tinykws quantize` writes it,
and this function does when it is missing or was quantized from another checkpoint, by
the SHA-256 it records) and the integer detector on its Q15 scores
(`emit_int.emit_int_detector`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from tinykws.errors import TinyKWSError

if TYPE_CHECKING:
    from tinykws.run import Checkpoint

TARGETS = ("cortex-m4",)
PRECISIONS = ("float", "int8")
# An int8 build's record of the integer model it was generated from (its SHA-256)
INT_MODEL_STAMP = "int_model.json"


def build_spec(build: str) -> tuple[str, str]:
    """A build's name (the folder under RUN_DIR/device/) -> (float ABI, precision):
    "hard" -> (hard, float), "int8" -> (soft, int8), "int8-hard" -> (hard, int8)."""
    if build == "int8":
        return "soft", "int8"
    if build.startswith("int8-"):
        return build[len("int8-"):], "int8"
    return build, "float"


def default_out_dir(run_dir: Path, float_abi: str, precision: str = "float") -> Path:
    """RUN_DIR/device/<abi> for float builds; RUN_DIR/device/int8 for the integer build with
    the soft-float ABI (the MXChip build) and RUN_DIR/device/int8-<abi> for other ABIs."""
    from tinykws.run import RunDir

    if precision == "float":
        return RunDir(run_dir).device(float_abi)
    return RunDir(run_dir).device("int8" if float_abi == "soft" else f"int8-{float_abi}")


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
    from tinykws.run import atomic_write_text

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
    `default_out_dir`): .c, .h and .S files.

    `precision`: "float" (the float featurizer and model) or "int8" (the integer path)."""
    from tinykws.codegen.emit import write_sources
    from tinykws.detect import load_detector, save_detector
    from tinykws.run import RunDir, load_model
    from tinykws.toolchain import check_float_abi, find_toolchain

    if target not in TARGETS:
        raise TinyKWSError(f"unknown target {target!r}; supported: {', '.join(TARGETS)}")
    check_float_abi(float_abi)
    if precision not in PRECISIONS:
        raise TinyKWSError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    run = RunDir(run_dir)
    ckpt = Path(checkpoint) if checkpoint else run.checkpoint()
    model, ck = load_model(ckpt)
    out = Path(out_dir) if out_dir else default_out_dir(run_dir, float_abi, precision)
    if out.exists() and not out.is_dir():
        raise TinyKWSError(f"--out {out} is a file; give a folder (it is created if missing)")
    detector, op = load_detector(run_dir)
    if precision == "int8":
        files = _write_int_sources(Path(run_dir), ckpt, out, ck, detector)
    else:
        files = write_sources(out, ck.feature_params, model, list(ck.categories), detector=detector)
    files["detector.json"] = save_detector(out, detector, op)  # what detector.S was made from

    tc = find_toolchain()
    defines = ["TKWS_USE_LIBM"] if use_libm else []
    for stem in ("featurizer", "model", "detector"):
        S = tc.compile_to_asm([files[f"{stem}.c"]], out / f"{stem}.S", float_abi,
                              include_dirs=[out], defines=defines)
        _gnu_as_compatible(S)
        _check_asm(S, float_abi, use_libm)
        files[f"{stem}.S"] = S
    return CompileResult(out, float_abi, target, tc.version, use_libm, files, precision)


def _write_int_sources(run_dir: Path, ckpt: Path, out: Path, checkpoint: "Checkpoint",
                       detector) -> dict[str, Path]:
    """The integer featurizer, model and detector C (quantizing the run first when needed):
    no floating-point arithmetic but the float interfaces' conversions."""
    from tinykws.codegen.emit import copy_runtime
    from tinykws.codegen.emit_int import emit_int_detector, emit_int_model
    from tinykws.codegen.int_featurizer import emit_int_featurizer
    from tinykws.quant.calibrate import int_model_is_current, load_int_model, quantize_run
    from tinykws.run import atomic_write_text, file_sha256

    qpath = run_dir / "quant" / "model_int.npz"
    if not int_model_is_current(run_dir, ckpt):  # missing, or made from another checkpoint
        quantize_run(run_dir, checkpoint=ckpt)
    im = load_int_model(run_dir)
    params = checkpoint.feature_params
    if list(im.categories) != list(checkpoint.categories):
        raise TinyKWSError(f"{qpath} has other categories than {ckpt}: run `tinykws quantize` again")
    files = {p.name: p for p in copy_runtime(out)}
    # which integer model this build is: `verify` refuses a build whose run was re-quantized
    files[INT_MODEL_STAMP] = out / INT_MODEL_STAMP
    atomic_write_text(files[INT_MODEL_STAMP], json.dumps({"model_int_sha256": file_sha256(qpath)}) + "\n")
    frame_ms = 1000.0 * params.hop / params.sample_rate
    texts = {**emit_int_featurizer(params), **emit_int_model(im),
             **emit_int_detector(detector, im.categories, frame_ms)}
    for name, text in texts.items():
        atomic_write_text(out / name, text)
        files[name] = out / name
    return files


__all__ = ["CompileResult", "PRECISIONS", "TARGETS", "build_spec", "compile_run", "default_out_dir"]
