"""The command line and the output folder."""
import json

import pandas as pd
import pytest

from flexplan.cli import main
from test_recipes import REINF, TWO_LINES

pytestmark = pytest.mark.integration

KEYS = {"instance", "model", "status", "objective_eur", "mip_gap", "cost_breakdown_eur", "builds", "violations",
        "timings_s", "size"}


def test_solve_writes_complete_output(feeder, tmp_path, capsys):
    folder = feeder("cli", lines=TWO_LINES, loads=[("b1", 0.9, 0.3), ("b2", 1.5, 0.5)], reinforcement=REINF,
                    extra_network="substation_mva = 2.0", limits="v_min_pu = 0.95",
                    economics="base_year = 2025\nend_year = 2029\nstages = [2025, 2027]")
    out = tmp_path / "out"
    assert main(["solve", str(folder), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    s = json.loads((out / "summary.json").read_text())
    assert KEYS <= set(s)
    assert s["status"] == "optimal"
    assert set(s["timings_s"]) >= {"load", "build", "handoff", "solve", "extract"}
    assert set(s["size"]) == {"variables", "constraints", "binaries", "nonzeros"}
    assert {b["asset"] for b in s["builds"]} == {"l2", "substation"}
    assert all(b["year"] == 2025 for b in s["builds"])
    assert sum(s["cost_breakdown_eur"].values()) == pytest.approx(s["objective_eur"], rel=1e-9)
    v = pd.read_csv(out / "voltages.csv")
    assert list(v.columns) == ["node", "year", "day", "hour", "bus", "v_pu"]
    assert len(v) == 4 * 5  # buses (with the virtual grid bus) x years
    ll = pd.read_csv(out / "line_loading.csv")
    assert {"node", "year", "day", "hour", "line", "p_mw", "q_mvar", "loading_pct"} <= set(ll.columns)
    assert len(pd.read_csv(out / "builds.csv")) == 2
    assert pd.read_csv(out / "costs.csv")["pv_eur"].sum() == pytest.approx(s["objective_eur"], rel=1e-9)
    for png in ("voltage_profile", "loading_duration", "investment_timeline", "cost_breakdown"):
        assert (out / f"{png}.png").stat().st_size > 5000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_bad_input_exit_code_and_message(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "instance.toml" in err and "not found" in err


def test_bad_recipe_exit_code(feeder, capsys):
    folder = feeder("cli2", lines=TWO_LINES, loads=[("b1", 0.9, 0.3)])
    assert main(["solve", str(folder), "--model", "nonexistent"]) == 2
    assert "recipe 'nonexistent' not found" in capsys.readouterr().err


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ieee33" in out and "cigre_mv" in out and "reinforce_only" in out and "copperplate" in out
    # the channels, with who writes and who reads each
    assert "  charging_cap" in out and "connection -> ev_fleet" in out
    assert "ev_fleet -> ageing, contracts, phase_balancing, wholesale" in out
    assert "demand -> branchflow, copperplate, lindist3flow, lindistflow" in out


def test_html_report_is_self_contained_and_has_every_figure(tmp_path):
    """report.html holds the report text and every PNG of the folder as an embedded image
    (decodable, the same bytes), and nothing it loads from elsewhere."""
    import base64
    import re

    import flexplan as fp
    from conftest import EVENING, add_fleet, write_feeder

    f = write_feeder(tmp_path / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)], loads=[("b1", 0.3, 0.05)],
                     profile=[("day", 365, EVENING)], economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    inst = fp.load_instance(add_fleet(f, "b1", 200, "v2g_share = 0.5\n"))
    rec = {"name": "r", "blocks": ["demand", "ev_fleet", "ageing"], "ev_fleet": {"mode": "v2g"}}
    out = fp.solve(fp.build_model(inst, rec)).write(tmp_path / "out")
    text = (out / "report.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) >= 6
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == len(pngs)
    assert sorted(base64.b64decode(i) for i in images) == sorted((out / p).read_bytes() for p in pngs)
    assert not re.search(r"(src|href)=['\"](?!data:)", text)  # nothing external
    assert "<table>" in text and "Cost breakdown" in text and text.rstrip().endswith("</html>")
