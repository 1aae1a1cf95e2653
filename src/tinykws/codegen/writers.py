"""How generated model C stores its weights: the float blocked layout of tkws_rnn.h and the
int8 SMLAD layout of tkws_qrnn.h, sparse rows where they cost fewer instructions (both by
one cost rule, `sparse_rows_cheaper`), and the writers that collect a model's tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from tinykws.codegen.cgen import c_array, c_struct
from tinykws.errors import TinyKWSError

# byte order of the 4 weights of one row inside a group of 4 columns (see tkws_qrnn.h)
_PERM = (0, 2, 1, 3)


# ---------------------------------------------------------------------- float

def blocked(mat: np.ndarray) -> tuple[int, int, int, int, np.ndarray]:
    """[rows, cols] -> (rows, cols, rows_p, cols_p, data) in tkws_rnn.h's blocked layout."""
    mat = np.asarray(mat, dtype=np.float32)
    rows, cols = mat.shape
    rows_p, cols_p = -(-rows // 8) * 8, max(4, -(-cols // 4) * 4)
    p = np.zeros((rows_p, cols_p), dtype=np.float32)
    p[:rows, :cols] = mat
    data = p.reshape(rows_p // 8, 8, cols_p).transpose(0, 2, 1).ravel()  # [block, col, 8]
    return rows, cols, rows_p, cols_p, data


def _pad8(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).ravel()
    out = np.zeros(-(-v.size // 8) * 8, dtype=np.float32)
    out[: v.size] = v
    return out


# Instructions of the float kernels on the Cortex-M4 FPU (gcc, hard float; `bench/frontier.py
# --kernels`, docs/benchmarks.md, "Kilobyte models"): the blocked kernel ~1.11 a multiply-
# accumulate whatever the weights; sparse rows ~7 a nonzero plus ~33 a row.
FLOAT_DENSE_PER_MAC = 1.11
FLOAT_SPARSE_PER_NONZERO = 7.0
FLOAT_SPARSE_PER_ROW = 33.0
# "dense" | "sparse": override the storage choice of every matrix, float and int8 (benchmarks)
FORCE_STORAGE: Optional[str] = None


def sparse_rows_cheaper(mat: np.ndarray, force: Optional[str], row_pad: int,
                        per_mac: float, per_nonzero: float, per_row: float) -> bool:
    """Whether sparse rows (one byte a column index: at most 256 columns) cost fewer
    instructions than a dense kernel over the padded matrix (rows to `row_pad`, columns to
    4), by the measured costs a multiply-accumulate, a nonzero and a row; `force` "dense" or
    "sparse" overrides the choice (benchmarks)."""
    rows, cols = mat.shape
    if cols > 256 or force == "dense":
        return False
    if force == "sparse":
        return True
    dense = per_mac * (-(-rows // row_pad) * row_pad) * max(4, -(-cols // 4) * 4)
    return per_nonzero * np.count_nonzero(mat) + per_row * rows < dense


def float_sparse(mat: np.ndarray) -> bool:
    """Whether a float matrix is stored as sparse rows: when that costs fewer instructions
    than the blocked kernel (and then less flash too)."""
    return sparse_rows_cheaper(mat, FORCE_STORAGE, 8, FLOAT_DENSE_PER_MAC,
                               FLOAT_SPARSE_PER_NONZERO, FLOAT_SPARSE_PER_ROW)


@dataclass(frozen=True)
class CMatrix:
    """A generated `tkws_matrix`: its C name and padded shape."""

    name: str
    rows_p: int
    cols_p: int


def _f32(x: Any) -> np.ndarray:
    """A torch tensor or array as a float32 numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


class ModelWriter:
    """Collects the C of one model: constant tables and structs, the recurrent state (a
    struct the caller owns), the per-step scratch buffers (on the stack) and the step code.

    Each layer type writes its own part (`tinykws.codegen.cells`); `emit_model` adds
    normalisation, classifier and softmax around them.
    """

    def __init__(self, prefix: str, stride: int = 1) -> None:
        self.p = prefix
        self.defs: list[str] = []
        self.state: dict[str, int] = {}  # member of <prefix>_state -> floats (multiple of 8)
        self.scratch: dict[str, int] = {}  # member of the step's local work struct -> floats
        self.steps: list[str] = []  # statements of the step function, in order
        # a model that steps every `stride` frames: statements for the first frame of a group
        # (products of the last step's state), so that no frame carries a whole step
        self.stride = stride
        self.early: list[str] = []

    def matrix(self, name: str, mat: Any) -> CMatrix:
        """Define the blocked data (or, with few nonzeros, the sparse rows: `float_sparse`)
        and its `tkws_matrix`."""
        if float_sparse(_f32(mat)):
            return self._sparse_matrix(name, _f32(mat))
        rows, cols, rows_p, cols_p, data = blocked(_f32(mat))
        cname = f"{self.p}_{name}"
        self.defs.append(c_array("float", f"{cname}_data", data, per_line=4,
                                 comment=f"{name} [{rows}, {cols}], blocked 8x{cols_p}"))
        self.defs.append(c_struct("tkws_matrix", cname, {
            "rows": rows, "cols": cols, "rows_p": rows_p, "cols_p": cols_p,
            "data": f"{cname}_data"}))
        return CMatrix(cname, rows_p, cols_p)

    def _sparse_matrix(self, name: str, mat: np.ndarray) -> CMatrix:
        """A `tkws_matrix` whose rows are stored sparse (`tkws_sparse_rows`)."""
        rows, cols = mat.shape
        rows_p, cols_p = -(-rows // 8) * 8, max(4, -(-cols // 4) * 4)
        cname = f"{self.p}_{name}"
        r, c = np.nonzero(mat)  # row by row, columns ascending
        vals = mat[r, c] if len(r) else np.zeros(1, np.float32)
        self.defs.append(
            c_array("uint16_t", f"{cname}_count", np.bincount(r, minlength=rows), per_line=16,
                    comment=f"{name} [{rows}, {cols}]: {len(r)} nonzeros "
                            f"({len(r) / mat.size:.1%}), sparse rows (tkws_rnn.h)")
            + c_array("uint8_t", f"{cname}_col", c if len(c) else np.zeros(1, np.int64), per_line=16)
            + c_array("float", f"{cname}_val", vals, per_line=4))
        self.defs.append(c_struct("tkws_sparse_rows", f"{cname}_rows", {
            "count": f"{cname}_count", "col": f"{cname}_col", "val": f"{cname}_val"}))
        self.defs.append(c_struct("tkws_matrix", cname, {
            "rows": rows, "cols": cols, "rows_p": rows_p, "cols_p": cols_p,
            "data": "0", "sparse": f"&{cname}_rows"}))
        return CMatrix(cname, rows_p, cols_p)

    def vector(self, name: str, v: Any, pad: bool = True) -> str:
        """Define a constant vector (zero-padded to a multiple of 8 unless `pad` is False)."""
        cname = f"{self.p}_{name}"
        v = _f32(v).ravel()
        vals = _pad8(v) if pad else v
        self.defs.append(c_array("float", cname, vals, per_line=4, comment=f"{name} [{v.size}]"))
        return cname

    def struct(self, ctype: str, name: str, fields: dict[str, Any]) -> str:
        """Define `static const ctype <prefix>_name` with a designated initialiser."""
        cname = f"{self.p}_{name}"
        self.defs.append(c_struct(ctype, cname, fields))
        return cname

    def state_buffer(self, name: str, floats: int) -> str:
        """A recurrent-state vector (kept between steps, zero at the start of a stream)."""
        self.state[name] = max(self.state.get(name, 0), -(-floats // 8) * 8)
        return f"state->{name}"

    def scratch_buffer(self, name: str, floats: int) -> str:
        """A work vector of one step (shared by the layers that ask for the same name)."""
        self.scratch[name] = max(self.scratch.get(name, 0), -(-floats // 8) * 8)
        return f"work.{name}"

    def step(self, statement: str) -> None:
        """Append a statement to the step function."""
        self.steps.append(statement)

    def early_step(self, statement: str) -> None:
        """Append a statement for the first frame of a group (`stride` > 1 only)."""
        self.early.append(statement)


# ---------------------------------------------------------------------- int8


def qblocked(mat: np.ndarray) -> tuple[int, int, int, int, np.ndarray]:
    """int8 [rows, cols] -> (rows, cols, rows_p, cols_p, data int8) in tkws_qrnn.h's layout."""
    mat = np.asarray(mat)
    if mat.dtype != np.int8:
        raise TinyKWSError(f"qblocked: expected int8 weights, got {mat.dtype}")
    rows, cols = mat.shape
    rows_p, cols_p = -(-rows // 4) * 4, max(4, -(-cols // 4) * 4)
    p = np.zeros((rows_p, cols_p), np.int8)
    p[:rows, :cols] = mat
    # [row block, row in block, col group, col in group] -> [row block, col group, row, byte]
    b = p.reshape(rows_p // 4, 4, cols_p // 4, 4)[..., list(_PERM)]
    # byte k of a row holds column _PERM[k]: bytes (w0, w2, w1, w3)
    return rows, cols, rows_p, cols_p, b.transpose(0, 2, 1, 3).ravel()


def qunblocked(rows: int, cols: int, data: np.ndarray) -> np.ndarray:
    """Inverse of `qblocked` (for tests)."""
    rows_p, cols_p = -(-rows // 4) * 4, max(4, -(-cols // 4) * 4)
    b = np.asarray(data, np.int8).reshape(rows_p // 4, cols_p // 4, 4, 4).transpose(0, 2, 1, 3)
    out = np.empty_like(b)
    out[..., list(_PERM)] = b
    return out.reshape(rows_p, cols_p)[:rows, :cols]


def _int32(v: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(v, np.int64)
    if v.size and (v.max() > 2**31 - 1 or v.min() < -(2**31)):
        raise TinyKWSError(f"{what} does not fit int32")
    return v


# Instructions of the int8 kernels on the Cortex-M4 (gcc; `bench/frontier.py --kernels`,
# docs/benchmarks.md, "Kilobyte models"): the dense SMLAD kernel ~1.22 a multiply-accumulate
# whatever the weights; the sparse rows (`tkws_qspmv`) ~5.5 a nonzero plus ~20 a row.
DENSE_PER_MAC = 1.22
SPARSE_PER_NONZERO = 5.5
SPARSE_PER_ROW = 20.0


def use_sparse(mat: np.ndarray) -> bool:
    """Whether an int8 matrix is stored as sparse rows (`tkws_qsparse`): when that costs
    fewer instructions than the dense kernel (then it is also at most ~1/3 of the dense
    flash: 2 bytes a nonzero), and it has at most 256 columns (one byte a column index)."""
    return sparse_rows_cheaper(np.asarray(mat), FORCE_STORAGE, 4, DENSE_PER_MAC,
                               SPARSE_PER_NONZERO, SPARSE_PER_ROW)


class QWriter:
    """Collects the constant tables of one integer model (`defs`): int8 matrices in
    tkws_qrnn.h's SMLAD layout or as sparse rows, and int32 vectors."""

    def __init__(self, prefix: str) -> None:
        self.p = prefix
        self.defs: list[str] = []

    def matrix(self, name: str, mat: np.ndarray) -> tuple[str, int, int]:
        """Define the blocked int8 data and its `tkws_qmatrix`; (C name, rows_p, cols_p)."""
        rows, cols, rows_p, cols_p, data = qblocked(mat)
        cname = f"{self.p}_{name}"
        self.defs.append(
            f"/* {name} [{rows}, {cols}] int8, blocked 4 x 4 for SMLAD (tkws_qrnn.h) */\n"
            + c_array("int8_t", f"{cname}_data", data, per_line=16).replace("] = {", "] TKWS_ALIGN4 = {", 1)
        )
        self.defs.append(
            f"static const tkws_qmatrix {cname} = {{ {rows}, {cols}, {rows_p}, {cols_p}, {cname}_data }};\n"
        )
        return cname, rows_p, cols_p

    def sparse(self, name: str, mat: np.ndarray) -> str:
        """Define the `tkws_qsparse` rows of int8 `mat` (nonzeros only)."""
        rows, cols = mat.shape
        cname = f"{self.p}_{name}"
        r, c = np.nonzero(mat)  # row-major: row by row, columns ascending
        count = np.bincount(r, minlength=rows)
        self.defs.append(
            f"/* {name} [{rows}, {cols}] int8, {len(r)} nonzeros ({len(r) / mat.size:.1%}): "
            "sparse rows (tkws_qrnn.h) */\n"
            + c_array("uint16_t", f"{cname}_count", count, per_line=16)
            + c_array("uint8_t", f"{cname}_col", c if len(c) else np.zeros(1, np.int64), per_line=16)
            + c_array("int8_t", f"{cname}_val", mat[r, c] if len(r) else np.zeros(1, np.int8), per_line=16)
        )
        self.defs.append(
            f"static const tkws_qsparse {cname} = {{ {rows}, {cols}, {cname}_count, {cname}_col, "
            f"{cname}_val }};\n"
        )
        return cname

    def product(self, name: str, mat: np.ndarray, x: str, acc: str) -> tuple[str, int]:
        """Store `mat` dense or sparse (whichever `use_sparse` says is cheaper); returns the
        C statement acc = mat x and the rows of acc it writes (padded when dense)."""
        if use_sparse(mat):
            return f"tkws_qspmv(&{self.sparse(name, mat)}, {x}, {acc});", mat.shape[0]
        cname, rows_p, _ = self.matrix(name, mat)
        return f"tkws_qmatvec_call(&{cname}, {x}, {acc});", rows_p

    def ints(self, name: str, v: np.ndarray, comment: str) -> str:
        """Define an int32 vector (refused when a value does not fit)."""
        cname = f"{self.p}_{name}"
        self.defs.append(c_array("int32_t", cname, _int32(v, name), comment=comment))
        return cname
