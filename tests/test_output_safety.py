"""Output safety: a run never deletes a folder that is not a flexplan result, and never
writes outside ``out/`` because of a name in the input."""
from __future__ import annotations

import os

import pytest

from flexplan.cli import main
from flexplan.outdir import MARKER

from test_recipes import TWO_LINES

pytestmark = pytest.mark.integration

LOADS = [("b1", 0.3, 0.1)]


def _precious(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("years of work\n")
    return folder


def test_refuses_a_folder_of_other_files(feeder, tmp_path, capsys):
    inst = feeder("f", lines=TWO_LINES, loads=LOADS)
    mine = _precious(tmp_path / "docs")
    assert main(["solve", str(inst), "--out", str(mine), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "not empty and not a flexplan result" in err and "--force" in err
    assert (mine / "thesis.tex").read_text() == "years of work\n"
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_force_replaces_and_a_result_is_replaced_without_force(feeder, tmp_path, capsys):
    inst = feeder("f", lines=TWO_LINES, loads=LOADS)
    mine = _precious(tmp_path / "docs")
    assert main(["solve", str(inst), "--out", str(mine), "--no-plots", "--force"]) == 0
    assert not (mine / "thesis.tex").exists()
    assert (mine / MARKER).is_file() and (mine / "summary.json").is_file()
    (mine / "summary.json").write_text("{}")
    assert main(["solve", str(inst), "--out", str(mine), "--no-plots"]) == 0  # a result: replaced
    assert (mine / "summary.json").read_text() != "{}"
    capsys.readouterr()


def test_refuses_the_current_folder_and_its_parents(feeder, tmp_path, monkeypatch, capsys):
    inst = feeder("f", lines=TWO_LINES, loads=LOADS)
    work = _precious(tmp_path / "work")
    (work / MARKER).write_text("")  # even a folder that looks like a result
    monkeypatch.chdir(work)
    for out in (".", "..", str(work)):
        assert main(["solve", str(inst), "--out", out, "--no-plots", "--force"]) == 2
        assert "is the current folder or contains it" in capsys.readouterr().err
    assert (work / "thesis.tex").is_file()


def test_refuses_a_symlink_and_keeps_its_target(feeder, tmp_path, capsys):
    inst = feeder("f", lines=TWO_LINES, loads=LOADS)
    target = _precious(tmp_path / "target")
    (target / MARKER).write_text("")
    link = tmp_path / "link"
    os.symlink(target, link)
    assert main(["solve", str(inst), "--out", str(link), "--no-plots", "--force"]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert (target / "thesis.tex").is_file() and link.is_symlink()


def test_library_write_refuses_too(feeder, tmp_path):
    import flexplan as fp
    from flexplan.errors import OutputError

    inst = fp.load_instance(feeder("f", lines=TWO_LINES, loads=LOADS))
    res = fp.solve(fp.build_model(inst, "reinforce_only"))
    mine = _precious(tmp_path / "docs")
    with pytest.raises(OutputError, match="not a flexplan result"):
        res.write(mine, plots=False)
    assert (mine / "thesis.tex").is_file()
    assert res.write(tmp_path / "empty", plots=False) == (tmp_path / "empty").resolve()


@pytest.mark.parametrize("name", ["../../escape", "/abs/olute", "a/../../b", ".."])
def test_names_cannot_leave_out(feeder, tmp_path, monkeypatch, capsys, name):
    """An instance and a recipe named like paths write under ./out/ all the same."""
    import json

    inst = feeder("f", lines=TWO_LINES, loads=LOADS)
    text = (inst / "instance.toml").read_text().replace('name = "f"', f"name = {json.dumps(name)}")
    (inst / "instance.toml").write_text(text)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'name = {json.dumps(name)}\nblocks = ["demand", "reinforcement"]\n')
    victim = _precious(tmp_path / "b")  # what 'a/../../b' would name from tmp_path/run/out
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    assert main(["solve", str(inst), "--model", str(recipe), "--no-plots"]) == 0
    folder = capsys.readouterr().out.strip()
    from pathlib import Path

    written = Path(folder)
    assert written.parent == (run / "out").resolve()
    from flexplan.outdir import safe_name

    assert written.name == f"{safe_name(name)}-{safe_name(name)}"
    assert ".." not in written.name and "/" not in written.name and not written.name.startswith(".")
    assert (written / "summary.json").is_file()
    assert sorted(p.name for p in run.iterdir()) == ["out"]
    assert sorted(p.name for p in victim.iterdir()) == ["thesis.tex"]


def test_safe_name():
    from flexplan.outdir import safe_name

    assert safe_name("ieee33_ev") == "ieee33_ev"
    assert safe_name("../../x") == "___x"
    assert safe_name("/etc/passwd") == "_etc_passwd"
    assert safe_name("..") == "unnamed" and safe_name("") == "unnamed"
    assert safe_name("a b/c") == "a_b_c"


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_stale_temporary_folders_of_a_killed_write_are_cleaned(feeder, tmp_path):
    """Left by a SIGKILL during a write: removed on the next write to the same target when
    their process is gone and they are old; a live writer's, a fresh one and another
    target's stay."""
    import time

    import flexplan as fp

    res = fp.solve(fp.build_model(fp.load_instance(feeder("f", lines=TWO_LINES, loads=LOADS)), "reinforce_only"))
    root = tmp_path / "runs"
    root.mkdir()
    dead, hour, days = _dead_pid(), time.time() - 3600, time.time() - 3 * 86400

    def leftover(name, mtime, folder=True):
        p = root / name
        if folder:
            p.mkdir()
            (p / "voltages.csv").write_text("half")
        else:
            p.write_text("half")
        os.utime(p, (mtime, mtime))
        return p

    gone = [leftover(f".res.tmp-{dead}-x1y2", hour), leftover(f".res.old-{dead}", hour),
            leftover(".res.tmp-legacy9", days), leftover(f".res.tmp-{dead}-ab.csv", hour, folder=False)]
    kept = [leftover(f".res.tmp-{os.getppid()}-live", hour),   # its writer still runs
            leftover(f".res.tmp-{dead}-fresh", time.time()),   # too new to be sure
            leftover(".res.tmp-legacy8", hour),                # no pid: only after a day
            leftover(f".other.tmp-{dead}-zz", days)]           # another target's
    res.write(root / "res", plots=False)
    assert [p.exists() for p in gone] == [False] * len(gone)
    assert [p.exists() for p in kept] == [True] * len(kept)
    assert (root / "res" / "summary.json").is_file()
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["res"]


def test_frameworks_refuses_a_folder_of_other_files_before_solving(tmp_path, capsys):
    from conftest import EVENING, add_fleet, write_feeder

    f = write_feeder(tmp_path / "ev", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)], loads=[("b1", 0.3, 0.05)],
                     profile=[("day", 365, EVENING)], economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    add_fleet(f, "b1", 20)
    mine = _precious(tmp_path / "docs")
    assert main(["frameworks", str(f), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "not empty and not a flexplan result" in err and "framework" not in err.split("error:")[0]
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
