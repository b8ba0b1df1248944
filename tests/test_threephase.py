"""The three-phase linear model (flexplan.threephase) against pandapower's unbalanced AC power
flow on the IEEE European LV test feeder, and its balanced limit against LinDistFlow."""
from __future__ import annotations

import numpy as np
import pytest

from flexplan.errors import InstanceError
from flexplan.threephase import GAMMA, feeder_from_pandapower, flow_matrices, phase_matrix, voltages_3ph

pytestmark = pytest.mark.validation

PH = ["vm_a_pu", "vm_b_pu", "vm_c_pu"]


@pytest.fixture(scope="module", params=["on_peak_566", "off_peak_1"])
def european_lv(request):
    import pandapower.networks as pn
    from pandapower.pf.runpp_3ph import runpp_3ph

    net = pn.ieee_european_lv_asymmetric(request.param)
    runpp_3ph(net)
    return request.param, net


def test_per_phase_voltages_match_runpp_3ph(european_lv):
    """906 LV buses, 55 single-phase loads: every phase of every bus within 0.005 pu of the
    AC result (measured: 0.0012 pu at the on-peak snapshot, 2e-5 off-peak)."""
    case, net = european_lv
    v = voltages_3ph(net)
    ref = net.res_bus_3ph.loc[v.index, PH].to_numpy()
    err = np.abs(v[PH].to_numpy() - ref)
    print(f"{case}: max |linear - runpp_3ph| = {err.max():.5f} pu; lowest phase voltage {v[PH].min().min():.5f} "
          f"(AC {ref.min():.5f})")
    assert err.max() < 0.005
    # the unbalance is real: at the on-peak snapshot the phases differ by more than the error
    if case == "on_peak_566":
        spread = ref.max(axis=1) - ref.min(axis=1)
        assert spread.max() > 5 * err.max()
        assert np.argmin(v[PH].min().to_numpy()) == np.argmin(ref.min(axis=0))  # the same phase sags most


def test_balanced_flows_give_the_positive_sequence_drop():
    """Equal flows on the three phases see r1 and x1 (the row sums of M_P, M_Q), whatever z0:
    the balanced LinDistFlow."""
    z1, z0 = complex(0.3, 0.08), complex(1.2, 0.1)
    m_p, m_q = flow_matrices(phase_matrix(z1, z0), z_base=1.0)
    assert m_p.sum(axis=1) == pytest.approx([-2 * z1.real] * 3, abs=1e-12)
    assert m_q.sum(axis=1) == pytest.approx([-2 * z1.imag] * 3, abs=1e-12)
    # a single-phase flow on phase a drops phase a by 2 Re(zs conj) and moves b and c through zm
    zs, zm = (z0 + 2 * z1) / 3, (z0 - z1) / 3
    assert m_p[0, 0] == pytest.approx(-2 * zs.real)
    assert m_p[1, 0] == pytest.approx(-2 * (GAMMA[1, 0] * np.conj(zm)).real)


def test_balanced_loads_give_the_balanced_lindistflow(tmp_path):
    """The IEEE European LV feeder with every load spread evenly over its phases: the three
    phases agree, and equal the balanced LinDistFlow recursion run here on the
    positive-sequence impedances (v_j² = v_i² − 2 (r1 P + x1 Q) / z_base per branch)."""
    import pandapower.networks as pn

    net = pn.ieee_european_lv_asymmetric("on_peak_566")
    al = net.asymmetric_load
    p_tot = al[["p_a_mw", "p_b_mw", "p_c_mw"]].sum(axis=1)
    q_tot = al[["q_a_mvar", "q_b_mvar", "q_c_mvar"]].sum(axis=1)
    for ph in "abc":
        al[f"p_{ph}_mw"], al[f"q_{ph}_mvar"] = p_tot / 3, q_tot / 3
    v = voltages_3ph(net)
    assert np.ptp(v[PH].to_numpy(), axis=1).max() < 1e-12
    # the balanced recursion, independently: three-phase totals, positive sequence, bus by bus
    f = feeder_from_pandapower(net)
    pos = {b: i for i, b in enumerate(f.names)}
    total, qtot = np.zeros(len(f.names)), np.zeros(len(f.names))  # MW, Mvar of the three phases
    np.add.at(total, al["bus"].map(pos).to_numpy(), p_tot.to_numpy())
    np.add.at(qtot, al["bus"].map(pos).to_numpy(), q_tot.to_numpy())
    for i in range(len(f.names) - 1, 0, -1):
        total[f.parent[i]] += total[i]
        qtot[f.parent[i]] += qtot[i]
    z1 = {}
    for r in net.line.itertuples():
        z1[r.to_bus] = (complex(r.r_ohm_per_km, r.x_ohm_per_km) * r.length_km, 0.416)
    t = net.trafo.iloc[0]
    zb = t.vn_lv_kv ** 2 / t.sn_mva
    rr = t.vkr_percent / 100 * zb
    z1[int(t.lv_bus)] = (complex(rr, np.sqrt((t.vk_percent / 100 * zb) ** 2 - rr ** 2)), t.vn_lv_kv)
    y = np.empty(len(f.names))
    y[0] = net.ext_grid.vm_pu.iloc[0] ** 2
    for i in range(1, len(f.names)):
        z, kv = z1[f.names[i]]
        y[i] = y[f.parent[i]] - 2 * (z.real * total[i] + z.imag * qtot[i]) / kv ** 2
    assert v["vm_a_pu"].to_numpy() == pytest.approx(np.sqrt(y), abs=1e-8)


def test_meshed_or_incomplete_networks_are_refused():
    import pandapower as pp
    import pandapower.networks as pn

    net = pn.ieee_european_lv_asymmetric("off_peak_1")
    pp.create_line_from_parameters(net, 5, 40, 0.01, 0.4, 0.07, 0, 0.4, r0_ohm_per_km=1.5, x0_ohm_per_km=0.08,
                                   c0_nf_per_km=0.0)
    with pytest.raises(InstanceError, match="not radial"):
        feeder_from_pandapower(net)
    net = pn.ieee_european_lv_asymmetric("off_peak_1")
    net.line["r0_ohm_per_km"] = np.nan
    with pytest.raises(InstanceError, match="r0_ohm_per_km"):
        feeder_from_pandapower(net)


# -- the planning formulation (network.formulation = "lindist3flow") ------------------------

import flexplan as fp  # noqa: E402
from conftest import write_feeder  # noqa: E402

SNAPSHOT = "base_year = 2025\nend_year = 2025\nstages = [2025]"


def european_lv_instance(folder):
    """The IEEE European LV test feeder (pandapower's default scenario, on-peak minute 566) as
    an instance: one step, weight 365."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profiles.csv").write_text("day,hour,weight,res\npeak,0,365,1.0\n")
    (folder / "instance.toml").write_text(
        'name = "european_lv"\n[network]\nsource = "pandapower"\nname = "ieee_european_lv_asymmetric"\n'
        f'default_class = "res"\n[profiles]\nfile = "profiles.csv"\n[economics]\n{SNAPSHOT}\n'
        "[limits]\nv_min_pu = 0.9\nv_max_pu = 1.1\n")
    return fp.load_instance(folder)


def test_formulation_matches_runpp_3ph_on_the_european_lv_feeder(tmp_path):
    """The whole planning model on the on-peak snapshot: every phase of every bus within 0.005
    pu of runpp_3ph, the unbalance factor within 0.15 points (0.61 % against 0.73 %; from the
    magnitudes alone it would read 2.0 %), nothing shed or violated."""
    import pandapower.networks as pn
    from pandapower.pf.runpp_3ph import runpp_3ph

    inst = european_lv_instance(tmp_path / "eu")
    assert (inst.network.loads["phase"] != "abc").all() and inst.network.branches["r0_pu"].notna().all()
    res = fp.solve(fp.build_model(inst, {"name": "3ph", "blocks": ["demand"],
                                         "network": {"formulation": "lindist3flow"}}))
    assert res.status == "optimal"
    assert sum(res.cost_breakdown_eur.values()) == pytest.approx(0.0, abs=1e-6)
    net = pn.ieee_european_lv_asymmetric("on_peak_566")
    runpp_3ph(net)
    names = inst.network.buses.set_index("pp_index")["name"]
    ac = net.res_bus_3ph.loc[names.index]
    v3 = res.tables["voltages_3ph"].set_index("bus").loc[names.to_numpy()]
    err = np.abs(v3[["v_a_pu", "v_b_pu", "v_c_pu"]].to_numpy() - ac[PH].to_numpy())
    print(f"lindist3flow vs runpp_3ph: {err.max():.5f} pu; unbalance {v3['unbalance_pct'].max():.3f} % "
          f"(AC {ac['unbalance_percent'].max():.3f} %)")
    assert err.max() < 0.005
    assert np.abs(v3["unbalance_pct"].to_numpy() - ac["unbalance_percent"].to_numpy()).max() < 0.15
    # the voltages table carries the lowest phase
    low = res.voltages.set_index("bus").loc[names.to_numpy(), "v_pu"].to_numpy()
    assert low == pytest.approx(v3[["v_a_pu", "v_b_pu", "v_c_pu"]].min(axis=1).to_numpy())


def feeder3(tmp_path, name, loads, r0=0.06, x0=0.02, v_min=0.9, reinforcement=""):
    """b0 - b1 - b2 at 0.4 kV, lines 0.02 + 0.01j Ω (zero sequence r0 + x0 j); load is never shed
    (VOLL 1e9 EUR/MWh), so that a voltage violation shows as such."""
    f = write_feeder(tmp_path / name, lines=[("l1", "b0", "b1", 0.02, 0.01, 0.5, 0.2),
                                             ("l2", "b1", "b2", 0.02, 0.01, 0.5, 0.2)],
                     loads=[], vn_kv=0.4, economics=SNAPSHOT, limits=f"v_min_pu = {v_min}\nv_max_pu = 1.1",
                     reinforcement=reinforcement)
    lines = (f / "lines.csv").read_text().splitlines()
    (f / "lines.csv").write_text("\n".join([lines[0] + ",r0_ohm,x0_ohm"] + [ln + f",{r0},{x0}" for ln in lines[1:]])
                                 + "\n")
    (f / "loads.csv").write_text("bus,p_mw,q_mvar,phase\n" + "".join(f"{b},{p},{q},{ph}\n" for b, p, q, ph in loads))
    with open(f / "instance.toml", "a") as fh:
        fh.write("[penalties]\nvoll_eur_per_mwh = 1e9\n")
    return fp.load_instance(f)


def house_and_charger(tmp_path, name, reinforcement=""):
    """The two-branch feeder with a 20 kW house and a 7 kW charger, both on phase a at b2,
    named ``house`` and ``charger`` (so that phase balancing can name the charger), limit 0.97 pu."""
    feeder3(tmp_path, name, [("b2", 0.020, 0.0, "a"), ("b2", 0.007, 0.0, "a")], v_min=0.97,
            reinforcement=reinforcement)
    path = tmp_path / name / "loads.csv"
    head, house, charger = path.read_text().splitlines()
    path.write_text("\n".join([head + ",name", house + ",house", charger + ",charger"]) + "\n")
    return fp.load_instance(tmp_path / name)


def one_and_three_phase(inst):
    """The plan of ``inst``'s loads alone under lindistflow and under lindist3flow: (LinDistFlow's
    voltage per bus, the three-phase voltages table by bus, the three-phase results)."""
    one = fp.solve(fp.build_model(inst, {"name": "1ph", "blocks": ["demand"]}))
    three = fp.solve(fp.build_model(inst, {"name": "3ph", "blocks": ["demand"],
                                           "network": {"formulation": "lindist3flow"}}))
    return one.voltages.set_index("bus")["v_pu"], three.tables["voltages_3ph"].set_index("bus"), three


def test_balanced_loads_give_the_lindistflow_plan(tmp_path):
    inst = feeder3(tmp_path, "bal", [("b1", 0.02, 0.005, "abc"), ("b2", 0.03, 0.01, "abc")])
    v1, v3, three = one_and_three_phase(inst)
    for col in ("v_a_pu", "v_b_pu", "v_c_pu"):
        assert v3[col].to_numpy() == pytest.approx(v1.loc[v3.index].to_numpy(), abs=1e-9)
    assert v3["unbalance_pct"].max() == pytest.approx(0.0, abs=1e-6)
    flows = three.line_loading.set_index("line")["p_mw"]
    assert flows["l1"] == pytest.approx(0.05, rel=1e-9)


def test_moving_a_charger_to_another_phase_removes_the_violation_by_the_hand_computed_amount(tmp_path):
    """A 20 kW single-phase load and a 7 kW charger at the end of a 0.4 kV feeder, limit
    0.97 pu.  Both on phase a, phase a sags below the limit; with the charger on phase b it
    does not.  By hand, per branch (z = 0.02 + 0.01j Ω, z0 = 0.06 + 0.02j Ω, zs = (z0 + 2z)/3,
    zm = (z0 − z)/3), the squared voltage of phase a drops by
    2·3/z_base·[(rs P_a + xs Q_a) + (−rm/2 + √3/2·xm) P_b + ...] and phase b's flow acts on
    phase a through the mutual impedance only."""
    z, z0 = complex(0.02, 0.01), complex(0.06, 0.02)
    zs, zm = (z0 + 2 * z) / 3, (z0 - z) / 3
    zb = 0.4 ** 2 / 1.0  # Ω, S_base 1 MVA

    def y_a(pa, pb, branches=2):  # pu², per phase MW, unity power factor, both loads at b2
        per = 2 * 3 / zb * (zs.real * pa + (-zm.real / 2 + np.sqrt(3) / 2 * zm.imag) * pb)
        return 1.0 - branches * per

    limit = 0.97
    for name, phase, pa, pb in (("same", "a", 0.027, 0.0), ("moved", "b", 0.020, 0.007)):
        inst = feeder3(tmp_path, name, [("b2", 0.020, 0.0, "a"), ("b2", 0.007, 0.0, phase)], v_min=limit)
        pm = fp.build_model(inst, {"name": "3ph", "blocks": ["demand"], "network": {"formulation": "lindist3flow"}})
        res = fp.solve(pm)
        b = pm.model.network
        j = list(inst.network.buses["name"]).index("b2")
        hand_short = max(limit ** 2 - y_a(pa, pb), 0.0)  # pu² below the limit's square
        print(f"charger on {phase}: phase a {np.sqrt(y_a(pa, pb)):.5f} pu by hand, "
              f"model {res.tables['voltages_3ph'].set_index('bus').loc['b2', 'v_a_pu']:.5f}; short {hand_short:.6f}")
        assert b.y[j, 0, 0].value == pytest.approx(y_a(pa, pb), abs=1e-12)
        assert b.s_vlo[j, 0, 0].value == pytest.approx(hand_short, abs=1e-9)
        if phase == "a":
            assert hand_short > 1e-3
        else:
            assert hand_short == 0.0 and res.cost_breakdown_eur["penalty_voltage"] == pytest.approx(0.0, abs=1e-6)


def test_a_fleet_on_one_phase_loads_that_phase(tmp_path):
    """An uncontrolled fleet with phase = "c": its charging is all on phase c."""
    from conftest import add_fleet

    inst = feeder3(tmp_path, "ev", [("b1", 0.005, 0.0, "abc")])
    folder = tmp_path / "ev"
    add_fleet(folder, "b2", 10, extra='phase = "c"\n')
    (folder / "profiles.csv").write_text("day,hour,weight,res\n" + "".join(f"d,{h},365,1.0\n" for h in range(24)))
    inst = fp.load_instance(folder)
    pm = fp.build_model(inst, {"name": "3ph", "blocks": ["demand", "ev_fleet"], "ev_fleet": {"mode": "uncontrolled"},
                               "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0}})
    j = list(inst.network.buses["name"]).index("b2")
    assert pm.hub.p_phase[j, 2].sum() == pytest.approx(pm.hub.p_withdraw[j].sum()) and pm.hub.p_withdraw[j].sum() > 0
    assert pm.hub.p_phase[j, :2].sum() == 0.0
    res = fp.solve(pm)
    v3 = res.tables["voltages_3ph"].set_index(["bus", "hour"]).loc["b2"]
    busy = v3["v_c_pu"].idxmin()
    assert v3.loc[busy, "v_c_pu"] < min(v3.loc[busy, "v_a_pu"], v3.loc[busy, "v_b_pu"])


def test_the_ac_check_replays_the_plan_in_runpp_3ph(tmp_path):
    """``fp.solve(..., ac="check")`` on a three-phase model replays each op in runpp_3ph: on the
    European LV feeder the model's phase voltages are within 0.005 pu of AC's, the unbalance
    0.73 % as runpp_3ph has it on pandapower's own network, and the plan holds."""
    inst = european_lv_instance(tmp_path / "eu")
    res = fp.solve(fp.build_model(inst, {"name": "3ph", "blocks": ["demand"],
                                         "network": {"formulation": "lindist3flow"}}), ac="check")
    ac = res.extra["ac_check"]
    print(ac)
    assert ac["converged"] == ac["ops"] == 1 and ac["holds"]
    assert ac["max_diff_pu"] < 0.005
    assert ac["unbalance_max_pct"] == pytest.approx(0.7312, abs=0.01)
    assert ac["v_min_pu"] == pytest.approx(0.9962, abs=0.001)
    assert len(res.tables["ac_check"]) == 1


def test_phase_balancing_moves_the_charger_when_that_is_cheaper_than_the_violation(tmp_path):
    """The two-branch feeder above with the charger movable (phase_balancing): one move (250 EUR)
    takes away phase a's violation (1e6 EUR/(pu² h) x 8760 h x 0.0084 pu²: one step of 24 h on a
    day of weight 365), so the plan moves it, to phase b or c, and costs exactly the move; at a
    move dearer than the violation it stays."""
    limit = 0.97
    inst = house_and_charger(tmp_path, "pb")
    base = {"name": "3ph", "blocks": ["demand", "phase_balancing"], "network": {"formulation": "lindist3flow"},
            "phase_balancing": {"loads": ["charger"], "cost_eur_per_move": 250.0}}
    res = fp.solve(fp.build_model(inst, base))
    moves = res.tables["phase_moves"].set_index("load")
    assert moves.loc["charger", "moved"] and moves.loc["charger", "phase_after"] in ("b", "c")
    assert res.objective_eur == pytest.approx(250.0, rel=1e-9)
    v = res.tables["voltages_3ph"].set_index("bus").loc["b2"]
    assert min(v["v_a_pu"], v["v_b_pu"], v["v_c_pu"]) >= limit - 1e-9
    # the balanced model sees the same totals: phase balancing changes nothing there
    bal = fp.solve(fp.build_model(inst, {**base, "network": {"formulation": "lindistflow"}}))
    assert bal.cost_breakdown_eur.get("penalty_voltage", 0.0) == pytest.approx(0.0, abs=1e-6)
    # dearer than the violation: it stays, and the plan pays the violation computed by hand
    z, z0 = complex(0.02, 0.01), complex(0.06, 0.02)
    zs = (z0 + 2 * z) / 3
    short = limit ** 2 - (1.0 - 2 * 2 * 3 / 0.16 * zs.real * 0.027)
    stay = fp.solve(fp.build_model(inst, {**base, "phase_balancing": {"loads": ["charger"],
                                                                      "cost_eur_per_move": 1e12}}))
    assert not stay.tables["phase_moves"]["moved"].any()
    assert stay.objective_eur == pytest.approx(1e6 * 8760 * short, rel=1e-6)
    with pytest.raises(fp.RecipeError, match="not a single-phase load"):
        fp.build_model(inst, {**base, "phase_balancing": {"loads": ["garage"]}})


def test_series_merge_of_the_shipped_feeder_is_exact(tmp_path):
    """flexplan.convert.european_lv merges series chains (906 -> 205 LV buses): at every kept bus
    the three-phase voltages and unbalance are those of the full feeder (on-peak snapshot), and the
    shipped instance loads with its three phase-assigned fleets."""
    import dataclasses

    from flexplan.convert.european_lv import merge_series

    inst = european_lv_instance(tmp_path / "eu")
    merged, removed = merge_series(inst.network)
    assert merged.n_buses == inst.network.n_buses - len(removed) and merged.n_buses < 250
    rec = {"name": "3ph", "blocks": ["demand"], "network": {"formulation": "lindist3flow"}}
    full = fp.solve(fp.build_model(inst, rec)).tables["voltages_3ph"].set_index("bus")
    small = fp.solve(fp.build_model(dataclasses.replace(inst, network=merged), rec)).tables["voltages_3ph"]
    small = small.set_index("bus")
    cols = ["v_a_pu", "v_b_pu", "v_c_pu"]
    assert small[cols].to_numpy() == pytest.approx(full.loc[small.index, cols].to_numpy(), abs=1e-6)  # LP tolerance
    assert small["unbalance_pct"].to_numpy() == pytest.approx(full.loc[small.index, "unbalance_pct"].to_numpy(),
                                                              abs=5e-5)  # percentage points: HiGHS's 1e-7
    # feasibility tolerance on the angle rows (coefficients ~1e-2) leaves the free angles ~1e-5 rad apart
    # between two solves of the same LP with its columns in another order (1.3e-5 points measured)
    from flexplan.paths import resolve_instance_path

    shipped = fp.load_instance(resolve_instance_path("european_lv"))
    assert shipped.network.n_buses == merged.n_buses
    assert [f.phase for f in shipped.ev_fleets] == [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    assert shipped.network.branches["r0_pu"].notna().all()


def test_the_shipped_three_phase_recipe_solves_in_every_block_order(tmp_path):
    """models/lv_three_phase.toml on the two-branch feeder with a movable house and a phase-a
    fleet: the same objective whatever the order of its blocks."""
    import itertools

    from conftest import add_fleet

    feeder3(tmp_path, "rec", [("b2", 0.020, 0.0, "a")], v_min=0.9)
    add_fleet(tmp_path / "rec", "b2", 4, extra='phase = "a"\n')
    (tmp_path / "rec" / "profiles.csv").write_text("day,hour,weight,res\n" + "".join(f"d,{h},365,1.0\n"
                                                                                     for h in range(24)))
    inst = fp.load_instance(tmp_path / "rec")
    rec = fp.resolve_recipe("lv_three_phase")
    objs = []
    for blocks in itertools.permutations(rec.blocks):
        rec.blocks = list(blocks)
        res = fp.solve(fp.build_model(inst, rec), mip_gap=0.0)
        assert res.status == "optimal"
        objs.append(res.objective_eur)
    assert objs == pytest.approx([objs[0]] * len(objs), rel=1e-6)


def test_phase_balancing_moves_an_uncontrolled_fleet_when_that_is_cheaper_than_the_violation(tmp_path):
    """The feeder above with a 20 kW house on phase a at b2 and an uncontrolled home fleet on phase
    a there too: moving the fleet's chargers (one move, 250 EUR) lifts phase a above the limit; at
    a dearer move it stays and phase a sags."""
    from conftest import add_fleet

    limit = 0.97
    feeder3(tmp_path, "fl", [("b2", 0.020, 0.0, "a")], v_min=limit)
    folder = tmp_path / "fl"
    add_fleet(folder, "b2", 6, extra='phase = "a"\n')
    (folder / "profiles.csv").write_text("day,hour,weight,res\n" + "".join(f"d,{h},365,1.0\n" for h in range(24)))
    inst = fp.load_instance(folder)
    base = {"name": "3ph", "blocks": ["demand", "ev_fleet", "phase_balancing"], "ev_fleet": {"mode": "uncontrolled"},
            "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0},
            "phase_balancing": {"fleets": ["home"], "cost_eur_per_move": 250.0}}
    stay = fp.solve(fp.build_model(inst, {**base, "phase_balancing": {"fleets": ["home"], "cost_eur_per_move": 1e12}}))
    assert not stay.tables["phase_moves"]["moved"].any()
    assert stay.cost_breakdown_eur["penalty_voltage"] > 250.0  # the violation costs more than one move
    moved = fp.solve(fp.build_model(inst, base))
    mv = moved.tables["phase_moves"].set_index("load").loc["home@b2"]
    assert mv["moved"] and mv["phase_after"] in ("b", "c")
    assert moved.cost_breakdown_eur["phase_balancing"] == pytest.approx(250.0)
    assert moved.cost_breakdown_eur.get("penalty_voltage", 0.0) == pytest.approx(0.0, abs=1e-6)
    # the fleet's energy is where it moved: phase a carries the house alone
    pm = fp.build_model(inst, {**base, "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0}})
    j = list(inst.network.buses["name"]).index("b2")
    assert pm.hub.p_phase[j, 0].max() == pytest.approx(0.020) and pm.hub.p_firm[j].max() == pytest.approx(0.0)
    with pytest.raises(fp.RecipeError, match="reactive power is a decision"):
        fp.build_model(inst, {**base, "ev_fleet": {"mode": "smart", "reactive": True}})
    with pytest.raises(fp.RecipeError, match="not an EV fleet"):
        fp.build_model(inst, {**base, "phase_balancing": {"fleets": ["work"]}})


HALF_CABLE = """generate = ["replace"]
assets = ["l2"]
[[reinforcement.line_types]]
name = "half"
r_ohm_per_km = 0.05
x_ohm_per_km = 0.025
r0_ohm_per_km = 0.15
x0_ohm_per_km = 0.05
max_i_ka = 1.0
capex_eur_per_km = 10000
lifetime_years = 40
"""


def test_reinforcement_in_three_phases_builds_what_the_balanced_model_misses(tmp_path):
    """27 kW on phase a at the end of the two-branch feeder, limit 0.97 pu, l2 replaceable by a
    cable of half its impedances (both sequences) for 2,000 EUR.  Balanced, the 27 kW spread on
    three phases stays above the limit: lindistflow builds nothing.  In three phases phase a
    sags to sqrt(1 - 2d) with d = 2·3/z_base·Re(z_s)·P_a per branch (0.9657 pu, by hand), so
    lindist3flow builds the cable: phase a at sqrt(1 - 1.5 d) = 0.9744 pu, no penalty.  In AC
    (runpp_3ph, the plan's branches in service) the built plan holds and the balanced plan's
    feeder breaks the limit on phase a; the AC loading of l1 is phase a's current against its
    rating, 27 kW / 231 V ≈ 0.12 kA of 0.72 kA."""
    from flexplan.threephase import check_ac_3ph

    inst = feeder3(tmp_path, "reinf", [("b2", 0.027, 0.0, "a")], v_min=0.97, reinforcement=HALF_CABLE)
    assert inst.candidates["r0_pu"].notna().all() and len(inst.candidates) == 1
    z, z0 = complex(0.02, 0.01), complex(0.06, 0.02)
    d = 2 * 3 / 0.16 * ((z0 + 2 * z) / 3).real * 0.027
    rec = {"name": "r", "blocks": ["demand", "reinforcement"]}
    bal = fp.solve(fp.build_model(inst, {**rec, "network": {"formulation": "lindistflow"}}), mip_gap=0.0)
    assert bal.status == "optimal" and len(bal.builds) == 0
    pm = fp.build_model(inst, {**rec, "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0}})
    three = fp.solve(pm, mip_gap=0.0)
    assert three.status == "optimal" and list(three.builds["asset"]) == ["l2"]
    assert three.cost_breakdown_eur.get("penalty_voltage", 0.0) == pytest.approx(0.0, abs=1e-6)
    v = three.tables["voltages_3ph"].set_index("bus").loc["b2"]
    assert v["v_a_pu"] == pytest.approx(np.sqrt(1 - 1.5 * d), abs=1e-9)
    assert np.sqrt(1 - 2 * d) < 0.97 < np.sqrt(1 - 1.5 * d)
    loading = three.line_loading.set_index("line")
    assert loading.loc["l2", "rating_mva"] == pytest.approx(np.sqrt(3) * 0.4 * 1.0)  # the new cable's
    table, ac = check_ac_3ph(pm)
    print(ac)
    assert ac["converged"] == 1 and ac["holds"] and ac["v_min_pu"] >= 0.97
    assert ac["v_min_pu"] == pytest.approx(np.sqrt(1 - 1.5 * d), abs=0.005)
    i_a = 0.027 / (0.4 / np.sqrt(3) * ac["v_min_pu"])  # kA on phase a (l1 carries it all), as P / V
    assert ac["loading_max_pct"] == pytest.approx(100 * i_a / (0.5 / (np.sqrt(3) * 0.4)), rel=0.02)
    # the balanced plan (nothing built) replayed in three-phase AC: phase a breaks the limit
    pm0 = fp.build_model(inst, {"name": "r0", "blocks": ["demand"],
                                "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0}})
    fp.solve(pm0)
    _, ac0 = check_ac_3ph(pm0)
    assert not ac0["holds"] and ac0["v_min_pu"] < 0.97
    assert ac0["v_min_pu"] == pytest.approx(np.sqrt(1 - 2 * d), abs=0.005)


def test_the_ac_check_reports_the_neutral_current(tmp_path):
    """The neutral returns the sum of the phase currents: 0 for 27 kW spread evenly on the three
    phases, the phase current itself for 27 kW on phase a alone (by hand: I_n = I_a, the other
    phases carry nothing), so its loading equals phase a's, 3 V_even / V_a times the even case's.
    A neutral rated as a phase never binds before the phases for loads of one power factor (three
    phasors 120° apart sum to at most the largest), which is why the model limits the phases only."""
    from flexplan.threephase import check_ac_3ph

    rec = {"name": "3ph", "blocks": ["demand"], "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0}}
    out = {}
    for case, phase in (("even", "abc"), ("one", "a")):
        pm = fp.build_model(feeder3(tmp_path, case, [("b2", 0.027, 0.0, phase)]), rec)
        fp.solve(pm)
        _, out[case] = check_ac_3ph(pm)
    print(out)
    assert out["even"]["neutral_loading_max_pct"] == pytest.approx(0.0, abs=1e-6)
    assert out["even"]["loading_max_pct"] > 1.0
    assert out["one"]["neutral_loading_max_pct"] == pytest.approx(out["one"]["loading_max_pct"], rel=1e-6)
    # I = P / V: three times the current of a third, at phase a's lower voltage
    assert out["one"]["loading_max_pct"] == pytest.approx(
        3 * out["even"]["loading_max_pct"] * out["even"]["v_min_pu"] / out["one"]["v_min_pu"], rel=0.002)


def test_three_phase_reinforcement_refuses_what_it_cannot_model(tmp_path):
    no_z0 = HALF_CABLE.replace("r0_ohm_per_km = 0.15\n", "").replace("x0_ohm_per_km = 0.05\n", "")
    inst = feeder3(tmp_path, "noz0", [("b2", 0.027, 0.0, "a")], reinforcement=no_z0)
    rec = {"name": "r", "blocks": ["demand", "reinforcement"], "network": {"formulation": "lindist3flow"}}
    with pytest.raises(fp.RecipeError, match="zero-sequence impedance of every replacement.*r0_ohm_per_km"):
        fp.build_model(inst, rec)


#: feeder3's lines as pandapower lines (from, to, r, x, r0, x0 in Ω/km over 0.2 km, max_i_ka: 0.5 MVA)
PP_L1 = (0, 1, 0.1, 0.05, 0.3, 0.1, 0.5 / (np.sqrt(3) * 0.4))
PP_L2 = (1, 2, 0.1, 0.05, 0.3, 0.1, 0.5 / (np.sqrt(3) * 0.4))


def runpp3(lines, n_buses=3, length_km=0.2, **load):
    """pandapower's runpp_3ph on a 0.4 kV feeder of ``n_buses`` with the AC check's stiff source at
    bus 0: ``lines`` (from, to, r, x, r0, x0 Ω/km, max_i_ka) of ``length_km``, one asymmetric load
    (``load``: p_a_mw=...) at the last bus.  Returns the solved net."""
    import pandapower as pp
    from pandapower.pf.runpp_3ph import runpp_3ph

    net = pp.create_empty_network()
    b = [pp.create_bus(net, 0.4) for _ in range(n_buses)]
    pp.create_ext_grid(net, b[0], vm_pu=1.0, s_sc_max_mva=1e6, rx_max=0.1, r0x0_max=0.1, x0x_max=1.0)
    for i, j, r, x, r0, x0, imax in lines:
        pp.create_line_from_parameters(net, b[i], b[j], length_km, r, x, 0.0, imax, r0_ohm_per_km=r0,
                                       x0_ohm_per_km=x0, c0_nf_per_km=0.0)
    pp.create_asymmetric_load(net, b[-1], **load)
    runpp_3ph(net)
    return net


def line_loadings(net):
    """pandapower's largest phase loading and neutral loading per line, % of max_i_ka."""
    rl, imax = net.res_line_3ph, net.line["max_i_ka"]
    return 100 * rl[["i_a_ka", "i_b_ka", "i_c_ka"]].max(axis=1) / imax, 100 * rl["i_n_ka"] / imax


SAME_CABLE = HALF_CABLE.replace('generate = ["replace"]', 'generate = ["parallel"]').replace(
    "r_ohm_per_km = 0.05", "r_ohm_per_km = 0.1").replace("x_ohm_per_km = 0.025", "x_ohm_per_km = 0.05").replace(
    "r0_ohm_per_km = 0.15", "r0_ohm_per_km = 0.3").replace("x0_ohm_per_km = 0.05", "x0_ohm_per_km = 0.1").replace(
    "max_i_ka = 1.0", f"max_i_ka = {0.5 / (np.sqrt(3) * 0.4)}")


def test_a_parallel_cable_in_three_phases_halves_the_branch_as_pandapower_has_it(tmp_path):
    """The 27 kW on phase a of the test above, with l2 reinforceable by a second cable of its own
    kind in parallel (0.1 + 0.05j Ω/km, zero sequence 0.3 + 0.1j, 0.2 km, 0.5 MVA): the plan
    builds it, and phase a is at sqrt(1 - 1.5 d) as with the cable of half the impedance (by
    hand: the two cables halve l2's impedance in both sequences); l2's rating in place is twice
    its own (two equal parts).  Independently, pandapower's runpp_3ph on the feeder with two real
    parallel lines gives phase a within 0.005 pu of the model and within 1e-6 pu of the AC check
    (which replays the pair as one branch of the combined impedance)."""
    from flexplan.threephase import check_ac_3ph

    inst = feeder3(tmp_path, "par", [("b2", 0.027, 0.0, "a")], v_min=0.97, reinforcement=SAME_CABLE)
    assert list(inst.candidates["kind"]) == ["parallel"]
    z, z0 = complex(0.02, 0.01), complex(0.06, 0.02)
    d = 2 * 3 / 0.16 * ((z0 + 2 * z) / 3).real * 0.027
    pm = fp.build_model(inst, {"name": "r", "blocks": ["demand", "reinforcement"],
                               "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0}})
    res = fp.solve(pm, mip_gap=0.0)
    assert res.status == "optimal" and list(res.builds["asset"]) == ["l2"]
    assert res.cost_breakdown_eur.get("penalty_voltage", 0.0) == pytest.approx(0.0, abs=1e-6)
    v = res.tables["voltages_3ph"].set_index("bus").loc["b2"]
    assert v["v_a_pu"] == pytest.approx(np.sqrt(1 - 1.5 * d), abs=1e-9)
    # the pair as one branch (its only candidate): two equal parts, twice the rating
    assert res.line_loading.set_index("line").loc["l2", "rating_mva"] == pytest.approx(1.0, rel=1e-9)
    _, ac = check_ac_3ph(pm)
    assert ac["holds"] and ac["converged"] == 1
    # pandapower with the two cables as two lines
    net = runpp3([PP_L1, PP_L2, PP_L2], p_a_mw=0.027)
    va = float(net.res_bus_3ph.at[2, "vm_a_pu"])
    print(f"phase a at b2: model {v['v_a_pu']:.6f}, AC check {ac['v_min_pu']:.6f}, two lines in runpp_3ph {va:.6f}")
    assert abs(va - v["v_a_pu"]) < 0.005
    assert ac["v_min_pu"] == pytest.approx(va, abs=1e-6)


def test_phase_planning_reports_the_under_build_and_the_value_of_phase_balancing(tmp_path):
    """The feeder above with its 27 kW as a 20 kW house and a movable 7 kW charger, both on phase
    a: the balanced plan builds nothing and, seen in three phases, pays phase a's violation
    (1e6 EUR/(pu² h) x 8760 h x (0.97² - (1 - 2d)), by hand); the three-phase plan builds the
    cable (its annuity over the one-year horizon: 93.65 EUR of 2,000 EUR); with phase balancing
    one 50 EUR move replaces the cable.  So the balanced model under-builds by the cable's
    investment, and phase balancing is worth that investment less 50 EUR."""
    from flexplan.threephase import phase_planning

    inst = house_and_charger(tmp_path, "pp", reinforcement=HALF_CABLE)
    rec = {"name": "r", "blocks": ["demand", "reinforcement"], "network": {"vuf_max_pct": 0.0}}
    out = phase_planning(inst, rec, balancing={"loads": ["charger"], "cost_eur_per_move": 50.0}, mip_gap=0.0)
    t = out["table"].set_index("plan")
    print(t.to_string(), out["summary"])
    z, z0 = complex(0.02, 0.01), complex(0.06, 0.02)
    d = 2 * 3 / 0.16 * ((z0 + 2 * z) / 3).real * 0.027
    assert t.loc["balanced", "builds"] == "" and t.loc["balanced", "cost_eur"] == pytest.approx(0.0, abs=1e-6)
    assert out["summary"]["balanced_plan_penalty_eur"] == pytest.approx(1e6 * 8760 * (0.97 ** 2 - (1 - 2 * d)),
                                                                         rel=1e-6)
    inv = t.loc["three_phase", "investment_eur"]
    assert t.loc["three_phase", "builds"] == "l2:replace:half" and inv > 0
    assert t.loc["three_phase", "cost_eur"] == pytest.approx(inv, rel=1e-9)
    assert t.loc["phase_balancing", "moves"] == 1 and t.loc["phase_balancing", "builds"] == ""
    assert t.loc["phase_balancing", "cost_eur"] == pytest.approx(50.0, rel=1e-9)
    assert out["summary"]["under_build_eur"] == pytest.approx(inv, rel=1e-9)
    assert out["summary"]["value_of_phase_balancing_eur"] == pytest.approx(inv - 50.0, rel=1e-9)


def test_flexplan_phases_writes_the_table_summary_and_plot(tmp_path):
    """``flexplan phases`` on the feeder above: exit 0, the table, the summary (the numbers of
    phase_planning) and the plot, nothing else in the folder."""
    import json

    from flexplan.cli import main

    house_and_charger(tmp_path, "pp", reinforcement=HALF_CABLE)
    (tmp_path / "r.toml").write_text('name = "r"\nblocks = ["demand", "reinforcement"]\n[network]\nvuf_max_pct = 0.0\n')
    out = tmp_path / "res" / "phases.csv"
    code = main(["phases", str(tmp_path / "pp"), "--model", str(tmp_path / "r.toml"), "--loads", "charger",
                 "--move-cost", "50", "--mip-gap", "0", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["phases.csv", "phases.json", "phases.png"]
    s = json.loads(out.with_suffix(".json").read_text())
    assert s["value_of_phase_balancing_eur"] == pytest.approx(s["under_build_eur"] - 50.0, rel=1e-9)
    assert s["value_of_phase_balancing_eur"] > 0
    import pandas as pd

    assert list(pd.read_csv(out)["plan"]) == ["balanced", "three_phase", "phase_balancing"]


def test_a_reactive_only_load_is_withdrawn_in_three_phases(tmp_path):
    """A load with P = 0 and Q = 10 kvar on three phases: the three-phase balance must withdraw
    it (it was left out where P was 0), giving LinDistFlow's voltages on every phase."""
    inst = feeder3(tmp_path, "q", [("b1", 0.0, 0.01, "abc"), ("b2", 0.01, 0.002, "abc")])
    v1, v3, three = one_and_three_phase(inst)
    assert v1.loc["b2"] < 1.0
    for col in ("v_a_pu", "v_b_pu", "v_c_pu"):
        assert v3[col].to_numpy() == pytest.approx(v1.loc[v3.index].to_numpy(), abs=1e-9)
    flows = three.line_loading.set_index("line")
    assert flows.loc["l1", "q_mvar"] == pytest.approx(0.012, rel=1e-9)


def test_phase_balancing_moves_a_smart_fleet_whose_charging_cannot_fit_on_its_phase(tmp_path):
    """A 20 kW house on phase a at b2 leaves phase a room for 3.6 kW more (by hand: the 0.97 pu
    limit allows P_a <= 23.6 kW on the two branches); 12 smart home EVs on phase a need more than
    that on average, so even smart charging breaks the limit unless their chargers move.  With
    a 250 EUR move the plan moves them (to b or c), pays no penalty, and charges the same energy:
    the split of the fleet's net injection over the phases (w_φ, Σ w = p, |w_φ| <= P̄ x_φ) leaves
    nothing on phase a."""
    from conftest import add_fleet

    feeder3(tmp_path, "sm", [("b2", 0.020, 0.0, "a")], v_min=0.97)
    folder = tmp_path / "sm"
    add_fleet(folder, "b2", 12, extra='phase = "a"\n')
    (folder / "profiles.csv").write_text("day,hour,weight,res\n" + "".join(f"d,{h},365,1.0\n" for h in range(24)))
    inst = fp.load_instance(folder)
    z, z0 = complex(0.02, 0.01), complex(0.06, 0.02)
    per_mw = 2 * 3 / 0.16 * ((z0 + 2 * z) / 3).real  # pu² per MW on phase a, per branch
    room = (1 - 0.97 ** 2) / (2 * per_mw) - 0.020  # MW phase a can take beside the house
    assert room == pytest.approx(0.00364, abs=1e-4)
    base = {"name": "3ph", "blocks": ["demand", "ev_fleet", "phase_balancing"], "ev_fleet": {"mode": "smart"},
            "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0},
            "phase_balancing": {"fleets": ["home"], "cost_eur_per_move": 250.0}}
    stay = fp.solve(fp.build_model(inst, {**base, "phase_balancing": {"fleets": ["home"], "cost_eur_per_move": 1e12}}),
                    mip_gap=0.0)
    assert not stay.tables["phase_moves"]["moved"].any()
    assert stay.cost_breakdown_eur["penalty_voltage"] > 250.0
    pm = fp.build_model(inst, base)
    moved = fp.solve(pm, mip_gap=0.0)
    mv = moved.tables["phase_moves"].set_index("load").loc["home@b2"]
    assert mv["moved"] and mv["phase_after"] in ("b", "c")
    assert moved.cost_breakdown_eur["phase_balancing"] == pytest.approx(250.0)
    assert moved.cost_breakdown_eur.get("penalty_voltage", 0.0) == pytest.approx(0.0, abs=1e-6)
    b = pm.model.phase_balancing
    w = np.array([[b.wf[i, k].value for k in range(3)] for i in range(len(b.fleet_split))])
    assert np.abs(w[:, 0]).max() == pytest.approx(0.0, abs=1e-9)  # nothing left on phase a
    after = "abc".index(mv["phase_after"])
    charged = -w[:, after].sum()  # MWh over the day's 24 one-hour ops
    assert charged > 24 * room  # more than phase a could have taken beside the house all day long
    v = moved.tables["voltages_3ph"].set_index("bus").loc["b2"]
    assert v["v_a_pu"].min() == pytest.approx(np.sqrt(1 - 2 * per_mw * 0.020), abs=1e-9)  # the house alone


def test_two_unlike_cables_in_parallel_are_one_branch_of_the_combined_sequence_impedances():
    """The AC check replays parallel cables as one branch of impedance 1 / Σ 1/z per sequence
    (in_parallel): two cables of different kinds (different r/x and zero-sequence ratios) under an
    unbalanced load give, in runpp_3ph, the voltages of that one branch to 1e-9 pu on every phase."""
    from flexplan.threephase import in_parallel

    def feeder(lines):
        net = runpp3([(0, 1, *z, 1.0) for z in lines], n_buses=2, length_km=1.0, p_a_mw=0.03, q_a_mvar=0.01,
                     p_b_mw=0.01)
        return net.res_bus_3ph[["vm_a_pu", "vm_b_pu", "vm_c_pu", "va_a_degree"]].to_numpy()

    cables = [(0.05, 0.02, 0.2, 0.03), (0.03, 0.03, 0.06, 0.05)]
    e1 = in_parallel([complex(r, x) for r, x, _, _ in cables])
    e0 = in_parallel([complex(r0, x0) for _, _, r0, x0 in cables])
    two, one = feeder(cables), feeder([(e1.real, e1.imag, e0.real, e0.imag)])
    assert np.abs(two - one).max() < 1e-9 and np.abs(two[1, :3] - 1).max() > 0.01

UNLIKE_CABLE = SAME_CABLE.replace("r0_ohm_per_km = 0.3", "r0_ohm_per_km = 0.2").replace(
    "x0_ohm_per_km = 0.1", "x0_ohm_per_km = 0.15").replace("x_ohm_per_km = 0.05", "x_ohm_per_km = 0.08").replace(
    f"max_i_ka = {0.5 / (np.sqrt(3) * 0.4)}", "max_i_ka = 0.1")


def test_the_ac_check_rates_each_part_of_a_parallel_pair_as_pandapower_does(tmp_path):
    """27 kW on phase a, l2 reinforced by a cable of another kind (0.1 + 0.08j Ω/km, zero sequence
    0.2 + 0.15j, 0.1 kA): the AC check replays the pair as one branch and rates each part's current
    against its own rating; pandapower's runpp_3ph on the feeder with the cable as a line of its own
    gives the same largest phase loading and neutral loading (its res_line_3ph) to 1e-4."""
    from flexplan.threephase import check_ac_3ph

    inst = feeder3(tmp_path, "unlike", [("b2", 0.027, 0.0, "a")], v_min=0.97, reinforcement=UNLIKE_CABLE)
    pm = fp.build_model(inst, {"name": "r", "blocks": ["demand", "reinforcement"],
                               "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0}})
    res = fp.solve(pm, mip_gap=0.0)
    assert list(res.builds["kind"]) == ["parallel"]
    _, ac = check_ac_3ph(pm)
    net = runpp3([PP_L1, PP_L2, (1, 2, 0.1, 0.08, 0.2, 0.15, 0.1)], p_a_mw=0.027)
    loading, neutral = line_loadings(net)
    print(ac, loading.to_dict(), neutral.to_dict())
    assert loading.idxmax() == 2  # the new cable is the most loaded part
    assert ac["loading_max_pct"] == pytest.approx(loading.max(), rel=1e-4)
    assert ac["neutral_loading_max_pct"] == pytest.approx(neutral.max(), rel=1e-4)


def test_a_branch_with_a_replacement_and_a_parallel_cable_carries_its_parts_as_pandapower(tmp_path):
    """l2 with two candidates of the half-impedance type (a replacement and a parallel cable):
    each parallel is then a branch of its own.  With the parallel built, the model splits the 27 kW
    between l2 and the new cable within 1 kW of runpp_3ph on the feeder with two lines (AC has the
    losses), phase a within 0.005 pu, and the AC check's loadings are pandapower's to 1e-4; solved
    freely the plan reinforces l2 (either way) and breaks no limit."""
    from flexplan.threephase import check_ac_3ph

    both = HALF_CABLE.replace('generate = ["replace"]', 'generate = ["replace", "parallel"]')
    inst = feeder3(tmp_path, "both", [("b2", 0.027, 0.0, "a")], v_min=0.97, reinforcement=both)
    assert sorted(inst.candidates["kind"]) == ["parallel", "replace"]
    rec = {"name": "r", "blocks": ["demand", "reinforcement"],
           "network": {"formulation": "lindist3flow", "vuf_max_pct": 0.0}}
    free = fp.solve(fp.build_model(inst, rec), mip_gap=0.0)
    assert free.status == "optimal" and len(free.builds) == 1
    assert sum(v for k, v in free.cost_breakdown_eur.items() if k.startswith("penalty")) == pytest.approx(0, abs=1e-6)
    pm = fp.build_model(inst, rec)
    blk = pm.blocks["reinforcement"][1]
    kinds = list(inst.candidates["kind"])
    for (c, _n), var in blk.build.items():
        var.fix(1.0 if kinds[c] == "parallel" else 0.0)
    res = fp.solve(pm)
    cand = str(res.builds["candidate"].iloc[0])
    _, ac = check_ac_3ph(pm)
    net = runpp3([PP_L1, PP_L2, (1, 2, 0.05, 0.025, 0.15, 0.05, 1.0)], p_a_mw=0.027)
    rl = net.res_line_3ph
    ll = res.line_loading.set_index("line")
    model = ll.loc[["l2", cand], "p_mw"].to_numpy()
    ac_p = rl.loc[[1, 2], ["p_a_from_mw", "p_b_from_mw", "p_c_from_mw"]].sum(axis=1).to_numpy()
    print("model split", model, "AC", ac_p, ac)
    assert model.sum() == pytest.approx(0.027, rel=1e-6) and model[1] > model[0]
    assert model == pytest.approx(ac_p, abs=0.001)
    v = res.tables["voltages_3ph"].set_index("bus").loc["b2", "v_a_pu"]
    assert abs(v - net.res_bus_3ph.at[2, "vm_a_pu"]) < 0.005
    loading, neutral = line_loadings(net)
    assert ac["loading_max_pct"] == pytest.approx(loading.max(), rel=1e-4)
    assert ac["neutral_loading_max_pct"] == pytest.approx(neutral.max(), rel=1e-4)
