"""The benchmark driver end to end in its smoke mode (``benchmarks/run_benchmarks.py --smoke``:
ieee33 as an LP, a 10-bus synthetic LP and its 2-scenario stochastic extensive form, each run
once in fresh subprocesses, with HiGHS alone on the saved model arrays).  About 25 s on an idle
2-core machine."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "benchmarks" / "run_benchmarks.py"

# every case row must carry these (times in s, sizes, HiGHS alone, ratios)
FIELDS = ["load_s", "build_s", "handoff_s", "solve_s", "extract_s", "other_s", "wall_s", "import_s", "peak_mb",
          "variables", "constraints", "binaries", "nonzeros", "ops", "nodes", "scenarios", "ratio",
          "highs_alone_s", "highs_alone_read_s", "overhead_vs_alone", "objective_eur", "highs_alone_objective_eur",
          "objective_rel_diff", "objective_check", "status", "runs", "model_mb", "same_path"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, str(DRIVER), "--smoke", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    return proc, out


def test_smoke_run_succeeds(smoke):
    proc, out = smoke
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert out.exists()
    assert "ovh/alone" in proc.stdout and "alone" in proc.stdout  # the table


def test_smoke_json_fields(smoke):
    _, out = smoke
    data = json.loads(out.read_text())
    assert data["mode"] == "smoke" and data["failures"] == [] and data["objective_mismatches"] == []
    cases = {c["case"]: c for c in data["cases"]}
    assert {c["family"] for c in cases.values()} == {"instance", "synthetic", "scenarios"}
    assert "ieee33:reinforce_lp" in cases
    for name, c in cases.items():
        missing = [k for k in FIELDS if c.get(k) is None]
        assert not missing, f"{name}: no {missing}"
        assert c["runs"] == 1 and c["kind"] == "lp" and c["binaries"] == 0 and c["status"] == "optimal", name
        assert c["variables"] > 0 and c["constraints"] > 0 and c["nonzeros"] > 0
        for k in ("build_s", "handoff_s", "solve_s", "extract_s", "highs_alone_s"):
            assert c[k] > 0, f"{name}: {k} = {c[k]}"
        around = c["build_s"] + c["handoff_s"] + c["extract_s"]
        assert math.isclose(c["ratio"], around / c["solve_s"], rel_tol=1e-2)
        assert math.isclose(c["overhead_vs_alone"], around / c["highs_alone_s"], rel_tol=1e-2)
    ieee = cases["ieee33:reinforce_lp"]
    assert ieee["buses"] >= 33 and ieee["variables"] > 10_000
    scen = next(c for c in cases.values() if c["family"] == "scenarios")
    assert scen["stochastic"] and scen["scenarios"] == 2 and scen["nodes"] == 3
    assert set(data["fits"]) >= {"build_s", "handoff_s", "solve_s", "highs_alone_s", "extract_s"}


def test_smoke_objectives_agree_with_highs_alone(smoke):
    _, out = smoke
    for c in json.loads(out.read_text())["cases"]:
        rel = abs(c["objective_eur"] - c["highs_alone_objective_eur"]) / max(abs(c["objective_eur"]), 1e-9)
        assert rel <= 1e-6, f"{c['case']}: flexplan {c['objective_eur']!r}, HiGHS alone {c['highs_alone_objective_eur']!r}"
        assert c["objective_check"] == "ok"
        assert c["highs_alone_status"] == "Optimal"
        # the saved arrays are flexplan's model bit for bit: HiGHS alone takes the same path
        # to the same objective (an MPS file rounds coefficients and can change the path)
        assert c["same_path"] is True, c["case"]
        assert c["highs_alone_objective_eur"] == c["objective_eur"], c["case"]


def test_smoke_csv_and_png(smoke):
    _, out = smoke
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == len(json.loads(out.read_text())["cases"])
    assert {"highs_alone_s", "overhead_vs_alone", "ratio", "build_s", "variables"} <= set(rows[0])
    for png in (out.with_suffix(".png"), out.with_name(out.stem + "_ratio.png")):
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
