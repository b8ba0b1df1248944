"""Property-based tests (hypothesis) on generated small feeders with EV fleets.

Every example is a radial feeder of 2-8 buses (LV, 0.4 kV), one representative day of a few
steps, one or two investment stages, and one or two EV fleets of a few sessions written as
session CSV files (so every cohort, every session's energy and every EV count is known to
the test).  The properties are checked against quantities computed here from the generated
input, never against stored numbers:

* monotonicity: more load (or more EVs) never lowers the optimal cost; a higher price of
  flexibility (the ``ev_fleet`` block's ``flex_price_eur_per_mwh``, the ``contracts``
  block's utilisation and availability fees) never increases the flexibility used or
  contracted; forbidding flexibility never lowers the cost;
* conservation: per fleet, bus and year the energy drawn from the grid, times the charging
  efficiency, minus V2G export (over the discharging efficiency) equals the energy the
  sessions need (or take, uncontrolled), computed from the sessions;
* invariants: every session leaves with at least its required energy within its battery
  and charger limits (per-session model); voltages and flows recomputed from the input
  and the schedule match the result tables, and every limit is either respected or
  reported as a violation priced by its penalty.

The models are LPs (``reinforcement.binary = false``) or MIPs solved with a relative gap of
0; comparisons allow a relative 1e-6 plus a small absolute margin, with HiGHS's feasibility
tolerances tightened to 1e-8 (``TIGHT``).  ``settings(derandomize=True)`` makes the examples the same on every run; the
``slow`` variants draw more examples and shrink failures
(``pytest -m slow tests/test_properties.py``); the default run reports a failing example
unshrunk, to stay fast.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyomo.environ as pyo
import pytest
from conftest import write_feeder
from hypothesis import HealthCheck, Phase, assume, event, example, given, note, settings
from hypothesis import strategies as st

import flexplan as fp

VN_KV = 0.4
DISCOUNT = 0.05
ETA_C, ETA_D = 0.95, 0.92  # charging / discharging efficiency of every generated fleet
SOC_MIN = 0.2
LOAD_SCALE_MAX = 1.5  # the largest demand.scale a test uses (the feeder is sized for it)
EV_SCALE_MAX = 2.0  # the largest EV-count multiplier a test uses
#: replacement cable of the catalogue (per km; lines are 1 km): low impedance, 0.3 kA
NEW_R, NEW_X, NEW_I_KA = 0.02, 0.02, 0.3
POLY = 12  # lindistflow's default polygon (the recipes below keep it)

#: (economics text, years_per_stage, modelled years, calendar years each stands for)
HORIZONS = {
    1: [("base_year = 2025\nend_year = 2025\nstages = [2025]", "all", (2025,), ((2025,),))],
    2: [("base_year = 2025\nend_year = 2026\nstages = [2025, 2026]", "all", (2025, 2026), ((2025,), (2026,))),
        ("base_year = 2025\nend_year = 2028\nstages = [2025, 2027]", "last", (2026, 2028),
         ((2025, 2026), (2027, 2028)))],
}


# ---------------------------------------------------------------------------------------
# generated cases
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    start: int  # step of the day the EV plugs in
    length: int  # plugged-in steps
    battery_kwh: float
    charger_kw: float
    e_arr_kwh: float
    e_req_kwh: float
    v2g: bool


@dataclass(frozen=True)
class Fleet:
    name: str
    buses: tuple[int, ...]
    sessions: tuple[Session, ...]
    ev_days: float
    evs: tuple[int, ...]  # EVs per bus in each modelled year


@dataclass(frozen=True)
class Case:
    hours: int  # steps per day
    horizon: int  # index into HORIZONS[n_stages]
    n_stages: int
    parent: tuple[int, ...]  # parent bus of bus i + 1
    r_ohm: tuple[float, ...]
    x_ohm: tuple[float, ...]
    rating_mva: tuple[float, ...]
    load_kw: tuple[float, ...]  # per bus (0 = slack bus: always 0)
    q_ratio: tuple[float, ...]
    factors: tuple[float, ...]  # load profile over the day
    growth: float
    fleets: tuple[Fleet, ...]
    v_min_pu: float
    penalties: tuple[float, float, float]  # voll, overload, voltage
    capex_eur: float | None  # replacement cable per km, or no catalogue

    @property
    def dt(self) -> float:
        return 24.0 / self.hours

    @property
    def n_buses(self) -> int:
        return len(self.parent) + 1

    @property
    def years(self) -> tuple[int, ...]:
        return HORIZONS[self.n_stages][self.horizon][2]

    def year_weight(self, k: int) -> float:
        """Sum of discount factors of the calendar years modelled year k stands for."""
        return sum((1 + DISCOUNT) ** -(y - 2025) for y in HORIZONS[self.n_stages][self.horizon][3][k])

    def year_count(self, k: int) -> int:
        return len(HORIZONS[self.n_stages][self.horizon][3][k])

    def growth_factor(self, k: int) -> float:
        return (1 + self.growth) ** (self.years[k] - 2025)

    def path(self, bus: int) -> list[int]:
        """Lines (index = child bus - 1) from the slack bus to ``bus``."""
        out = []
        while bus != 0:
            out.append(bus - 1)
            bus = self.parent[bus - 1]
        return out

    def below(self, line: int) -> list[int]:
        """Buses fed through ``line`` (its child bus and everything beyond)."""
        return [b for b in range(1, self.n_buses) if line in self.path(b)]


def _kw(x: float) -> float:
    return round(x, 3)


@st.composite
def sessions_st(draw, hours: int) -> Session:
    dt = 24.0 / hours
    start = draw(st.integers(0, hours - 1))
    length = draw(st.integers(1, hours))
    battery = draw(st.sampled_from([20.0, 40.0, 60.0]))
    charger = draw(st.sampled_from([3.7, 7.4, 11.0]))
    e_arr = _kw(battery * draw(st.integers(5, 90)) / 100)
    reach = min(e_arr + ETA_C * charger * length * dt, battery)  # soc_max = 1
    e_req = _kw(e_arr + (reach - e_arr) * draw(st.integers(0, 100)) / 100 * 0.999)
    return Session(start, length, battery, charger, e_arr, e_req, draw(st.booleans()))


@st.composite
def cases(draw, max_buses: int = 8, max_fleets: int = 2) -> Case:
    hours = draw(st.sampled_from([4, 6, 8]))
    n = draw(st.integers(2, max_buses))
    parent = tuple(draw(st.integers(0, i - 1)) for i in range(1, n))
    load_kw = (0.0,) + tuple(float(draw(st.one_of(st.just(0), st.integers(1, 40)))) for _ in range(1, n))
    q_ratio = (0.0,) + tuple(draw(st.integers(0, 5)) / 10 for _ in range(1, n))
    factors = tuple(draw(st.integers(2, 10)) / 10 for _ in range(hours))
    n_stages = draw(st.integers(1, 2))
    horizon = draw(st.integers(0, len(HORIZONS[n_stages]) - 1))
    growth = draw(st.integers(0, 20)) / 100 if n_stages == 2 else 0.0
    fleets = []
    for f in range(draw(st.integers(1, max_fleets))):
        buses = tuple(sorted(draw(st.sets(st.integers(1, n - 1), min_size=1, max_size=min(2, n - 1)))))
        sess = tuple(draw(st.lists(sessions_st(hours), min_size=1, max_size=3)))
        ev_days = float(len(sess) + draw(st.integers(0, 1)))  # some EVs may not charge every day
        evs = tuple(draw(st.integers(1, 12)) for _ in range(n_stages))
        fleets.append(Fleet(f"f{f}", buses, sess, ev_days, evs))
    fleets = tuple(fleets)
    # impedances: drawn, then scaled so that the worst case (largest load scale, all chargers
    # of the largest fleet on at once) drops the squared voltage by `stress` pu^2, well
    # above the 0.8 pu hard floor of the model
    r = [draw(st.integers(1, 10)) / 100 for _ in range(1, n)]
    x = [ri * draw(st.integers(2, 10)) / 10 for ri in r]
    g_max = (1 + growth) ** 3
    worst_p = np.array([load_kw[b] * max(factors) * g_max * LOAD_SCALE_MAX for b in range(n)])
    worst_q = np.array([load_kw[b] * q_ratio[b] * max(factors) * g_max * LOAD_SCALE_MAX for b in range(n)])
    for fl in fleets:
        per_ev = sum(s.charger_kw for s in fl.sessions) / fl.ev_days
        for b in fl.buses:
            worst_p[b] += per_ev * max(fl.evs) * EV_SCALE_MAX
    case0 = Case(hours, horizon, n_stages, parent, tuple(r), tuple(x), (1.0,) * (n - 1), load_kw, q_ratio, factors,
                 growth, fleets, 0.9, (1.0, 1.0, 1.0), None)
    drop = 0.0
    for b in range(1, n):
        drop = max(drop, sum(2 * (r[k] * worst_p[case0.below(k)].sum() + x[k] * worst_q[case0.below(k)].sum())
                             / 1000 / VN_KV ** 2 for k in case0.path(b)))
    stress = draw(st.integers(2, 30)) / 100
    if drop > 0:
        r = [ri * stress / drop for ri in r]
        x = [xi * stress / drop for xi in x]
    r = tuple(max(round(ri, 6), 1e-6) for ri in r)
    x = tuple(max(round(xi, 6), 1e-6) for xi in x)
    # ratings: a drawn fraction of the peak flow at nominal load with every charger on
    nominal = np.array([load_kw[b] * max(factors) * g_max for b in range(n)])
    for fl in fleets:
        for b in fl.buses:
            nominal[b] += sum(s.charger_kw for s in fl.sessions) / fl.ev_days * max(fl.evs)
    rating = []
    for k in range(n - 1):
        flow = nominal[case0.below(k)].sum() / 1000
        rating.append(round(max(flow * draw(st.integers(2, 12)) / 10, 0.001), 4))
    v_min = draw(st.sampled_from([0.9, 0.95, 0.98, 0.99]))
    penalties = draw(st.sampled_from([(10000.0, 10000.0, 1e6), (10000.0, 200.0, 300.0), (300.0, 10000.0, 1e6)]))
    capex = draw(st.one_of(st.none(), st.integers(1, 40).map(lambda k: k * 1000.0)))
    return Case(hours, horizon, n_stages, parent, r, x, tuple(rating), load_kw, q_ratio, factors, growth, fleets,
                v_min, penalties, capex)


def write_case(folder: Path, case: Case, ev_scale: float = 1.0) -> Path:
    """The case as an instance folder (CSV network by ``conftest.write_feeder``, session CSVs)."""
    n = case.n_buses
    lines = [(f"l{k + 1}", f"b{case.parent[k]}", f"b{k + 1}", case.r_ohm[k], case.x_ohm[k], case.rating_mva[k], 1.0)
             for k in range(n - 1)]
    loads = [(f"b{b}", case.load_kw[b] / 1000, case.load_kw[b] * case.q_ratio[b] / 1000) for b in range(1, n)
             if case.load_kw[b] > 0]
    if not loads:  # the loader wants at least a row: a zero load
        loads = [("b1", 0.0, 0.0)]
    econ, yps, years, _ = HORIZONS[case.n_stages][case.horizon]
    reinf = ""
    if case.capex_eur is not None:
        reinf = (f'generate = ["replace"]\n[[reinforcement.line_types]]\nname = "cable"\nr_ohm_per_km = {NEW_R}\n'
                 f"x_ohm_per_km = {NEW_X}\nmax_i_ka = {NEW_I_KA}\ncapex_eur_per_km = {case.capex_eur}\n"
                 "lifetime_years = 40\n")
    write_feeder(folder, lines=lines, loads=loads, profile=[("d", 365, list(case.factors))],
                 economics=f"{econ}\ndiscount_rate = {DISCOUNT}", growth=f"annual_rate = {case.growth}",
                 limits=f"v_min_pu = {case.v_min_pu}\nv_max_pu = 1.1", reinforcement=reinf, vn_kv=VN_KV,
                 operation=f'years_per_stage = "{yps}"')
    voll, over, volt = case.penalties
    extra = (f"\n[penalties]\nvoll_eur_per_mwh = {voll}\noverload_eur_per_mvah = {over}\n"
             f"voltage_eur_per_pu2h = {volt}\n")
    for fl in case.fleets:
        rows = []
        for i, s in enumerate(fl.sessions):
            a = s.start * case.dt
            d = (s.start + s.length) * case.dt
            d = d - 24 if d > 24 else d
            rows.append(f"ev{i},{a},{d},{s.e_arr_kwh},{s.e_req_kwh},{s.battery_kwh},{s.charger_kw},{int(s.v2g)}\n")
        (folder / f"{fl.name}.csv").write_text("ev,arrival_h,departure_h,energy_arrival_kwh,energy_required_kwh,"
                                               "battery_kwh,charger_kw,v2g\n" + "".join(rows))
        evs = ", ".join(f"{y} = {n_ * ev_scale}" for y, n_ in zip(years, fl.evs))
        buses = ", ".join(f'"b{b}"' for b in fl.buses)
        extra += (f'\n[[ev_fleets]]\nname = "{fl.name}"\nbuses = [{buses}]\nsessions = "{fl.name}.csv"\n'
                  f"ev_days = {fl.ev_days}\nevs = {{{evs}}}\nsoc_min = {SOC_MIN}\neta_charge = {ETA_C}\n"
                  f"eta_discharge = {ETA_D}\n")
    with open(folder / "instance.toml", "a") as f:
        f.write(extra)
    return folder


def load(case: Case, ev_scale: float = 1.0):
    fp.release_memory()  # build_model freezes every model out of the collector's reach
    with tempfile.TemporaryDirectory() as tmp:
        return fp.load_instance(write_case(Path(tmp) / "case", case, ev_scale))


def recipe(mode="smart", flex_price=0.0, binary=False, per_session=False, max_cohorts=0, scale=1.0,
           tariff=None, contracts=None) -> dict:
    rec = {"name": f"prop_{mode}", "blocks": ["demand"] + (["tariffs"] if tariff is not None else [])
           + ["ev_fleet", "reinforcement"] + (["contracts"] if contracts is not None else []),
           "demand": {"scale": scale},
           "ev_fleet": {"mode": mode, "flex_price_eur_per_mwh": flex_price, "per_session": per_session,
                        "max_cohorts": max_cohorts},
           "reinforcement": {"binary": binary}}
    if tariff is not None:
        rec["tariffs"] = {"energy_eur_per_mwh": tariff}
    if contracts is not None:
        rec["contracts"] = contracts
    return rec


#: HiGHS tolerances for exact comparisons.  The model is in MW and these feeders carry kW:
#: at HiGHS's defaults (mip_feasibility_tolerance 1e-6) a MIP solution may charge a non-V2G
#: EV at -1 W and pay the flexibility price for it, enough to break monotonicity by ~1e-3
#: relative on a feeder of a few kW
TIGHT = dict(mip_feasibility_tolerance=1e-8, primal_feasibility_tolerance=1e-8, dual_feasibility_tolerance=1e-8)


def solve(inst, rec: dict, *, keep=False):
    """Build and solve with HiGHS at a relative MIP gap of 0 and tight feasibility
    tolerances; the model must be optimal."""
    pm = fp.build_model(inst, rec)
    res = fp.solve(pm, mip_gap=0.0, threads=1, **TIGHT)
    assert res.status == "optimal", (res.status, rec)
    if not keep:
        pm = None
    return pm, res


def close(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-6) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b)) + abs_


def leq(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-6) -> bool:
    """a <= b up to solver accuracy."""
    return a <= b + rel * max(abs(a), abs(b)) + abs_


# ---------------------------------------------------------------------------------------
# quantities computed from the generated input alone
# ---------------------------------------------------------------------------------------
def session_need_kwh(s: Session, v2g_mode: bool) -> float:
    """Energy a session's battery must gain at least (kWh): the requirement, or for a
    V2G-capable session in V2G mode the larger of its requirement and the V2G floor."""
    floor = min(SOC_MIN * s.battery_kwh, s.e_arr_kwh) if (v2g_mode and s.v2g) else s.e_arr_kwh
    return max(s.e_req_kwh, floor) - s.e_arr_kwh


def session_full_kwh(s: Session, dt: float) -> float:
    """Energy an uncontrolled session gains: full power from arrival until full or gone."""
    return min(s.e_arr_kwh + ETA_C * s.charger_kw * s.length * dt, max(s.battery_kwh, s.e_arr_kwh)) - s.e_arr_kwh


def per_ev_mwh(fl: Fleet, per_session) -> float:
    return sum(per_session(s) for s in fl.sessions) / fl.ev_days / 1000.0


# ---------------------------------------------------------------------------------------
# readers of the results
# ---------------------------------------------------------------------------------------
def pv_cost(res, category: str) -> float:
    return float(res.cost_breakdown_eur.get(category, 0.0))


def flex_volume(res, case: Case) -> float:
    """Downward flexibility in the table, weighted as in the objective (discounted MWh)."""
    ev = res.tables["ev_flexibility"]
    w = {y: case.year_weight(k) for k, y in enumerate(case.years)}
    return float((ev["flex_down_mw"] * 365 * case.dt * ev["year"].map(w)).sum())


def battery_gain(res, case: Case) -> dict:
    """(fleet, bus, year) -> energy into the batteries over the day (MWh): η_c x charging -
    discharging / η_d, from the result table."""
    ev = res.tables["ev_flexibility"]
    gain = (ETA_C * ev["charge_mw"] - ev["discharge_mw"] / ETA_D) * case.dt
    return {k: float(v) for k, v in gain.groupby([ev["fleet"], ev["bus"], ev["year"]]).sum().items()}


# ---------------------------------------------------------------------------------------
# hand-picked cases: each property sees at least one example where it binds
# ---------------------------------------------------------------------------------------
def _congested(capex=None, v2g=True) -> Case:
    """b0 - b1 - b2 with evening load at b2 and a fleet whose evening sessions overload l2."""
    sess = (Session(3, 3, 40.0, 11.0, 10.0, 30.0, v2g), Session(4, 2, 60.0, 7.4, 20.0, 30.0, False),
            Session(2, 4, 40.0, 3.7, 8.0, 20.0, v2g))
    return Case(hours=6, horizon=0, n_stages=1, parent=(0, 1), r_ohm=(0.01, 0.02), x_ohm=(0.005, 0.01),
                rating_mva=(0.5, 0.09), load_kw=(0.0, 10.0, 40.0), q_ratio=(0.0, 0.2, 0.3),
                factors=(0.4, 0.5, 0.6, 1.0, 0.9, 0.5), growth=0.0,
                fleets=(Fleet("f0", (2,), sess, 3.0, (10,)),), v_min_pu=0.94, penalties=(10000.0, 10000.0, 1e6),
                capex_eur=capex)


CONGESTED = _congested()
CONGESTED_REINF = _congested(capex=5000.0)
#: b0 - b1 - b2, an evening peak of the base load above l2's rating, V2G EVs plugged in
#: across it with energy to spare (V2G pays here), two stages with load growth
V2G_PEAK = Case(hours=6, horizon=1, n_stages=2, parent=(0, 1), r_ohm=(0.01, 0.01), x_ohm=(0.005, 0.005),
                rating_mva=(0.5, 0.08), load_kw=(0.0, 0.0, 100.0), q_ratio=(0.0, 0.0, 0.1),
                factors=(0.3, 0.4, 0.5, 1.0, 0.6, 0.3), growth=0.05,
                fleets=(Fleet("f0", (2,), (Session(1, 4, 60.0, 11.0, 40.0, 40.0, True),
                                           Session(2, 3, 40.0, 7.4, 10.0, 30.0, False)), 2.0, (10, 12)),),
                v_min_pu=0.95, penalties=(10000.0, 10000.0, 1e6), capex_eur=None)
#: b0 - b1, 40 EVs at b1 (no other load) that need 1.2 MWh a day; at 0.99 pu the line can
#: carry ~0.77 MWh a day within the voltage band (default penalties)
SHED_EV = Case(hours=6, horizon=0, n_stages=1, parent=(0,), r_ohm=(0.05,), x_ohm=(0.01,), rating_mva=(1.0,),
               load_kw=(0.0, 0.0), q_ratio=(0.0, 0.0), factors=(1.0,) * 6, growth=0.0,
               fleets=(Fleet("f0", (1,), (Session(0, 6, 40.0, 7.4, 8.0, 38.0, False),), 1.0, (40,)),),
               v_min_pu=0.99, penalties=(10000.0, 10000.0, 1e6), capex_eur=None)

# ---------------------------------------------------------------------------------------
# the properties
# ---------------------------------------------------------------------------------------
FAST = dict(derandomize=True, deadline=None, database=None, print_blob=True, phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: the slow variants also shrink a failing example (minutes on these models)
SLOW = {**FAST, "phases": list(Phase)}


def check_more_load_never_cheaper(case: Case, s1: float, grow: float, mode: str, price: float, what: str,
                                  binary: bool = True):
    s2 = s1 * grow
    inst = load(case)
    if what == "load":
        _, lo = solve(inst, recipe(mode, price, binary=binary, scale=s1))
        _, hi = solve(inst, recipe(mode, price, binary=binary, scale=s2))
    else:  # more EVs
        _, lo = solve(load(case, s1), recipe(mode, price, binary=binary))
        _, hi = solve(load(case, s2), recipe(mode, price, binary=binary))
    note(f"{what} x{s1} -> {lo.objective_eur}, x{s2} -> {hi.objective_eur}")
    event("zero cost" if abs(hi.objective_eur) < 1e-6 else "positive cost")
    event(f"cost rises with {what}" if hi.objective_eur > lo.objective_eur + 1e-6 else f"cost flat in {what}")
    assert leq(lo.objective_eur, hi.objective_eur), (lo.objective_eur, hi.objective_eur)


more_load_args = dict(case=cases(), s1=st.sampled_from([0.5, 0.8, 1.0]), grow=st.sampled_from([1.05, 1.2, 1.5]),
                      mode=st.sampled_from(["uncontrolled", "smart"]), price=st.sampled_from([0.0, 50.0, 418.0]),
                      what=st.sampled_from(["load", "evs"]))


@settings(max_examples=30, **FAST)
@given(**more_load_args)
@example(case=CONGESTED_REINF, s1=1.0, grow=1.5, mode="smart", price=50.0, what="load")
def test_more_load_never_lowers_the_cost(case, s1, grow, mode, price, what):
    """Scaling every load (demand.scale) or every fleet's EV count up never lowers the
    optimal cost (EVs charging only: V2G could make more EVs an asset).  Binary builds at a
    gap of 0: the LP relaxation is not monotone, as its big-M grow with the flow ranges,
    i.e. with the load (more load, looser relaxation)."""
    check_more_load_never_cheaper(case, s1, grow, mode, price, what)


@pytest.mark.slow
@settings(max_examples=150, **SLOW)
@given(**more_load_args)
def test_more_load_never_lowers_the_cost_slow(case, s1, grow, mode, price, what):
    check_more_load_never_cheaper(case, s1, grow, mode, price, what)


def check_flex_price(case: Case, mode: str, p1: float, step: float, binary: bool):
    p2 = p1 + step
    inst = load(case)
    _, a = solve(inst, recipe(mode, p1, binary=binary))
    _, b = solve(inst, recipe(mode, p2, binary=binary))
    fa, fb = flex_volume(a, case), flex_volume(b, case)
    note(f"price {p1}: {fa} MWh (PV), cost {a.objective_eur}; price {p2}: {fb} MWh, cost {b.objective_eur}")
    event("flexibility used" if fa > 1e-6 else "no flexibility used")
    event("less flexibility at the higher price" if fb < fa - 1e-6 else "same flexibility")
    # the objective charges exactly the table's flexibility at the price
    for res, p, f in ((a, p1, fa), (b, p2, fb)):
        assert close(pv_cost(res, "ev_flexibility"), p * f, abs_=1e-6), (pv_cost(res, "ev_flexibility"), p * f)
    # C_a + p1 F_a <= C_b + p1 F_b and C_b + p2 F_b <= C_a + p2 F_a (both optimal) give
    # (p2 - p1)(F_b - F_a) <= 0, up to the solvers' accuracy on the two objectives
    eps = 1e-6 * (abs(a.objective_eur) + abs(b.objective_eur)) + 1e-3
    assert fb <= fa + eps / step, (fa, fb)
    assert leq(a.objective_eur, b.objective_eur), (a.objective_eur, b.objective_eur)  # a dearer input never helps


flex_price_args = dict(case=cases(), mode=st.sampled_from(["smart", "v2g"]),
                       p1=st.sampled_from([0.0, 10.0, 100.0, 418.0]), step=st.sampled_from([5.0, 50.0, 500.0, 5000.0]),
                       binary=st.booleans())


@settings(max_examples=25, **FAST)
@given(**flex_price_args)
@example(case=CONGESTED, mode="smart", p1=0.0, step=5000.0, binary=False)
@example(case=CONGESTED_REINF, mode="v2g", p1=10.0, step=500.0, binary=True)
@example(case=V2G_PEAK, mode="v2g", p1=0.0, step=500.0, binary=False)
def test_higher_flex_price_never_buys_more_flexibility(case, mode, p1, step, binary):
    """ev_fleet.flex_price_eur_per_mwh up: the (discounted) downward flexibility the plan
    uses never increases, and the cost never falls."""
    check_flex_price(case, mode, p1, step, binary)


@pytest.mark.slow
@settings(max_examples=120, **SLOW)
@given(**flex_price_args)
def test_higher_flex_price_never_buys_more_flexibility_slow(case, mode, p1, step, binary):
    check_flex_price(case, mode, p1, step, binary)


def check_contract_fees(case: Case, fee: str, f1: float, step: float, start: int, width: int, binary: bool):
    window = {"window_start_h": int(start * case.dt), "window_hours": int(width * case.dt)}
    other = {"utilisation_eur_per_mwh": 100.0} if fee == "availability_eur_per_mw_h" \
        else {"availability_eur_per_mw_h": 5.0}
    inst = load(case)
    out = []
    for f in (f1, f1 + step):
        _, res = solve(inst, recipe("smart", 0.0, binary=binary, contracts={**window, **other, fee: f}))
        c = res.tables.get("contracts")
        w = {y: case.year_weight(k) for k, y in enumerate(case.years)}
        if c is None or c.empty:
            vol = 0.0
        elif fee == "utilisation_eur_per_mwh":  # activated MWh, discounted as in the objective
            vol = float((c["activated_mwh"] * c["year"].map(w)).sum())
        else:  # contracted MW, per year it is paid for
            vol = float((c["contracted_mw"] * c["year"].map(w)).sum())
        out.append((res.objective_eur, vol))
    (ca, va), (cb, vb) = out
    note(f"{fee} {f1}: {va}, cost {ca}; {f1 + step}: {vb}, cost {cb}")
    event("contracted" if va > 1e-6 else "nothing contracted")
    eps = 1e-6 * (abs(ca) + abs(cb)) + 1e-3
    scale = step * (365 * width * case.dt if fee == "availability_eur_per_mw_h" else 1.0)
    assert vb <= va + eps / scale, (va, vb)
    assert leq(ca, cb), (ca, cb)


contract_args = dict(case=cases(), fee=st.sampled_from(["utilisation_eur_per_mwh", "availability_eur_per_mw_h"]),
                     f1=st.sampled_from([0.0, 5.0, 60.0]), step=st.sampled_from([10.0, 100.0, 1000.0]),
                     start=st.integers(0, 7), width=st.integers(1, 4), binary=st.booleans())


@settings(max_examples=15, **FAST)
@given(**contract_args)
@example(case=CONGESTED, fee="utilisation_eur_per_mwh", f1=0.0, step=1000.0, start=3, width=2, binary=False)
@example(case=CONGESTED, fee="availability_eur_per_mw_h", f1=0.0, step=100.0, start=3, width=2, binary=False)
def test_higher_contract_fee_never_buys_more_flexibility(case, fee, f1, step, start, width, binary):
    """contracts: a higher utilisation fee never increases the activated energy, a higher
    availability fee never increases the contracted capacity (both discounted)."""
    assume(start < case.hours and width <= case.hours)
    check_contract_fees(case, fee, f1, step, start, width, binary)


@pytest.mark.slow
@settings(max_examples=80, **SLOW)
@given(**contract_args)
def test_higher_contract_fee_never_buys_more_flexibility_slow(case, fee, f1, step, start, width, binary):
    assume(start < case.hours and width <= case.hours)
    check_contract_fees(case, fee, f1, step, start, width, binary)


def check_flexibility_never_hurts(case: Case, price: float, binary: bool, max_cohorts: int, firm_only: bool = True):
    inst = load(case)
    cost, shed = {}, {}
    for key, rec in (("uncontrolled", recipe("uncontrolled", price, binary=binary)),
                     ("smart", recipe("smart", price, binary=binary, max_cohorts=max_cohorts)),
                     ("smart_exact", recipe("smart", price, binary=binary, per_session=True)),
                     ("v2g_exact", recipe("v2g", price, binary=binary, per_session=True))):
        res = solve(inst, rec)[1]
        cost[key], shed[key] = res.objective_eur, res.violations["unserved_mwh"]
    note(f"cost {cost}\nunserved MWh {shed}")
    event("flexibility saves" if cost["smart_exact"] < cost["uncontrolled"] - 1e-6 else "flexibility saves nothing")
    # the cohorts relax the per-session envelopes, and V2G only adds options
    assert leq(cost["smart"], cost["smart_exact"]), cost
    assert leq(cost["v2g_exact"], cost["smart_exact"]), cost
    # the uncontrolled schedule is a feasible (and flexibility-free) smart schedule, so
    # smart charging is never dearer -- provided the uncontrolled plan serves its load (a
    # plan that sheds load may be shedding the EVs' charging, which the smart fleet must
    # deliver: see test_forbidding_flexibility_never_lowers_the_cost_when_load_is_shed)
    if firm_only and shed["uncontrolled"] > 0:
        event("uncontrolled plan sheds load: smart vs uncontrolled not compared")
        return
    assert leq(cost["smart_exact"], cost["uncontrolled"]), cost


never_hurts_args = dict(case=cases(), price=st.sampled_from([0.0, 30.0, 418.0]), binary=st.just(True),
                        max_cohorts=st.sampled_from([0, 1, 2]))


@settings(max_examples=20, **FAST)
@given(**never_hurts_args)
@example(case=CONGESTED_REINF, price=30.0, binary=True, max_cohorts=1)
@example(case=V2G_PEAK, price=418.0, binary=True, max_cohorts=1)
def test_forbidding_flexibility_never_lowers_the_cost(case, price, binary, max_cohorts):
    """cost(EVs uncontrolled) >= cost(smart, per session) >= cost(smart, cohorts), and
    cost(V2G, per session) <= cost(smart, per session); binary builds at a gap of 0."""
    check_flexibility_never_hurts(case, price, binary, max_cohorts)


@pytest.mark.slow
@settings(max_examples=100, **SLOW)
@given(**never_hurts_args)
def test_forbidding_flexibility_never_lowers_the_cost_slow(case, price, binary, max_cohorts):
    check_flexibility_never_hurts(case, price, binary, max_cohorts)


#: b0 - b1, one EV at b1 that needs nothing but charges 3.7 kW on arrival uncontrolled; l1
#: (1 kVA) must be replaced (cable catalogue)
RELAXED_M = Case(hours=4, horizon=0, n_stages=1, parent=(0,), r_ohm=(0.540541,), x_ohm=(0.108108,),
                 rating_mva=(0.001,), load_kw=(0.0, 0.0), q_ratio=(0.0, 0.0), factors=(0.2,) * 4, growth=0.0,
                 fleets=(Fleet("f0", (1,), (Session(0, 1, 20.0, 3.7, 1.0, 1.0, False),), 1.0, (1,)),),
                 v_min_pu=0.99, penalties=(10000.0, 10000.0, 1e6), capex_eur=1000.0)
RELAXED_M_BUG = ("fixed library bug (regression case): the LP relaxation (reinforcement.binary = false, e.g. flex_lead_time_relaxed) "
                 "depends on the EV mode through the big-M of the disjunctive voltage drop: add_ev_fleet calls "
                 "hub.bound_injection for every mode, so with mode = 'uncontrolled' the flow range counts the fixed "
                 "EV load twice (in p_withdraw and in max_injection), which loosens M and makes the uncontrolled "
                 "reference cheaper than smart charging (negative value of flexibility)")


@settings(max_examples=10, **FAST)
@given(case=cases(), price=st.sampled_from([0.0, 30.0]), binary=st.just(False), max_cohorts=st.just(0))
@example(case=RELAXED_M, price=30.0, binary=False, max_cohorts=0)
def test_forbidding_flexibility_never_lowers_the_cost_lp_relaxation(case, price, binary, max_cohorts):
    """The same property on the LP relaxation (fractional builds)."""
    check_flexibility_never_hurts(case, price, binary, max_cohorts)


SHED_EV_BUG = ("fixed library bug (regression case): with ev_fleet.mode = 'uncontrolled' (and 'tariff') the EVs' fixed charging is "
               "withdrawn with hub.withdraw like any load, so LinDistFlow may shed it at VOLL; a smart fleet's "
               "charging cannot be shed. Where the network cannot carry the EVs' energy, the uncontrolled "
               "reference sheds the EVs (EVs leave without their energy, while ev_flexibility still reports "
               "full charging) and is cheaper than smart charging: a negative value of flexibility")


@settings(max_examples=10, **FAST)
@given(**never_hurts_args)
@example(case=SHED_EV, price=0.0, binary=False, max_cohorts=0)
def test_forbidding_flexibility_never_lowers_the_cost_when_load_is_shed(case, price, binary, max_cohorts):
    """The same property without the exemption for plans that shed load."""
    check_flexibility_never_hurts(case, price, binary, max_cohorts, firm_only=False)


def check_conservation(case: Case, mode: str, tariff: float, per_session: bool, max_cohorts: int, binary: bool):
    inst = load(case)
    _, res = solve(inst, recipe(mode, 0.0, binary=binary, per_session=per_session, max_cohorts=max_cohorts,
                                tariff=tariff))
    gain = battery_gain(res, case)
    expected = {}
    for fl in case.fleets:
        if mode == "uncontrolled":
            per_ev = per_ev_mwh(fl, lambda s: session_full_kwh(s, case.dt))
        else:  # the owners pay for every MWh (and lose on a V2G round trip): no more than needed
            per_ev = per_ev_mwh(fl, lambda s: session_need_kwh(s, mode == "v2g"))
        for b in fl.buses:
            for k, y in enumerate(case.years):
                expected[(fl.name, f"b{b}", y)] = fl.evs[k] * per_ev
    note(f"battery gain {gain}\nexpected {expected}")
    assert set(gain) == set(expected)
    for key, e in expected.items():
        assert close(gain[key], e, abs_=1e-7), (key, gain[key], e)
    # grid energy in = energy into the batteries + V2G energy out + losses, losses >= 0
    ev = res.tables["ev_flexibility"]
    e_in, e_out = float(ev["charge_mw"].sum() * case.dt), float(ev["discharge_mw"].sum() * case.dt)
    losses = e_in - e_out - sum(gain.values())
    assert losses >= -1e-9
    assert close(losses, (1 - ETA_C) * e_in + (1 / ETA_D - 1) * e_out, abs_=1e-9)
    event("V2G used" if e_out > 1e-9 else "no V2G")
    # the owners' bill is the tariff times the net energy drawn, discounted
    w = {y: case.year_weight(k) for k, y in enumerate(case.years)}
    bill = float((tariff * (ev["charge_mw"] - ev["discharge_mw"]) * 365 * case.dt * ev["year"].map(w)).sum())
    assert close(pv_cost(res, "ev_energy"), bill, abs_=1e-6), (pv_cost(res, "ev_energy"), bill)


conservation_args = dict(case=cases(), mode=st.sampled_from(["uncontrolled", "smart", "v2g"]),
                         tariff=st.sampled_from([50.0, 270.0]), per_session=st.booleans(),
                         max_cohorts=st.sampled_from([0, 1, 2]), binary=st.booleans())


@settings(max_examples=25, **FAST)
@given(**conservation_args)
@example(case=CONGESTED, mode="v2g", tariff=50.0, per_session=False, max_cohorts=1, binary=False)
@example(case=V2G_PEAK, mode="v2g", tariff=50.0, per_session=False, max_cohorts=0, binary=False)
@example(case=V2G_PEAK, mode="v2g", tariff=270.0, per_session=True, max_cohorts=0, binary=False)
def test_fleet_energy_is_conserved(case, mode, tariff, per_session, max_cohorts, binary):
    """Per fleet, bus and year: η_c x grid charging - V2G export / η_d = what the sessions
    need (smart, V2G: owners pay per MWh, so no more) or take (uncontrolled: until full)."""
    check_conservation(case, mode, tariff, per_session, max_cohorts, binary)


@pytest.mark.slow
@settings(max_examples=120, **SLOW)
@given(**conservation_args)
def test_fleet_energy_is_conserved_slow(case, mode, tariff, per_session, max_cohorts, binary):
    check_conservation(case, mode, tariff, per_session, max_cohorts, binary)


def check_every_ev_served(case: Case, mode: str, price: float, binary: bool):
    """Per-session model: rebuild every session's battery from the solved charging powers
    (one cohort per session, in file order, per unit = fleet x bus x year)."""
    inst = load(case)
    pm, res = solve(inst, recipe(mode, price, binary=binary, per_session=True), keep=True)
    blk = pm.blocks["ev_fleet"][1]
    units = blk._flex["units"]
    names = {fl.name: fl for fl in case.fleets}
    H = case.hours
    ev = res.tables["ev_flexibility"].set_index(["fleet", "bus", "year", "hour"])
    j = 0
    served = 0
    assert len(units) == sum(len(fl.buses) * len(case.years) for fl in case.fleets)
    for u in units:
        fleet = inst.ev_fleets[u.fleet]
        fl = names[fleet.name]
        year = int(pm.index.op_year[u.first_op])
        bus = inst.network.buses["name"].iloc[u.bus]
        n = fl.evs[case.years.index(year)]
        assert u.n_evs == pytest.approx(n)
        to_kw = fl.ev_days / n * 1000.0  # fleet MW -> kW of the one sample session
        charge_by_hour = np.zeros(H)
        dis_by_hour = np.zeros(H)
        for s in fl.sessions:
            steps = range(j, j + s.length)
            ch = np.array([pyo.value(blk.p_ch[i]) for i in steps])
            dis = np.array([pyo.value(blk.p_dis[i]) if i in blk.p_dis else 0.0 for i in steps])
            j += s.length
            clock = (s.start + np.arange(s.length)) % H
            np.add.at(charge_by_hour, clock, ch)
            np.add.at(dis_by_hour, clock, dis)
            e = s.e_arr_kwh + np.concatenate([[0.0], np.cumsum(ETA_C * ch - dis / ETA_D) * case.dt * to_kw])
            tol = 1e-6 * s.battery_kwh
            can_v2g = mode == "v2g" and s.v2g
            floor = min(SOC_MIN * s.battery_kwh, s.e_arr_kwh) if can_v2g else s.e_arr_kwh
            assert e[-1] >= s.e_req_kwh - tol, ("leaves short", s, e)
            assert np.all(e <= max(s.battery_kwh, s.e_arr_kwh) + tol), ("overfull", s, e)
            assert np.all(e >= floor - tol), ("below its floor", s, e)
            assert np.all(ch * to_kw <= s.charger_kw * (1 + 1e-9) + 1e-9), ("above the charger", s, ch * to_kw)
            assert np.all(ch * to_kw >= -1e-6), ("negative charging", s, ch * to_kw)
            assert np.all(dis * to_kw <= (s.charger_kw if can_v2g else 0.0) * (1 + 1e-9) + 1e-9), ("discharges", s)
            served += e[-1] > s.e_arr_kwh + 1e-6
        # the table reports the sessions' powers at their clock hours
        for h in range(H):
            row = ev.loc[(fleet.name, bus, year, h)]
            assert close(float(row["charge_mw"]), charge_by_hour[h], abs_=1e-9)
            assert close(float(row["discharge_mw"]), dis_by_hour[h], abs_=1e-9)
    assert j == len(blk.p_ch)
    event("some sessions charge" if served else "no session charges")


served_args = dict(case=cases(), mode=st.sampled_from(["smart", "v2g"]), price=st.sampled_from([0.0, 30.0, 418.0]),
                   binary=st.booleans())


@settings(max_examples=20, **FAST)
@given(**served_args)
@example(case=CONGESTED, mode="v2g", price=30.0, binary=False)
@example(case=V2G_PEAK, mode="v2g", price=418.0, binary=False)
def test_every_departing_ev_is_served(case, mode, price, binary):
    check_every_ev_served(case, mode, price, binary)


@pytest.mark.slow
@settings(max_examples=100, **SLOW)
@given(**served_args)
def test_every_departing_ev_is_served_slow(case, mode, price, binary):
    check_every_ev_served(case, mode, price, binary)


def check_limits(case: Case, mode: str, price: float, binary: bool):
    inst = load(case)
    _, res = solve(inst, recipe(mode, price, binary=binary))
    voll, pen_o, pen_v = case.penalties
    w = {y: case.year_weight(k) for k, y in enumerate(case.years)}
    h_year = 365 * case.dt  # hours per year each step stands for
    lo2, hi2 = case.v_min_pu ** 2, 1.1 ** 2
    # -- voltages: every deviation from the band is paid for, and only deviations are -----
    V = res.voltages
    v2 = V["v_pu"].to_numpy() ** 2
    weight = h_year * V["year"].map(w).to_numpy()
    dev2 = np.clip(lo2 - v2, 0, None) + np.clip(v2 - hi2, 0, None)
    paid_v = pv_cost(res, "penalty_voltage")
    tol_v = pen_v * 1e-7 * weight.sum()
    assert close(paid_v, pen_v * float((dev2 * weight).sum()), abs_=tol_v), (paid_v, pen_v * (dev2 * weight).sum())
    dev = np.clip(np.maximum(case.v_min_pu - V["v_pu"], V["v_pu"] - 1.1), 0, None)
    assert abs(res.violations["max_voltage_deviation_pu"] - float(dev.max())) <= 1e-6
    if dev.max() > 1e-6:
        assert paid_v > 0 and res.violations["max_voltage_deviation_pu"] > 0
        event("voltage band violated (reported)")
    else:
        assert paid_v <= tol_v
    # -- thermal: an overload is paid for at least its excess MVA (at most the polygon's) ---
    L = res.line_loading
    s = np.hypot(L["p_mw"], L["q_mvar"]).to_numpy()
    R = L["rating_mva"].to_numpy()
    weight = h_year * L["year"].map(w).to_numpy()
    paid_o = pv_cost(res, "penalty_overload")
    tol_o = pen_o * 1e-7 * weight.sum()
    lower = pen_o * float((np.clip(s - R, 0, None) * weight).sum())
    upper = pen_o * float((np.clip(s / math.cos(math.pi / POLY) - R, 0, None) * weight).sum())
    assert lower - tol_o <= paid_o <= upper + tol_o, (lower, paid_o, upper)
    over = float(np.clip(100 * s / R - 100, 0, None).max())
    assert abs(res.violations["max_overload_pct"] - over) <= 1e-3
    if over > 1e-4:
        assert paid_o > 0 and res.violations["max_overload_pct"] > 0
        event("line overloaded (reported)")
    # -- unserved energy: paid at VOLL, discounted ----------------------------------------
    unserved = res.violations["unserved_mwh"]
    paid_u = pv_cost(res, "penalty_unserved")
    last = HORIZONS[case.n_stages][case.horizon][3][-1][-1]
    assert voll * unserved * (1 + DISCOUNT) ** -(last - 2025) - voll * 1e-5 <= paid_u <= voll * unserved + voll * 1e-5
    if unserved > 1e-6:
        event("load shed (reported)")
    # -- physics, recomputed from the input and the EVs' schedule -------------------------
    ev = res.tables["ev_flexibility"]
    ev_net = ev.groupby(["bus", "year", "hour"])["scheduled_mw"].sum()
    builds = res.builds
    integral = builds.empty or bool((builds["share"] > 1 - 1e-6).all())
    new_rating = math.sqrt(3) * VN_KV * NEW_I_KA
    flows = L.set_index(["line", "year", "hour"])
    volts = V.set_index(["bus", "year", "hour"])["v_pu"]
    for k, y in enumerate(case.years):
        replaced = set(builds.loc[builds["year"] <= y, "asset"]) if integral else set()
        for h in range(case.hours):
            p = np.array([case.load_kw[b] / 1000 * case.factors[h] * case.growth_factor(k) for b in range(case.n_buses)])
            q = p * np.array(case.q_ratio)
            for b in range(1, case.n_buses):
                p[b] += float(ev_net.get((f"b{b}", y, h), 0.0))
            P = [p[case.below(i)].sum() for i in range(case.n_buses - 1)]
            Q = [q[case.below(i)].sum() for i in range(case.n_buses - 1)]
            for i in range(case.n_buses - 1):
                row = flows.loc[(f"l{i + 1}", y, h)]
                if unserved <= 1e-9:  # no shedding: the flow is everything withdrawn below
                    assert close(float(row["p_mw"]), P[i], abs_=1e-7), (i, y, h, float(row["p_mw"]), P[i])
                    assert close(float(row["q_mvar"]), Q[i], abs_=1e-7), (i, y, h, float(row["q_mvar"]), Q[i])
                else:  # shedding only lowers it
                    assert float(row["p_mw"]) <= P[i] + 1e-7
                if integral:
                    rating = new_rating if f"l{i + 1}" in replaced else case.rating_mva[i]
                    assert close(float(row["rating_mva"]), rating, abs_=1e-9)
            if unserved <= 1e-9 and integral:  # LinDistFlow along every path, from the flows
                for b in range(1, case.n_buses):
                    drop = sum(2 * ((NEW_R if f"l{i + 1}" in replaced else case.r_ohm[i]) * P[i]
                                    + (NEW_X if f"l{i + 1}" in replaced else case.x_ohm[i]) * Q[i]) / VN_KV ** 2
                               for i in case.path(b))
                    assert close(float(volts[(f"b{b}", y, h)]) ** 2, 1 - drop, abs_=1e-6), (b, y, h)
    if paid_v <= tol_v and paid_o <= tol_o and unserved <= 1e-9:
        event("all limits met")


limits_args = dict(case=cases(), mode=st.sampled_from(["uncontrolled", "smart", "v2g"]),
                   price=st.sampled_from([0.0, 418.0]), binary=st.booleans())


@settings(max_examples=25, **FAST)
@given(**limits_args)
@example(case=CONGESTED, mode="uncontrolled", price=0.0, binary=False)
@example(case=CONGESTED_REINF, mode="smart", price=418.0, binary=True)
def test_limits_are_met_or_reported(case, mode, price, binary):
    """Voltages and flows recomputed from the input and the EV schedule match the result
    tables; every voltage outside the band, every overload and every shed MWh is in the
    violations and paid at its penalty, and no penalty is paid without one."""
    check_limits(case, mode, price, binary)


@pytest.mark.slow
@settings(max_examples=120, **SLOW)
@given(**limits_args)
def test_limits_are_met_or_reported_slow(case, mode, price, binary):
    check_limits(case, mode, price, binary)
