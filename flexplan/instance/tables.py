"""Reading CSV tables and TOML sections with errors that name file, line and field."""
from __future__ import annotations

import contextvars
import csv
import io
import math
import re
from pathlib import Path

import pandas as pd

from ..errors import InstanceError, Problem


#: Whether the files an instance.toml names may lie outside its folder (set by
#: ``load_instance(..., allow_outside_paths=True)`` or the command line's ``--allow-outside-paths``).
ALLOW_OUTSIDE_PATHS: contextvars.ContextVar[bool] = contextvars.ContextVar("allow_outside_paths", default=False)


def data_path(folder: Path, name: str, shown: str, field: str) -> Path:
    """The file ``name`` of an instance (relative to its ``folder``), refused with an
    :class:`InstanceError` on ``field`` of ``shown`` (instance.toml) when it resolves (through
    ``..``, an absolute path or a symbolic link) to a place outside the folder, unless
    :data:`ALLOW_OUTSIDE_PATHS` is set.  Nothing of the file is read here."""
    path = Path(folder) / name
    if ALLOW_OUTSIDE_PATHS.get():
        return path
    root = Path(folder).resolve()
    target = path.resolve()
    if target != root and root not in target.parents:
        raise InstanceError(Problem(shown, f"'{_cut(name)}' is outside the instance folder {root}: data files must "
                                    "lie inside it (or pass --allow-outside-paths / "
                                    "load_instance(..., allow_outside_paths=True) if you mean it)", field=field))
    return path


def _cut(text, limit: int = 40) -> str:
    """At most ``limit`` characters of a value taken from a file (messages never quote more)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


#: A plausibility range: (lowest, highest, unit and hint), e.g. ``(0.1, 400.0, "kV (was it given in V?)")``.
Bounds = dict[str, tuple[float, float, str]]


def read_csv(path: Path, shown: str, required: dict[str, str], optional: dict[str, str] | None = None,
             allow_extra: bool = False, bounds: Bounds | None = None,
             unique: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a CSV file and check its columns and types.

    ``required`` / ``optional`` map column -> kind: ``str``, ``float`` (finite),
    ``float+`` (finite, >= 0), ``float++`` (finite, > 0), ``int``, ``bool``.  ``bounds``
    maps column -> plausible (lowest, highest, unit) of its numbers; ``unique`` column ->
    what its values name (``"line name"``), for columns that must not repeat a value.  Every
    bad cell is reported, with its line number in the file (the header is line 1).
    """
    optional = optional or {}
    df = _read_table(path, shown)
    problems = _check_header(df, shown, required, optional, allow_extra)
    if problems:
        raise InstanceError(problems)
    if len(df) == 0:
        raise InstanceError(Problem(shown, "the file has only a header line, no data rows", row=1))
    out = {}
    kinds = {**required, **{c: k for c, k in optional.items() if c in df.columns}}
    for col, kind in kinds.items():
        out[col], probs = _convert(df[col], kind, shown, col)
        problems.extend(probs)
        if col in (bounds or {}) and not probs:  # a bad sign or type is reported once
            problems += out_of_range(out[col], *bounds[col], shown, col)
    for col, what in (unique or {}).items():
        if col in out:
            problems += duplicates(out[col], shown, col, what)
    if problems:
        raise InstanceError(problems)
    for col in df.columns:
        if col not in out:
            out[col] = df[col]
    return pd.DataFrame(out)[list(df.columns)]


#: The largest input file read (bytes): a full year of quarter hours for a hundred load
#: classes is ~40 MB; beyond this a file is a mistake (or /dev/zero) rather than data.
#: The environment variable ``FLEXPLAN_MAX_FILE_MB`` raises it.
MAX_FILE_BYTES = 256 * 2**20


def max_file_bytes() -> int:
    """:data:`MAX_FILE_BYTES`, or ``FLEXPLAN_MAX_FILE_MB`` megabytes when that is set."""
    import os

    text = os.environ.get("FLEXPLAN_MAX_FILE_MB")
    try:
        return int(float(text) * 2**20) if text else MAX_FILE_BYTES
    except ValueError:
        return MAX_FILE_BYTES


def read_bytes_bounded(path: Path, shown: str, what: str = "CSV") -> bytes:
    """The bytes of a regular file of at most :func:`max_file_bytes`; an :class:`InstanceError`
    for a missing path, a directory, a FIFO, a device or a socket (opened without blocking,
    checked on the open file) and for a file that is too big (never read to the end)."""
    import os
    import stat

    if not path.exists():
        raise InstanceError(Problem(shown, "file not found"))
    if path.is_dir():
        raise InstanceError(Problem(shown, f"is a directory, not a {what} file"))
    limit = max_file_bytes()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise InstanceError(Problem(shown, f"cannot be read: {e.strerror or e}")) from e
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or
                    stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            raise InstanceError(Problem(shown, f"is {kind}, not a {what} file: give a regular file"))
        size = os.fstat(fd).st_size
        too_big = (f"is too big ({{}} MB, more than the limit of {limit / 2**20:g} MB for a {what} file): "
                   "reduce it (fewer days or steps), or raise the limit with FLEXPLAN_MAX_FILE_MB")
        if size > limit:
            raise InstanceError(Problem(shown, too_big.format(f"{size / 2**20:.1f}")))
        try:
            data = fh.read(limit + 1)
        except OSError as e:
            raise InstanceError(Problem(shown, f"cannot be read: {e.strerror or e}")) from e
    if len(data) > limit:  # grew while being read
        raise InstanceError(Problem(shown, too_big.format(f"more than {limit / 2**20:g}")))
    return data


def read_text(path: Path, shown: str, what: str = "CSV") -> str:
    """The text of a UTF-8 file (a BOM is allowed); an :class:`InstanceError` when the path
    is missing, is a directory or no regular file, is too big (:func:`read_bytes_bounded`),
    or holds binary data or another encoding."""
    data = read_bytes_bounded(path, shown, what)
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise InstanceError(Problem(shown, f"binary data (a NUL byte on line {line}), not a {what} text file",
                                    row=line))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InstanceError(Problem(shown, f"not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); save the "
                                    f"file as UTF-8 {what}", row=line)) from e


def _read_table(path: Path, shown: str) -> pd.DataFrame:
    """All cells as stripped-at-the-left strings; empty and malformed files are errors."""
    text = read_text(path, shown)
    if not text.strip():
        raise InstanceError(Problem(shown, "the file is empty (expected a header line with the column names)"))
    try:
        header = next(csv.reader(io.StringIO(text)))
    except (csv.Error, StopIteration) as e:
        raise InstanceError(Problem(shown, f"not a readable CSV header: {e}", row=1)) from e
    names = [c.strip() for c in header]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise InstanceError(Problem(shown, f"column(s) {', '.join(repr(c) for c in dup)} appear more than once",
                                    row=1, field=dup[0]))
    _check_records(text, shown)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as e:  # pandas raises ParserError, ValueError, csv.Error, ...
        m = re.search(r"line (\d+)", str(e))
        raise InstanceError(Problem(shown, f"not a readable CSV file: {str(e).strip()}",
                                    row=int(m.group(1)) if m else None)) from e
    df.columns = [str(c).strip() for c in df.columns]
    return df.fillna("")


def _check_records(text: str, shown: str) -> None:
    """Problems pandas reports with its own record numbers (or not at all), here with the
    line of the file: a record with more fields than the header (a trailing comma: pandas
    would silently take the first column as an index and shift every value) and a quote that
    is never closed (pandas: "EOF inside string starting at row N")."""
    reader = csv.reader(io.StringIO(text), strict=True)
    problems, line, n_header = [], 0, None
    try:
        for rec in reader:
            start, line = line + 1, reader.line_num
            if not rec:  # a blank line (pandas skips it)
                continue
            if n_header is None:
                n_header = len(rec)
                continue
            if len(rec) > n_header:
                trailing = all(not x.strip() for x in rec[n_header:])
                problems.append(Problem(shown, f"{len(rec)} fields but the header has {n_header}"
                                        + (" (a trailing comma?)" if trailing else ""), row=start))
                if len(problems) >= InstanceError.SHOWN:
                    break
    except csv.Error as e:
        start = line + 1
        msg = (f'a quote (") opened on line {start} is never closed' if "end of data" in str(e)
               else f"not a readable CSV line ({e})")
        raise InstanceError(problems + [Problem(shown, msg, row=start)]) from None
    if problems:
        raise InstanceError(problems)


def _check_header(df, shown, required, optional, allow_extra) -> list[Problem]:
    problems = []
    missing = [c for c in required if c not in df.columns]
    if missing:
        found = ", ".join(_cut(c) for c in list(df.columns)[:12]) + (", ..." if len(df.columns) > 12 else "")
        problems.append(Problem(shown, f"missing column(s) {', '.join(missing)}; found: {found}",
                                row=1, field=missing[0]))
    if not allow_extra:
        extra = [c for c in df.columns if c not in required and c not in optional]
        if extra:
            shown_extra = ", ".join(_cut(c) for c in extra[:12]) + (", ..." if len(extra) > 12 else "")
            problems.append(Problem(shown, f"unknown column(s) {shown_extra}; allowed: "
                                    + ", ".join(list(required) + list(optional)), row=1, field=_cut(extra[0])))
    return problems


def out_of_range(values, lo: float, hi: float, unit: str, shown: str, col: str) -> list[Problem]:
    """A problem for every finite value outside [lo, hi] (row = index + 2)."""
    return [Problem(shown, between(lo, hi, unit, v), row=i + 2, field=col)
            for i, v in enumerate(values)
            if isinstance(v, (int, float)) and math.isfinite(v) and not lo <= v <= hi]


def between(lo: float, hi: float, unit: str, got: float) -> str:
    """``must be between 0.1 and 1000 kV (got 11000)``."""
    return f"must be between {lo:g} and {hi:g}{' ' + unit if unit else ''} (got {got:g})"


def duplicates(keys, shown: str, field: str, what: str) -> list[Problem]:
    """A problem for every repeated key (row = index + 2), naming the row of its first use."""
    first, problems = {}, []
    for i, k in enumerate(keys):
        if k in first:
            problems.append(Problem(shown, f"{what} {k!r} is used twice (first on row {first[k] + 2})",
                                    row=i + 2, field=field))
        else:
            first[k] = i
    return problems


def _convert(series: pd.Series, kind: str, shown: str, col: str):
    problems = []
    values = []
    for i, raw in enumerate(series):
        line = i + 2
        s = raw.strip()
        if kind == "str":
            if not s:
                problems.append(Problem(shown, "empty value", row=line, field=col))
            values.append(s)
            continue
        if kind == "bool":
            low = s.lower()
            if low in ("true", "1", "yes"):
                values.append(True)
            elif low in ("false", "0", "no"):
                values.append(False)
            else:
                problems.append(Problem(shown, f"'{_cut(s)}' is not true/false", row=line, field=col))
                values.append(False)
            continue
        try:
            v = float(s)
        except ValueError:
            problems.append(Problem(shown, f"'{_cut(s)}' is not a number", row=line, field=col))
            values.append(math.nan)
            continue
        if not math.isfinite(v):
            problems.append(Problem(shown, f"{s} is not a finite number", row=line, field=col))
        elif kind == "int" and v != int(v):
            problems.append(Problem(shown, f"{s} is not a whole number", row=line, field=col))
        elif kind == "float+" and v < 0:
            problems.append(Problem(shown, f"{s} is negative; must be >= 0", row=line, field=col))
        elif kind == "float++" and v <= 0:
            problems.append(Problem(shown, f"{s} must be > 0", row=line, field=col))
        values.append(int(v) if kind == "int" and math.isfinite(v) else v)
    return values, problems


_PY = {"str": str, "float": (int, float), "int": int, "bool": bool, "list": list, "table": dict,
       "float+": (int, float), "float++": (int, float), "list|str": (list, str), "float|str": (int, float, str), "list|table": (list, dict)}


def check_section(section: dict, shown: str, prefix: str, schema: dict[str, str], required=(),
                  bounds: Bounds | None = None) -> list[Problem]:
    """Check a TOML table's keys and value types against ``schema`` (key -> kind) and its
    numbers against ``bounds`` (key -> plausible (lowest, highest, unit))."""
    problems = []
    if not isinstance(section, dict):
        return [Problem(shown, f"{section!r} must be a table", field=prefix.rstrip(".") or None)]
    for key in required:
        if key not in section:
            problems.append(Problem(shown, "missing key", field=f"{prefix}{key}"))
    for key, value in section.items():
        if key not in schema:
            problems.append(Problem(shown, f"unknown key; allowed: {', '.join(schema)}", field=f"{prefix}{key}"))
            continue
        kind = schema[key]
        before = len(problems)
        ok = isinstance(value, _PY[kind]) and not (kind not in ("bool",) and isinstance(value, bool))
        if ok and kind in ("float+", "float++", "float", "int"):
            ok = _finite(value)
            if ok and kind == "float+" and value < 0:
                problems.append(Problem(shown, f"{value} is negative; must be >= 0", field=f"{prefix}{key}"))
            if ok and kind == "float++" and value <= 0:
                problems.append(Problem(shown, f"{value} must be > 0", field=f"{prefix}{key}"))
        if not ok:
            problems.append(Problem(shown, f"{value!r} is not of kind {kind}", field=f"{prefix}{key}"))
        elif bounds and key in bounds and len(problems) == before and isinstance(value, (int, float)):
            lo, hi, unit = bounds[key]
            if not lo <= value <= hi:
                problems.append(Problem(shown, between(lo, hi, unit, value), field=f"{prefix}{key}"))
    return problems


def _finite(value) -> bool:
    """Whether a TOML number is finite and fits a float (TOML integers can be huge)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False
