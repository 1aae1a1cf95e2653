"""Run the compiled featurizer and model on an emulated Cortex-M4, count their cost, check them.

`tinykws verify DIR` links `featurizer.S` and `model.S` into a bare-metal image (vector
table, start-up and a mailbox harness from `runtime/`), runs it in unicorn (QEMU's CPU
core, pip-installable) as a Cortex-M4 with its FPU, feeds real clips block by block and
compares every class score with the Python reference (the PyTorch model, its ONNX export,
or for an int8 build the integer reference of `tinykws.quant`, whose features must match
exactly too).

One module per job, in dependency order:
- `errors`    DeviceError;
- `layout`    the memory map and the mailbox, defined once (the C side is generated);
- `image`     build the bare-metal image with the toolchain (`build_image`, `runtime_dir`);
- `emulator`  ELF reading, the unicorn Cortex-M4 (`Emulator`) and the instruction counter;
- `harness`   the host <-> device mailbox and `KWSDevice` (clips in, features and scores out);
- `reference` the Python side the device is compared with (PyTorch, ONNX or integer);
- `board`     a run's model on the emulated board (`device_for_run`, `classify_clips`);
- `qemu`      cross-check of the instruction counts on QEMU's mps2-an386;
- `verify`    `verify` and its report (parity, instructions, flash, RAM, peak stack);
- `cost`      MACs per frame of the featurizer and the model (the cost model);
- `verify_stream` `verify --stream`: featurizer + model + detector over a long recording,
              detections compared with `tinykws detect --mode rolling` (int8 builds:
              with the integer reference, bit for bit) (not re-exported here: import
              `verify_stream` from `tinykws.device.verify_stream`).

The names below are the package's API; import them from `tinykws.device`.
"""

from tinykws.device.board import classify_clips, device_for_run
from tinykws.device.cost import featurizer_macs, model_macs
from tinykws.device.emulator import (
    MAX_INSTRUCTIONS_PER_CALL,
    STACK_PATTERN,
    CallCounts,
    Emulator,
    InstructionCounter,
    Symbol,
    count_thumb_instructions,
    read_symbols,
)
from tinykws.device.errors import DeviceError
from tinykws.device.harness import ClipRun, HarnessShape, KWSDevice, mailbox_fields
from tinykws.device.image import build_image, runtime_dir
from tinykws.device.layout import (
    FLASH,
    MAILBOX,
    MAILBOX_FIELDS,
    MAILBOX_MAGIC,
    MEMORY,
    RAM,
    STACK_SIZE,
    pack_mailbox,
)
from tinykws.device.qemu import QEMU_BLOCKS, qemu_binary, qemu_count, qemu_cross_check
from tinykws.device.reference import onnx_reference, torch_reference
from tinykws.device.verify import (
    COUNT_CLIPS,
    COUNTING,
    VerifyConfig,
    VerifyReport,
    detect_float_abi,
    format_report,
    instruction_summary,
    object_sizes,
    select_clips,
    verify,
    verify_device,
)

__all__ = [
    "CallCounts",
    "ClipRun",
    "COUNT_CLIPS",
    "COUNTING",
    "DeviceError",
    "Emulator",
    "FLASH",
    "HarnessShape",
    "InstructionCounter",
    "KWSDevice",
    "MAILBOX",
    "MAILBOX_FIELDS",
    "MAILBOX_MAGIC",
    "MAX_INSTRUCTIONS_PER_CALL",
    "MEMORY",
    "QEMU_BLOCKS",
    "RAM",
    "STACK_PATTERN",
    "STACK_SIZE",
    "Symbol",
    "VerifyConfig",
    "VerifyReport",
    "build_image",
    "classify_clips",
    "count_thumb_instructions",
    "detect_float_abi",
    "device_for_run",
    "featurizer_macs",
    "format_report",
    "instruction_summary",
    "mailbox_fields",
    "model_macs",
    "object_sizes",
    "onnx_reference",
    "pack_mailbox",
    "qemu_binary",
    "qemu_count",
    "qemu_cross_check",
    "read_symbols",
    "runtime_dir",
    "select_clips",
    "torch_reference",
    "verify",
    "verify_device",
]
