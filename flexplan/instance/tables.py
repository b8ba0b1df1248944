"""Reading CSV tables and TOML sections with errors that name file, line and field."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..errors import InstanceError, Problem


def read_csv(path: Path, shown: str, required: dict[str, str], optional: dict[str, str] | None = None,
             allow_extra: bool = False) -> pd.DataFrame:
    """Read a CSV file and check its columns and types.

    ``required`` / ``optional`` map column -> kind: ``str``, ``float`` (finite),
    ``float+`` (finite, >= 0), ``float++`` (finite, > 0), ``int``, ``bool``.  Every bad cell
    is reported, with its line number in the file (the header is line 1).
    """
    optional = optional or {}
    if not path.exists():
        raise InstanceError(Problem(shown, "file not found"))
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as e:
        raise InstanceError(Problem(shown, f"not a readable CSV file: {e}")) from e
    df.columns = [c.strip() for c in df.columns]
    problems = []
    missing = [c for c in required if c not in df.columns]
    if missing:
        problems.append(Problem(shown, f"missing column(s) {', '.join(missing)}; found: {', '.join(df.columns)}",
                                row=1, field=missing[0]))
    if not allow_extra:
        extra = [c for c in df.columns if c not in required and c not in optional]
        if extra:
            problems.append(Problem(shown, f"unknown column(s) {', '.join(extra)}; allowed: "
                                    + ", ".join(list(required) + list(optional)), row=1, field=extra[0]))
    if problems:
        raise InstanceError(problems)
    if len(df) == 0:
        raise InstanceError(Problem(shown, "the table has no rows"))
    out = {}
    kinds = {**required, **{c: k for c, k in optional.items() if c in df.columns}}
    for col, kind in kinds.items():
        out[col], probs = _convert(df[col], kind, shown, col)
        problems.extend(probs)
    if problems:
        raise InstanceError(problems)
    for col in df.columns:
        if col not in out:
            out[col] = df[col]
    return pd.DataFrame(out)[list(df.columns)]


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
                problems.append(Problem(shown, f"'{s}' is not true/false", row=line, field=col))
                values.append(False)
            continue
        try:
            v = float(s)
        except ValueError:
            problems.append(Problem(shown, f"'{s}' is not a number", row=line, field=col))
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
       "float+": (int, float), "float++": (int, float), "list|str": (list, str), "float|str": (int, float, str)}


def check_section(section: dict, shown: str, prefix: str, schema: dict[str, str], required=()) -> list[Problem]:
    """Check a TOML table's keys and value types against ``schema`` (key -> kind)."""
    problems = []
    for key in required:
        if key not in section:
            problems.append(Problem(shown, "missing key", field=f"{prefix}{key}"))
    for key, value in section.items():
        if key not in schema:
            problems.append(Problem(shown, f"unknown key; allowed: {', '.join(schema)}", field=f"{prefix}{key}"))
            continue
        kind = schema[key]
        ok = isinstance(value, _PY[kind]) and not (kind not in ("bool",) and isinstance(value, bool))
        if ok and kind in ("float+", "float++", "float"):
            ok = math.isfinite(value)
            if ok and kind == "float+" and value < 0:
                problems.append(Problem(shown, f"{value} is negative; must be >= 0", field=f"{prefix}{key}"))
            if ok and kind == "float++" and value <= 0:
                problems.append(Problem(shown, f"{value} must be > 0", field=f"{prefix}{key}"))
        if not ok:
            problems.append(Problem(shown, f"{value!r} is not of kind {kind}", field=f"{prefix}{key}"))
    return problems
