"""The mailbox harness: the host writes a clip's audio into RAM, `tkws_harness_run` (see
`runtime/harness.c`) feeds it block by block through the generated featurizer and model,
and the host reads back features and class scores.

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


@dataclass(frozen=True)
class HarnessShape:
    """Sizes the mailbox harness needs: block length, features and scores per call, and the
    number of blocks after a reset before the featurizer's window is full."""

    block_len: int = 160
    n_features: int = 32
    n_scores: int = 12
    warmup_blocks: int = 2


def mailbox_fields(shape: HarnessShape, n_blocks: int, reset: bool,
                   detect: bool = False) -> dict[str, int]:
    """The host's header fields for one harness call over `n_blocks` blocks. Data area
    (floats): audio [n_blocks * block_len], then features [n_blocks * n_features], then
    scores [frames * n_scores], then (detect) detections [frames * 2]."""
    features_at = n_blocks * shape.block_len
    scores_at = features_at + n_blocks * shape.n_features
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
        "detections_at": scores_at + n_blocks * shape.n_scores,
    }


def check_status(status: int, elf: Path | str) -> None:
    """Raise a DeviceError unless the harness reported DONE in the header's `status`."""
    if status == MAILBOX_STATUS["DONE"]:
        return
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
    features: np.ndarray  # [n_blocks, n_features] float32: mfcc_Filter output of every block
    scores: np.ndarray  # [n_frames, n_scores] float32: completemodel_Predict output per frame
    counts: Optional[CallCounts] = None
    fired: Optional[np.ndarray] = None  # detect: int32 [n_frames], class that fired or -1
    confidence: Optional[np.ndarray] = None  # detect: float32 [n_frames], detector_Process's


class KWSDevice:
    """The emulated board running the generated featurizer + model through the harness."""

    TRACKED = ("mfcc_Filter", "completemodel_Predict", "mfcc_Reset", "completemodel_Reset")
    DETECTOR = ("detector_Process", "detector_Reset")  # tracked too when linked

    def __init__(self, elf: Path | str, shape: HarnessShape) -> None:
        self.em = Emulator(elf)
        self.shape = shape
        for name in (*self.TRACKED, "tkws_harness_run", "tkws_mailbox", "tkws_mailbox_data"):
            self.em.addr(name)  # a clear error when the image lacks the harness or the API
        self.has_detector = all(n in self.em.symbols for n in self.DETECTOR)
        self.tracked = self.TRACKED + (self.DETECTOR if self.has_detector else ())
        self.data_addr = self.em.addr("tkws_mailbox_data")
        self.capacity = (self.em.addr("_mailbox_end") - self.data_addr) // 4  # floats

    def run_clip(
        self,
        audio: np.ndarray,
        count: bool = False,
        reset: bool = True,
        count_blocks: Optional[int] = None,
        detect: bool = False,
    ) -> ClipRun:
        """Feed `audio` (int16-scale samples, a whole number of blocks) block by block.

        With `reset`, the states are reset first and the first `warmup_blocks` blocks feed
        the featurizer only, as a firmware loop does after start-up. With `count`, the
        instructions of the first `count_blocks` blocks (default: all) are counted; the rest
        of the clip runs hook-free, continuing the same states. With `detect` (an image
        with the generated detector), every frame's scores also go through
        `detector_Process` (`fired`, `confidence`).
        """
        s = self.shape
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1 or x.size % s.block_len:
            raise DeviceError(
                f"run_clip: need a 1-D clip of whole {s.block_len}-sample blocks, got {x.shape}"
            )
        n_blocks = x.size // s.block_len
        if detect and not self.has_detector:
            raise DeviceError(f"{self.em.elf.name} has no detector: link detector.S")
        per_block = s.block_len + s.n_features + s.n_scores + 2 * detect
        if n_blocks * per_block > self.capacity:
            raise DeviceError(
                f"clip too long for the device mailbox ({n_blocks} blocks; at most "
                f"{self.capacity // per_block})"
            )
        if not count or count_blocks is None or count_blocks >= n_blocks:
            return self._run_part(x, count, reset, detect)
        if count_blocks <= s.warmup_blocks:
            raise DeviceError(f"count_blocks must exceed the {s.warmup_blocks} warm-up blocks")
        cut = count_blocks * s.block_len
        head = self._run_part(x[:cut], True, reset, detect)
        tail = self._run_part(x[cut:], False, False, detect)
        return ClipRun(
            np.concatenate([head.features, tail.features]),
            np.concatenate([head.scores, tail.scores]),
            head.counts,
            None if not detect else np.concatenate([head.fired, tail.fired]),
            None if not detect else np.concatenate([head.confidence, tail.confidence]),
        )

    def _run_part(self, x: np.ndarray, count: bool, reset: bool, detect: bool = False) -> ClipRun:
        """One harness call over the blocks of `x`."""
        s = self.shape
        n_blocks = x.size // s.block_len
        fields = mailbox_fields(s, n_blocks, reset, detect)
        mailbox = self.em.addr("tkws_mailbox")
        self.em.write(mailbox, pack_mailbox(**fields))
        self.em.write_f32(self.data_addr, x)
        counts = None
        if count:
            _, counts = self.em.call("tkws_harness_run", count=self.tracked)
        else:
            self.em.call("tkws_harness_run")
        check_status(self.em.read_u32(mailbox + mailbox_offset("status"))[0], self.em.elf)
        frames = self.em.read_u32(mailbox + mailbox_offset("frames_done"))[0]
        feat_addr = self.data_addr + 4 * fields["features_at"]
        features = self.em.read_f32(feat_addr, n_blocks * s.n_features)
        features = features.reshape(n_blocks, s.n_features)
        score_addr = self.data_addr + 4 * fields["scores_at"]
        scores = self.em.read_f32(score_addr, frames * s.n_scores).reshape(frames, s.n_scores)
        if not detect:
            return ClipRun(features, scores, counts)
        det = self.em.read_f32(self.data_addr + 4 * fields["detections_at"], 2 * frames)
        det = det.reshape(frames, 2)
        return ClipRun(features, scores, counts, det[:, 0].astype(np.int32), det[:, 1].copy())

    def peak_stack(self, counts: Optional[CallCounts] = None) -> int:
        """Deepest stack use of the featurizer and model calls (bytes below the SP at the call)."""
        used = self.em.stack_used()
        if counts is None or not counts.sp_at_entry:
            return used
        caller_frame = self.em.stack_top - min(counts.sp_at_entry.values())
        return used - caller_frame

