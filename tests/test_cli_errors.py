"""Trouble around a run that is the user's to fix gets one clear line and exit 2, never a
traceback: a full or read-only disk, a recipe that is a folder or not UTF-8, ``report`` on
a folder that is no result, ``--out`` naming a folder where a file is written, a
pandapower network name that is no network."""
from __future__ import annotations

import errno

import pytest

from flexplan.cli import main

from conftest import case33_snapshot
from test_recipes import TWO_LINES

pytestmark = pytest.mark.integration

LOADS = [("b1", 0.3, 0.1)]


def _no_tmp_left(folder):
    return not [p for p in folder.rglob("*") if ".tmp-" in p.name]


def test_full_disk_while_writing(feeder, tmp_path, monkeypatch, capsys):
    import pandas as pd

    inst = feeder("f", lines=TWO_LINES, loads=LOADS)
    real = pd.DataFrame.to_csv

    def full(self, path=None, *a, **k):
        if path is not None and "builds" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    out = tmp_path / "res"
    assert main(["solve", str(inst), "--out", str(out), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "builds.csv" in err and "Traceback" not in err
    assert not out.exists() and _no_tmp_left(tmp_path)


def test_read_only_output_folder(feeder, tmp_path, monkeypatch, capsys):
    import tempfile

    inst = feeder("f", lines=TWO_LINES, loads=LOADS)

    def read_only(*a, dir=None, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    assert main(["solve", str(inst), "--out", str(tmp_path / "res"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "Read-only file system" in err and str(tmp_path) in err


@pytest.mark.parametrize("kind", ["directory", "latin1", "binary"])
def test_recipe_that_is_no_toml_text(feeder, tmp_path, capsys, kind):
    inst = feeder("f", lines=TWO_LINES, loads=LOADS)
    recipe = tmp_path / "r.toml"
    if kind == "directory":
        recipe.mkdir()
    else:
        recipe.write_bytes('name = "é"\nblocks = ["demand"]\n'.encode("latin-1") if kind == "latin1"
                           else b"blocks = \x00\x01")
    assert main(["solve", str(inst), "--model", str(recipe), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    fragment = {"directory": "is a directory, not a TOML file", "latin1": "not UTF-8 text (byte 0xe9 on line 1)",
                "binary": "binary data (a NUL byte on line 1)"}[kind]
    assert f"error: recipe {recipe}" in err and fragment in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["report", "check-ac"])
def test_report_on_a_folder_that_is_no_result(tmp_path, capsys, command):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine\n")
    assert main([command, str(tmp_path / "docs")]) == 2
    assert "not a flexplan result folder (no summary.json)" in capsys.readouterr().err
    assert main([command, str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{not json")
    assert main([command, str(tmp_path / "bad")]) == 2
    assert "not a readable result summary" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("argv", [["diagnose", "INST"], ["sweep", "INST", "--param", "penalties.voll_eur_per_mwh=1,2"],
                                  ["value-curve", "INST"], ["breakeven", "INST"]])
def test_out_is_a_folder_where_a_file_is_written(feeder, tmp_path, capsys, argv):
    inst = feeder("f", lines=TWO_LINES, loads=LOADS)
    folder = tmp_path / "results"
    folder.mkdir()
    argv = [str(inst) if a == "INST" else a for a in argv]
    assert main(argv + ["--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"--out {folder} is a folder; give the" in err
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("name", ["__dir__", "__builtins__", "os", "_private"])
def test_pandapower_name_that_is_no_network(tmp_path, capsys, name):
    folder = case33_snapshot(tmp_path / "pp")
    text = (folder / "instance.toml").read_text().replace('name = "case33bw"', f'name = "{name}"')
    (folder / "instance.toml").write_text(text)
    assert main(["solve", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"field 'network.name': unknown pandapower network '{name}'" in err
