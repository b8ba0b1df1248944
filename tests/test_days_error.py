"""benchmarks/days_error.py end to end on SimBench LV rural (one stage, the full year of 365
days as reference): the planning cost of k representative days against the full year.

The reference is solved by day screening and proven to the MIP gap on all 365 days, so no
plan, however it was found, can cost less on the full year than its lower bound: every
k-day plan's true cost (its builds fixed, its operation re-solved on the year) must lie at
or above it, the regret therefore at or above minus the gap.  The reduction's peak error is
0 where the peak day is kept.  About 5 minutes on 2 cores, hence slow.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("days") / "days.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "days_error.py"), "--ks", "4",
                           "--stages", "2025", "--scale", "4", "--mip-gap", "0.0005", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), out


def test_no_k_day_plan_beats_the_full_year(study):
    data, _ = study
    ref = data["reference"]
    assert data["days"] == 365 and ref["gap"] <= data["mip_gap"]
    assert ref["lower_bound_eur"] <= ref["objective_eur"]
    for r in data["rows"]:
        assert r["true_eur"] >= ref["lower_bound_eur"] * (1 - 1e-9), r
        assert r["regret"] >= -data["mip_gap"] - 1e-9, r
        assert r["predicted_error"] == pytest.approx((r["predicted_eur"] - r["true_eur"]) / r["true_eur"])


def test_the_kept_peak_day_reproduces_the_peak_and_its_plan(study):
    """With the peak day kept the reduction's peak error is 0, and since this feeder's plan
    is set by the peak (the transformer), the 4-day plan is the full-year plan and costs
    the same on the year."""
    data, _ = study
    kept = next(r for r in data["rows"] if r["peak_kept"])
    assert kept["peak_error"] == pytest.approx(0.0, abs=1e-12)
    assert kept["same_plan"] and kept["plan"] == data["reference"]["builds"]
    assert kept["regret"] == pytest.approx(0.0, abs=data["mip_gap"])


def test_outputs_written(study):
    _, out = study
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = out.with_suffix(".csv").read_text().splitlines()
    assert len(rows) == 1 + 2 and rows[0].startswith("k,peak_kept")
    assert np.isfinite([float(x) for x in rows[1].split(",")[2:4]]).all()
