"""The run folder contract: where each stage's files live, and the one reader of each.

A run folder (`RUN_DIR`) is what the stages pass to each other (docs/architecture.md,
"Run folder"). This module owns it:

- `RunDir(path)`: every path in it (`features/training.npz`, `train/best.pt`, ...),
  and `RunDir.checkpoint()`, the model the later stages use (`best.pt`, else `last.pt`);
- `Build`: one device build (its folder, float ABI and precision), and the record a
  compiled folder keeps of its run (`record_compiled_run`, `compiled_run`);
- the checkpoint's type and loader live beside it, in `tinykws.checkpoint`;
- `read_features(path)` -> `FeatureSplit`: the one reader of `features/<split>.npz`,
  and `check_splits_agree` for the splits of one training run.

Every reader validates what it loads and raises a one-line `TinyKWSError` subclass:
damaged files, weights that disagree with `model_config`, feature parameters that
disagree with the model's input, non-finite weights, splits made with different
feature parameters or categories.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from tinykws.errors import CheckpointError, FeatureFileError, TinyKWSError
from tinykws.features import FeatureParams


# ---------------------------------------------------------------------------- builds

FLOAT_ABIS = ("hard", "softfp", "soft")
PRECISIONS = ("float", "int8")


@dataclass(frozen=True)
class Build:
    """One device build of a run: its folder under RUN_DIR/device/ (`name`), the float ABI
    its C is compiled for and its precision. The one name of this axis: "hard" (float,
    Cortex-M4F), "soft" / "softfp" (float), "int8" (integer, soft-float ABI: cores
    without an FPU), "int8-hard" / "int8-softfp" (integer, other ABIs)."""

    name: str
    float_abi: str  # hard | softfp | soft
    precision: str  # float | int8

    @classmethod
    def named(cls, name: str) -> "Build":
        """The build whose folder is `name` ("hard" -> hard float, "int8" -> soft-ABI int8,
        "int8-hard" -> hard-ABI int8)."""
        if name == "int8":
            return cls(name, "soft", "int8")
        if name.startswith("int8-"):
            return cls(name, name[len("int8-"):], "int8")
        return cls(name, name, "float")

    @classmethod
    def of(cls, float_abi: str, precision: str = "float") -> "Build":
        """The build compiled for `float_abi` at `precision` (its folder name follows)."""
        if precision == "float":
            return cls(float_abi, float_abi, precision)
        return cls("int8" if float_abi == "soft" else f"int8-{float_abi}", float_abi, precision)

    @property
    def label(self) -> str:
        """How the report names it: "hard float", "integer (int8), soft ABI", ..."""
        if self.precision == "float":
            return f"{self.float_abi} float"
        return f"integer (int8), {self.float_abi} ABI"


# The builds the pipeline compiles and verifies: hard float (Cortex-M4F) and, for cores
# without an FPU, the integer build (int8 weights, soft-float ABI). The float soft-float build
# stays available (`tinykws compile RUN --float-abi soft --precision float`): it is correct
# but 50x too slow for real time on an FPU-less M4.
PIPELINE_BUILDS = (Build.named("hard"), Build.named("int8"))
# The builds the report shows (the pipeline's, and the float soft-ABI build when compiled)
REPORT_BUILDS = (Build.named("hard"), Build.named("soft"), Build.named("int8"))


# ---------------------------------------------------------------------------- paths

# Files of a compiled folder (RUN_DIR/device/<build>, or any `compile --out`)
COMPILED_RUN = "run.json"  # the run it was compiled from: {"run_dir": ...}
INT_MODEL_STAMP = "int_model.json"  # int8 builds: the SHA-256 of the integer model used
VERIFY_REPORT = "verify.json"  # `verify`'s record
VERIFY_STREAM_REPORT = "verify_stream.json"  # `verify --stream`'s record
DETECTOR_FILE = "detector.json"  # DetectorConfig + operating point (a run's, a build's copy)


def split_file(features_dir: Path | str, split: str) -> Path:
    """A features folder's file of one split (`<split>.npz`; also outside a run folder:
    `train --features DIR`)."""
    return Path(features_dir) / f"{split}.npz"


def cache_json(npz: Path | str) -> Path:
    """The cache-key record beside a feature file (`<name>.cache.json`)."""
    return Path(npz).with_suffix(".cache.json")


def content_digest(arrays: dict) -> str:
    """sha256 of a feature file's arrays but `paths`: what the stages trained on it learn
    from, the same for the same features made again from clips that moved."""
    h = hashlib.sha256()
    for name in sorted(k for k in arrays if k != "paths"):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\t{a.dtype.str}\t{a.shape}\n".encode())
        h.update(a.reshape(-1).view(np.uint8))  # no copy of the (GB-sized) features
    return h.hexdigest()


def features_stamp(npz: Path | str) -> Optional[str]:
    """A feature file's stamp for the done markers of the stages trained on it: its arrays'
    digest (a copied or moved run folder featurizes again to the same one and keeps its
    trained stages), the cache key for files written before the digest, None without a file."""
    marker = read_marker(cache_json(npz)) if Path(npz).is_file() else None
    return (marker.get("content") or marker.get("key")) if marker else None


def lists_json(lists_dir: Path | str) -> Path:
    """A lists folder's `lists.json`: the task, data folders and counts of the lists."""
    return Path(lists_dir) / "lists.json"


def record_compiled_run(compiled_dir: Path, run_dir: Path) -> Path:
    """Write `compiled_dir/run.json`: the run folder the build was compiled from, so `verify`
    and `verify --stream` find it without guessing from the folder's place. Relative to the
    compiled folder when that lies inside the run (RUN_DIR/device/<build>: the record stays
    true when the run folder is moved or copied), else absolute."""
    compiled, run = Path(compiled_dir).resolve(), Path(run_dir).resolve()
    rel = os.path.relpath(run, compiled) if compiled.is_relative_to(run) else str(run)
    path = Path(compiled_dir) / COMPILED_RUN
    atomic_write_text(path, json.dumps({"run_dir": Path(rel).as_posix()}) + "\n")
    return path


def compiled_run(compiled_dir: Path | str) -> Path:
    """The run folder a compiled folder was made from (`run.json`); refused with one line
    when the folder does not say (compiled before tinykws recorded it) or is damaged."""
    path = Path(compiled_dir) / COMPILED_RUN
    try:
        recorded = json.loads(path.read_text())["run_dir"]
        run_dir = Path(compiled_dir) / recorded  # an absolute record stays absolute
    except FileNotFoundError:
        raise TinyKWSError(f"{compiled_dir} does not say which run it was compiled from (no "
                           f"{COMPILED_RUN}): pass the run folder with --run, or compile again") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise TinyKWSError(f"{path} is damaged: pass the run folder with --run, or compile again") from None
    return Path(os.path.normpath(run_dir))


@dataclass(frozen=True)
class RunDir:
    """The paths of one run folder (layout: docs/architecture.md, "Run folder")."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # data, lists, features
    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def lists(self) -> Path:
        return self.root / "lists"

    @property
    def features(self) -> Path:
        return self.root / "features"

    def features_file(self, split: str) -> Path:
        return split_file(self.features, split)

    @property
    def negative_features(self) -> Path:
        """Log-mel `[N, 98, 32]` of the negatives' training speech (`dataset.featurize_negatives`)."""
        return self.features / "negatives.npz"

    @property
    def spare_features(self) -> Path:
        """Log-mel `[N, 98, 32]` of the lists' spare `_unknown_` training clips (real other
        words the clip phase's `_unknown_` share left out; `dataset.featurize_spare`)."""
        return self.features / "spare.npz"

    # training
    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def best(self) -> Path:
        """The checkpoint with the best validation accuracy."""
        return self.train / "best.pt"

    @property
    def last(self) -> Path:
        """The checkpoint of the latest epoch (what `--resume` continues)."""
        return self.train / "last.pt"

    @property
    def train_config(self) -> Path:
        return self.train / "config.json"

    @property
    def train_log(self) -> Path:
        return self.train / "log.csv"

    @property
    def curves(self) -> Path:
        return self.train / "curves.png"

    @property
    def clip(self) -> Path:
        """The clip model, kept when `tinykws.stream_training` turns best.pt into a stream model."""
        return self.train / "clip.pt"

    @property
    def verifier(self) -> Path:
        """The detector's second-look classifier (`tinykws.second_look.train_verifier`)."""
        return self.train / "verifier.pt"

    @property
    def stream_last(self) -> Path:
        """The stream phase's resume state (not a model checkpoint)."""
        return self.train / "stream_last.pt"

    @property
    def train_done(self) -> Path:
        """`tinykws pipeline`'s marker of a finished training recipe."""
        return self.train / "done.json"

    @property
    def train_started(self) -> Path:
        """`tinykws pipeline`'s marker of the training it started (as `train_done`): a killed
        run resumes from `last.pt` only if it was training the same thing."""
        return self.train / "started.json"

    def checkpoint(self) -> Path:
        """The checkpoint later stages use: `train/best.pt`, else `train/last.pt` (a run
        killed before its first eligible epoch, e.g. a sparse model still in its dense
        phase). The one place this choice is made."""
        for path in (self.best, self.last):
            if path.is_file():
                return path
        raise CheckpointError(
            f"{self.root}: no train/best.pt or train/last.pt; run `tinykws train` first"
        )

    def has_checkpoint(self) -> bool:
        return self.best.is_file() or self.last.is_file()

    # later stages
    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def model_onnx(self) -> Path:
        return self.export / "model.onnx"

    @property
    def model_step_onnx(self) -> Path:
        return self.export / "model_step.onnx"

    @property
    def quant(self) -> Path:
        return self.root / "quant"

    @property
    def int_model(self) -> Path:
        """The integer model (`IntModel`) that int8 builds are generated from."""
        return self.quant / "model_int.npz"

    @property
    def quant_report(self) -> Path:
        """`quant.json`: calibration and float-vs-integer figures (`quantize_run`)."""
        return self.quant / "quant.json"

    @property
    def qat_checkpoint(self) -> Path:
        """The quantization-aware fine-tuned float model, when `quantize` kept it."""
        return self.quant / "qat.pt"

    @property
    def detector(self) -> Path:
        """`detector.json`: the run's DetectorConfig and operating point."""
        return self.root / DETECTOR_FILE

    def device(self, build: "Build | str") -> Path:
        """Compiled C, `verify.json` and `verify_stream.json` of one build (a `Build` or its
        name: hard, soft, int8, int8-hard, ...)."""
        return self.root / "device" / (build.name if isinstance(build, Build) else build)

    def verify_report(self, build: "Build | str") -> Path:
        return self.device(build) / VERIFY_REPORT

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    def evaluation(self, suffix: str = "") -> Path:
        """`eval/evaluation<suffix>.json` ("", "_partial", "_int8", ...: `evaluation_files`)."""
        return self.eval / f"evaluation{suffix}.json"

    def confusion_plot(self, suffix: str = "") -> Path:
        """`eval/confusion<suffix>.png`, beside `evaluation(suffix)`."""
        return self.eval / f"confusion{suffix}.png"

    @property
    def stream_result(self) -> Path:
        """`eval/stream.json`: the keyword-stream benchmark (`stream_metrics`)."""
        return self.eval / "stream.json"

    @property
    def det_plot(self) -> Path:
        return self.eval / "det.png"

    @property
    def data_plot(self) -> Path:
        return self.eval / "data.png"

    @property
    def lists_json(self) -> Path:
        """`lists/lists.json`: the task, data folders and counts of the lists."""
        return lists_json(self.lists)

    @property
    def stream_log(self) -> Path:
        """`train/stream_log.csv`: the stream phase's log, one row an iteration."""
        return self.train / "stream_log.csv"

    @property
    def stream_done(self) -> Path:
        """The stream phase's done marker (pipeline: its config and cache keys)."""
        return self.train / "stream_done.json"

    @property
    def pretrain(self) -> "RunDir":
        """RUN_DIR/pretrain: the synthesized-speech run a `--pretrain` clip phase starts from."""
        return RunDir(self.root / "pretrain")

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def pipeline_json(self) -> Path:
        return self.root / "pipeline.json"

    @property
    def lock_file(self) -> Path:
        """Names the process that writes the run (`RunDir.lock`)."""
        return self.root / ".tinykws.lock"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder for writing: a second process is refused with one line
        naming the holder's pid. `fcntl.flock` on `.tinykws.lock`: the lock dies with its
        process, so a stale lock file of a dead run is simply taken over. Re-entrant within
        one process (`pipeline` runs train, quantize, compile in-process), per folder."""
        key = str(self.root.resolve())
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                _HELD[key] = (held[0], held[1] + 1)
        if held is not None:
            try:
                yield
            finally:
                _release(key)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLockedError(
                f"{self.root} is in use by another tinykws process (pid {holder}); wait for it "
                "to finish or choose another run folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        with _HELD_GUARD:
            _HELD[key] = (fd, 1)
        try:
            yield
        finally:
            _release(key)


class RunLockedError(TinyKWSError):
    """Another process holds the run folder (`RunDir.lock`)."""


_HELD: dict[str, tuple[int, int]] = {}  # resolved run folder -> (lock fd, depth) in this process
_HELD_GUARD = threading.Lock()


def _release(key: str) -> None:
    """Leave one level of `RunDir.lock`; the last one unlocks (the file stays: deleting it
    would let a third process lock a new file while a second still waits on the old one)."""
    with _HELD_GUARD:
        fd, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (fd, depth - 1)
            return
        del _HELD[key]
    os.close(fd)  # closing the last descriptor releases the flock


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes (a checkpoint: a few MB): what a later stage or a
    done marker records to tell that file apart from a rewritten one."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path | str, remedy: str) -> Any:
    """A JSON file a stage wrote and a later one reads back (lists.json, synth.json, ...),
    with a torn or unreadable file as one line naming it and saying what to do (`remedy`),
    not a JSONDecodeError traceback."""
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise TinyKWSError(f"{path} is damaged or unreadable ({reason}); {remedy}") from None


# what a marker's recorded config may raise when read back as a config: then it is no match
_UNREADABLE_CONFIG = (TinyKWSError, TypeError, ValueError, KeyError, AttributeError)


def read_marker(path: Path) -> Optional[dict]:
    """A stage's done marker (train/done.json, stream_done.json), or None when it is missing
    or unreadable (torn, edited): then the stage runs again, which is always safe."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def same_run(state: Optional[dict[str, Any]], marker: dict[str, Any], config: Any) -> bool:
    """Did the run of done-marker `state` do what `marker` asks for? The configs are compared
    as `config`s (`TrainConfig`, `StreamTrainConfig`), so a marker written before a field was
    added (which therefore ran with its default) still counts as done, instead of running again."""
    if state is None or any(state.get(k) != v for k, v in marker.items() if k != "config"):
        return False
    try:
        return config.from_dict(state["config"]) == config.from_dict(marker["config"])
    except _UNREADABLE_CONFIG:
        return False


def run_changes(state: dict[str, Any], marker: dict[str, Any], config: Any) -> str:
    """Why a finished stage runs again, for its message: what differs between its done
    marker `state` and what `marker` asks for ("frame_stride 1 -> 2, epochs 80 -> 60")."""
    changes = [f"{k} {'changed' if k in state else 'not recorded'}" for k, v in marker.items()
               if k != "config" and state.get(k) != v]
    try:
        old, new = config.from_dict(state["config"]), config.from_dict(marker["config"])
    except _UNREADABLE_CONFIG:
        return ", ".join(changes + ["its recorded config is unreadable"])
    changes += [f"{f.name} {getattr(old, f.name)!r} -> {getattr(new, f.name)!r}"
                for f in dataclasses.fields(config) if f.compare and getattr(old, f.name) != getattr(new, f.name)]
    return ", ".join(changes) or "the recorded run differs"


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename: a kill never leaves a
    torn file for a later run to trust."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write to a temporary file beside `path`, then rename: never a half-written file."""
    import torch

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- features


@dataclass
class FeatureSplit:
    """One featurized split, `features/<split>.npz` (format: docs/architecture.md)."""

    path: Path
    labels: np.ndarray  # int64 [N], index into categories
    categories: list[str]
    params: FeatureParams  # the FeatureParams that made the features
    paths: np.ndarray  # str [N], the source clip of each row
    features: Optional[np.ndarray] = None  # float32 [N, T, F]; None if read without

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def words(self) -> list[str]:
        """The word each row says: its source clip's folder in the Speech Commands layout
        ("" for every row of a file without paths)."""
        if len(self.paths) != len(self.labels):
            return [""] * len(self.labels)
        return [Path(p).parent.name for p in self.paths]


def read_features(path: Path | str, *, features: bool = True) -> FeatureSplit:
    """Read and check a feature file. `features=False` reads everything but the
    features array (labels, categories, params: cheap on a multi-GB file)."""
    path = Path(path)
    if not path.is_file():
        raise FeatureFileError(f"feature file missing: {path}; run `tinykws featurize` first")
    try:
        with np.load(path, allow_pickle=False) as z:
            needed = ("features", "labels", "categories", "feature_params")
            missing = [k for k in needed if k not in z.files]
            if missing:
                raise FeatureFileError(f"{path} lacks key {missing[0]!r}; not a tinykws feature file")
            labels = np.asarray(z["labels"])
            cats = [str(c) for c in np.atleast_1d(z["categories"])]
            fp_json = str(z["feature_params"])
            paths = np.asarray(z["paths"]) if "paths" in z.files else np.array([], dtype=str)
            x = np.asarray(z["features"], dtype=np.float32) if features else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise FeatureFileError(f"cannot read feature file {path}: {first}") from None
    try:
        params = FeatureParams.from_json(fp_json)
    except TinyKWSError as e:
        raise FeatureFileError(f"{path}: bad feature_params: {e}") from None
    except (ValueError, TypeError) as e:
        raise FeatureFileError(f"{path}: feature_params is not a JSON object of parameters ({e})") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise FeatureFileError(f"{path}: labels must be integers [N], got {labels.dtype} {labels.shape}")
    labels = labels.astype(np.int64, copy=False)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(cats)):
        raise FeatureFileError(f"{path}: labels outside the {len(cats)} categories")
    if x is not None:
        if x.ndim != 3 or len(x) != len(labels):
            raise FeatureFileError(f"{path}: features must be [N, T, F] with one label a row, "
                                   f"got {list(x.shape)} for {len(labels)} labels")
        if x.shape[2] != params.n_mels:
            raise FeatureFileError(f"{path}: {x.shape[2]} features a frame, but its feature_params "
                                   f"say n_mels={params.n_mels}")
    return FeatureSplit(path, labels, cats, params, paths, x)


def check_split_made_like(split: FeatureSplit, categories: Sequence[str], params: FeatureParams,
                          source: str) -> None:
    """Refuse a split whose categories (or their order) or feature parameters are not
    `source`'s (another split, or the checkpoint)."""
    if list(split.categories) != list(categories):
        raise FeatureFileError(f"{split.path.name} and {source} have different categories "
                               f"({list(split.categories)} vs {list(categories)}); "
                               "featurize from one lists folder")
    if split.params != params:
        pa, pb = params.to_dict(), split.params.to_dict()
        diff = ", ".join(f"{k} {pb[k]!r} vs {pa[k]!r}" for k in pa if pa[k] != pb[k])
        raise FeatureFileError(f"{split.path.name} was made with other feature parameters than "
                               f"{source} ({diff}); featurize with one setting")


def check_splits_agree(reference: FeatureSplit, other: FeatureSplit) -> None:
    """Refuse splits of one run made differently: other categories (or their order),
    other feature parameters, or another number of features a frame."""
    a, b = reference, other
    check_split_made_like(b, a.categories, a.params, a.path.name)
    if a.features is not None and b.features is not None and a.features.shape[2] != b.features.shape[2]:
        raise FeatureFileError(f"{b.path.name} has {b.features.shape[2]} features a frame, "
                               f"{a.path.name} {a.features.shape[2]}")
