"""The integer FastGRNN / FastRNN / GRU: its fixed-point formats, quantization from a float
`KWSModel`, and the Python integer reference the generated C matches bit for bit.

Formats (value = integer * 2^-frac):

| quantity | type | format |
| --- | --- | --- |
| input features | int16 | Q7.8 (`formats.FEATURE_FRAC_BITS`) |
| weights W, U, fc | int8 | per-row scale (float at quantization, folded into `*_mult`) |
| pre-activation a = W x + U h + bias | int32 | Q.12 (`PRE_FRAC`), W x + U h clamped to [-2^27, 2^27) |
| sigmoid, tanh, zeta/nu, alpha/beta | int32 | Q15 (`0 .. 32768`, `-32768 .. 32768`) |
| hidden state h of layer l | int16 | Q.`h_frac[l]` (calibrated: 15 - bits of 1.5 max abs h, 8..13) |
| logits | int32 | Q.10 (`LOGIT_FRAC`) |
| class scores (softmax) | int16 | Q15, 0 .. 32767 |

Input normalisation is folded into the first layer: W' = W / std (per column) and the
constant -W' mean is added to both biases, so the model consumes raw Q7.8 features.

Per layer, one frame: accW = W_q x_q and accU = U_q h_q (int32 sums of int8 x int16),
a = (accW * w_mult[i] + accU * u_mult[i] + 2^31) >> 32 (the high word of an int64 sum;
`*_mult` = row scale * 2^(PRE_FRAC - input frac + 32), rounded, int32), clamped to
[-2^27, 2^27), then z = sigmoid_q15(a + bias_gate), c = tanh_q15(a + bias_update) and
h' = (z h + (g c >> (15 - h_frac)) + 2^14) >> 15 (int32, saturated to int16) with
g = ((zeta (32768 - z) + 2^14) >> 15) + nu (FastGRNN; FastRNN: z -> beta, g -> alpha).
h_frac <= 13 keeps every sum below 2^31.

GRU (PyTorch's gates r, z, n; W [3H, in], U [3H, H], rows in that order): r and z as a above
(one high word of both products) plus `bias_gate` (b_i + b_h of the gate); the n gate's two
products are rounded apart, xn = (accW * w_mult + 2^31) >> 32 + bias_gate (b_in) and
hn = (accU * u_mult + 2^31) >> 32 + bias_update (b_hn, [H]), because r multiplies only the
second: n = tanh(xn + ((r hn + 2^14) >> 15)) (r hn in int64), then h' as above with
g = 2^15 - z: h' = (z h + ((2^15 - z) n >> (15 - h_frac)) + 2^14) >> 15.

tanh is a 513-entry Q15 table on [0, 8] (step 1/64) with linear interpolation, odd
symmetry, |u| clamped below 8 (where the table is already 1.0); sigmoid(u) = (1 + tanh(u / 2)) / 2 on the same table. The softmax
uses exp(d) = 2^(d log2 e) with a 257-entry Q16 table of 2^-f (interpolated) and one
integer division a class. Errors against float64 (tests/test_quant_model.py asserts them):
`TANH_MAX_ERR`, `SIGMOID_MAX_ERR`.

Every step is integer arithmetic with arithmetic right shifts (numpy's `>>` on int64 and
C's `>>` on signed values in gcc and clang), so this reference and the C are identical.
The matrix products run as float64 GEMMs: every partial sum is an integer below 2^53, so
they are exact and vectorised over clips.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tinykws.errors import TinyKWSError
from tinykws.quant.formats import FEATURE_FRAC_BITS

PRE_FRAC = 12  # pre-activations, int32
LOGIT_FRAC = 10  # logits, int32
Q15 = 1 << 15
ACT_CLAMP = 1 << 27  # pre-activations, logits clamped to [-2^27, 2^27 - 1] (SSAT #28)
TANH_STEP_BITS = 6  # tanh table step 2^-6
TANH_RANGE = 8  # table covers [0, 8]; tanh(8) = 1 - 2.3e-7
EXP2_BITS = 8  # 2^-f table step 2^-8
EXP_FRAC = 14  # softmax exponent d log2(e), Q14 (LOGIT_FRAC + 15 - 11)
LOG2E_Q15 = 47274  # round(log2(e) * 2^15)
SOFTMAX_CLAMP = (1 << 15) - 1  # logit differences beyond 32 (Q10) give exp = 0 anyway
WEIGHT_MAX = 127  # int8 weights in -127..127 (symmetric)
# Max |error| against float64 on every Q.12 input in [-20, 20] (tests/test_quant_model.py).
TANH_MAX_ERR = 5.0e-5  # measured 4.65e-5
SIGMOID_MAX_ERR = 4.0e-5  # measured 3.85e-5
SOFTMAX_MAX_ERR = 1.5e-4  # probabilities, on exact Q10 logits (measured 1.13e-4 on 24k)
ARCHS = ("fastgrnn", "fastrnn", "gru")


def tanh_table() -> np.ndarray:
    """uint16 [513]: round(tanh(k / 64) * 2^15), k = 0 .. 512."""
    k = np.arange(TANH_RANGE * (1 << TANH_STEP_BITS) + 1, dtype=np.float64)
    return np.round(np.tanh(k / (1 << TANH_STEP_BITS)) * Q15).astype(np.uint16)


def exp2_table() -> np.ndarray:
    """uint32 [257]: round(2^(-k / 256) * 2^16), k = 0 .. 256."""
    k = np.arange((1 << EXP2_BITS) + 1, dtype=np.float64)
    return np.round(np.exp2(-k / (1 << EXP2_BITS)) * 65536).astype(np.uint32)


_TANH = tanh_table().astype(np.int64)
_EXP2 = exp2_table().astype(np.int64)


def tanh_q15(u: np.ndarray, frac: int) -> np.ndarray:
    """tanh of int `u` in Q.frac -> int64 Q15 in [-32768, 32768] (frac > TANH_STEP_BITS)."""
    u = np.asarray(u, dtype=np.int64)
    sh = frac - TANH_STEP_BITS
    last = TANH_RANGE << TANH_STEP_BITS
    m = np.minimum(np.abs(u), (last << sh) - 1)  # USAT: beyond 8, T[511] = T[512] = 2^15
    k = m >> sh
    f = m & ((1 << sh) - 1)
    lo = _TANH[k]
    r = lo + (((_TANH[k + 1] - lo) * f + (1 << (sh - 1))) >> sh)
    return np.where(u < 0, -r, r)


def sigmoid_q15(u: np.ndarray, frac: int) -> np.ndarray:
    """sigmoid of int `u` in Q.frac -> int64 Q15 in [0, 32768]: (1 + tanh(u / 2)) / 2."""
    return (Q15 + tanh_q15(u, frac + 1)) >> 1


def softmax_q15(logits: np.ndarray) -> np.ndarray:
    """Integer softmax over the last axis: int logits Q.LOGIT_FRAC -> int64 Q15, 0..32767."""
    lg = np.asarray(logits, dtype=np.int64)
    d = np.minimum(lg.max(axis=-1, keepdims=True) - lg, SOFTMAX_CLAMP)  # >= 0
    y = (d * LOG2E_Q15 + (1 << 10)) >> 11  # Q14: d log2(e)
    n = y >> EXP_FRAC
    fr = y & ((1 << EXP_FRAC) - 1)
    sh = EXP_FRAC - EXP2_BITS
    k = fr >> sh
    lo = _EXP2[k]
    e = lo - (((lo - _EXP2[k + 1]) * (fr & ((1 << sh) - 1)) + (1 << (sh - 1))) >> sh)
    e = np.where(n < 31, e >> np.minimum(n, 31), 0)  # Q16, the maximum gives 65536
    s = e.sum(axis=-1, keepdims=True)
    p = (e * Q15 + (s >> 1)) // s
    return np.minimum(p, SOFTMAX_CLAMP)


def sat16(v: np.ndarray) -> np.ndarray:
    return np.clip(v, -32768, 32767)


def quantize_features(x: np.ndarray) -> np.ndarray:
    """Float log-mel -> int16 Q7.8: x * 256 rounded half to even, saturated (the contract
    of `tinykws.quant.formats`; the generated C's float entry point does the same with bit
    operations, `tkws_q78_from_float`)."""
    with np.errstate(over="ignore"):  # beyond float32: inf, saturated below
        v = np.asarray(x, dtype=np.float32) * np.float32(1 << FEATURE_FRAC_BITS)  # exact
    return np.rint(np.clip(v, np.float32(-32768.0), np.float32(32767.0))).astype(np.int16)


@dataclass
class IntLayer:
    """One integer FastGRNN / FastRNN / GRU layer (see the module docstring for the
    arithmetic). A GRU layer's W, U, multipliers and `bias_gate` have 3H rows (r, z, n)."""

    w: np.ndarray  # int8 [H, in] (GRU [3H, in])
    w_mult: np.ndarray  # int64 [H] (GRU [3H])
    u: np.ndarray  # int8 [H, H] (GRU [3H, H])
    u_mult: np.ndarray  # int64 [H] (GRU [3H])
    shift: int  # 0 unless the multipliers would overflow int32 (see `_multipliers`)
    bias_gate: np.ndarray  # int64 [H], Q.PRE_FRAC (zeros for FastRNN; GRU [3H]: b_ir + b_hr, b_iz + b_hz, b_in)
    bias_update: np.ndarray  # int64 [H], Q.PRE_FRAC (GRU: b_hn)
    k1: int  # Q15: FastGRNN sigmoid(zeta); FastRNN sigmoid(alpha); GRU 0
    k2: int  # Q15: FastGRNN sigmoid(nu); FastRNN sigmoid(beta); GRU 0
    in_frac: int
    h_frac: int
    # Low rank (kept factored): W x = w @ (w1 x), the inner vector narrowed to int16 Q.w1_frac
    # (`narrow16`); `w` is then the second factor [H, rank] and `w_mult` scales Q.w1_frac
    # inputs. Likewise U h = u @ (u1 h). None: full rank.
    w1: Optional[np.ndarray] = None  # int8 [rank, in]
    w1_mult: Optional[np.ndarray] = None  # int64 [rank]: row scale * 2^(w1_frac - in_frac + 32)
    w1_frac: int = 0
    u1: Optional[np.ndarray] = None  # int8 [rank, H]
    u1_mult: Optional[np.ndarray] = None  # int64 [rank]: row scale * 2^(u1_frac - h_frac + 32)
    u1_frac: int = 0

    @property
    def hidden(self) -> int:
        return int(len(self.bias_update))

    @property
    def input_size(self) -> int:
        return int((self.w if self.w1 is None else self.w1).shape[1])

    @property
    def factored(self) -> bool:
        """Whether W or U is kept as two low-rank factors."""
        return self.w1 is not None or self.u1 is not None


@dataclass
class IntModel:
    """An integer KWS model: layers, classifier, formats; runs frames of Q7.8 features."""

    arch: str
    layers: list[IntLayer]
    fc_w: np.ndarray  # int8 [C, H]
    fc_mult: np.ndarray  # int64 [C]
    fc_shift: int
    fc_bias: np.ndarray  # int64 [C], Q.LOGIT_FRAC
    categories: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # how it was made (scales, calibration)
    frame_stride: int = 1  # frames per recurrent step (`ModelConfig.frame_stride`)

    @property
    def num_classes(self) -> int:
        return int(self.fc_w.shape[0])

    @property
    def input_size(self) -> int:
        """Features per frame (the first layer takes `frame_stride` frames stacked)."""
        return int(self.layers[0].input_size) // self.frame_stride

    def init_state(self, n: int) -> list[np.ndarray]:
        """Zero state: one int64 [n, H] per layer (values stay within int16); with a frame
        stride s > 1 also the last s - 1 frames [n, (s - 1) F] and the phase [n] (frames
        since the last step)."""
        hs = [np.zeros((n, layer.hidden), np.int64) for layer in self.layers]
        if self.frame_stride == 1:
            return hs
        return hs + [np.zeros((n, (self.frame_stride - 1) * self.input_size), np.int64),
                     np.zeros(n, np.int64)]

    def step(self, x_q: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """One frame of int16 Q7.8 features [N, F] -> (logits int64 [N, C] Q10,
        scores int64 [N, C] Q15, new state). Frame stride s > 1: the layers step on the
        frame that completes a group of s (phase s - 1); the classifier runs every frame
        on the last layer's current state (the generated C does the same)."""
        x = np.asarray(x_q, dtype=np.int64)
        s, L = self.frame_stride, len(self.layers)
        hs = list(state[:L])
        if s == 1:
            hs = self._layers(x, hs)
        else:
            pending, phase = state[L:]
            due = phase >= s - 1  # [N]
            if due.any():  # rows share a phase in every caller but staggered tests
                stepped = self._layers(np.concatenate([pending, x], 1), hs)
                hs = [np.where(due[:, None], n, o) for n, o in zip(stepped, hs)]
            pending = np.concatenate([pending, x], 1)[:, x.shape[1]:]
            hs += [pending, np.where(due, 0, phase + 1)]
        logits = _requant(_matvec(hs[L - 1], self.fc_w), self.fc_mult, None, None, self.fc_shift)
        logits = logits + self.fc_bias
        return logits, softmax_q15(logits), hs

    def _layers(self, x: np.ndarray, hs: list[np.ndarray]) -> list[np.ndarray]:
        """One recurrent step of every layer: input [N, in] -> new hidden states."""
        new = []
        for layer, h in zip(self.layers, hs):
            x = _layer_step(layer, self.arch, x, h)
            new.append(x)
        return new

    def run(self, x_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clips of int16 Q7.8 features [N, T, F] from zero state -> (logits [N, T, C] Q10,
        scores [N, T, C] Q15), int64, after every frame."""
        x_q = np.asarray(x_q)
        if x_q.ndim != 3 or x_q.shape[2] != self.input_size:
            raise TinyKWSError(f"integer model: expected [N, T, {self.input_size}] features, got {x_q.shape}")
        logits, scores, _ = self.run_from(x_q, self.init_state(x_q.shape[0]))
        return logits, scores

    def run_from(self, x_q: np.ndarray, state: list[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """`run` from `state` (`init_state` or a previous call's): (logits, scores, the state
        after the last frame), so a long recording can go through a piece at a time."""
        x_q = np.asarray(x_q)
        n, t_max = x_q.shape[0], x_q.shape[1]
        logits = np.zeros((n, t_max, self.num_classes), np.int64)
        scores = np.zeros((n, t_max, self.num_classes), np.int64)
        for t in range(t_max):
            logits[:, t], scores[:, t], state = self.step(x_q[:, t], state)
        return logits, scores, state

    # -- files -------------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        """Write an .npz (atomically): arrays plus a JSON header with the scalars."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {"fc_w": self.fc_w, "fc_mult": self.fc_mult, "fc_bias": self.fc_bias}
        scalars: list[dict[str, int]] = []
        for i, layer in enumerate(self.layers):
            for name in (*_LAYER_ARRAYS, *_FACTOR_ARRAYS):
                if getattr(layer, name) is not None:
                    arrays[f"l{i}_{name}"] = getattr(layer, name)
            scalars.append({k: int(getattr(layer, k)) for k in _LAYER_SCALARS})
            if layer.factored:
                scalars[-1].update(w1_frac=layer.w1_frac, u1_frac=layer.u1_frac)
        header = {"arch": self.arch, "layers": scalars, "fc_shift": self.fc_shift,
                  "categories": self.categories, "info": self.info, "format": 1,
                  "frame_stride": self.frame_stride}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> "IntModel":
        path = Path(path)
        if not path.is_file():
            raise TinyKWSError(f"no integer model at {path}: run `tinykws quantize RUN_DIR` first")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                arr = {k: z[k] for k in z.files if k != "header"}
            layers = [
                IntLayer(**{n: arr[f"l{i}_{n}"] for n in _LAYER_ARRAYS},
                         **{n: arr.get(f"l{i}_{n}") for n in _FACTOR_ARRAYS}, **s)
                for i, s in enumerate(header["layers"])
            ]
            return cls(header["arch"], layers, arr["fc_w"], arr["fc_mult"], int(header["fc_shift"]),
                       arr["fc_bias"], list(header["categories"]), dict(header.get("info", {})),
                       int(header.get("frame_stride", 1)))
        except (KeyError, ValueError, TypeError) as e:
            raise TinyKWSError(f"{path} is not a tinykws integer model ({e})") from None
        except (OSError, EOFError, zipfile.BadZipFile) as e:  # truncated or garbage bytes
            raise TinyKWSError(f"{path} is damaged (truncated?): {e}; rerun `tinykws quantize`") from None


_LAYER_ARRAYS = ("w", "w_mult", "u", "u_mult", "bias_gate", "bias_update")
_FACTOR_ARRAYS = ("w1", "w1_mult", "u1", "u1_mult")  # saved only when present
_LAYER_SCALARS = ("shift", "k1", "k2", "in_frac", "h_frac")


def _matvec(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """int x [N, in] times int8 w [R, in]^T -> int64 [N, R], exactly (float64 GEMM of
    integers whose every partial sum stays below 2^53)."""
    return np.rint(x.astype(np.float64) @ w.astype(np.float64).T).astype(np.int64)


def _requant(acc_w: np.ndarray, mult_w: np.ndarray, acc_u: Optional[np.ndarray],
             mult_u: Optional[np.ndarray], shift: int) -> np.ndarray:
    """clamp((acc_w * mult_w [+ acc_u * mult_u] + 2^31) >> 32) << shift, clamped to
    [-2^(27 - shift), 2^(27 - shift) - 1]: the high word of a 64-bit multiply-accumulate
    (SMULL, SMLAL, SSAT on the M4), int64."""
    t = acc_w * mult_w
    if acc_u is not None:
        t = t + acc_u * mult_u
    return _hi_round(t, shift)


def _hi_round(t: np.ndarray, shift: int) -> np.ndarray:
    """clamp((t + 2^31) >> 32) << shift of int64 sums of products (`_requant`)."""
    lim = ACT_CLAMP >> shift
    return np.clip((t + (1 << 31)) >> 32, -lim, lim - 1) << shift


def narrow16(acc: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """sat16((acc * mult + 2^31) >> 32): an int32 low-rank inner product -> int16 (the high
    word of a rounded SMULL, then SSAT #16 on the M4), int64."""
    return sat16((acc * mult + (1 << 31)) >> 32)


def _product(v: np.ndarray, m: np.ndarray, m1: Optional[np.ndarray],
             m1_mult: Optional[np.ndarray]) -> np.ndarray:
    """m v, or m (narrow16(m1 v)) when low rank: int64 accumulators [N, rows of m]."""
    if m1 is None:
        return _matvec(v, m)
    return _matvec(narrow16(_matvec(v, m1), m1_mult), m)


def _gru_step(layer: IntLayer, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """One integer GRU step (the module docstring's GRU paragraph): x [N, in], h [N, H]."""
    H = layer.hidden
    tw = _matvec(x, layer.w) * layer.w_mult  # [N, 3H] int64
    tu = _matvec(h, layer.u) * layer.u_mult
    rz = _hi_round(tw[:, :2 * H] + tu[:, :2 * H], layer.shift) + layer.bias_gate[:2 * H]
    r, z = sigmoid_q15(rz[:, :H], PRE_FRAC), sigmoid_q15(rz[:, H:], PRE_FRAC)
    xn = _hi_round(tw[:, 2 * H:], layer.shift) + layer.bias_gate[2 * H:]
    hn = _hi_round(tu[:, 2 * H:], layer.shift) + layer.bias_update
    n = tanh_q15(xn + ((r * hn + (1 << 14)) >> 15), PRE_FRAC)
    t = z * h + (((Q15 - z) * n) >> (15 - layer.h_frac))  # Q(15 + h_frac), |t| < 2^31
    return sat16((t + (1 << 14)) >> 15)


def _layer_step(layer: IntLayer, arch: str, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    if arch == "gru":
        return _gru_step(layer, x, h)
    a = _requant(_product(x, layer.w, layer.w1, layer.w1_mult), layer.w_mult,
                 _product(h, layer.u, layer.u1, layer.u1_mult), layer.u_mult, layer.shift)
    c = tanh_q15(a + layer.bias_update, PRE_FRAC)
    if arch == "fastgrnn":
        z = sigmoid_q15(a + layer.bias_gate, PRE_FRAC)
        g = ((layer.k1 * (Q15 - z) + (1 << 14)) >> 15) + layer.k2
    else:  # fastrnn: h' = beta h + alpha c
        z = np.int64(layer.k2)
        g = np.int64(layer.k1)
    t = z * h + ((g * c) >> (15 - layer.h_frac))  # Q(15 + h_frac), |t| < 2^31
    return sat16((t + (1 << 14)) >> 15)


# ---------------------------------------------------------------------- quantization


def quantize_rows(w: np.ndarray, per_row: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization: (q int8 [R, C], scale float64 [R]), w ~ q * scale."""
    w = np.asarray(w, dtype=np.float64)
    amax = np.abs(w).max(axis=1) if per_row else np.full(w.shape[0], np.abs(w).max())
    scale = np.where(amax > 0, amax / WEIGHT_MAX, 1.0)
    q = np.clip(np.round(w / scale[:, None]), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return q, scale


def _multipliers(scales: Sequence[np.ndarray], out_frac: int, in_fracs: Sequence[int]) -> tuple[list[np.ndarray], int]:
    """int32 multipliers m = round(scale * 2^(out_frac - in_frac + 32 - shift)) for
    `_requant`; `shift` >= 0 is 0 unless a scale is so large that m would not fit int32
    (then the result loses `shift` low bits)."""
    reals = [np.asarray(s, np.float64) * 2.0 ** (out_frac - f) for s, f in zip(scales, in_fracs)]
    top = max(float(r.max()) for r in reals)
    shift = max(0, int(np.ceil(np.log2(top * 2.0**32 / (2**31 - 1))))) if top > 0 else 0
    mults = [np.round(r * 2.0 ** (32 - shift)).astype(np.int64) for r in reals]
    if max(int(m.max()) for m in mults) > 2**31 - 1:  # rounding at the edge
        shift += 1
        mults = [np.round(r * 2.0 ** (32 - shift)).astype(np.int64) for r in reals]
    return mults, shift


def hidden_frac(max_abs: float, margin: float = 1.5) -> int:
    """Fractional bits of an int16 hidden state whose calibrated max |h| is `max_abs`."""
    bound = max(max_abs * margin, 2.0**-6)
    return int(np.clip(15 - np.ceil(np.log2(bound)), 8, 13))


def _sig(v: Any) -> float:
    return float(1.0 / (1.0 + np.exp(-float(np.asarray(v).reshape(-1)[0]))))


def _q15(p: float) -> int:
    return int(min(round(p * Q15), Q15 - 1))


def inner_frac(max_abs: float, margin: float = 1.5) -> int:
    """Fractional bits of an int16 low-rank inner vector whose calibrated max |v| is
    `max_abs` (0 .. 14: the vector is the input of an int8 product, like h)."""
    bound = max(max_abs * margin, 2.0**-6)
    return int(np.clip(15 - np.ceil(np.log2(bound)), 0, 14))


def _factor(m1: np.ndarray, in_frac: int, max_abs: float, per_row: bool
            ) -> tuple[np.ndarray, np.ndarray, int]:
    """The first low-rank factor [rank, in] on Q.in_frac inputs -> (int8 factor, int32
    multipliers of `narrow16`, the inner format's fractional bits). The format is lowered
    until every multiplier fits int32."""
    q, scale = quantize_rows(m1, per_row)
    frac = inner_frac(max_abs)
    while True:
        mult = np.round(scale * 2.0 ** (frac - in_frac + 32)).astype(np.int64)
        if int(mult.max()) <= 2**31 - 1:
            return q, mult, frac
        frac -= 1


def _factors(cell: Any, name: str, std: Optional[np.ndarray]) -> tuple[Optional[np.ndarray], np.ndarray]:
    """(first factor or None, second factor or the full matrix) of W or U as float64,
    the first layer's input scaling applied to W's columns (`std`: divided by, per column)."""
    if getattr(cell, name.lower() + "rank") is None:
        full = getattr(cell, name).detach().double().numpy()
        return None, full if std is None else full / std[None, :]
    m1 = getattr(cell, name + "1").detach().double().numpy()
    m2 = getattr(cell, name + "2").detach().double().numpy()
    return (m1 if std is None else m1 / std[None, :]), m2


def _gru_arrays(sd: dict[str, np.ndarray], p: str, std: Optional[np.ndarray]) -> tuple:
    """(None, W [3H, in], None, U [3H, H], bias_gate [3H], bias_update [H]) of GRU layer
    `p` (PyTorch's `rnn.*_l0`, gates r, z, n) as float64, W's columns divided by `std`:
    r and z take both their biases, n its input side's; b_hn stays inside r (U_n h + b_hn)."""
    W, U = sd[p + "rnn.weight_ih_l0"], sd[p + "rnn.weight_hh_l0"]
    b_ih, b_hh = sd[p + "rnn.bias_ih_l0"], sd[p + "rnn.bias_hh_l0"]
    H = U.shape[1]
    gate = b_ih.copy()
    gate[:2 * H] += b_hh[:2 * H]
    return None, (W if std is None else W / std[None, :]), None, U, gate, b_hh[2 * H:].copy()


def quantize_model(model: Any, categories: Sequence[str], h_max_abs: Sequence[float],
                   per_row: bool = True,
                   rank_max_abs: Optional[Sequence[Sequence[float]]] = None) -> IntModel:
    """A float `KWSModel` (FastGRNN, FastRNN or GRU) -> IntModel.

    `h_max_abs[l]`: the calibrated max |h| of layer l; `rank_max_abs[l]`: (max |W1 x|, max
    |U1 h|) of its low-rank inner vectors, x as the integer layer sees it (the first
    layer: x / std, the mean being folded into the biases). Both from
    `tinykws.quant.calibrate.layer_ranges`; `rank_max_abs` is needed only for low-rank
    models, whose factors stay factored (W x = W2 (W1 x): rank (in + H) multiply-
    accumulates instead of in H)."""
    cfg = model.config
    cfg.check_no_garbage("the integer build")
    if cfg.architecture not in ARCHS:
        raise TinyKWSError(
            f"the integer build supports {' and '.join(ARCHS)}, not {cfg.architecture}"
        )
    low_rank = cfg.wrank is not None or cfg.urank is not None
    if low_rank and rank_max_abs is None:
        raise TinyKWSError("a low-rank model needs the ranges of its inner vectors "
                           "(rank_max_abs: tinykws.quant.calibrate.layer_ranges)")
    sd = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
    mean, std = np.tile(sd["mean"], cfg.frame_stride), np.tile(sd["std"], cfg.frame_stride)  # [s F]
    layers = []
    in_frac = FEATURE_FRAC_BITS
    for i, cell in enumerate(model.cells):
        # (x - mean) / std folded into the first layer: W' = W / std, biases -= W' mean
        p = f"cells.{i}."
        if cfg.architecture == "gru":
            W1, W, U1, U, bias_g, bias_u = _gru_arrays(sd, p, std if i == 0 else None)
        else:
            W1, W = _factors(cell, "W", std if i == 0 else None)
            U1, U = _factors(cell, "U", None)
            bias_u = sd[p + "bias_update"].copy()
            bias_g = sd[p + "bias_gate"].copy() if cfg.architecture == "fastgrnn" else np.zeros_like(bias_u)
        if i == 0:
            shift_in = -(W @ (mean if W1 is None else W1 @ mean))
            bias_g = bias_g + shift_in  # GRU: all 3H input-side biases; b_hn sits on the U h side
            if cfg.architecture != "gru":
                bias_u = bias_u + shift_in
        h_frac = hidden_frac(float(h_max_abs[i]))
        inner = rank_max_abs[i] if rank_max_abs is not None else (0.0, 0.0)
        fw: dict[str, Any] = {}
        w_in, u_in = in_frac, h_frac
        if W1 is not None:
            fw["w1"], fw["w1_mult"], fw["w1_frac"] = _factor(W1, in_frac, float(inner[0]), per_row)
            w_in = fw["w1_frac"]
        if U1 is not None:
            fw["u1"], fw["u1_mult"], fw["u1_frac"] = _factor(U1, h_frac, float(inner[1]), per_row)
            u_in = fw["u1_frac"]
        wq, ws = quantize_rows(W, per_row)
        uq, us = quantize_rows(U, per_row)
        (wm, um), shift = _multipliers([ws, us], PRE_FRAC, [w_in, u_in])
        if cfg.architecture == "fastgrnn":
            k1, k2 = _q15(_sig(sd[p + "zeta"])), _q15(_sig(sd[p + "nu"]))
        elif cfg.architecture == "fastrnn":
            k1, k2 = _q15(_sig(sd[p + "alpha"])), _q15(_sig(sd[p + "beta"]))
        else:
            k1 = k2 = 0  # GRU: its gates are all computed
        layers.append(IntLayer(
            w=wq, w_mult=wm, u=uq, u_mult=um, shift=shift,
            bias_gate=_fixed(bias_g, PRE_FRAC), bias_update=_fixed(bias_u, PRE_FRAC),
            k1=k1, k2=k2, in_frac=in_frac, h_frac=h_frac, **fw,
        ))  # fmt: skip
        in_frac = h_frac
    fq, fs = quantize_rows(sd["fc.weight"], per_row)
    (fm,), fshift = _multipliers([fs], LOGIT_FRAC, [in_frac])
    info = {"per_row": per_row, "h_max_abs": [float(v) for v in h_max_abs],
            "model_config": cfg.to_dict()}
    if rank_max_abs is not None:
        info["rank_max_abs"] = [[float(v) for v in r] for r in rank_max_abs]
    return IntModel(cfg.architecture, layers, fq, fm, fshift, _fixed(sd["fc.bias"], LOGIT_FRAC),
                    list(categories), info, cfg.frame_stride)


def _fixed(v: np.ndarray, frac: int) -> np.ndarray:
    return np.clip(np.round(np.asarray(v, np.float64) * 2.0**frac), -ACT_CLAMP, ACT_CLAMP).astype(np.int64)


def scores_float(scores_q: np.ndarray) -> np.ndarray:
    """Q15 class scores -> float32 probabilities (exact: a power-of-two scale)."""
    return (np.asarray(scores_q, np.float32) / np.float32(Q15)).astype(np.float32)
