"""The typed records of the run folder's JSON files (`tinykws.records`): each loads the file
its stage wrote before the records existed, and saves it back byte for byte; a missing,
torn or wrong file is one line naming it and what to run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tinykws.device.verify_stream import StreamVerifyReport
from tinykws.errors import TinyKWSError
from tinykws.records import (
    Agreement, ClipModelResult, EvalResult, FalseAlarm, QuantMeasure, QuantReport, StreamResult,
    StreamScore, VerifyReport,
)

# Files written by the stages before the records existed (a `pipeline --quick` run of the
# commit before them; the DET curves cut to their first points, absolute paths shortened)
OLD = Path(__file__).parent / "fixtures" / "records"
FILES = {
    "evaluation.json": EvalResult,
    "evaluation_int8.json": EvalResult,
    "stream.json": StreamResult,
    "quant.json": QuantReport,
    "verify_hard.json": VerifyReport,
    "verify_int8.json": VerifyReport,
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_file_written_before_the_records_loads_and_saves_byte_for_byte(name, tmp_path):
    cls = FILES[name]
    record = cls.load(OLD / name)
    assert isinstance(record, cls)
    out = record.save(tmp_path / name)
    assert out.read_bytes() == (OLD / name).read_bytes()
    assert cls.load(out) == record


def test_the_old_files_load_as_typed_attributes():
    st = StreamResult.load(OLD / "stream.json")
    assert isinstance(st.at_threshold, StreamScore) and 0.0 <= st.at_threshold.recall <= 1.0
    assert all(isinstance(p, StreamScore) for p in st.curve)
    assert isinstance(st.best_at_1_fa_per_hour, StreamScore)
    assert isinstance(st.clip_model, ClipModelResult) and st.negatives is not None
    assert st.clip_recall is not None and st.clip_recall.n == st.n_keywords
    q = QuantReport.load(OLD / "quant.json")
    assert isinstance(q.ptq, QuantMeasure) and isinstance(q.ptq.validation, Agreement)
    assert q.qat is None and q.chosen == "ptq" and q.out.endswith("quant/model_int.npz")
    v = VerifyReport.load(OLD / "verify_int8.json")
    assert v.ok and v.precision == "int8" and v.max_abs_diff == 0.0
    assert v.instructions_per_frame == v.instructions_of("featurizer") + v.instructions_of("model")
    assert v.max_instructions_per_frame == 23_911 + 4_744  # the file's two "max"
    v.instructions["model"].pop("max")  # a file without them: no bound, not a wrong one
    assert v.max_instructions_per_frame is None
    assert v.model_flash == sum(v.sizes["model"][k] for k in ("text", "rodata", "data"))
    ev = EvalResult.load(OLD / "evaluation.json")
    assert ev.n == sum(m["support"] for m in ev.per_class.values()) and ev.partial_of is None


def test_optional_parts_stay_out_of_a_file_that_never_had_them(tmp_path):
    """A stream check without a negatives set or clip model, a quantization without
    fine-tuning: no `null` keys appear, and the keys keep their order (`epochs` first)."""
    st = StreamResult.load(OLD / "stream.json")
    st.negatives = st.clip_model = None
    assert list(json.loads(st.to_json())) == [k for k in json.loads((OLD / "stream.json").read_text())
                                             if k not in ("negatives", "clip_model")]
    q = QuantReport.load(OLD / "quant.json")
    assert "qat" not in q.to_dict() and "testing" in q.to_dict()["ptq"]
    q.qat = QuantMeasure(h_max_abs=[1.0], h_frac=[12], validation=q.ptq.validation, epochs=3)
    d = json.loads(q.save(tmp_path / "q.json").read_text())
    assert list(d) == ["checkpoint", "per_row", "ptq", "calibration_clips", "qat", "chosen",
                       "source_checkpoint", "base_sha256", "out"]
    assert list(d["qat"]) == ["epochs", "h_max_abs", "h_frac", "validation"]
    assert QuantReport.load(tmp_path / "q.json") == q


def test_the_verify_stream_report_is_a_record_too(tmp_path):
    r = StreamVerifyReport(
        ok=True, audio="a.wav", audio_seconds=2.0, frames=198, float_abi="hard", toolchain="gcc",
        detector={"mode": "rolling"}, smooth_steps=3, refractory_steps=50, device_detections=[],
        python_detections=[], first_difference=None, max_confidence_diff=0.0, max_score_diff=0.0,
        instructions={"total": {"mean": 1.0}})
    path = r.save(tmp_path / "verify_stream.json")
    assert path.read_text() == json.dumps(r.to_dict(), indent=2) + "\n"
    assert StreamVerifyReport.load(path) == r


@pytest.mark.parametrize("content, says", [
    (None, "No such file"),
    ('{"accuracy": 0.9, "per_cl', "Unterminated string"),
    (b"\xff\xfe{}", "codec can't decode"),
    ("[1, 2]", "is not a JSON object"),
    ('{"accuracy": 0.9}', "no 'per_class'"),
    ('{"accuracy": 0.9, "per_class": {}, "confusion": 3, "categories": [], "n": 1}',
     "confusion is not a list"),
])
def test_a_missing_torn_or_wrong_file_is_one_line(tmp_path, content, says):
    path = tmp_path / "evaluation.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(TinyKWSError) as e:
        EvalResult.load(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and says in msg
    assert msg.endswith("run `tinykws evaluate RUN_DIR --data DIR` again")


def test_load_if_present_tells_a_missing_file_from_a_damaged_one(tmp_path):
    assert VerifyReport.load_if_present(tmp_path / "verify.json") is None
    shutil.copy(OLD / "verify_hard.json", tmp_path / "verify.json")
    assert VerifyReport.load_if_present(tmp_path / "verify.json").float_abi == "hard"
    (tmp_path / "verify.json").write_text("{")
    with pytest.raises(TinyKWSError, match="verify.json is damaged"):
        VerifyReport.load_if_present(tmp_path / "verify.json")


def test_false_alarms_load_as_records(tmp_path):
    """(The quick run of the fixture had none: one is added here.)"""
    d = json.loads((OLD / "stream.json").read_text())
    fa = {"time_s": 1.5, "fired": "yes", "kind": "other word", "word": "bed", "source": "bed/a.wav",
          "confidence": 0.97}
    d["negatives"]["false_alarms_at_threshold"] = [fa]
    (tmp_path / "stream.json").write_text(json.dumps(d, indent=2))
    st = StreamResult.load(tmp_path / "stream.json")
    assert st.negatives.false_alarms_at_threshold == [FalseAlarm(**fa)]
    assert st.save(tmp_path / "again.json").read_text() == (tmp_path / "stream.json").read_text()


def test_a_newer_writers_extra_key_is_left_out(tmp_path):
    d = json.loads((OLD / "evaluation.json").read_text())
    (tmp_path / "e.json").write_text(json.dumps({**d, "from_the_future": 1}))
    assert EvalResult.load(tmp_path / "e.json") == EvalResult.load(OLD / "evaluation.json")
