"""Where the soft limits bind (violations.csv) and why a model has no plan (flexplan diagnose)."""
import json

import numpy as np
import pandas as pd
import pytest

import flexplan as fp
from conftest import add_fleet
from flexplan.cli import main
from flexplan.diagnose import diagnose
from test_recipes import TWO_LINES

pytestmark = pytest.mark.integration


def hard_voltage(feeder):
    """The slack holds 1.05 pu but the recipe caps every voltage at 1.02 pu as a hard bound:
    no flow can bring the first bus down that far."""
    folder = feeder("hardv", lines=TWO_LINES, loads=[("b1", 0.9, 0.3), ("b2", 1.5, 0.5)],
                    extra_network="slack_vm_pu = 1.05", profile=[("peak", 365, [0.5, 1.0])])
    recipe = folder / "hard_v.toml"
    recipe.write_text('name = "hard_v"\nblocks = ["demand"]\n[network]\nv_hard_max_pu = 1.02\n')
    return folder, recipe


def test_diagnose_names_the_infeasible_constraint_and_place(feeder, tmp_path, capsys):
    folder, recipe = hard_voltage(feeder)
    out = tmp_path / "diag.json"
    assert main(["diagnose", str(folder), "--model", str(recipe), "--out", str(out)]) == 3
    text = capsys.readouterr().out
    assert "infeasible" in text and "network.vdrop" in text
    d = json.loads(out.read_text())
    assert d["method"] == "iis" and d["status"] == "infeasible"
    rows = pd.DataFrame(d["culprits"])
    vdrop = rows[rows["family"] == "network.vdrop"]
    assert len(vdrop) == 1 and vdrop["element"].iloc[0] == "l1" and vdrop["element_type"].iloc[0] == "line"
    vbound = rows[(rows["family"] == "network.v") & (rows["what"] == "bound")]
    assert list(vbound["element"]) == ["b1"]
    assert vbound["detail"].iloc[0] == f"upper bound {1.02 ** 2:g}"
    assert set(vdrop[["node", "year", "day"]].itertuples(index=False, name=None)) == {("n2025", 2025, "peak")}


def test_diagnose_names_the_bus_and_hour_of_an_impossible_load(feeder, tmp_path, capsys):
    """-9000 MW at b2 (the profile halves it at hour 0): the subset names the cable it must
    flow through, and the diagnosis names the load's bus and hour behind it."""
    folder = feeder("neg", lines=TWO_LINES, loads=[("b1", 0.9, 0.3), ("b2", -9000, 0.5)],
                    profile=[("peak", 365, [0.5, 1.0])])
    out = tmp_path / "diag.json"
    assert main(["diagnose", str(folder), "--out", str(out)]) == 3
    text = capsys.readouterr().out
    assert "the largest loads they carry: bus b2 -4,500.000 MW" in text and "hour 0" in text
    d = json.loads(out.read_text())
    loads = [c for c in d["culprits"] if c["what"] == "load"]
    assert loads[0]["element"] == "b2" and loads[0]["element_type"] == "bus"
    assert (loads[0]["year"], loads[0]["day"], loads[0]["hour"]) == (2025, "peak", 0)
    assert "fixed load -4,500.000 MW" in loads[0]["detail"]


def test_diagnose_without_iis_drops_blocks(feeder, monkeypatch):
    import flexplan.diagnose as dg

    folder, recipe = hard_voltage(feeder)
    monkeypatch.setattr(dg, "_iis", lambda *a, **k: None)
    d = dg.diagnose(folder, recipe)
    assert d.method == "drop-blocks"
    blocks = [c["family"] for c in d.culprits if c["what"] == "block"]
    assert blocks == ["network"]  # demand alone cannot be the cause
    families = {c["family"] for c in d.culprits if c["what"] == "family"}
    assert "network.vdrop" in families and "network.balance_p" not in families


def test_diagnose_ev_energy_against_hard_voltage(feeder):
    """A fleet of 300 EVs behind a weak cable with voltage as a hard limit: the fleets' energy
    cannot be delivered; the subset names the EV energy balance and the cable."""
    folder = feeder("evhard", lines=[("l1", "b0", "b1", 40.0, 20.0, 10.0, 1.0)], loads=[("b1", 0.05, 0.01)],
                    profile=[("d", 365, [1.0] * 24)])
    add_fleet(folder, "b1", 300)
    recipe = dict(name="hard_vmin", blocks=["demand", "ev_fleet"], ev_fleet={"mode": "smart"},
                  network={"v_hard_min_pu": 0.99})
    d = diagnose(folder, recipe)
    assert d.status == "infeasible" and d.method == "iis"
    fams = set(d.families)
    assert {"ev_fleet.energy", "network.vdrop", "network.v"} <= fams
    t = d.table()
    assert set(t.loc[t["family"] == "network.vdrop", "element"]) == {"l1"}
    assert set(t.loc[t["family"] == "network.v", "element"]) == {"b1"}
    assert t.loc[t["family"] == "network.v", "detail"].str.contains(f"{0.99 ** 2:g}").all()  # the hard minimum
    # the same feeder with the soft limit only: a plan, nothing to diagnose
    ok = diagnose(folder, dict(recipe, network={}))
    assert ok.method == "feasible" and not ok.culprits


def test_violations_table_says_which_limit_where_and_when(feeder, tmp_path):
    folder = feeder("weak", lines=TWO_LINES, loads=[("b1", 0.9, 0.3), ("b2", 1.5, 0.5)], limits="v_min_pu = 0.99",
                    profile=[("day", 365, [0.6, 1.0, 1.3])])
    with open(folder / "instance.toml", "a") as fh:  # violating the band and the ratings is cheaper than shedding
        fh.write("\n[penalties]\nvoll_eur_per_mwh = 100000\nvoltage_eur_per_pu2h = 1000\noverload_eur_per_mvah = 10\n")
    res = fp.solve(fp.build_model(folder, "reinforce_only"), mip_gap=0.0)
    out = res.write(tmp_path / "res", plots=False)
    viol = pd.read_csv(out / "violations.csv")
    volt = pd.read_csv(out / "voltages.csv")
    load = pd.read_csv(out / "line_loading.csv")
    low = volt[volt["v_pu"] < 0.99 - 1e-6]
    assert len(low), "the instance is meant to violate the voltage band"
    under = viol[viol["kind"] == "undervoltage"]
    assert set(under["constraint"]) == {"network.v_min"}
    key = ["year", "day", "hour", "bus"]
    got = under.rename(columns={"element": "bus"}).merge(low, on=key, how="outer", indicator=True)
    assert (got["_merge"] == "both").all()  # exactly the (bus, hour)s below the band
    assert np.allclose(got["amount"], 0.99 - got["v_pu"], atol=1e-6)
    assert len(viol[viol["kind"] == "unserved"]) == 0
    over = load[load["loading_pct"] > 100 + 1e-3]
    overloaded = viol[viol["kind"] == "overload"]
    assert len(over) and set(overloaded["constraint"]) == {"network.thermal"}
    assert set(zip(over["line"], over["year"], over["hour"])) == set(zip(overloaded["element"], overloaded["year"],
                                                                         overloaded["hour"]))
    assert (overloaded["value"] > 100).all() and (overloaded["limit"] == 100).all()
    s = json.loads((out / "summary.json").read_text())
    loc = s["violation_locations"]
    assert loc["count"] == len(viol) and loc["worst"][0]["element"] == viol["element"].iloc[0]
    assert "violations.csv" in (out / "report.md").read_text()
