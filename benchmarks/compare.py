#!/usr/bin/env python
"""Before/after table of two benchmark result files (``run_benchmarks.py`` JSON).

    python benchmarks/compare.py BEFORE.json AFTER.json [--markdown] [--only TEXT]
    python benchmarks/compare.py results/large.json:before results/large.json:after   # large_cases.py rows

A file of ``large_cases.py`` (a list of rows) is read as ``FILE:LABEL``: its rows of that
label, named ``large <case> x<scale>``.

One row per case present in both files (matched by name): model size after (variables /
rows / nonzeros, with the size before where it changed), overhead ratio
(build + hand-off + extract) / HiGHS solve, HiGHS time (flexplan's solve; HiGHS alone in
brackets where recorded), total time (load + build + hand-off + solve + extract) and peak
memory, each as ``before -> after``.  Cases in only one file are listed below the table.
Medians as each file records them; both files should come from the same machine.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(spec: str) -> dict[str, dict]:
    path, _, label = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict):
        return {c["case"]: c for c in data["cases"]}
    rows = [r for r in data if not label or r.get("label") == label]
    if not rows:
        raise SystemExit(f"{path}: no rows labelled '{label}' (labels: {sorted({str(r.get('label')) for r in data})})")
    return {f"large {r['case']} x{r['scale']:g}": dict(r, kind=r.get("kind") or r["case"]) for r in rows
            if r.get("variables") and r.get("status") != "failed"}


def total(c: dict) -> float:
    return sum(c.get(k) or 0.0 for k in ("load_s", "build_s", "handoff_s", "solve_s", "extract_s"))


def size(c: dict) -> str:
    return f"{c['variables']:,} / {c['constraints']:,} / {c['nonzeros']:,}"


def highs(c: dict) -> str:
    s = f"{c['solve_s']:.1f}" if c["solve_s"] >= 10 else f"{c['solve_s']:.2f}"
    if c.get("highs_alone_s") is not None:
        a = c["highs_alone_s"]
        s += f" ({a:.1f})" if a >= 10 else f" ({a:.2f})"
    if "time_limit" in str(c.get("status")):
        s += " TL"
    return s


def rows(before: dict, after: dict, only: str | None = None) -> list[list[str]]:
    out = []
    for name, a in after.items():
        if name not in before or (only and only not in name):
            continue
        b = before[name]
        sz = size(a) if size(a) == size(b) else f"{size(a)} (was {size(b)})"
        out.append([name, a.get("kind", ""), sz, f"{b['ratio']:.2f} -> {a['ratio']:.2f}",
                    f"{highs(b)} -> {highs(a)}", f"{total(b):.1f} -> {total(a):.1f}",
                    f"{b['peak_mb']:,.0f} -> {a['peak_mb']:,.0f}"])
    return out


HEAD = ["case", "kind", "vars / rows / nnz", "overhead ratio", "HiGHS s (alone)", "total s", "peak MB"]


def render(table: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
        lines += ["| " + " | ".join(r) + " |" for r in table]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(HEAD, *table)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(r, widths)) for r in [HEAD] + table)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table")
    ap.add_argument("--only", default=None, help="only the cases whose name contains this text")
    a = ap.parse_args(argv)
    before, after = load(a.before), load(a.after)
    table = rows(before, after, a.only)
    if not table:
        print(f"no case is in both {a.before} and {a.after}", file=sys.stderr)
        return 1
    print(render(table, a.markdown))
    gone = sorted(set(before) - set(after))
    new = sorted(set(after) - set(before))
    if gone:
        print(f"\nonly in {a.before}: {', '.join(gone)}")
    if new:
        print(f"\nonly in {a.after}: {', '.join(new)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
