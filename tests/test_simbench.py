"""SimBench instances (sb_lv_rural, sb_lv_semiurb, sb_lv_urban, sb_mv_rural) and cigre_lv,
written by ``python -m flexplan.convert.simbench``, against the original nets.

At the hour of 2016 with the highest total load of the original SimBench net (hourly mean of
SimBench's absolute 15-minute values, as ``simbench.get_absolute_values`` gives them; the same
hour is found independently of the converter from the profiles' time stamps):

* the converted instance's fixed load equals the original's (EV chargers excepted: they are
  fleets) to 1e-6 MW: the profiles are the exact hourly means (8 decimals);
* LinDistFlow on the converted network, with that hour's SimBench loads at their buses, against
  pandapower's AC power flow of the ORIGINAL net with the same loads (PV, storage and generators
  out of service in both, as the converter leaves them out; the fixed transformer taps that
  SimBench sets applied, see :mod:`flexplan.convert.simbench`).  The error splits in two:

  1. LinDistFlow vs AC on the converted network itself (series impedances, the same loads):
     DistFlow is exact for a radial series network, v_j^2 = v_i^2 - 2 (r P_ij + x Q_ij) +
     |z|^2 l_ij with P_ij the sending-end flow, and LinDistFlow drops the losses, so exactly
     v_LDF^2 - v_AC^2 = sum over the path to j of [2 (r_k Lp_k + x_k Lq_k) - |z_k|^2 l_k], with
     Lp_k, Lq_k the losses of branch k and everything below it.  Each term is >= 0, so
     LinDistFlow is optimistic, and 0 <= v_LDF - v_AC <= B_j = sum_path (r_k Lp_k + x_k Lq_k) / v_AC,j
     (at most: path resistance x feeder losses).  Asserted per bus, and the identity to 1e-6 pu;
  2. the AC on the converted network vs the AC of the original: what the conversion leaves out
     (line capacitance in LV, the line-charging injections taken at nominal voltage in MV,
     transformer magnetising and iron losses): |dv| <= FIDELITY_PU.

  Measured (``python -m pytest tests/test_simbench.py -k "ac or total_load" -s`` prints them), pu, at
  the peak hour: LDF - AC(original) in [+0.00029, +0.00030] for sb_lv_rural (DistFlow bound B
  0.00053, AC losses 0.9 kW of 83 kW), [+0.00025, +0.00031] sb_lv_semiurb (B 0.00048),
  [+0.00022, +0.00026] sb_lv_urban (B 0.00042), [-0.00057, -0.00011] sb_mv_rural (LinDistFlow
  +0.00055 optimistic on the converted network, B 0.00084, 86 kW of losses at 9.5 MW; the line
  charging taken at nominal voltage and the magnetising branches the conversion leaves out make
  AC(converted) up to 0.0009 lower than AC(original)), [0, +0.0025] cigre_lv (B 0.0033: its
  heaviest hour, a December Saturday 11:00, loads the residential transformer to 75 %, v_min 0.927).  Asserted:
  ``LDF_BOUND_PU``.  With the instance's own loads (q = rated q x k: a constant power factor per
  load instead of SimBench's separate reactive profiles) the error is [-0.00056, -0.00046]
  (rural), [+0.00097, +0.00123] (semiurb), [+0.00059, +0.00090] (urban), [-0.0022, -0.0016] (MV):
  ``INSTANCE_LOAD_BOUND_PU``.
"""
from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import flexplan as fp
from flexplan.convert import simbench as sc
from flexplan.paths import shipped_instances

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

sb = pytest.importorskip("simbench")
pp = pytest.importorskip("pandapower")

pytestmark = pytest.mark.validation

SB = list(sc.GRIDS)
ALL = SB + ["cigre_lv"]
EV_LV = ["sb_lv_rural", "sb_lv_semiurb", "sb_lv_urban", "cigre_lv"]

#: sizes as loaded: buses, branches, load rows (incl. MV line-charging rows), classes, fleets, EVs in 2034
EXPECTED = {
    "sb_lv_rural": dict(buses=15, branches=14, loads=21, classes=9, fleets=4, evs_2034=7),
    "sb_lv_semiurb": dict(buses=44, branches=43, loads=51, classes=14, fleets=7, evs_2034=7),
    "sb_lv_urban": dict(buses=59, branches=58, loads=125, classes=15, fleets=7, evs_2034=10),
    "sb_mv_rural": dict(buses=97, branches=96, loads=96 + 96, classes=11, fleets=0, evs_2034=0),
    "cigre_lv": dict(buses=41, branches=40, loads=15, classes=3, fleets=6, evs_2034=None),
}
#: asserted bounds on max |v_LDF - v_AC(original)| at the peak hour with SimBench's loads (pu); measured
#: values in the module docstring
LDF_BOUND_PU = {"sb_lv_rural": 0.0005, "sb_lv_semiurb": 0.0005, "sb_lv_urban": 0.0005, "sb_mv_rural": 0.0010,
                "cigre_lv": 0.0035}
#: |v_AC(converted network) - v_AC(original)| (pu): what the conversion leaves out (see docstring)
FIDELITY_PU = {"sb_lv_rural": 5e-5, "sb_lv_semiurb": 5e-5, "sb_lv_urban": 5e-5, "sb_mv_rural": 1e-3, "cigre_lv": 1e-6}
#: the same with the instance's own loads at that hour (reactive power by a constant power factor)
INSTANCE_LOAD_BOUND_PU = {"sb_lv_rural": 0.001, "sb_lv_semiurb": 0.002, "sb_lv_urban": 0.002, "sb_mv_rural": 0.003}


def folder(name: str) -> Path:
    return shipped_instances() / name


# ----------------------------------------------------------------------------- the original nets
@lru_cache(maxsize=None)
def original(name: str) -> SimpleNamespace:
    """The original SimBench net, its hourly absolute loads and the hour of the highest total load,
    found from SimBench's own time stamps (independent of the converter's index arithmetic)."""
    code = sc.GRIDS[name]
    t0 = time.perf_counter()
    net = sb.get_simbench_net(code)
    av = sb.get_absolute_values(net, profiles_instead_of_study_cases=True)
    # SimBench's time stamps are local time (27 March has no 02:00, 30 October two); the instance's
    # hours are CET throughout (96 consecutive quarter-hours a day, as flexplan's SimBench EV profiles)
    stamps = (pd.to_datetime(net.profiles["load"]["time"], format="%d.%m.%Y %H:%M")
              .dt.tz_localize("Europe/Berlin", ambiguous="infer").dt.tz_convert("Etc/GMT-1").dt.tz_localize(None)
              .dt.floor("h"))
    P = av[("load", "p_mw")][net.load.index].groupby(stamps.to_numpy()).mean()
    Q = av[("load", "q_mvar")][net.load.index].groupby(stamps.to_numpy()).mean()
    keep = ~((P.index.month == 2) & (P.index.day == 29))  # the instance's year has no 29 February
    P, Q = P[keep], Q[keep]
    peak = P.sum(axis=1).idxmax()
    ev = net.load["profile"].str.startswith(("HLS_", "APLS_")).to_numpy()
    return SimpleNamespace(net=net, grid=sc.convert_grid(net, code), P=P.loc[peak].to_numpy(), Q=Q.loc[peak].to_numpy(),
                           day=peak.strftime("%Y-%m-%d"), hour=peak.hour, ev=ev, P_year=P, seconds=time.perf_counter() - t0)


def ac_original(o) -> dict:
    """AC voltages (pu) of the original net at the peak hour, by flexplan bus name."""
    net = copy.deepcopy(o.net)
    net.load["p_mw"], net.load["q_mvar"], net.load["scaling"] = o.P, o.Q, 1.0
    for k in ("sgen", "storage", "gen"):
        net[k]["in_service"] = False
    # SimBench's fixed taps: simbench 1.6.3 leaves pandapower 3's tap_changer_type empty (taps ignored)
    net.trafo["tap_changer_type"] = ["Ratio" if pd.notna(t) else None for t in net.trafo["tap_pos"]]
    pp.runpp(net, numba=False)
    return {o.grid.bus_of[b]: float(v) for b, v in net.res_bus["vm_pu"].items() if b in o.grid.bus_of}


# ----------------------------------------------------------------------------- one-hour instances
def one_hour(src: Path, out: Path, loads: pd.DataFrame) -> Path:
    """The instance ``src``'s network with ``loads`` (bus, p_mw, q_mvar) as the only operating point:
    one day of one step (weight 365), one year, no candidates, limits wide enough to shed nothing."""
    out.mkdir(parents=True, exist_ok=True)
    cfg = tomllib.loads((src / "instance.toml").read_text())["network"]
    lines = ["[network]"]
    for k, v in cfg.items():
        if k in ("loads", "default_class", "substation_mva"):
            continue
        if k in ("buses", "lines", "transformers", "line_patch", "file"):
            shutil.copy(src / v, out / v)
        lines.append(f"{k} = {json.dumps(v)}")
    loads.assign(**{"class": "snap"})[["bus", "p_mw", "q_mvar", "class"]].to_csv(out / "loads_hour.csv", index=False)
    (out / "profiles.csv").write_text("day,hour,weight,snap\nh,0,365,1.0\n")
    (out / "instance.toml").write_text("\n".join(
        ['name = "one_hour"'] + lines + ['loads = "loads_hour.csv"', "[profiles]", 'file = "profiles.csv"',
                                         "[economics]", "base_year = 2025", "end_year = 2025", "stages = [2025]",
                                         "[limits]", "v_min_pu = 0.5", "v_max_pu = 1.5", "max_loading_pct = 1000.0"])
        + "\n")
    return out


def ldf_and_ac(inst) -> SimpleNamespace:
    """LinDistFlow (flexplan, reinforce_only without candidates) and pandapower AC on the same
    converted network and loads; the DistFlow prediction of their difference and its bound."""
    from flexplan.acpf import build_pandapower

    res = fp.solve(fp.build_model(inst, "reinforce_only"))
    assert res.status == "optimal" and res.violations["unserved_mwh"] == 0.0
    net = inst.network
    names = net.buses["name"].astype(str).tolist()
    v_ldf = res.voltages.set_index("bus")["v_pu"].reindex(names).to_numpy()
    pnet, _, _ = build_pandapower(net)
    P = np.zeros(net.n_buses)
    Q = np.zeros(net.n_buses)
    np.add.at(P, net.loads["bus"].to_numpy(int), net.loads["p_mw"].to_numpy())
    np.add.at(Q, net.loads["bus"].to_numpy(int), net.loads["q_mvar"].to_numpy())
    for i in range(net.n_buses):
        pp.create_load(pnet, bus=i, p_mw=P[i], q_mvar=Q[i])
    pp.runpp(pnet, numba=False, tolerance_mva=1e-10)
    v_ac = pnet.res_bus["vm_pu"].reindex(range(net.n_buses)).to_numpy()
    sbase = net.s_base_mva
    br = net.branches
    r, x = br["r_pu"].to_numpy(), br["x_pu"].to_numpy()
    pl = pnet.res_impedance["pl_mw"].reindex(range(len(br))).to_numpy() / sbase   # r l (pu)
    ql = pnet.res_impedance["ql_mvar"].reindex(range(len(br))).to_numpy() / sbase  # x l (pu)
    to_bus = br["to_bus"].to_numpy()
    below = net.downstream_buses()
    Lp = np.array([pl[np.isin(to_bus, b)].sum() for b in below])
    Lq = np.array([ql[np.isin(to_bus, b)].sum() for b in below])
    term = 2 * (r * Lp + x * Lq) - (r * pl + x * ql)
    first = r * Lp + x * Lq
    par = net.parent_branch()
    frm = br["from_bus"].to_numpy()
    d2, bnd = np.zeros(net.n_buses), np.zeros(net.n_buses)
    for b in net.topological_order():
        k = par[b]
        if k >= 0:
            d2[b] = d2[frm[k]] + term[k]
            bnd[b] = bnd[frm[k]] + first[k]
    return SimpleNamespace(names=names, v_ldf=v_ldf, v_ac=v_ac, predicted=d2 / (v_ldf + v_ac), bound=bnd / v_ac,
                           losses_mw=float(pnet.res_impedance["pl_mw"].sum()), res=res)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", ALL)
def test_instance_loads(name):
    inst = fp.load_instance(folder(name))
    exp = EXPECTED[name]
    net = inst.network
    assert (net.n_buses, net.n_branches, len(net.loads)) == (exp["buses"], exp["branches"], exp["loads"])
    assert len(inst.profiles.factors) == exp["classes"] and len(inst.ev_fleets) == exp["fleets"]
    assert len(inst.profiles.days) == 5 and inst.profiles.weights.sum() == 365 and inst.profiles.hours == 24
    assert list(inst.economics.stages) == [2025, 2030, 2035, 2040] and inst.economics.end_year == 2044
    assert len(inst.candidates) > 0 and (net.branches["kind"] == "transformer").any()
    if exp["evs_2034"] is not None:
        assert sum(f.evs.loc[2034] * len(f.buses) for f in inst.ev_fleets) == pytest.approx(exp["evs_2034"])
    year = pd.read_csv(folder(name) / "profiles_year.csv")
    assert len(year) == 365 * 24 and (year["weight"] == 1).all() and year["day"].nunique() == 365
    assert "2016-02-29" not in set(year["day"])
    assert set(year.columns[3:]) == set(inst.profiles.factors)
    assert inst.profiles.days == ("peak", "winter_weekday", "winter_weekend", "summer_weekday", "summer_weekend")


@pytest.mark.parametrize("name", SB)
def test_grid_files_match_converter(name):
    """The shipped CSVs are what the converter makes of the SimBench net now."""
    o = original(name)
    g = o.grid
    for fname, df, key in (("buses.csv", g.buses, "name"), ("lines.csv", g.lines, "name"),
                           ("trafos.csv", g.trafos, "name")):
        shipped = pd.read_csv(folder(name) / fname)
        assert list(shipped[key]) == list(df[key]), fname
        for c in df.columns:
            if df[c].dtype.kind == "f":
                np.testing.assert_allclose(shipped[c].to_numpy(float), df[c].to_numpy(float), rtol=1e-8, err_msg=fname)
            else:
                assert list(shipped[c].astype(str)) == list(df[c].astype(str)), (fname, c)
    inst = fp.load_instance(folder(name))
    assert inst.network.slack["vm_pu"].iloc[0] == pytest.approx(g.slack_vm_pu, abs=1e-6)
    assert g.slack_vm_pu == pytest.approx(g.ext_grid_vm_pu / g.tap_ratio)


@pytest.mark.parametrize("name", SB)
def test_total_load_at_peak_hour(name):
    """The converted instance's fixed load at SimBench's peak hour equals the original's
    (EV chargers excepted: they are fleets), from profiles_year.csv and, for the peak day of
    the shipped profiles.csv, through the loader and the demand block."""
    o = original(name)
    loads = pd.read_csv(folder(name) / "loads.csv")
    fixed = loads[loads["class"] != sc.CHARGING_CLASS]
    year = pd.read_csv(folder(name) / "profiles_year.csv")
    row = year[(year["day"] == o.day) & (year["hour"] == o.hour)].iloc[0]
    p_inst = float((fixed["p_mw"] * fixed["class"].map(row)).sum())
    p_orig = float(o.P[~o.ev].sum())
    print(f"{name}: peak hour {o.day} {o.hour}:00, total {o.P.sum():.6f} MW, fixed {p_orig:.9f} MW, "
          f"instance {p_inst:.9f} MW, Q {float((fixed['q_mvar'] * fixed['class'].map(row)).sum()):.5f} Mvar "
          f"vs SimBench {o.Q[~o.ev].sum():.5f}")
    assert abs(p_inst - p_orig) <= 1e-6
    # reactive power: a constant power factor per load (least-squares k) instead of SimBench's q profiles
    q_inst = float((fixed["q_mvar"] * fixed["class"].map(row)).sum())
    assert q_inst == pytest.approx(float(o.Q[~o.ev].sum()), rel=0.3)
    # the shipped representative days, through the loader: the 'peak' day is SimBench's day of the highest
    # hourly fixed load
    from flexplan.blocks.demand import load_matrices
    from flexplan.index import deterministic_index

    inst = fp.load_instance(folder(name))
    ix = deterministic_index(inst)
    Pm, _ = load_matrices(inst, ix)
    fixed_year = o.P_year.to_numpy()[:, ~o.ev].sum(axis=1)
    h = int(np.argmax(fixed_year))
    assert o.P_year.index[h].strftime("%Y-%m-%d") in (folder(name) / "instance.toml").read_text()  # the 'peak' day
    # SimBench scenario 2 is 2034: every class's growth factor is 1 there
    op = np.flatnonzero((np.asarray(ix.days)[ix.op_day] == "peak") & (ix.op_hour == h % 24) & (ix.op_year == 2034))
    assert len(op) == 1 and (inst.growth.loc[2034] == 1.0).all()
    assert Pm[:, op[0]].sum() == pytest.approx(fixed_year[h], abs=1e-6)


@pytest.mark.parametrize("name", [n for n in SB if n != "sb_mv_rural"])
def test_ev_fleets_are_simbench_chargers(name):
    """Every SimBench charger of scenario 2 is one EV of a fleet with its profile at its bus in 2034."""
    o = original(name)
    chargers = (o.net.load[o.ev].assign(bus=lambda d: [o.grid.bus_of[b] for b in d["bus"]])
                .groupby(["profile", "bus"]).size())
    fleets = {}
    for f in fp.load_instance(folder(name)).ev_fleets:
        prof = f.source.split()[0].removeprefix("simbench:")
        for b in f.bus_names:
            fleets[(prof, b)] = fleets.get((prof, b), 0) + f.evs.loc[2034]
    assert fleets == {k: float(v) for k, v in chargers.items()}


@pytest.mark.parametrize("name", SB)
def test_lindistflow_vs_ac_of_original(name, tmp_path):
    """LinDistFlow on the converted network vs pandapower AC of the original SimBench net at the
    peak hour, with SimBench's loads of that hour (see the module docstring for the bounds)."""
    o = original(name)
    src = folder(name)
    shipped = pd.read_csv(src / "loads.csv")
    charging = shipped[shipped["class"] == sc.CHARGING_CLASS][["bus", "p_mw", "q_mvar"]]
    loads = pd.concat([pd.DataFrame({"bus": [o.grid.bus_of[b] for b in o.net.load["bus"]], "p_mw": o.P,
                                     "q_mvar": o.Q}), charging], ignore_index=True)
    inst = fp.load_instance(one_hour(src, tmp_path / "hour", loads))
    assert inst.network.loads["p_mw"].sum() == pytest.approx(o.P.sum(), abs=1e-9)
    r = ldf_and_ac(inst)
    ac = ac_original(o)
    v_orig = np.array([ac[n] for n in r.names])
    slack = np.array([n == o.grid.slack_bus for n in r.names])
    conv = r.v_ldf - r.v_ac
    # 1. LinDistFlow vs AC on the same series network: the DistFlow identity and its bound
    np.testing.assert_allclose(conv, r.predicted, atol=1e-6)
    assert conv.min() >= -1e-7 and np.all(conv <= r.bound + 1e-7)
    # 2. the conversion: AC on the converted network vs AC of the original
    fidelity = np.abs(r.v_ac - v_orig)[~slack].max()
    # together: LinDistFlow vs the original
    err = (r.v_ldf - v_orig)[~slack]
    print(f"{name}: peak hour {o.day} {o.hour}:00, load {o.P.sum():.4f} MW, AC losses {r.losses_mw * 1000:.2f} kW, "
          f"v_min AC {v_orig.min():.4f} pu; LDF - AC(converted) max {conv.max():.5f} pu (bound {r.bound.max():.5f}); "
          f"|AC(converted) - AC(original)| max {fidelity:.5f}; LDF - AC(original) in [{err.min():+.5f}, {err.max():+.5f}]")
    assert fidelity <= FIDELITY_PU[name]
    assert np.abs(err).max() <= LDF_BOUND_PU[name]


@pytest.mark.parametrize("name", SB)
def test_lindistflow_with_instance_loads_vs_ac(name, tmp_path):
    """The same hour with the instance's own loads (loads.csv x profiles_year.csv; q by a constant
    power factor per load) and the chargers' SimBench values: the reactive simplification adds
    to the error."""
    o = original(name)
    src = folder(name)
    shipped = pd.read_csv(src / "loads.csv")
    year = pd.read_csv(src / "profiles_year.csv")
    row = year[(year["day"] == o.day) & (year["hour"] == o.hour)].iloc[0]
    f = shipped["class"].map(lambda c: 1.0 if c == sc.CHARGING_CLASS else row[c]).to_numpy(float)
    ev = pd.DataFrame({"bus": [o.grid.bus_of[b] for b in o.net.load["bus"][o.ev]], "p_mw": o.P[o.ev], "q_mvar": o.Q[o.ev]})
    loads = pd.concat([pd.DataFrame({"bus": shipped["bus"], "p_mw": shipped["p_mw"] * f, "q_mvar": shipped["q_mvar"] * f}),
                       ev], ignore_index=True)
    inst = fp.load_instance(one_hour(src, tmp_path / "hour", loads))
    r = ldf_and_ac(inst)
    ac = ac_original(o)
    slack = np.array([n == o.grid.slack_bus for n in r.names])
    err = (r.v_ldf - np.array([ac[n] for n in r.names]))[~slack]
    print(f"{name}: with the instance's loads LDF - AC(original) in [{err.min():+.5f}, {err.max():+.5f}] pu")
    assert np.abs(err).max() <= INSTANCE_LOAD_BOUND_PU[name]


def test_cigre_lv_lindistflow_vs_ac(tmp_path):
    """cigre_lv: LinDistFlow on the instance's network (pandapower's CIGRE LV read by flexplan) at
    the hour of the highest total load of its year profiles vs pandapower AC of
    create_cigre_network_lv with the same loads."""
    import pandapower.networks as pn

    src = folder("cigre_lv")
    loads = pd.read_csv(src / "loads.csv")
    year = pd.read_csv(src / "profiles_year.csv")
    total = sum(loads.loc[loads["class"] == c, "p_mw"].sum() * year[c] for c in set(loads["class"]))
    row = year.iloc[int(np.argmax(total))]
    f = loads["class"].map(row).to_numpy(float)
    hour = loads.assign(p_mw=loads["p_mw"] * f, q_mvar=loads["q_mvar"] * f)
    inst = fp.load_instance(one_hour(src, tmp_path / "hour", hour))
    r = ldf_and_ac(inst)
    net = pn.create_cigre_network_lv()
    net.load = net.load.set_index("name").loc[hour["name"]].reset_index()
    net.load["p_mw"], net.load["q_mvar"] = hour["p_mw"].to_numpy(), hour["q_mvar"].to_numpy()
    pp.runpp(net, numba=False)
    ac = dict(zip(net.bus["name"].astype(str), net.res_bus["vm_pu"]))
    v_orig = np.array([ac[n] for n in r.names])
    conv = r.v_ldf - r.v_ac
    np.testing.assert_allclose(conv, r.predicted, atol=1e-6)
    assert conv.min() >= -1e-7 and np.all(conv <= r.bound + 1e-7)
    err = r.v_ldf - v_orig
    print(f"cigre_lv: hour {row['day']} {row['hour']}:00, load {hour['p_mw'].sum():.4f} MW, v_min AC {v_orig.min():.4f}; "
          f"LDF - AC in [{err.min():+.5f}, {err.max():+.5f}] pu (bound {r.bound.max():.5f}), "
          f"|AC(flexplan network) - AC(pandapower)| {np.abs(r.v_ac - v_orig).max():.2g}")
    assert np.abs(r.v_ac - v_orig).max() <= FIDELITY_PU["cigre_lv"]
    assert np.abs(err).max() <= LDF_BOUND_PU["cigre_lv"]


# ----------------------------------------------------------------------------- converter units
@pytest.mark.unit
def test_hourly_drops_29_february():
    q = np.arange(366 * 96, dtype=float)
    h = sc.hourly(q[:, None])
    assert h.shape == (8760, 1)
    assert h[0, 0] == pytest.approx(1.5)  # mean of quarter-hours 0..3
    feb29 = (31 + 28) * 24
    assert h[feb29, 0] == pytest.approx((feb29 + 24) * 4 + 1.5)  # 1 March 00:00 follows 28 February
    with pytest.raises(ValueError):
        sc.hourly(q[:-4])


@pytest.mark.unit
def test_convert_grid_merges_switches_parallels_and_folds_taps():
    """Bus-bus switches merge, an open line switch opens its line, two equal transformers in
    parallel become one of twice the rating and the same vk, a fixed tap goes into slack_vm_pu."""
    net = pp.create_empty_network()
    hv = [pp.create_bus(net, 20.0, name=f"hv{i}") for i in range(2)]
    lv = [pp.create_bus(net, 0.4, name=f"lv{i}") for i in range(4)]
    pp.create_ext_grid(net, hv[0], vm_pu=1.02)
    pp.create_switch(net, hv[0], hv[1], et="b", closed=True)
    pp.create_switch(net, lv[0], lv[1], et="b", closed=True)
    for a, b in ((hv[0], lv[0]), (hv[1], lv[1])):
        pp.create_transformer(net, a, b, std_type="0.4 MVA 20/0.4 kV", tap_pos=-1)
    l1 = pp.create_line(net, lv[0], lv[2], 0.1, "NAYY 4x150 SE")
    pp.create_line(net, lv[2], lv[3], 0.1, "NAYY 4x150 SE")
    l3 = pp.create_line(net, lv[3], lv[1], 0.1, "NAYY 4x150 SE")  # closes a ring ...
    pp.create_switch(net, lv[3], l3, et="l", closed=False)         # ... opened here
    pp.create_load(net, lv[3], p_mw=0.05, q_mvar=0.01, profile="H0-A")
    g = sc.convert_grid(net, "test")
    assert list(g.buses["name"]) == ["hv0", "lv0", "lv2", "lv3"]
    assert len(g.lines) == 2 and len(g.trafos) == 1
    t = g.trafos.iloc[0]
    assert t.sn_mva == pytest.approx(0.8) and t.vk_percent == pytest.approx(6.0) and t.vkr_percent == pytest.approx(1.425)
    step = float(net.trafo.at[0, "tap_step_percent"])
    assert g.tap_ratio == pytest.approx(1 - step / 100) and g.slack_vm_pu == pytest.approx(1.02 / (1 - step / 100))
    assert g.bus_of[lv[1]] == "lv0" and g.loads.iloc[0].bus == "lv3"
    assert g.lines.iloc[0]["r_ohm"] == pytest.approx(float(net.line.at[l1, "r_ohm_per_km"]) * 0.1)


@pytest.mark.unit
def test_convert_grid_rejects_a_loop_like_the_loader():
    """A closed ring is the runtime loader's error (naming the line that closes it), not an
    instance the loader would reject later."""
    from flexplan.errors import InstanceError

    net = pp.create_empty_network()
    b = [pp.create_bus(net, 0.4, name=f"b{i}") for i in range(3)]
    pp.create_ext_grid(net, b[0])
    for i, j in ((0, 1), (1, 2), (2, 0)):
        pp.create_line(net, b[i], b[j], 0.1, "NAYY 4x150 SE", name=f"L{i}{j}")
    pp.create_load(net, b[2], p_mw=0.01, profile="H0-A")
    with pytest.raises(InstanceError, match=r"not radial: branch\(es\) 'L12' close a loop"):  # the last one the search meets
        sc.convert_grid(net, "ring")


def _pandapower_net(name: str):
    """A SimBench net by shipped instance name, or a pandapower built-in with the line ratings of
    the shipped instance that uses it (case33bw has a 99999 kA placeholder)."""
    import pandapower.networks as pn

    if name in sc.GRIDS:
        return sb.get_simbench_net(sc.GRIDS[name])
    net = getattr(pn, name)()
    patch = pd.read_csv(folder({"case33bw": "ieee33", "create_cigre_network_lv": "cigre_lv"}[name]) / "line_ratings.csv")
    net.line.loc[patch["line"].to_numpy(), "max_i_ka"] = patch["max_i_ka"].to_numpy()
    return net


@pytest.mark.unit
@pytest.mark.parametrize("name", ["case33bw", "create_cigre_network_lv", "sb_lv_rural", "sb_lv_urban", "sb_mv_rural"])
def test_runtime_loader_and_converter_give_the_same_branches(name, tmp_path):
    """One pandapower conversion (network_io.pandapower_radial): the Network the runtime loader makes
    of a pandapower net (``source = "pandapower"`` / ``"json"``: from_pandapower) and the one the
    instance loader reads back from the converter's CSV tables of the same net have the same buses,
    the same branches (names, kinds, ends, orientation away from the slack; r, x, rating to the
    9 digits the CSVs keep) and the same loads.  sb_mv_rural's two parallel HV/MV transformers are
    one branch in the converter; the runtime rejects them as a loop, so there the runtime side is
    pandapower_radial with merge_parallel, as the converter calls it."""
    from flexplan.errors import InstanceError
    from flexplan.instance import network_io
    from flexplan.instance.loader import _csv_network

    net = _pandapower_net(name)
    g = sc.convert_grid(copy.deepcopy(net), name)
    if name == "sb_mv_rural":
        with pytest.raises(InstanceError, match="not radial"):
            network_io.from_pandapower(copy.deepcopy(net), name)
        runtime = network_io.pandapower_radial(copy.deepcopy(net), name, merge_parallel=True).network
    else:
        runtime = network_io.from_pandapower(copy.deepcopy(net), name)
    sc._csv(g.buses, tmp_path / "buses.csv")
    sc._csv(g.lines, tmp_path / "lines.csv", {"r_ohm": "%.9g", "x_ohm": "%.9g", "rating_mva": "%.9g", "length_km": "%.9g"})
    sc._csv(g.trafos, tmp_path / "trafos.csv", {"vk_percent": "%.9g", "vkr_percent": "%.9g"})
    loads = g.loads.assign(**{"class": g.loads["class"].replace("", "base")})  # pandapower's own nets have no profiles
    sc._csv(loads[["bus", "p_mw", "q_mvar", "class", "name"]], tmp_path / "loads.csv", {"p_mw": "%.9g", "q_mvar": "%.9g"})
    cfg = dict(buses="buses.csv", lines="lines.csv", loads="loads.csv", slack_bus=g.slack_bus,
               **({"transformers": "trafos.csv"} if len(g.trafos) else {}))
    converted = _csv_network(cfg, tmp_path, "converted", 1.0)

    assert list(converted.buses["name"]) == list(runtime.buses["name"])
    np.testing.assert_array_equal(converted.buses["vn_kv"], runtime.buses["vn_kv"])
    bus = lambda n, col: [n.buses.at[b, "name"] for b in n.branches[col]]  # noqa: E731
    a, b = (n.branches.assign(from_name=bus(n, "from_bus"), to_name=bus(n, "to_bus")).set_index("name")
            for n in (runtime, converted))
    assert sorted(a.index) == sorted(b.index) and len(a) == len(g.lines) + len(g.trafos)
    b = b.loc[a.index]
    for col in ("kind", "from_name", "to_name"):
        assert list(a[col]) == list(b[col]), col
    for col in ("r_pu", "x_pu", "rating_mva", "vn_kv", "length_km"):
        np.testing.assert_allclose(b[col].to_numpy(float), a[col].to_numpy(float), rtol=1e-8, atol=1e-12, err_msg=col)
    assert [converted.buses.at[i, "name"] for i in converted.loads["bus"]] == \
        [runtime.buses.at[i, "name"] for i in runtime.loads["bus"]]
    np.testing.assert_allclose(converted.loads[["p_mw", "q_mvar"]].to_numpy(float),
                               runtime.loads[["p_mw", "q_mvar"]].to_numpy(float), rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------------------- planning runs
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("name,recipe", [(n, "reinforce_only") for n in ALL]
                         + [(n, "flex_vs_reinforce") for n in EV_LV])
def test_instance_solves(name, recipe):
    inst = fp.load_instance(folder(name))
    t0 = time.perf_counter()
    res = fp.solve(fp.build_model(inst, recipe), mip_gap=0.01, time_limit=1800)
    print(f"{name} {recipe}: {res.status}, objective {res.objective_eur:.0f} EUR, {len(res.builds)} builds, "
          f"{time.perf_counter() - t0:.0f} s, violations {res.violations}")
    assert res.status == "optimal" and res.has_solution
    assert res.violations["max_overload_pct"] == 0.0 and res.violations["max_voltage_deviation_pu"] == 0.0
