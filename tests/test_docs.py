"""The formulation document and the citations of it.

Code, tests and instance files cite the mathematics as ``docs/formulation.md §N``.  These
tests keep the citations honest: no file may still point to the old top-level formulation
file (which is not part of the repository), and every cited section (``§N``, ``§N.M`` or a
range ``§N–M``) must be a heading of ``docs/formulation.md``.  Files are read from this
checkout (relative to this test), not from the installed package.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "formulation.md"

# the old citation, "FORMULATION" followed by ".md" or directly by a section sign; built
# from two pieces so that this file does not cite it itself
OLD_CITATION = re.compile(rb"FORMULATION" + rb"(?:\.md|[ \t]*\xc2\xa7)")
# "docs/formulation.md" followed by one or more section references: §4, §5.2, §1–6, "§1, §3"
CITATION = re.compile(r"docs/formulation\.md((?:(?:\s*,\s*|\s+and\s+|\s*)§\s*\d+(?:\.\d+)?"
                      r"(?:\s*[–-]\s*\d+(?:\.\d+)?)?)+)")
REFERENCE = re.compile(r"§\s*(\d+(?:\.\d+)?)(?:\s*[–-]\s*(\d+(?:\.\d+)?))?")
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", "out", "build", "dist", ".venv"}


def repo_files() -> list[Path]:
    """The repository's files: tracked ones and new ones git does not ignore (every file
    outside build and cache folders when git is not available)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout
        names = sorted({n for n in out.decode("utf-8", "surrogateescape").split("\0") if n})
        files = [ROOT / n for n in names]
    except (OSError, subprocess.SubprocessError):
        files = [p for p in ROOT.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)]
    return [p for p in files if p.is_file()]


def text_files() -> dict[Path, str]:
    out = {}
    for p in repo_files():
        data = p.read_bytes()
        if b"\0" not in data:
            out[p] = data.decode("utf-8", "replace")
    return out


def doc_sections() -> tuple[list[int], set[str]]:
    """Numbers of the ``## N.`` headings (in order) and every ``N`` / ``N.M`` that has a heading."""
    text = DOC.read_text(encoding="utf-8")
    top = [int(m) for m in re.findall(r"^## (\d+)\. ", text, flags=re.M)]
    subs = set(re.findall(r"^### (\d+\.\d+) ", text, flags=re.M))
    return top, {str(n) for n in top} | subs


def references(spec: str) -> list[str]:
    """Section numbers named by a citation's tail, ranges expanded (``§1–6`` -> 1..6)."""
    out = []
    for m in REFERENCE.finditer(spec):
        first, last = m.group(1), m.group(2)
        if last is None:
            out.append(first)
        elif "." in first or "." in last:
            out += [first, last]
        else:
            out += [str(n) for n in range(int(first), int(last) + 1)]
    return out


def test_formulation_has_sections_one_to_ten():
    top, _ = doc_sections()
    assert top == list(range(1, 11)), f"{DOC.relative_to(ROOT)} has the numbered sections {top}, expected 1..10"


def test_no_file_cites_the_old_formulation_file():
    hits = []
    for p in repo_files():
        for no, line in enumerate(p.read_bytes().split(b"\n"), start=1):
            if OLD_CITATION.search(line):
                hits.append(f"{p.relative_to(ROOT)}:{no}")
    assert not hits, "cite docs/formulation.md §N instead of the old formulation file: " + ", ".join(hits)


def test_every_cited_section_exists():
    _, known = doc_sections()
    cited, missing = 0, []
    for p, text in text_files().items():
        for m in CITATION.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            for ref in references(m.group(1)):
                cited += 1
                if ref not in known:
                    missing.append(f"{p.relative_to(ROOT)}:{line} cites §{ref}")
    assert cited > 0, "no citation of docs/formulation.md found: is the file list empty?"
    assert not missing, f"sections missing from {DOC.relative_to(ROOT)}: " + "; ".join(missing)


def test_references_inside_the_formulation_resolve():
    _, known = doc_sections()
    text = DOC.read_text(encoding="utf-8")
    missing = sorted({ref for m in REFERENCE.finditer(text) for ref in references(m.group(0)) if ref not in known})
    assert not missing, f"{DOC.relative_to(ROOT)} refers to sections it does not have: {missing}"


def test_citation_parser():
    assert references(" §1–6") == ["1", "2", "3", "4", "5", "6"]
    assert references(" §1, §3") == ["1", "3"]
    assert references(" §5.2") == ["5.2"]
    tail = CITATION.search("default 0.8, docs/formulation.md §5's worked example").group(1)
    assert references(tail) == ["5"]
    assert OLD_CITATION.search("see FORMULATION" ".md §4".encode())
    assert OLD_CITATION.search("(FORMULATION" " §2;".encode())
    assert not OLD_CITATION.search(b"from .blocks import FORMULATIONS")


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.integration
def test_the_block_guide_runs_as_written(tmp_path, monkeypatch):
    """docs/blocks.md's block, written to a file outside the package, imported (which
    registers it) and used as the guide's second snippet uses it, on a two-bus feeder whose
    line (0.45 MVA) is overloaded in six evening hours by a unity-power-factor load: cutting
    at 500 EUR/MWh beats the 10,000 EUR/MVAh overload, so the cut is exactly the excess, and
    its cost the excess MWh times the price (one year, 365 days, undiscounted)."""
    import importlib
    import sys

    import flexplan as fp
    from conftest import EVENING, write_feeder
    from flexplan.blocks import BLOCKS

    block_code, usage = _python_blocks(ROOT / "docs" / "blocks.md")[:2]
    (tmp_path / "guide_interruptible.py").write_text(block_code)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("guide_interruptible")
        assert "interruptible" in BLOCKS
        instance = fp.load_instance(write_feeder(tmp_path / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)],
                                                 loads=[("b1", 0.6, 0.0)], profile=[("day", 365, EVENING)],
                                                 economics="base_year = 2025\nend_year = 2025\nstages = [2025]"))
        scope = {"instance": instance}
        exec(usage, scope)  # the guide's own "use it" snippet
        res = scope["res"]
        assert res.status == "optimal"
        excess = [max(0.6 * f - 0.45, 0.0) for f in EVENING]
        cuts = res.tables["interruptions"].set_index("hour")["cut_mw"]
        np.testing.assert_allclose(cuts.sort_index().to_numpy(), excess, atol=1e-9)
        assert res.cost_breakdown_eur["interruption"] == pytest.approx(500.0 * 365 * sum(excess), rel=1e-9)
        assert res.cost_breakdown_eur["penalty_overload"] == pytest.approx(0.0, abs=1e-6)
    finally:
        BLOCKS.pop("interruptible", None)
        sys.modules.pop("guide_interruptible", None)
