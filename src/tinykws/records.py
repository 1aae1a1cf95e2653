"""Typed records of the run folder's JSON files: one dataclass a file, with `load` / `save`.

A stage writes its record through `save`; a later stage (the report, the pipeline, the
benchmarks) reads it back through `load` and gets attributes, not a dict to dig in. The
JSON is the dataclass's fields in their order (`to_dict`), written the way the stage
always wrote it, so files of runs made before the records load and save byte for byte.

| file (RunDir)                       | record            | written by                 |
|-------------------------------------|-------------------|----------------------------|
| `eval/evaluation*.json`             | `EvalResult`      | `tinykws.evaluate`         |
| `eval/stream.json`                  | `StreamResult`    | `tinykws.stream_eval`      |
| `quant/quant.json`                  | `QuantReport`     | `tinykws.quant.calibrate`  |
| `device/<build>/verify.json`        | `VerifyReport`    | `tinykws.device.verify`    |
| `device/<build>/verify_stream.json` | `StreamVerifyReport` (a `JSONRecord`, beside its writer `tinykws.device.verify_stream`) | |

A missing or torn file, or one without a field its record needs, is a one-line
`TinyKWSError` naming the file and what to run (`tinykws.run.read_json`'s wording).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, TypeVar

from tinykws.errors import TinyKWSError
from tinykws.run import read_json

R = TypeVar("R", bound="JSONRecord")


# ---------------------------------------------------------------------------- the codec


def _fields(record: Any) -> dict[str, Any]:
    """A record's fields in order as JSON data, without the `OMIT_NONE` ones that are None
    (files that never had them keep not having them)."""
    omit = getattr(record, "OMIT_NONE", ())
    return {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record)
            if not (f.name in omit and getattr(record, f.name) is None)}


def _plain(value: Any) -> Any:
    """`value` as JSON data: a record through its `to_dict` when it has one, else its fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if to_dict is not None else _fields(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _typed(hint: Any, value: Any, where: str) -> Any:
    """JSON data `value` as the type `hint` says: records (recursively), lists and dicts of
    them, Optional; anything else (numbers, strings, plain dicts) as it is."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        if value is None:
            return None
        return _typed(next(a for a in args if a is not type(None)), value, where)
    if origin is list and args:
        if not isinstance(value, list):
            raise ValueError(f"{where} is not a list")
        return [_typed(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict and len(args) == 2:
        if not isinstance(value, dict):
            raise ValueError(f"{where} is not an object")
        return {k: _typed(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, where)
    return value


def _from_dict(cls: type, data: Any, where: str) -> Any:
    """A record of type `cls` from its JSON object; unknown keys (a newer writer's) are left
    out, a missing field without a default is an error naming it."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'the file'} is not a JSON object")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _typed(hints[f.name], data[f.name], f"{where}.{f.name}".lstrip("."))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"no {(where + '.' if where else '') + f.name!r}")
    return cls(**kwargs)


class JSONRecord:
    """`to_dict`, `save` and `load` of a record (mixed into dataclasses only).

    `INDENT` and `NEWLINE`: how the writer formats the file (kept as it always was);
    `REMEDY`: what to run when the file is missing or damaged."""

    INDENT: ClassVar[int] = 2
    NEWLINE: ClassVar[bool] = True
    REMEDY: ClassVar[str] = "run the stage that writes it again"
    OMIT_NONE: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        return _fields(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=self.INDENT) + ("\n" if self.NEWLINE else "")

    def save(self, path: Path | str) -> Path:
        """Write the JSON atomically (temporary file, then rename): a killed stage leaves
        the previous record, never half of one."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        """The record from its JSON object (`ValueError` naming a missing field)."""
        return _from_dict(cls, data, "")

    @classmethod
    def load(cls: type[R], path: Path | str, remedy: Optional[str] = None) -> R:
        """Read the record at `path`: a missing, torn or wrong file is one line naming it."""
        remedy = remedy or cls.REMEDY
        data = read_json(path, remedy)
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as e:
            raise TinyKWSError(f"{path} is not its record, {cls.__name__} ({e}); {remedy}") from None

    @classmethod
    def load_if_present(cls: type[R], path: Path | str) -> Optional[R]:
        """The record, or None when its file does not exist (a stage not run yet)."""
        return cls.load(path) if Path(path).exists() else None


# ---------------------------------------------------------------------------- evaluation


@dataclass
class EvalResult(JSONRecord):
    """Accuracy and per-class figures of one evaluation (`eval/evaluation*.json`)."""

    NEWLINE: ClassVar[bool] = False
    REMEDY: ClassVar[str] = "run `tinykws evaluate RUN_DIR --data DIR` again"

    accuracy: float
    per_class: dict[str, dict[str, float]]  # class -> precision, recall, f1, support
    confusion: list[list[int]]  # [true class][predicted class] counts
    categories: list[str]
    n: int
    backend: str = "torch"
    layout: str = ""
    data_dir: str = ""
    macro_f1: float = 0.0
    partial_of: Optional[int] = None  # --max-clips: the clips a full evaluation has (None: all ran)

    def table(self) -> str:
        """A plain-text table for the console."""
        w = max(9, *(len(c) for c in self.categories))
        lines = [f"{'class':<{w}}  precision  recall     f1  support"]
        for c in self.categories:
            m = self.per_class[c]
            lines.append(f"{c:<{w}}  {m['precision']:9.3f}  {m['recall']:6.3f}  "
                         f"{m['f1']:5.3f}  {m['support']:7d}")
        of = "" if self.partial_of is None else f" of {self.partial_of} (a partial evaluation)"
        lines.append(f"accuracy {self.accuracy:.4f} on {self.n}{of} clips ({self.backend}); "
                     f"macro F1 {self.macro_f1:.4f}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- stream


@dataclass
class StreamScore:
    """One point of a DET curve: the detections at `threshold` matched to the keywords."""

    threshold: float
    hits: int
    misses: int
    false_alarms: int
    recall: float
    fa_per_hour: float


@dataclass
class FalseAlarm:
    """One false alarm at the detector's threshold and what it fired on
    (`stream_eval.false_alarm_sources`)."""

    time_s: float
    fired: str  # the keyword it fired as
    kind: str  # other word | wrong keyword | repeat | background
    word: str  # the word heard ("" over noise alone)
    source: str  # its clip
    confidence: float


@dataclass
class ClipRecall:
    """The stream's keyword clips cut out and classified alone (`stream_eval.clip_recall`):
    the denominator of the stream efficiency."""

    n: int
    correct: int
    recall: float


@dataclass
class NegativeStreamResult:
    """False alarms on held-apart non-keyword speech (`stream.json`'s `negatives`)."""

    minutes: float
    n_words: int
    at_threshold: StreamScore
    false_alarms_at_threshold: list[FalseAlarm]
    curve: list[StreamScore]


@dataclass
class ClipModelResult:
    """The clip model before stream training on the same stream (`stream.json`'s `clip_model`)."""

    OMIT_NONE: ClassVar[tuple[str, ...]] = ("negatives",)

    mode: str
    best_at_1_fa_per_hour: Optional[StreamScore]
    curve: list[StreamScore]
    negatives: Optional[NegativeStreamResult] = None


@dataclass
class StreamResult(JSONRecord):
    """The keyword-stream check (`eval/stream.json`, `stream_eval.stream_metrics`)."""

    NEWLINE: ClassVar[bool] = False
    REMEDY: ClassVar[str] = "run the pipeline's streaming check (tinykws.stream_eval.stream_metrics) again"
    # absent from files of runs before they were measured, and without a negatives set
    OMIT_NONE: ClassVar[tuple[str, ...]] = ("clip_recall", "efficiency", "negatives", "clip_model")

    mode: str
    at_threshold: StreamScore
    miss_reasons_at_threshold: dict[str, int]  # stream_eval.MISS_KINDS -> keywords
    recall_by_snr_at_threshold: dict[str, Any]
    false_alarms_at_threshold: list[FalseAlarm]
    best_at_1_fa_per_hour: Optional[StreamScore]
    curve: list[StreamScore]
    clip_recall: Optional[ClipRecall] = None
    # best stream recall at <= 1 and <= 6 false alarms an hour ("1", "6") and at any
    # threshold ("ceiling"), over `clip_recall.recall`; None where undefined
    efficiency: Optional[dict[str, Optional[float]]] = None
    minutes: float = 0.0
    n_keywords: int = 0
    n_events: int = 0
    snrs_db: list[float] = field(default_factory=list)
    negatives: Optional[NegativeStreamResult] = None
    clip_model: Optional[ClipModelResult] = None


# ---------------------------------------------------------------------------- quantization


@dataclass
class Agreement:
    """Integer vs float model on one feature set (last frame of every clip)."""

    n: int
    float_accuracy: float
    int_accuracy: float
    argmax_agreement: float
    max_score_diff: float  # |int - float| softmax probability, any frame, any class
    mean_last_score_diff: float

    def to_dict(self) -> dict[str, Any]:
        return _fields(self)


@dataclass
class QuantMeasure:
    """One quantization method's figures (`quant.json`'s `ptq`, `qat`): hidden state ranges
    and formats, and float vs integer on the validation (and testing) features."""

    OMIT_NONE: ClassVar[tuple[str, ...]] = ("epochs", "testing")

    h_max_abs: list[Any]  # per layer (calibration ranges)
    h_frac: list[int]
    validation: Agreement
    testing: Optional[Agreement] = None
    epochs: Optional[int] = None  # qat: fine-tuning epochs (written first)

    def to_dict(self) -> dict[str, Any]:
        """`epochs` leads (as `quantize_run` always wrote it)."""
        body = _fields(self)
        epochs = body.pop("epochs", None)
        return body if epochs is None else {"epochs": epochs, **body}


@dataclass
class QuantReport(JSONRecord):
    """`quant/quant.json`: what `tinykws quantize` calibrated, kept and measured."""

    REMEDY: ClassVar[str] = "run `tinykws quantize RUN_DIR` again"
    OMIT_NONE: ClassVar[tuple[str, ...]] = ("qat",)

    checkpoint: str  # the float checkpoint quantized
    per_row: bool
    ptq: QuantMeasure
    calibration_clips: int
    qat: Optional[QuantMeasure] = None
    chosen: str = "ptq"  # ptq | qat
    source_checkpoint: str = ""  # the integer model's float source (run-relative when inside)
    base_sha256: str = ""
    out: str = ""  # quant/model_int.npz


# ---------------------------------------------------------------------------- device


@dataclass
class VerifyReport(JSONRecord):
    """What `tinykws verify` found (`device/<build>/verify.json`): parity with the
    reference, costs and sizes."""

    REMEDY: ClassVar[str] = "run `tinykws verify` on the build again"

    ok: bool
    float_abi: str
    toolchain: str
    n_clips: int
    n_frames: int
    atol: float
    max_abs_diff: float  # over every class score of every frame of every clip
    max_feature_diff: float  # featurizer output vs the Python features (log domain)
    argmax_agreement: float  # fraction of clips whose final decision matches
    first_mismatch: Optional[dict[str, Any]]
    instructions: dict[str, Any]  # per 10-ms frame: featurizer / model mean, max; how counted
    sizes: dict[str, dict[str, int]]  # featurizer / model: text, rodata, data, bss (bytes)
    flash_bytes: int
    ram_bytes: int
    peak_stack_bytes: int
    seconds: float
    clips: list[str] = field(default_factory=list)
    reference: str = "torch"  # what the scores were compared with: torch | onnx | int
    qemu_check: Optional[dict[str, Any]] = None  # per-call counts from QEMU vs unicorn
    precision: str = "float"  # float | int8 (integer featurizer and model)
    # int8 builds: the device's scores vs the float model's (max_abs_diff, argmax_agreement)
    float_model: Optional[dict[str, Any]] = None
    # int8 builds: the float interface (mfcc_Filter -> completemodel_Predict) on the same
    # clips: ok, max_abs_diff, max_feature_diff, first_mismatch, instructions (the report's
    # own parity and `instructions` are the integer loop's)
    float_interface: Optional[dict[str, Any]] = None

    def instructions_of(self, part: str) -> Optional[float]:
        """Mean instructions a 10-ms frame of `part` (featurizer, model), or None."""
        d = self.instructions.get(part)
        return d.get("mean") if isinstance(d, dict) else None

    @property
    def instructions_per_frame(self) -> Optional[float]:
        """Featurizer + model instructions a 10-ms frame (None when either was not counted)."""
        parts = [self.instructions_of(p) for p in ("featurizer", "model")]
        return None if None in parts else sum(parts)  # type: ignore[arg-type]

    @property
    def max_instructions_per_frame(self) -> Optional[int]:
        """Featurizer + model in their costliest calls: a bound on the costliest frame, which
        a frame-stride model's step frames set (None when either was not counted)."""
        parts = [self.instructions.get(p) for p in ("featurizer", "model")]
        if not all(isinstance(d, dict) and "max" in d for d in parts):
            return None
        return sum(int(d["max"]) for d in parts)  # type: ignore[index]

    @property
    def model_flash(self) -> Optional[int]:
        """text + rodata + data of the model object alone, or None."""
        s = self.sizes.get("model")
        return None if not isinstance(s, dict) else s.get("text", 0) + s.get("rodata", 0) + s.get("data", 0)
