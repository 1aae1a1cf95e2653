"""The mailbox harness: the host writes a clip's audio into RAM, `tkws_harness_run` (see
`runtime/harness.c`) feeds it block by block through the generated featurizer and model,
and the host reads back features and class scores. In an int8 build, `tkws_harness_run_q`
runs the all-integer firmware loop instead (`KWSDevice.run_clip(integer=True)`: int16
samples -> `mfcc_FilterInt16` -> `completemodel_PredictQ` -> `detector_ProcessQ`).

The header's fields are defined once in `layout.MAILBOX`; `mailbox_fields` decides where
the features and scores go in the data area, and tells the device in the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from tinykws.device.emulator import CallCounts, Emulator
from tinykws.device.errors import DeviceError
from tinykws.device.layout import MAILBOX_STATUS, mailbox_offset, pack_mailbox
from tinykws.quant.formats import FEATURE_FRAC_BITS  # mfcc_FilterInt16's Q7.8

Q15_ONE = 1 << 15  # completemodel_PredictQ, detector_ProcessQ: Q15 (tinykws.triggers.Q15_ONE)


@dataclass(frozen=True)
class HarnessShape:
    """Sizes the mailbox harness needs: block length, features and scores per call, and the
    number of blocks after a reset before the featurizer's window is full."""

    block_len: int = 160
    n_features: int = 32
    n_scores: int = 12
    warmup_blocks: int = 2


def mailbox_fields(shape: HarnessShape, n_blocks: int, reset: bool,
                   detect: bool = False, integer: bool = False) -> dict[str, int]:
    """The host's header fields for one harness call over `n_blocks` blocks. Data area
    (offsets in 32-bit words): audio [n_blocks * block_len], then features
    [n_blocks * n_features], then scores [frames * n_scores], each float32 (or with
    `integer`, int16, two to a word), then (detect) detections [frames * 2] (float32;
    `integer`: int32)."""

    def words(n: int) -> int:
        return (n + 1) // 2 if integer else n

    features_at = words(n_blocks * shape.block_len)
    scores_at = features_at + words(n_blocks * shape.n_features)
    return {
        "n_blocks": n_blocks,
        "block_len": shape.block_len,
        "n_features": shape.n_features,
        "n_scores": shape.n_scores,
        "warmup_blocks": shape.warmup_blocks,
        "reset": int(reset),
        "features_at": features_at,
        "scores_at": scores_at,
        "detect": int(detect),
        "detections_at": scores_at + words(n_blocks * shape.n_scores),
    }


def mailbox_words(fields: dict[str, int]) -> int:
    """32-bit words of the data area that a call with header `fields` uses."""
    return fields["detections_at"] + (2 * fields["n_blocks"] if fields["detect"] else 0)


def check_status(status: int, elf: Path | str) -> None:
    """Raise a DeviceError unless the harness reported DONE in the header's `status`."""
    if status == MAILBOX_STATUS["DONE"]:
        return
    if status == MAILBOX_STATUS["NO_INTEGER"]:
        raise DeviceError(f"{elf} has no integer entry points (mfcc_FilterInt16, "
                          "completemodel_PredictQ): not an int8 build")
    if status == MAILBOX_STATUS["BAD_MAGIC"]:
        why = "the harness rejected the mailbox magic this tinykws writes"
    else:
        why = f"the harness did not report (status {status})"
    raise DeviceError(
        f"{why}: {elf} was built with another mailbox layout (another tinykws version?); "
        "delete its build folder and run again"
    )


@dataclass
class ClipRun:
    """One harness call's outputs. The integer loop's are in the float interface's units
    (Q7.8 / 256, Q15 / 32768: exact), so both loops compare with one reference."""

    features: np.ndarray  # [n_blocks, n_features] float32: mfcc_Filter output of every block
    scores: np.ndarray  # [n_frames, n_scores] float32: completemodel_Predict output per frame
    counts: Optional[CallCounts] = None
    fired: Optional[np.ndarray] = None  # detect: int32 [n_frames], class that fired or -1
    confidence: Optional[np.ndarray] = None  # detect: float32 [n_frames], detector_Process's
    # (integer: detector_ProcessQ's Q15 confidence / 32768)


class KWSDevice:
    """The emulated board running the generated featurizer + model through the harness."""

    TRACKED = ("mfcc_Filter", "completemodel_Predict", "mfcc_Reset", "completemodel_Reset")
    DETECTOR = ("detector_Process", "detector_Reset")  # tracked too when linked
    # the all-integer loop of an int8 build (tkws_harness_run_q)
    INT_TRACKED = ("mfcc_FilterInt16", "completemodel_PredictQ", "mfcc_Reset",
                   "completemodel_Reset")
    INT_DETECTOR = ("detector_ProcessQ", "detector_Reset")

    def __init__(self, elf: Path | str, shape: HarnessShape) -> None:
        self.em = Emulator(elf)
        self.shape = shape
        for name in (*self.TRACKED, "tkws_harness_run", "tkws_mailbox", "tkws_mailbox_data"):
            self.em.addr(name)  # a clear error when the image lacks the harness or the API
        have = self.em.symbols
        self.has_detector = all(n in have for n in self.DETECTOR)
        self.tracked = self.TRACKED + (self.DETECTOR if self.has_detector else ())
        self.has_integer = all(n in have for n in (*self.INT_TRACKED, "tkws_harness_run_q"))
        self.int_tracked = self.INT_TRACKED + (
            self.INT_DETECTOR if all(n in have for n in self.INT_DETECTOR) else ())
        self.data_addr = self.em.addr("tkws_mailbox_data")
        self.capacity = (self.em.addr("_mailbox_end") - self.data_addr) // 4  # 32-bit words

    def run_clip(
        self,
        audio: np.ndarray,
        count: bool = False,
        reset: bool = True,
        count_blocks: Optional[int] = None,
        detect: bool = False,
        integer: bool = False,
    ) -> ClipRun:
        """Feed `audio` (int16-scale samples, a whole number of blocks) block by block.

        With `reset`, the states are reset first and the first `warmup_blocks` blocks feed
        the featurizer only, as a firmware loop does after start-up. With `count`, the
        instructions of the first `count_blocks` blocks (default: all) are counted; the rest
        of the clip runs hook-free, continuing the same states. With `detect` (an image
        with the generated detector), every frame's scores also go through
        `detector_Process` (`fired`, `confidence`). With `integer` (an int8 build), the
        all-integer loop runs instead: int16 samples -> `mfcc_FilterInt16` ->
        `completemodel_PredictQ` -> `detector_ProcessQ`, on the same default states.
        """
        s = self.shape
        x = self._samples(audio, integer)
        n_blocks = x.size // s.block_len
        if detect and not self.has_detector:
            raise DeviceError(f"{self.em.elf.name} has no detector: link detector.S")
        if integer and not self.has_integer:
            raise DeviceError(f"{self.em.elf.name} has no integer entry points "
                              "(mfcc_FilterInt16, completemodel_PredictQ): not an int8 build")
        need = mailbox_words(mailbox_fields(s, n_blocks, reset, detect, integer))
        if need > self.capacity:
            raise DeviceError(
                f"clip too long for the device mailbox ({n_blocks} blocks; at most "
                f"{n_blocks * self.capacity // need})"
            )
        if not count or count_blocks is None or count_blocks >= n_blocks:
            return self._run_part(x, count, reset, detect, integer)
        if count_blocks <= s.warmup_blocks:
            raise DeviceError(f"count_blocks must exceed the {s.warmup_blocks} warm-up blocks")
        cut = count_blocks * s.block_len
        head = self._run_part(x[:cut], True, reset, detect, integer)
        tail = self._run_part(x[cut:], False, False, detect, integer)
        return ClipRun(
            np.concatenate([head.features, tail.features]),
            np.concatenate([head.scores, tail.scores]),
            head.counts,
            None if not detect else np.concatenate([head.fired, tail.fired]),
            None if not detect else np.concatenate([head.confidence, tail.confidence]),
        )

    def _samples(self, audio: np.ndarray, integer: bool) -> np.ndarray:
        """`audio` as the harness takes it: float32, or int16 for the integer loop (the
        values must be int16 samples then: the integer featurizer takes nothing else)."""
        block = self.shape.block_len
        a = np.asarray(audio)
        if a.ndim != 1 or a.size % block:
            raise DeviceError(
                f"run_clip: need a 1-D clip of whole {block}-sample blocks, got {a.shape}"
            )
        if not integer:
            return a.astype(np.float32)
        x = a.astype(np.int16)
        if a.dtype != np.int16 and not np.array_equal(x, a):
            raise DeviceError("run_clip(integer=True): the samples must be int16 values")
        return x

    def _run_part(self, x: np.ndarray, count: bool, reset: bool, detect: bool = False,
                  integer: bool = False) -> ClipRun:
        """One harness call over the blocks of `x` (float32, or int16 with `integer`)."""
        s = self.shape
        n_blocks = x.size // s.block_len
        fields = mailbox_fields(s, n_blocks, reset, detect, integer)
        mailbox = self.em.addr("tkws_mailbox")
        self.em.write(mailbox, pack_mailbox(**fields))
        dtype = "<i2" if integer else "<f4"
        self.em.write(self.data_addr, np.ascontiguousarray(x, dtype=dtype).tobytes())
        fn, tracked = ("tkws_harness_run_q", self.int_tracked) if integer else (
            "tkws_harness_run", self.tracked)
        counts = None
        if count:
            _, counts = self.em.call(fn, count=tracked)
        else:
            self.em.call(fn)
        check_status(self.em.read_u32(mailbox + mailbox_offset("status"))[0], self.em.elf)
        frames = self.em.read_u32(mailbox + mailbox_offset("frames_done"))[0]

        def read(at: str, n: int, dt: str = dtype) -> np.ndarray:
            addr = self.data_addr + 4 * fields[at]
            return np.frombuffer(bytes(self.em.uc.mem_read(addr, n * int(dt[-1]))), dt)

        features = read("features_at", n_blocks * s.n_features).reshape(n_blocks, s.n_features)
        scores = read("scores_at", frames * s.n_scores).reshape(frames, s.n_scores)
        if integer:  # the float interface's units: exact (powers of two)
            features = features.astype(np.float32) / np.float32(1 << FEATURE_FRAC_BITS)
            scores = scores.astype(np.float32) / np.float32(Q15_ONE)
        else:
            features, scores = features.copy(), scores.copy()
        if not detect:
            return ClipRun(features, scores, counts)
        det = read("detections_at", 2 * frames, "<i4" if integer else "<f4").reshape(frames, 2)
        confidence = (det[:, 1].astype(np.float32) / np.float32(Q15_ONE) if integer
                      else det[:, 1].copy())
        return ClipRun(features, scores, counts, det[:, 0].astype(np.int32), confidence)

    def peak_stack(self, counts: Optional[CallCounts] = None) -> int:
        """Deepest stack use of the featurizer and model calls (bytes below the SP at the call)."""
        used = self.em.stack_used()
        if counts is None or not counts.sp_at_entry:
            return used
        caller_frame = self.em.stack_top - min(counts.sp_at_entry.values())
        return used - caller_frame

