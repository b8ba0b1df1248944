"""PV block: curtailment equals the hand-computed overvoltage relief under LinDistFlow, units
from a CSV or from a pandapower network's sgens, the reference without curtailment, bad
sections refused, and the recipe."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import flexplan as fp
from conftest import write_feeder
from flexplan.assemble import check_recipe
from flexplan.errors import InstanceError, RecipeError

pytestmark = pytest.mark.unit

SUN = [0.0] * 6 + [0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1.0, 0.9, 0.7, 0.5, 0.3, 0.1] + [0.0] * 6
PEAK_MW, LOAD_MW = 0.3, 0.02
R_OHM, VN_KV, V_MAX = 0.05, 0.4, 1.05
R_PU = R_OHM / VN_KV ** 2  # on S_base = 1 MVA: 0.3125
# v_1 = v_0 - 2 r P / S_base with v_0 = 1 and P = LOAD - injection; v_1 <= V_MAX^2 gives
# injection <= LOAD + (V_MAX^2 - 1) S_base / (2 r)
INJ_MAX = LOAD_MW + (V_MAX ** 2 - 1.0) / (2 * R_PU)  # 0.184 MW
HAND = np.maximum(PEAK_MW * np.asarray(SUN) - INJ_MAX, 0.0)  # MW curtailed per hour
PV_SECTION = f'\n[pv]\nfile = "pv.csv"\nhourly = {SUN}\n'


def _feeder(folder, pv=PV_SECTION, units=f"bus,p_mw\nb1,{PEAK_MW}\n"):
    f = write_feeder(folder, lines=[("l1", "b0", "b1", R_OHM, 0.02, 0.5, 1.0)], loads=[("b1", LOAD_MW, 0.0)],
                     profile=[("day", 365, [1.0] * 24)], vn_kv=VN_KV, limits=f"v_max_pu = {V_MAX}",
                     economics="base_year = 2025\nend_year = 2026\nstages = [2025]")
    (f / "pv.csv").write_text(units)
    with open(f / "instance.toml", "a") as fh:
        fh.write(pv)
    return f


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    return fp.load_instance(_feeder(tmp_path_factory.mktemp("pv") / "f"))


def _check_hand_curtailment(res):
    assert res.status == "optimal"
    t = res.tables["pv"]
    for _, g in t.groupby("year"):
        g = g.sort_values("hour")
        np.testing.assert_allclose(g["available_mw"].to_numpy(), PEAK_MW * np.asarray(SUN), atol=1e-12)
        np.testing.assert_allclose(g["curtailed_mw"].to_numpy(), HAND, atol=1e-6)
    v = res.voltages[res.voltages["bus"] == "b1"]
    assert v["v_pu"].max() == pytest.approx(V_MAX, abs=1e-7)  # held exactly at the limit at noon
    assert res.cost_breakdown_eur["penalty_voltage"] == pytest.approx(0.0, abs=1e-6)
    mwh = HAND.sum() * 365
    assert res.cost_breakdown_eur["pv_curtailment"] == pytest.approx(80.0 * mwh * (1 + 1 / 1.035), rel=1e-6)


def test_curtailment_is_the_overvoltage_relief(inst):
    """At noon 0.3 MW of PV against 20 kW of load would lift b1 to 1.083 pu; the plan curtails
    exactly what keeps it at 1.05 pu (0.116 MW at 11-12 h), and nothing when the sun is low."""
    assert HAND.max() == pytest.approx(0.116, abs=1e-12) and (HAND > 0).sum() == 6
    _check_hand_curtailment(fp.solve(fp.build_model(inst, {"blocks": ["demand", "pv"]})))


def test_without_curtailment_the_voltage_is_violated(inst):
    """The reference (``curtail = false``): all PV is injected, b1 goes to the uncurtailed
    LinDistFlow voltage sqrt(1 + 2 r (PV - load)) and the plan pays the voltage penalty."""
    from flexplan.blocks import BLOCKS

    ref = BLOCKS["pv"].reference({})
    assert ref == {"curtail": False} and BLOCKS["pv"].reference(ref) is None
    res = fp.solve(fp.build_model(inst, {"blocks": ["demand", "pv"], "pv": ref}))
    assert res.status == "optimal"
    assert res.tables["pv"]["curtailed_mw"].abs().max() == 0.0
    v = res.voltages[res.voltages["bus"] == "b1"].sort_values(["year", "hour"])["v_pu"].to_numpy()[:24]
    np.testing.assert_allclose(v, np.sqrt(1 + 2 * R_PU * (PEAK_MW * np.asarray(SUN) - LOAD_MW)), atol=1e-7)
    assert res.cost_breakdown_eur["penalty_voltage"] > 0


def test_pv_recipe_solves_in_either_block_order(inst):
    rec = fp.resolve_recipe("pv_curtailment")
    check_recipe(rec)
    objs = []
    for blocks in (list(rec.blocks), list(reversed(rec.blocks))):
        rec.blocks = blocks
        res = fp.solve(fp.build_model(inst, rec), mip_gap=0.0)
        _check_hand_curtailment(res)
        objs.append(res.objective_eur)
    assert objs[1] == pytest.approx(objs[0], rel=1e-9)


def test_units_from_a_pandapower_networks_sgens(tmp_path):
    """The same feeder as a pandapower JSON network with the PV as an sgen: ``sgens = true``
    reads it (bus by pandapower index, peak p_mw x scaling) and the curtailment is the same."""
    pp = pytest.importorskip("pandapower")
    net = pp.create_empty_network()
    b0 = pp.create_bus(net, vn_kv=VN_KV, name="b0")
    b1 = pp.create_bus(net, vn_kv=VN_KV, name="b1")
    pp.create_ext_grid(net, b0, vm_pu=1.0)
    pp.create_line_from_parameters(net, b0, b1, length_km=1.0, r_ohm_per_km=R_OHM, x_ohm_per_km=0.02,
                                   c_nf_per_km=0.0, max_i_ka=0.7)
    pp.create_load(net, b1, p_mw=LOAD_MW, q_mvar=0.0)
    pp.create_sgen(net, b1, p_mw=PEAK_MW / 2, scaling=2.0, type="PV", name="roof")
    pp.create_sgen(net, b1, p_mw=5.0, type="WP", name="wind")  # left out by sgen_types
    folder = tmp_path / "ppnet"
    folder.mkdir()
    pp.to_json(net, str(folder / "net.json"))
    (folder / "profiles.csv").write_text("day,hour,weight,res\n" + "".join(f"day,{h},365,1.0\n" for h in range(24)))
    (folder / "instance.toml").write_text(textwrap.dedent(f"""\
        name = "ppnet"
        [network]
        source = "json"
        file = "net.json"
        default_class = "res"
        [profiles]
        file = "profiles.csv"
        [economics]
        base_year = 2025
        end_year = 2026
        stages = [2025]
        [limits]
        v_max_pu = {V_MAX}
        [pv]
        sgens = true
        sgen_types = ["PV"]
        hourly = {SUN}
        """))
    inst = fp.load_instance(folder)
    units = inst.sections["pv"].units
    assert units[["bus_name", "p_mw", "profile", "name"]].values.tolist() == [["b1", PEAK_MW, "hourly", "roof"]]
    _check_hand_curtailment(fp.solve(fp.build_model(inst, {"blocks": ["demand", "pv"]})))


def test_profile_file_and_instance_classes(tmp_path):
    """Units may name a column of the section's profile file or a load class of the instance."""
    units = "bus,p_mw,profile\nb1,0.1,sunny\nb1,0.2,res\n"
    f = _feeder(tmp_path / "prof", pv='\n[pv]\nfile = "pv.csv"\nprofiles = "pv_profiles.csv"\n', units=units)
    (f / "pv_profiles.csv").write_text("day,hour,sunny\n" + "".join(f"day,{h},{s}\n" for h, s in enumerate(SUN)))
    inst = fp.load_instance(f)
    from flexplan.blocks.pv import PVConfig, available_mw
    from flexplan.index import deterministic_index

    ix = deterministic_index(inst)
    A = available_mw(inst, ix, PVConfig(annual_growth=0.1))
    np.testing.assert_allclose(A[1, :24], 0.1 * np.asarray(SUN) + 0.2 * 1.0, atol=1e-12)
    np.testing.assert_allclose(A[1, 24:], 1.1 * (0.1 * np.asarray(SUN) + 0.2), atol=1e-12)


@pytest.mark.parametrize("pv, units, message", [
    ('\n[pv]\nfile = "pv.csv"\n', "bus,p_mw\nb7,0.1\n", "unknown bus 'b7'"),
    ('\n[pv]\nfile = "pv.csv"\n', "bus,p_mw,profile\nb1,0.1,moon\n", "unknown profile 'moon'"),
    ('\n[pv]\nfile = "pv.csv"\nhourly = [1.0, 2.0]\n', "bus,p_mw\nb1,0.1\n", "24 numbers"),
    ('\n[pv]\nfile = "pv.csv"\n', "bus,p_mw\nb1,-0.1\n", "negative"),
    ('\n[pv]\nfiles = "pv.csv"\n', "bus,p_mw\nb1,0.1\n", "unknown key"),
    ('\n[pv]\nhourly = [0.5]\n', "bus,p_mw\nb1,0.1\n", "give the PV units"),
    ('\n[pv]\nsgens = true\n', "bus,p_mw\nb1,0.1\n", "needs a pandapower network"),
])
def test_bad_pv_sections_are_refused(tmp_path, pv, units, message):
    with pytest.raises(InstanceError, match=message):
        fp.load_instance(_feeder(tmp_path / "bad", pv=pv, units=units))


def test_pv_block_without_a_section_models_nothing(tmp_path):
    inst = fp.load_instance(_feeder(tmp_path / "none", pv=""))
    res = fp.solve(fp.build_model(inst, {"blocks": ["demand", "pv"]}))
    assert res.status == "optimal" and res.tables["pv"].empty and res.extra["pv"]["units"] == 0
    assert res.objective_eur == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(RecipeError, match="curtailment_eur_per_mwh must be >= 0"):
        fp.build_model(inst, {"blocks": ["demand", "pv"], "pv": {"curtailment_eur_per_mwh": -1.0}})


def test_day_screening_keeps_each_days_profile(tmp_path):
    """A profile file's days are kept by name: with only the second day left (as day screening
    does) the PV follows that day's column, and the screened plan equals the full one."""
    from flexplan.screening import solve_screened, with_days

    f = write_feeder(tmp_path / "two", lines=[("l1", "b0", "b1", R_OHM, 0.02, 0.5, 1.0)], loads=[("b1", LOAD_MW, 0.0)],
                     profile=[("sunny", 182.5, [1.0] * 24), ("dull", 182.5, [1.0] * 24)], vn_kv=VN_KV,
                     limits=f"v_max_pu = {V_MAX}", economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    (f / "pv.csv").write_text(f"bus,p_mw,profile\nb1,{PEAK_MW},sun\n")
    (f / "pv_profiles.csv").write_text("day,hour,sun\n" + "".join(f"sunny,{h},{s}\n" for h, s in enumerate(SUN))
                                       + "".join(f"dull,{h},{s / 2}\n" for h, s in enumerate(SUN)))
    with open(f / "instance.toml", "a") as fh:
        fh.write('\n[pv]\nfile = "pv.csv"\nprofiles = "pv_profiles.csv"\n')
    inst = fp.load_instance(f)
    dull = fp.solve(fp.build_model(with_days(inst, ["dull"]), {"blocks": ["demand", "pv"]}))
    np.testing.assert_allclose(dull.tables["pv"].sort_values("hour")["available_mw"], PEAK_MW * np.asarray(SUN) / 2)
    assert dull.tables["pv"]["curtailed_mw"].max() == pytest.approx(0.0, abs=1e-9)  # 0.15 MW < 0.184 MW
    full = fp.solve(fp.build_model(inst, {"blocks": ["demand", "pv"]}))
    scr = solve_screened(inst, {"blocks": ["demand", "pv"]}, mip_gap=1e-9)
    assert scr.objective_eur == pytest.approx(full.objective_eur, rel=1e-7)
    assert full.cost_breakdown_eur["pv_curtailment"] == pytest.approx(80.0 * HAND.sum() * 182.5, rel=1e-6)


@pytest.mark.integration
def test_units_and_profiles_from_a_simbench_grid(tmp_path):
    """``simbench = CODE``: the shipped sb_lv_rural instance gets SimBench's 8 PV sgens at the
    buses the conversion names, each with its own SimBench profile on the dates of the
    representative days (hourly means of the 15-minute values); at 3 x their size the plan
    curtails at noon in summer and never at night."""
    import shutil

    sb = pytest.importorskip("simbench")
    from flexplan.convert import simbench as sc
    from flexplan.paths import shipped_instances

    days = {"peak": "2016-01-02", "winter_weekday": "2016-01-08", "winter_weekend": "2016-02-06",
            "summer_weekday": "2016-09-06", "summer_weekend": "2016-09-10"}
    folder = tmp_path / "sb_lv_rural"
    shutil.copytree(shipped_instances() / "sb_lv_rural", folder)
    with open(folder / "instance.toml", "a") as fh:
        fh.write('\n[pv]\nsimbench = "1-LV-rural1--2-sw"\nsimbench_days = {'
                 + ", ".join(f'{d} = "{v}"' for d, v in days.items()) + "}\n")
    inst = fp.load_instance(folder)
    sec = inst.sections["pv"]
    net = sb.get_simbench_net("1-LV-rural1--2-sw")
    assert len(sec.units) == len(net.sgen) == 8
    assert sec.units["bus_name"].tolist() == net.bus.loc[net.sgen["bus"], "name"].tolist()
    assert sec.units["p_mw"].tolist() == pytest.approx(net.sgen["p_mw"].tolist())
    # one value by hand: PV8 at 2016-09-06 12:00 is the mean of the four quarter-hours from 12:00
    ren = net.profiles["renewables"]
    q = (31 + 29 + 31 + 30 + 31 + 30 + 31 + 31 + 5) * 96 + 12 * 4  # 2016 is a leap year: Feb has 29 days
    assert sec.profiles["PV8"]["summer_weekday"][12] == pytest.approx(ren["PV8"].iloc[q:q + 4].mean(), rel=1e-12)
    assert sc.year_index()["day"].iloc[(31 + 28 + 31 + 30 + 31 + 30 + 31 + 31 + 5) * 24] == "2016-09-06"
    res = fp.solve(fp.build_model(inst, {"blocks": ["demand", "ev_fleet", "pv"], "ev_fleet": {"mode": "uncontrolled"},
                                         "pv": {"scale": 3.0}}))
    assert res.status == "optimal"
    t = res.tables["pv"]
    assert t.loc[t["hour"].isin([0, 1, 2, 3, 22, 23]), "available_mw"].max() == 0.0
    summer = t[(t["day"] == "summer_weekday") & (t["hour"] == 12)]
    assert summer["curtailed_mw"].sum() > 0
    assert res.cost_breakdown_eur["penalty_overload"] + res.cost_breakdown_eur["penalty_voltage"] < 1e-6
