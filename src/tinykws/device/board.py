"""A run's model on the emulated board: compile and link on demand, classify clips (the
`evaluate --backend device` path)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from tinykws.device.errors import DeviceError
from tinykws.device.harness import KWSDevice
from tinykws.device.image import build_image, image_inputs
from tinykws.device.reference import torch_reference
from tinykws.run import Build, RunDir
from tinykws.toolchain import Toolchain, check_float_abi

def device_for_run(
    run_dir: Path | str, build: str = "hard", toolchain: Optional[Toolchain] = None
) -> KWSDevice:
    """The emulated board for RUN_DIR/device/<build> (hard, soft, int8, int8-hard, ...; see
    `tinykws.run.Build`): compiles the run first when the `.S` files are missing,
    and relinks the image when they (or the runtime and layout it is built from) are newer
    than it."""
    spec = Build.named(build)
    float_abi, precision = spec.float_abi, spec.precision
    check_float_abi(float_abi)
    run_dir = Path(run_dir)
    compiled = RunDir(run_dir).device(spec)
    sources = [compiled / "featurizer.S", compiled / "model.S"]
    if not all(p.is_file() for p in sources):
        from tinykws.codegen import compile_run  # costly: codegen loads torch and the models

        compile_run(run_dir, compiled, "cortex-m4", float_abi, precision=precision)
    elf = compiled / "build" / "image.elf"
    newest = max(p.stat().st_mtime for p in [*sources, *image_inputs()])
    if not elf.is_file() or elf.stat().st_mtime < newest:
        elf = build_image(sources, compiled / "build", float_abi, toolchain)
    _, shape, _, _ = torch_reference(run_dir)
    return KWSDevice(elf, shape)


def classify_clips(run_dir: Path | str, audio: np.ndarray, build: str = "hard") -> np.ndarray:
    """Class scores [N, C] of 1-s clips `audio` [N, S] (int16 samples) on the emulated
    Cortex-M4: each clip from reset, the scores after its last frame (evaluate's backend).
    `build`: the `Build`'s name (hard, soft, int8, ...; the folder under RUN_DIR/device/)."""
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise DeviceError(f"classify_clips: expected clips [N, samples], got shape {audio.shape}")
    device = device_for_run(run_dir, build)
    return np.stack([device.run_clip(x).scores[-1] for x in audio]).astype(np.float32)

