"""Tiny helpers that print C literals: floats, arrays, identifiers, string tables, structs.

Floats are printed with ``%.9g`` and an ``f`` suffix: 9 significant digits round-trip
every float32 exactly (``%.6f`` would lose small weights). Non-finite values are an error:
C has no portable literal for them and a model with NaN weights is broken anyway.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

import numpy as np

from tinykws.errors import TinyKWSError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while _Bool _Complex _Imaginary".split()
)


def c_float(x: float) -> str:
    """One float32 literal: ``%.9g`` plus ``f`` (``1.0f``, ``-2.5e-07f``); exact round trip."""
    v = np.float32(x)
    if not np.isfinite(v):
        raise TinyKWSError(f"cannot write a non-finite float ({v}) as a C literal")
    s = "%.9g" % float(v)
    if not any(c in s for c in ".en"):
        s += ".0"  # "1" -> "1.0": a float literal needs a point or an exponent
    return s + "f"


def c_int(x: int) -> str:
    """One integer literal."""
    return str(int(x))


def c_ident(name: str) -> str:
    """`name` if it is a valid C identifier and not a keyword, else TinyKWSError."""
    if not _IDENT.match(name) or name in C_KEYWORDS:
        raise TinyKWSError(f"{name!r} is not a usable C identifier")
    return name


def c_enum_name(text: str) -> str:
    """A C identifier made from any label: ``_unknown_`` -> ``UNKNOWN``, ``off`` -> ``OFF``."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper()
    if not s:
        s = "CLASS"
    if s[0].isdigit():
        s = "_" + s
    return s


def c_string(text: str) -> str:
    """A C string literal (ASCII, escaped)."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= o < 127:
            out.append(ch)
        elif o < 256:
            out.append("\\%03o" % o)
        else:
            raise TinyKWSError(f"label {text!r}: only Latin-1 text can go into a C string")
    return '"' + "".join(out) + '"'


def _rows(items: Sequence[str], per_line: int, indent: str) -> str:
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join(indent + ln for ln in lines)


def c_array(
    ctype: str,
    name: str,
    values: Iterable,
    *,
    static: bool = True,
    const: bool = True,
    per_line: int = 6,
    comment: str = "",
) -> str:
    """A full array definition: ``static const float name[N] = { ... };``.

    `ctype` "float" prints `c_float` literals, anything else integers. An empty array gets
    one dummy element (C has no zero-length arrays); its length stays visible in `comment`.
    """
    vals = list(np.asarray(list(values) if not isinstance(values, np.ndarray) else values).ravel())
    fmt = c_float if ctype == "float" else c_int
    items = [fmt(v) for v in vals] or [fmt(0)]
    per = per_line if ctype == "float" else max(per_line, 12)
    quals = ("static " if static else "") + ("const " if const else "")
    head = f"/* {comment} */\n" if comment else ""
    return (
        f"{head}{quals}{ctype} {c_ident(name)}[{len(items)}] = {{\n"
        f"{_rows(items, per, '    ')}\n}};\n"
    )


def c_string_table(name: str, strings: Sequence[str], *, static: bool = False) -> str:
    """``const char *const name[N] = {"a", "b"};``."""
    quals = "static " if static else ""
    body = ",\n".join("    " + c_string(s) for s in strings)
    return f"{quals}const char *const {c_ident(name)}[{len(strings)}] = {{\n{body}\n}};\n"


def c_enum(name: str, prefix: str, labels: Sequence[str]) -> str:
    """``typedef enum { PREFIX_YES = 0, ..., PREFIX_COUNT } name;`` from one list of labels.

    Distinct labels that map to the same identifier get a numeric suffix.
    """
    seen: dict[str, int] = {}
    lines = []
    for i, lab in enumerate(labels):
        ident = f"{prefix}_{c_enum_name(lab)}"
        if ident in seen:
            ident = f"{ident}_{i}"
        seen[ident] = i
        lines.append(f"    {ident} = {i}, /* {c_comment(lab)} */")
    lines.append(f"    {prefix}_COUNT = {len(labels)}")
    return "typedef enum {\n" + "\n".join(lines) + f"\n}} {c_ident(name)};\n"


def c_init(fields: Mapping[str, object], indent: str = "") -> str:
    """A designated initialiser, one member a line: ``{\n    .rows = 8,\n    ...\n}``.

    Values are C expressions (str) or ints; floats go through `c_float`. Members left out
    are zero (C99 6.7.8), so callers omit NULL pointers instead of spelling them out.
    """
    lines = []
    for k, v in fields.items():
        text = c_float(v) if isinstance(v, (float, np.floating)) else str(v)
        lines.append(f"{indent}    .{c_ident(k)} = {text},")
    return "{\n" + "\n".join(lines) + f"\n{indent}}}"


def c_struct(ctype: str, name: str, fields: Mapping[str, object], *, static: bool = True,
             const: bool = True, comment: str = "") -> str:
    """A struct definition with a designated initialiser: ``static const T name = {...};``."""
    quals = ("static " if static else "") + ("const " if const else "")
    head = f"/* {comment} */\n" if comment else ""
    return f"{head}{quals}{ctype} {c_ident(name)} = {c_init(fields)};\n"


def c_comment(text: str) -> str:
    """Text safe inside a /* */ comment."""
    return text.replace("*/", "* /").replace("/*", "/ *")
