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


def test_formulation_has_sections_one_to_seven():
    top, _ = doc_sections()
    assert top == list(range(1, 8)), f"{DOC.relative_to(ROOT)} has the numbered sections {top}, expected 1..7"


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
