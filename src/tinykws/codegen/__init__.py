"""`tinykws compile`: a trained run -> C for the Cortex-M4 (featurizer, model, detector).

`compile_run(run_dir)` loads ``RUN_DIR/train/best.pt`` and the run's detector
(``RUN_DIR/detector.json``, else the defaults), writes ``featurizer.{c,h}``,
``model.{c,h}``, ``detector.{c,h}`` and the runtime sources they #include, then
cross-compiles each generated ``.c`` into one self-contained ``.S`` (``featurizer.S``,
``model.S``, ``detector.S``) with `tinykws.toolchain` (arm-none-eabi-gcc, or the ziglang
wheel's clang).

The C API keeps ELL's conventions (see docs/architecture.md, "Code generation"):
``mfcc_Filter`` / ``mfcc_Reset`` and ``completemodel_Predict`` / ``completemodel_Reset``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tinykws.errors import TinyKWSError

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
        path.write_text("".join(kept))


def compile_run(
    run_dir: Path | str,
    out_dir: Optional[Path | str] = None,
    target: str = "cortex-m4",
    float_abi: str = "hard",
    use_libm: bool = False,
    checkpoint: Optional[Path | str] = None,
) -> CompileResult:
    """RUN_DIR/train/best.pt (+ RUN_DIR/detector.json) -> OUT (default RUN_DIR/device/<abi>/):
    .c, .h and .S files."""
    from tinykws.codegen.emit import write_sources
    from tinykws.detect import load_detector, save_detector
    from tinykws.features import FeatureParams
    from tinykws.models import load_checkpoint
    from tinykws.toolchain import check_float_abi, find_toolchain

    if target not in TARGETS:
        raise TinyKWSError(f"unknown target {target!r}; supported: {', '.join(TARGETS)}")
    check_float_abi(float_abi)
    run_dir = Path(run_dir)
    ckpt = Path(checkpoint) if checkpoint else run_dir / "train" / "best.pt"
    if not ckpt.is_file():
        raise TinyKWSError(f"no trained model at {ckpt}: run `tinykws train` first")
    model, meta = load_checkpoint(ckpt)
    params = FeatureParams.from_dict(meta.get("feature_params") or {})
    categories = list(meta.get("categories") or [])
    if not categories:
        raise TinyKWSError(f"{ckpt} has no category names")
    out = Path(out_dir) if out_dir else run_dir / "device" / float_abi
    if out.exists() and not out.is_dir():
        raise TinyKWSError(f"--out {out} is a file; give a folder (it is created if missing)")
    detector, op = load_detector(run_dir)
    files = write_sources(out, params, model, categories, detector=detector)
    files["detector.json"] = save_detector(out, detector, op)  # what detector.S was made from

    tc = find_toolchain()
    defines = ["TKWS_USE_LIBM"] if use_libm else []
    for stem in ("featurizer", "model", "detector"):
        S = tc.compile_to_asm([files[f"{stem}.c"]], out / f"{stem}.S", float_abi,
                              include_dirs=[out], defines=defines)
        _gnu_as_compatible(S)
        _check_asm(S, float_abi, use_libm)
        files[f"{stem}.S"] = S
    return CompileResult(out, float_abi, target, tc.version, use_libm, files)


__all__ = ["CompileResult", "TARGETS", "compile_run"]
