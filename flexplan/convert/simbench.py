"""SimBench grids (and CIGRE LV) -> flexplan instance folders.

    python -m flexplan.convert.simbench                  # (re)write every shipped SimBench instance
    python -m flexplan.convert.simbench sb_lv_urban cigre_lv
    python -m flexplan.convert.simbench --code 1-LV-rural2--2-sw --out instances/my_rural2
           [--classes profile|group] [--ev fleets|loads] [--after-2034 trend|hold] [--no-year]

Needs the ``simbench`` package (1.6.3 ships its data; nothing is downloaded).  What is converted,
and how (every choice is also written into the instance's ``instance.toml`` as a comment):

**Which net.** SimBench codes ``1-<grid>--2-sw``: scenario 2 ("2034": the SimBench future
scenario with heat pumps, EV chargers, more PV and storage; scenario 0 is 2016, scenario 1
2024), ``sw`` = the switches as SimBench sets them (open loop switches open the MV rings).  The
instance's loads are scenario 2's; scenario 1 only sets the growth path and the EV counts of
2024 (see *Growth* and *EV fleets*).

**Grid** (written as CSV: ``buses.csv``, ``lines.csv``, ``trafos.csv``, ``loads.csv``), by the
conversion the runtime loader uses for ``source = "pandapower"``
(:func:`flexplan.instance.network_io.pandapower_radial`): out-of-service elements and
lines / transformers behind an open switch are left out, buses joined by a closed bus-bus
switch are merged (the bus with the lowest pandapower index keeps its name), buses without
load no longer reached from the slack are dropped, a loop, a load no slack feeds or a second
external grid is an error (a meshed grid such as 1-MV-urban--2-no_sw is rejected, naming the
branches that close them), three-winding transformers are left out; unlike the runtime,
branches in parallel between the same two buses are merged
into one (transformers: ratings added, impedances in parallel, so two equal 25 MVA units are one
50 MVA branch with the same vk %; lines likewise), lines are ``(r|x)_ohm_per_km * length_km /
parallel`` with rating ``sqrt(3) vn max_i_ka parallel`` MVA.  The MV/LV (or HV/MV)
transformer stays a transformer (``trafos.csv``: sn_mva, vk_percent, vkr_percent); its
magnetising branch (pfe_kw, i0_percent), the lines' capacitance and the phase shift are not
modelled (LinDistFlow is a balanced series-impedance model).  A fixed off-nominal tap of the
transformers under the slack (SimBench LV grids have tap_pos = -1, 0 or +1 at 2.5 %/step) is
folded into ``slack_vm_pu``: the LV side sees ``vm_ext_grid / t`` with ``t = 1 + (tap_pos -
tap_neutral) tap_step_percent / 100`` (HV-side tap), so the slack bus's own voltage in flexplan
is the external grid's voltage referred to the LV side.  (simbench 1.6.3 still writes
pandapower 2's ``tap_phase_shifter = False`` and leaves pandapower 3's ``tap_changer_type``
empty, so pandapower 3.5 silently ignores these taps; SimBench's data sets them, and the AC
comparison in tests/test_simbench.py sets ``tap_changer_type = "Ratio"`` on the original net.)
MV cables carry much charging current (1.7 Mvar in 1-MV-rural, about the reactive load at the
peak): for lines of 1 kV and above the capacitance ``c_nf_per_km`` becomes constant reactive
injections, half a line's at each end, as loads of class ``line_charging`` (p_mw 0, q_mvar < 0,
profile 1 every hour, growth 1); in LV grids it is negligible (about 4e-5 Mvar/km) and left out.  Static generators (PV, wind, biomass),
storage units and ``gen`` are **left out**: flexplan's network reads loads only (a load-driven
planning benchmark: at the winter evening peak PV is zero anyway; in MV rural the wind farms
would lower the peak import).

**Loads.**  One row per SimBench load: ``bus, p_mw, q_mvar, class, name``; ``p_mw`` / ``q_mvar``
are SimBench's rated values and the load class is the load's SimBench profile name (``H0-A``
household, ``G1-B`` commercial, ``L2-A`` agricultural, ``Air_Parallel_2`` / ``Soil_Alternative_2``
heat pumps, ``lv_rural1`` aggregated LV grids in MV, ...), so that every load follows its own
profile and the per-bus load of any hour is SimBench's.  ``--classes group`` instead merges the
profiles into a few classes (household, commercial, agricultural, heat_pump, ev, aggregated LV
grids: each the p_mw-weighted mean of its profiles: the total per class is exact, the per-bus
split of an hour is not).  flexplan scales q with the active-power profile (a constant power
factor per load), so ``q_mvar`` is SimBench's rated q_mvar times k, the least-squares factor of
the profile's reactive ``*_qload`` on its active ``*_pload`` over the year's hours (:func:`reactive_factors`;
1 for the heat pumps, whose profiles are proportional, about 0.3 to 0.6 for households, 0 for EV
chargers, which SimBench runs at cos phi 1): SimBench's reactive profiles are only weakly
correlated with the active ones, so an hour's Q differs (at the peak hour by 10-25 %).

**Profiles.**  SimBench's normalised ``<profile>_pload`` (15 min, the leap year 2016) averaged to
hours, 96 consecutive quarter-hours a day from 1 January 00:00: the hours are CET throughout
(SimBench's time stamps are local time, so from 27 March to 30 October its clock is one hour
ahead of the instance's; flexplan's SimBench EV profiles count steps the same way, so loads and
chargers stay aligned); 29 February is dropped: ``profiles_year.csv`` = 365 days x 24 h, weight 1, day names
``2016-MM-DD``, one column per class (6 decimals, SimBench's own precision).  ``profiles.csv``
(used as shipped) holds five days: the day of the year's highest hourly fixed load (weight 1) and
the medoid (the day nearest to the group's mean, on the p_mw-weighted class profiles) of winter
weekdays, winter weekends, summer weekdays and summer weekends (winter = October to March, summer
= April to September, weekend = Saturday and Sunday, no holidays), each weighted by its group's
day count (the peak day's group one less): weights sum to 365.  For more days reduce
``profiles_year.csv`` with ``instances/tools/reduce_profiles.py`` (tsam).

**Growth** (``growth.csv``, per class): SimBench adds heat pumps and EV chargers between
scenario 1 (2024) and scenario 2 (2034), and scales households slightly down.  Every class's
factor is r = (peak of the class's total in scenario 1) / (peak in scenario 2) in 2024 (0 for a
class new in scenario 2), 1 in 2034, linear in between; after 2034 ``trend`` (default) continues
the same line to 2044 (an assumption: SimBench ends in 2034), ``hold`` keeps 1.

**EV fleets** (LV grids): every SimBench charger load (profile ``HLS_*`` home, ``APLS_*``
workplace / public; one load = one charger = one EV, its p_mw the charger's rating) becomes part
of an ``[[ev_fleets]]`` with ``simbench_profile`` = its profile: sessions cut from that charger's
year (:mod:`flexplan.ev.profiles`), uncontrolled or shifted by the recipe.  Chargers of the same
profile and the same counts are one fleet over their buses; the EVs per bus are scenario 1's
(2024) and scenario 2's (2034) charger count at that bus and profile, linear between, continued
to 2044 like the growth (``trend``: twice the 2024-2034 increase) or held (``hold``).
``--ev loads`` keeps the chargers as fixed loads with their profile classes instead (exact
SimBench loads every hour, no flexibility).

**Catalogue** (``[reinforcement]``): cables NAYY 4x150SE / 4x240SE 0.6/1 kV (LV) and NA2XS2Y
1x185 / 1x240 RM/25 12/20 kV (MV) with SimBench's standard-type r, x, max_i; MV/LV transformers
0.25 / 0.4 / 0.63 MVA 20/0.4 kV and a second 0.63 MVA unit in parallel; HV/MV 2 x 40 MVA.
Costs: eDisGo's default cost configuration (``config_costs_default.cfg``, from the dena
Verteilnetzstudie 2012): cable incl. earthworks LV 60 kEUR/km rural, 100 urban; MV 80 rural,
140 urban; MV/LV transformer 10 kEUR, HV/MV 1000 kEUR; the larger cross-section +10 % and the
smaller transformers scaled down are assumptions (stated in the TOML).

The module also writes ``cigre_lv`` (:func:`write_cigre_lv`): pandapower's CIGRE LV network
(``source = "pandapower"``) with SimBench profiles and line ratings (see its docstring).
"""
from __future__ import annotations

import argparse
import copy
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: shipped instance folder -> SimBench code (scenario 2, switches as SimBench sets them)
GRIDS = {
    "sb_lv_rural": "1-LV-rural1--2-sw",
    "sb_lv_semiurb": "1-LV-semiurb4--2-sw",
    "sb_lv_urban": "1-LV-urban6--2-sw",
    "sb_mv_rural": "1-MV-rural--2-sw",
}
SCENARIO_YEAR = {0: 2016, 1: 2024, 2: 2034}
EV_PREFIXES = ("HLS_", "APLS_")
PROFILE_YEAR = 2016  # SimBench's profiles are the (leap) year 2016, 15-minute steps
STEPS_PER_HOUR = 4
DECIMALS = 8  # SimBench's LoadProfile.csv has 6 decimals: hourly means of 4 values are exact with 8
CHARGING_CLASS = "line_charging"
CHARGING_MIN_KV = 1.0  # line capacitance becomes reactive injections on lines of this voltage and above

BASE_YEAR, END_YEAR, STAGES = 2025, 2044, (2025, 2030, 2035, 2040)


# --------------------------------------------------------------------------- grid
@dataclass
class Grid:
    """A SimBench net as flexplan CSV tables (see the module docstring for the rules).

    ``buses`` (name, vn_kv), ``lines`` (name, from_bus, to_bus, r_ohm, x_ohm, rating_mva,
    length_km), ``trafos`` (name, hv_bus, lv_bus, sn_mva, vk_percent, vkr_percent), ``loads``
    (bus, p_mw, q_mvar, class, name, profile, pp_index: every in-service load, EV chargers
    included), ``bus_of``: pandapower bus index -> flexplan bus name (merged buses share one),
    ``slack_bus``, ``slack_vm_pu`` (the external grid's, referred through a fixed tap),
    ``tap_ratio`` t, ``charging``: (bus, q_mvar) the lines' shunt capacitance at nominal voltage
    (half a line's at each end; negative: an injection) for lines of ``CHARGING_MIN_KV`` and above,
    ``notes``: what was dropped or merged."""

    code: str
    buses: pd.DataFrame
    lines: pd.DataFrame
    trafos: pd.DataFrame
    loads: pd.DataFrame
    bus_of: dict
    slack_bus: str
    slack_vm_pu: float
    ext_grid_vm_pu: float
    tap_ratio: float = 1.0
    charging: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["bus", "q_mvar"]))
    line_types: dict = field(default_factory=dict)
    trafo_types: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def is_ev(self) -> np.ndarray:
        return self.loads["profile"].str.startswith(EV_PREFIXES).to_numpy()


def _name(x, fallback: str) -> str:
    return str(x) if isinstance(x, str) and x else fallback


def tap_ratio(tr) -> float:
    """Off-nominal voltage ratio t of a two-winding transformer row (LV side sees V_hv / t)."""
    t = 1.0
    pos, neutral, step = tr.get("tap_pos"), tr.get("tap_neutral"), tr.get("tap_step_percent")
    if pos is not None and step is not None and not (pd.isna(pos) or pd.isna(step)):
        n = (float(pos) - (0.0 if neutral is None or pd.isna(neutral) else float(neutral))) * float(step) / 100.0
        side = tr.get("tap_side")
        t = 1.0 + n if side in ("hv", None) or pd.isna(side) else 1.0 / (1.0 + n)
    return t


def convert_grid(net, code: str = "") -> Grid:
    """The radial part of a pandapower / SimBench net below its external grid (see module docstring).

    The network itself (switches, merged parallels, reachability, loop checks) is
    :func:`flexplan.instance.network_io.pandapower_radial`, the conversion the runtime loader uses;
    this adds the SimBench specifics: loads with their profiles, the fixed tap below the slack,
    line charging and the notes for ``instance.toml``."""
    from ..instance.network_io import pandapower_radial

    eg = [r for r in net.ext_grid.itertuples() if bool(r.in_service) and r.bus in net.bus.index
          and bool(net.bus.at[r.bus, "in_service"])]
    if len(eg) != 1:
        raise ValueError(f"{code}: expected one external grid in service, found {len(eg)}")
    rad = pandapower_radial(net, code, merge_parallel=True, unsupported="leave_out", bus_fallback="bus_{}")
    notes = list(rad.notes)
    names = rad.network.buses["name"].tolist()
    slack = names[int(rad.network.slack["bus"].iloc[0])]
    br = rad.branches.assign(a=[names[a] for a in rad.branches["a"]], b=[names[b] for b in rad.branches["b"]])
    line_br, trafo_br = br[br["kind"] == "line"], br[br["kind"] == "transformer"]

    # per pandapower element: line charging (Q = V^2 w C, Mvar with kV and F; pandapower's pi model,
    # half at each end), the fixed tap ratio of the transformers, the standard types
    q_line, taps, types = {}, {}, {"line": [], "transformer": []}
    for e in rad.taken.itertuples():
        if e.kind == "line":
            ln = net.line.loc[e.pp_index]
            par = float(ln.get("parallel", 1) or 1)
            vn = float(net.bus.at[ln.from_bus, "vn_kv"])
            c_nf = float(ln.get("c_nf_per_km", 0.0) or 0.0)
            q_line[e.pp_index] = vn ** 2 * 2 * math.pi * float(net.f_hz) * c_nf * 1e-9 * float(ln.length_km) * par
        else:
            tr = net.trafo.loc[e.pp_index]
            # nominal-ratio mismatch between the transformer and its buses counts as a tap, too
            ratio = (float(tr.vn_hv_kv) / float(net.bus.at[tr.hv_bus, "vn_kv"])) / \
                    (float(tr.vn_lv_kv) / float(net.bus.at[tr.lv_bus, "vn_kv"]))
            taps[e.pp_index] = (e.name, tap_ratio(tr) * ratio)
        if e.reached:  # before merging parallels: the SimBench elements
            table = net.line if e.kind == "line" else net.trafo
            types[e.kind].append(_name(table.loc[e.pp_index].get("std_type"), ""))

    # a fixed tap of the transformer(s) right below the slack -> slack voltage referred to the LV side
    under = [els for els, a, b in zip(trafo_br["elements"], trafo_br["a"], trafo_br["b"]) if slack in (a, b)]
    ts = {round(np.prod([taps[i][1] for i in els]) ** (1 / len(els)), 12) for els in under}
    t = ts.pop() if len(ts) == 1 else 1.0
    if ts:
        notes.append("transformers below the slack have different taps: taps ignored")
    below = {i for els in under for i in els}
    other = [n for i, (n, v) in taps.items() if abs(v - 1) > 1e-12 and i not in below]
    if other:
        notes.append(f"off-nominal taps of {', '.join(other)} ignored (not below the slack)")
    vm_eg = float(eg[0].vm_pu)

    buses = rad.network.buses[["name", "vn_kv"]].reset_index(drop=True)
    lines = pd.DataFrame({"name": line_br["name"], "from_bus": line_br["a"], "to_bus": line_br["b"],
                          "r_ohm": line_br["r_ohm"], "x_ohm": line_br["x_ohm"], "rating_mva": line_br["rating_mva"],
                          "length_km": line_br["length_km"]}).reset_index(drop=True)
    trafos = pd.DataFrame({"name": trafo_br["name"], "hv_bus": trafo_br["a"], "lv_bus": trafo_br["b"],
                           "sn_mva": trafo_br["sn_mva"], "vk_percent": trafo_br["vk_percent"],
                           "vkr_percent": trafo_br["vkr_percent"]}).reset_index(drop=True)
    rows = []
    for idx, ld in net.load.iterrows():
        if not bool(ld.in_service) or ld.bus not in rad.bus_of:
            continue
        sc = float(ld.get("scaling", 1.0))
        prof = _name(ld.get("profile"), "")
        rows.append(dict(bus=names[rad.bus_of[ld.bus]], p_mw=float(ld.p_mw) * sc, q_mvar=float(ld.q_mvar) * sc,
                         profile=prof, name=_name(ld.get("name"), f"load_{idx}"), pp_index=int(idx)))
    loads = pd.DataFrame(rows)
    loads["class"] = loads["profile"]
    out_of_scope = {k: len(net[k]) for k in ("sgen", "storage", "gen") if len(net[k])}
    if out_of_scope:
        notes.append("left out (flexplan's network reads loads only): "
                     + ", ".join(f"{n} {k}" for k, n in out_of_scope.items()))
    ch: dict[str, float] = {}
    for els, a, b, vn in zip(line_br["elements"], line_br["a"], line_br["b"], line_br["vn_kv"]):
        q = q_line[els[0]] if len(els) == 1 else sum(q_line[i] for i in els)
        if vn >= CHARGING_MIN_KV and q > 0:
            for end in (a, b):
                ch[end] = ch.get(end, 0.0) - q / 2
    charging = pd.DataFrame({"bus": list(ch), "q_mvar": list(ch.values())}, columns=["bus", "q_mvar"])
    if len(charging):
        notes.append(f"line capacitance ({-charging['q_mvar'].sum():.3g} Mvar at nominal voltage, lines of "
                     f"{CHARGING_MIN_KV:g} kV and above) written as constant reactive injections: loads of class "
                     f"'{CHARGING_CLASS}' (p 0, q < 0, profile 1)")
    lt = pd.Series(types["line"], dtype=object).value_counts().to_dict()
    tt = pd.Series(types["transformer"], dtype=object).value_counts().to_dict()
    return Grid(code=code, buses=buses, lines=lines, trafos=trafos, loads=loads,
                bus_of={b: names[p] for b, p in rad.bus_of.items()}, slack_bus=slack,
                slack_vm_pu=float(vm_eg / t), ext_grid_vm_pu=vm_eg, tap_ratio=float(t), charging=charging,
                line_types=lt, trafo_types=tt, notes=notes)


# --------------------------------------------------------------------------- profiles
def year_index() -> pd.DataFrame:
    """day (2016-MM-DD), hour, and weekday of the 365 kept days x 24 h (29 February dropped)."""
    days = pd.date_range(f"{PROFILE_YEAR}-01-01", f"{PROFILE_YEAR}-12-31", freq="D")
    days = days[~((days.month == 2) & (days.day == 29))]
    return pd.DataFrame({"day": np.repeat(days.strftime("%Y-%m-%d"), 24), "hour": np.tile(np.arange(24), len(days)),
                         "month": np.repeat(days.month, 24), "weekday": np.repeat(days.weekday, 24)})


def hourly(values: np.ndarray) -> np.ndarray:
    """15-minute values of the leap year 2016 (35 136 rows, any columns) -> hourly means of the
    365 kept days (8 760 rows): 29 February is dropped."""
    v = np.asarray(values, dtype=float)
    if v.shape[0] != 366 * 24 * STEPS_PER_HOUR:
        raise ValueError(f"expected {366 * 24 * STEPS_PER_HOUR} quarter-hours of 2016, got {v.shape[0]}")
    h = v.reshape(366 * 24, STEPS_PER_HOUR, *v.shape[1:]).mean(axis=1)
    feb29 = (31 + 28) * 24
    return np.concatenate([h[:feb29], h[feb29 + 24:]])


def profile_factors(net, names) -> pd.DataFrame:
    """Hourly normalised active-power profiles (8760 x names) of a SimBench net."""
    lp = net.profiles["load"]
    return pd.DataFrame(hourly(lp[[f"{n}_pload" for n in names]].to_numpy()), columns=list(names))


def group_of(profile: str) -> str:
    """The class of ``--classes group``."""
    if profile.startswith("H0"):
        return "household"
    if profile.startswith("G"):
        return "commercial"
    if profile.startswith("L"):
        return "agricultural"
    if profile.startswith(("Air", "Soil")):
        return "heat_pump"
    if profile.startswith(EV_PREFIXES):
        return "ev"
    if profile.startswith("lv_"):
        return "lv_grid"
    return profile


def _class_order(c: str):
    """Households, commercial, agricultural, heat pumps, the rest; alphabetical within."""
    order = ("H0", "household", "G", "commercial", "L", "agricultural", "Air", "Soil", "heat_pump")
    return (next((i for i, p in enumerate(order) if c.startswith(p)), len(order)), c)


def reactive_factors(net, factors: pd.DataFrame) -> dict:
    """Per profile the least-squares factor k of SimBench's reactive profile on its active one,
    f_q(t) ~ k f_p(t) over the year's hours (k = sum f_p f_q / sum f_p^2; 0 for a profile without
    ``_qload``, e.g. the EV chargers): flexplan scales q with the active profile, so a load's
    q_mvar is SimBench's rated q_mvar x k.  The fit weighs the high-load hours most."""
    lp = net.profiles["load"]
    out = {}
    for name in factors.columns:
        col = f"{name}_qload"
        fp_ = factors[name].to_numpy()
        if col not in lp:
            out[name] = 0.0
            continue
        fq = hourly(lp[col].to_numpy())
        den = float(fp_ @ fp_)
        out[name] = round(float(fp_ @ fq) / den, 6) if den > 0 else 0.0
    return out


def class_profiles(loads: pd.DataFrame, factors: pd.DataFrame) -> pd.DataFrame:
    """One column per class: its profile, or for a class of several profiles their p_mw-weighted mean."""
    out = {}
    for cls, grp in loads.groupby("class", sort=False):
        w = grp.groupby("profile")["p_mw"].sum()
        out[cls] = factors[w.index].to_numpy() @ (w.to_numpy() / w.sum()) if len(w) > 1 else factors[w.index[0]].to_numpy()
    return pd.DataFrame(out)


def representative_days(prof: pd.DataFrame, weights_mw: dict) -> tuple[list, dict]:
    """The five shipped days (see module docstring): [(label, day, weight)], and the statistics."""
    idx = year_index()
    cols = list(prof.columns)
    w = np.array([weights_mw[c] for c in cols])
    total = prof[cols].to_numpy() @ w
    nd = len(total) // 24
    X = (prof[cols].to_numpy() * w).reshape(nd, 24 * len(cols))  # p_mw-weighted class profiles per day
    day_names = idx["day"].to_numpy()[::24]
    month = idx["month"].to_numpy()[::24]
    weekend = idx["weekday"].to_numpy()[::24] >= 5
    winter = (month <= 3) | (month >= 10)
    peak_hour = int(np.argmax(total))
    peak_day = peak_hour // 24
    chosen = [("peak", peak_day, 1)]
    for label, mask in (("winter_weekday", winter & ~weekend), ("winter_weekend", winter & weekend),
                        ("summer_weekday", ~winter & ~weekend), ("summer_weekend", ~winter & weekend)):
        members = np.flatnonzero(mask & (np.arange(nd) != peak_day))
        mean = X[members].mean(axis=0)
        medoid = int(members[np.argmin(((X[members] - mean) ** 2).sum(axis=1))])
        chosen.append((label, medoid, int(mask.sum() - (1 if mask[peak_day] else 0))))
    assert sum(c[2] for c in chosen) == nd
    daily = total.reshape(nd, 24)
    energy = sum(wt * daily[d].sum() for _, d, wt in chosen)
    stats = dict(peak_hour=peak_hour, peak_day=day_names[peak_day], peak_mw=float(total[peak_hour]),
                 energy_error=float(energy / daily.sum() - 1.0),
                 days={label: day_names[d] for label, d, _ in chosen})
    return [(label, day_names[d], d, wt) for label, d, wt in chosen], stats


def _fmt(x: float, d: int = DECIMALS) -> str:
    s = f"{x:.{d}f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def write_profiles(path: Path, days: list, prof: pd.DataFrame) -> None:
    """``day,hour,weight,<class>...`` for ``days`` = [(name, day index, weight)]."""
    cols = list(prof.columns)
    V = prof[cols].to_numpy()
    lines = ["day,hour,weight," + ",".join(cols)]
    for name, d, wt in days:
        for h in range(24):
            lines.append(f"{name},{h},{wt}," + ",".join(_fmt(v) for v in V[d * 24 + h]))
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- growth and EVs
def class_peak(loads: pd.DataFrame, factors: pd.DataFrame) -> dict:
    """Peak over the year of each class's total active power (MW)."""
    out = {}
    for cls, grp in loads.groupby("class"):
        w = grp.groupby("profile")["p_mw"].sum()
        out[cls] = float((factors[w.index].to_numpy() @ w.to_numpy()).max())
    return out


def growth_table(ratio: dict, after_2034: str = "trend") -> pd.DataFrame:
    """Per class: r in 2024, 1 in 2034, linear; after 2034 the same line (trend) or 1 (hold)."""
    years = np.arange(BASE_YEAR, END_YEAR + 1)
    y1, y2 = SCENARIO_YEAR[1], SCENARIO_YEAR[2]
    out = {}
    for cls, r in ratio.items():
        g = r + (1.0 - r) * (years - y1) / (y2 - y1)
        if after_2034 == "hold":
            g = np.where(years > y2, 1.0, g)
        out[cls] = np.round(g, 4)
    return pd.DataFrame(out, index=pd.Index(years, name="year"))


def ev_fleet_specs(grid2: Grid, grid1: Grid | None, after_2034: str = "trend") -> list[dict]:
    """[[ev_fleets]] from the chargers of scenario 2 (counts of scenario 1 at the same bus and
    profile for 2024): one fleet per (profile, counts), over the buses that share them."""
    ev2 = grid2.loads[grid2.is_ev()]
    n2 = ev2.groupby(["profile", "bus"]).size()
    n1 = (grid1.loads[grid1.is_ev()].groupby(["profile", "bus"]).size() if grid1 is not None
          else pd.Series(dtype=int))
    y1, y2 = SCENARIO_YEAR[1], SCENARIO_YEAR[2]
    groups: dict[tuple, list] = {}
    for (prof, bus), c2 in n2.items():
        c1 = int(n1.get((prof, bus), 0))
        groups.setdefault((prof, c1, int(c2)), []).append(bus)
    specs, used = [], set()
    bus_order = {b: i for i, b in enumerate(grid2.buses["name"])}
    for (prof, c1, c2), buses in sorted(groups.items()):
        base = prof.lower().replace(".0", "").replace(".", "_")
        name = base if base not in used else f"{base}_{c1}_{c2}"
        used.add(name)
        c44 = c2 + (c2 - c1) * (END_YEAR - y2) / (y2 - y1) if after_2034 == "trend" else c2
        specs.append(dict(name=name, profile=prof, buses=sorted(buses, key=bus_order.get),
                          evs={y1: c1, y2: c2, END_YEAR: round(c44, 3)},
                          charger_kw=float(prof.split("_")[2])))
    return specs


# --------------------------------------------------------------------------- writing
def _csv(df: pd.DataFrame, path: Path, floats: dict | None = None) -> None:
    df = df.copy()
    for c, fmt in (floats or {}).items():
        df[c] = [fmt % v for v in df[c]]
    df.to_csv(path, index=False, lineterminator="\n")


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Reinforcement catalogue. r, x, max_i: SimBench / pandapower standard types (net.std_types).
# Capex: eDisGo's default cost configuration (openego/eDisGo, edisgo/config/config_costs_default.cfg,
# after the dena Verteilnetzstudie 2012): cable incl. earthworks LV 60 kEUR/km rural, 100 urban;
# MV 80 rural, 140 urban; MV/LV transformer 10 kEUR, HV/MV 1000 kEUR.
LV_LINE_TYPES = [
    dict(name="NAYY 4x150SE 0.6/1kV", r_ohm_per_km=0.2067, x_ohm_per_km=0.0804248, max_i_ka=0.27, cost=1.0,
         note="LV cable incl. earthworks (eDisGo/dena)"),
    dict(name="NAYY 4x240SE 0.6/1kV", r_ohm_per_km=0.1267, x_ohm_per_km=0.0797965, max_i_ka=0.357, cost=1.1,
         note="+10 % for the larger cross-section (assumption)"),
]
LV_TRAFO_TYPES = [
    dict(name="0.25 MVA 20/0.4 kV", sn_mva=0.25, vk_percent=6.0, vkr_percent=1.44, capex_eur=8000,
         note="scaled down from the 10 kEUR standard unit (assumption)"),
    dict(name="0.4 MVA 20/0.4 kV", sn_mva=0.4, vk_percent=6.0, vkr_percent=1.425, capex_eur=9000,
         note="scaled down from the 10 kEUR standard unit (assumption)"),
    dict(name="0.63 MVA 20/0.4 kV", sn_mva=0.63, vk_percent=6.0, vkr_percent=1.206, capex_eur=10000,
         note="MV/LV transformer 10 kEUR (eDisGo/dena; eDisGo's standard unit is 630 kVA)"),
    dict(name="2 x 0.63 MVA 20/0.4 kV", sn_mva=1.26, vk_percent=6.0, vkr_percent=1.206, capex_eur=20000,
         note="two 630 kVA units in parallel replacing the existing one: twice the unit's capex"),
]
MV_LINE_TYPES = [
    dict(name="NA2XS2Y 1x185 RM/25 12/20 kV", r_ohm_per_km=0.161, x_ohm_per_km=0.117, max_i_ka=0.362, cost=1.0,
         note="MV cable incl. earthworks (eDisGo/dena)"),
    dict(name="NA2XS2Y 1x240 RM/25 12/20 kV", r_ohm_per_km=0.122, x_ohm_per_km=0.112, max_i_ka=0.421, cost=1.125,
         note="+10 kEUR/km for the larger cross-section (assumption, as cigre_mv)"),
]
MV_TRAFO_TYPES = [
    dict(name="2 x 40 MVA 110/20 kV", sn_mva=80.0, vk_percent=16.2, vkr_percent=0.34, capex_eur=2000000,
         note="two HV/MV transformers of 1000 kEUR each (eDisGo/dena), SimBench type 40 MVA 110/20 kV YNd5"),
]


def candidate_rows(branches: pd.DataFrame, line_types: list, trafo_types: list) -> pd.DataFrame:
    """``asset, kind, type``: each line may be replaced by the smallest catalogue cable stronger than
    it, or, where none is stronger, get the strongest in parallel; each transformer may be replaced
    by every larger type.  (One candidate per line keeps the MIP small: every candidate adds its
    voltage-drop disjunction and thermal polygon to every operating point.)
    ``branches``: name, kind, rating_mva, vn_kv (flexplan's network)."""
    rows = []
    lt = sorted(line_types, key=lambda t: t["max_i_ka"])
    for b in branches.itertuples():
        if b.kind == "line":
            stronger = [t for t in lt if math.sqrt(3) * b.vn_kv * t["max_i_ka"] > b.rating_mva * (1 + 1e-9)]
            rows.append((b.name, "replace", stronger[0]["name"]) if stronger else (b.name, "parallel", lt[-1]["name"]))
        elif b.kind == "transformer":
            rows += [(b.name, "replace", t["name"]) for t in trafo_types if t["sn_mva"] > b.rating_mva * (1 + 1e-9)]
    return pd.DataFrame(rows, columns=["asset", "kind", "type"])


def catalogue_toml(line_types: list, trafo_types: list, cable_eur_per_km: float, cable_note: str, vn_lv: float,
                   line_kv: tuple, header: bool = True) -> str:
    if not header:  # a second catalogue (a region's MV level) under the same [reinforcement]
        full = catalogue_toml(line_types, trafo_types, cable_eur_per_km, cable_note, vn_lv, line_kv)
        return f"#   {cable_note}.\n" + full[full.index("[[reinforcement."):]
    s = ["[reinforcement]",
         'candidates = "candidates.csv"      # asset,kind,type: each line -> the smallest stronger cable (replace),',
         "#   or the strongest in parallel where none is stronger; each transformer -> every larger type",
         "#   (see flexplan.convert.simbench.candidate_rows; delete this line to generate replace + parallel for all).",
         "# r, x, max_i: SimBench / pandapower standard types. Capex: eDisGo default cost config",
         "# (openego/eDisGo edisgo/config/config_costs_default.cfg, after the dena Verteilnetzstudie 2012):",
         f"#   {cable_note}.", ""]
    for t in line_types:
        s += ["[[reinforcement.line_types]]", f'name = "{t["name"]}"', f"r_ohm_per_km = {t['r_ohm_per_km']}",
              f"x_ohm_per_km = {t['x_ohm_per_km']}", f"max_i_ka = {t['max_i_ka']}",
              f"capex_eur_per_km = {round(cable_eur_per_km * t['cost'])}    # {t['note']}", "lifetime_years = 40",
              f"vn_kv_min = {line_kv[0]}", f"vn_kv_max = {line_kv[1]}", ""]
    for t in trafo_types:
        s += ["[[reinforcement.transformer_types]]", f'name = "{t["name"]}"', f"sn_mva = {t['sn_mva']}",
              f"vk_percent = {t['vk_percent']}", f"vkr_percent = {t['vkr_percent']}",
              f"capex_eur = {t['capex_eur']}    # {t['note']}", "lifetime_years = 40", f"vn_kv = {vn_lv}", ""]
    return "\n".join(s)


def _branches_of(grid: Grid) -> pd.DataFrame:
    vn = dict(zip(grid.buses["name"], grid.buses["vn_kv"]))
    ln = pd.DataFrame({"name": grid.lines["name"], "kind": "line", "rating_mva": grid.lines["rating_mva"],
                       "vn_kv": [vn[b] for b in grid.lines["from_bus"]]})
    tr = pd.DataFrame({"name": grid.trafos["name"], "kind": "transformer", "rating_mva": grid.trafos["sn_mva"],
                       "vn_kv": [vn[b] for b in grid.trafos["lv_bus"]]})
    return pd.concat([ln, tr], ignore_index=True)


def convert(name: str, code: str, folder: Path, classes: str = "profile", ev: str = "fleets",
            after_2034: str = "trend", year: bool = True, log=print) -> dict:
    """Write the instance folder ``folder`` from SimBench ``code`` (scenario 2); returns a summary."""
    import simbench as sb

    t0 = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net2 = sb.get_simbench_net(code)
    g2 = convert_grid(net2, code)
    code1 = re.sub(r"(-)2-(sw|no_sw)$", r"\g<1>1-\2", code)  # scenario 1 of the same grid (1-LV-rural1--2-sw, 1-MVLV-rural-all-2-sw)
    net1 = sb.get_simbench_net(code1) if code1 != code else None
    g1 = convert_grid(net1, code1) if net1 is not None else None
    lv = g2.buses["vn_kv"].min() < 1.0
    ev_mask = g2.is_ev()
    fleets = ev == "fleets" and lv and ev_mask.any()
    loads = g2.loads[~ev_mask] if fleets else g2.loads
    loads = loads.copy()
    if classes == "group":
        loads["class"] = loads["profile"].map(group_of)
    factors = profile_factors(net2, sorted(set(loads["profile"])))
    kq = reactive_factors(net2, factors)
    loads["q_mvar"] = loads["q_mvar"] * loads["profile"].map(kq)
    prof = class_profiles(loads, factors)
    prof = prof[sorted(prof.columns, key=_class_order)]
    class_mw = loads.groupby("class")["p_mw"].sum().to_dict()
    days, stats = representative_days(prof, class_mw)
    stats["q_factors"] = kq
    stats["q_rated_mvar"] = float(g2.loads.loc[loads.index, "q_mvar"].sum())
    stats["q_mvar"] = float(loads["q_mvar"].sum())
    fixed = loads
    if len(g2.charging):
        loads = pd.concat([loads, pd.DataFrame({"bus": g2.charging["bus"], "p_mw": 0.0, "q_mvar": g2.charging["q_mvar"],
                                                "profile": CHARGING_CLASS, "class": CHARGING_CLASS,
                                                "name": [f"line charging at {b}" for b in g2.charging["bus"]]})],
                          ignore_index=True)
        prof[CHARGING_CLASS] = 1.0

    # growth from scenario 1 -> 2 (class peaks)
    peak2 = class_peak(fixed, factors)
    if g1 is not None:
        l1 = g1.loads[~g1.is_ev()] if fleets else g1.loads
        l1 = l1.assign(**{"class": l1["profile"].map(group_of) if classes == "group" else l1["profile"]})
        f1 = profile_factors(net1, sorted(set(l1["profile"])))
        peak1 = class_peak(l1, f1)
    else:
        peak1 = dict(peak2)
    ratio = {c: round(peak1.get(c, 0.0) / peak2[c], 4) if peak2.get(c, 0) > 0 else 1.0 for c in prof.columns}
    growth = growth_table(ratio, after_2034)

    # files
    _csv(g2.buses, folder / "buses.csv")
    _csv(g2.lines, folder / "lines.csv", {"r_ohm": "%.9g", "x_ohm": "%.9g", "rating_mva": "%.9g",
                                          "length_km": "%.9g"})
    _csv(g2.trafos, folder / "trafos.csv", {"vk_percent": "%.9g", "vkr_percent": "%.9g"})
    _csv(loads[["bus", "p_mw", "q_mvar", "class", "name"]], folder / "loads.csv",
         {"p_mw": "%.9g", "q_mvar": "%.9g"})
    write_profiles(folder / "profiles.csv", [(label, d, wt) for label, _, d, wt in days], prof)
    idx = year_index()
    if year:
        write_profiles(folder / "profiles_year.csv", [(day, i, 1) for i, day in enumerate(idx["day"][::24])], prof)
    growth.reset_index().to_csv(folder / "growth.csv", index=False, lineterminator="\n")
    branches = _branches_of(g2)
    if lv and g2.buses["vn_kv"].max() >= 1.0:  # a region: each level gets its own catalogue
        low = branches["vn_kv"] < 1.0
        cands = pd.concat([candidate_rows(branches[low], LV_LINE_TYPES, LV_TRAFO_TYPES),
                           candidate_rows(branches[~low], MV_LINE_TYPES, MV_TRAFO_TYPES)], ignore_index=True)
    else:
        cands = candidate_rows(branches, LV_LINE_TYPES if lv else MV_LINE_TYPES, LV_TRAFO_TYPES if lv else MV_TRAFO_TYPES)
    cands.to_csv(folder / "candidates.csv", index=False, lineterminator="\n")

    fleet_specs = ev_fleet_specs(g2, g1, after_2034) if fleets else []
    (folder / "instance.toml").write_text(_toml(name, code, g2, fixed, prof, stats, ratio, fleet_specs, after_2034,
                                                classes, ev, lv, year))
    summary = dict(name=name, code=code, buses=len(g2.buses), lines=len(g2.lines), trafos=len(g2.trafos),
                   loads=len(fixed), charging_rows=len(g2.charging), classes=len(prof.columns), ev_chargers=int(ev_mask.sum()),
                   fleets=len(fleet_specs), evs_2034=int(sum(len(f["buses"]) * f["evs"][2034] for f in fleet_specs)),
                   peak=stats, seconds=round(time.perf_counter() - t0, 1), notes=g2.notes)
    log(f"{name}: {code} -> {folder} ({summary['buses']} buses, {summary['lines']} lines, {summary['trafos']} "
        f"transformer(s), {summary['loads']} loads in {summary['classes']} classes, {summary['fleets']} EV fleets "
        f"with {summary['evs_2034']} EVs in 2034; {summary['seconds']} s)")
    for n in g2.notes:
        log(f"  note: {n}")
    return summary


def _toml(name, code, g, loads, prof, stats, ratio, fleets, after_2034, classes, ev, lv, year) -> str:
    kind = "LV" if lv else "MV"
    area = "urban" if "urban" in code else "rural"
    grid = code.split("--")[0]
    n_ev = int(g.is_ev().sum())
    lt = ", ".join(f"{k} x{v}" for k, v in g.line_types.items())
    tt = ", ".join(f"{k} x{v}" for k, v in g.trafo_types.items())
    new = sorted(c for c, r in ratio.items() if r == 0)
    ev_text = (f"{n_ev} EV chargers (HLS_* home, APLS_* workplace/public) as {len(fleets)} EV fleets with their SimBench "
               "charging profiles" if fleets else
               (f"{n_ev} EV chargers as fixed loads with their SimBench profiles" if n_ev else "no separate EV chargers"))
    desc = (f"SimBench {grid} (code {code}: scenario 2 = 2034 with heat pumps and EV chargers, switches as "
            f"SimBench sets them), converted by flexplan/convert/simbench.py. {kind} feeder: "
            f"{len(g.buses)} buses, {len(g.lines)} lines ({lt}), transformer {tt}; {len(loads)} loads with their "
            f"SimBench profiles as load classes; {ev_text}. PV, storage and other generators are left out. "
            f"Profiles: five representative days of SimBench's 2016 year (profiles.csv; the full year, hourly, "
            f"in profiles_year.csv). Growth: SimBench scenario 1 (2024) -> 2 (2034) per class"
            + (", continued to 2044." if after_2034 == "trend" else ", held after 2034."))
    s = [f'name = "{name}"', f"description = {_toml_str(desc)}", ""]
    s += ["[network]", 'source = "csv"', 'buses = "buses.csv"', 'lines = "lines.csv"        # r_ohm, x_ohm = '
          "SimBench r/x per km x length; rating = sqrt(3) vn max_i_ka",
          'transformers = "trafos.csv"', 'loads = "loads.csv"        # SimBench rated p_mw; class = SimBench profile'
          + (" group" if classes == "group" else ""),
          f"slack_bus = {_toml_str(g.slack_bus)}"]
    if abs(g.tap_ratio - 1) > 1e-12:
        s.append(f"slack_vm_pu = {g.slack_vm_pu!r}    # SimBench ext_grid {g.ext_grid_vm_pu:g} pu / fixed tap ratio "
                 f"{g.tap_ratio:g} of the MV/LV transformer (referred to the LV side)")
    else:
        s.append(f"slack_vm_pu = {g.slack_vm_pu!r}           # SimBench ext_grid setpoint")
    kq = stats["q_factors"]
    s += ["# q_mvar = SimBench rated q_mvar x k, k the least-squares fit of the profile's reactive on its active",
          "# profile (flexplan scales q with the active profile): "
          + ", ".join(f"{c} {kq[c]:.3g}" for c in sorted(kq, key=_class_order)),
          f"# (sum of q_mvar {stats['q_mvar']:.4g} Mvar instead of SimBench's rated {stats['q_rated_mvar']:.4g})."]
    for n in g.notes:
        s.append(f"# conversion: {n}")
    s += ["", "[profiles]", 'file = "profiles.csv"',
          "# Five days of SimBench's 2016 profiles (hourly means of the 15-minute values), weights in days/yr:",
          "#   " + ", ".join(f"{k} = {v}" for k, v in stats["days"].items()),
          f"#   peak = the day of the year's highest hourly fixed load ({stats['peak_mw']:.4g} MW at "
          f"{stats['peak_day']} {stats['peak_hour'] % 24}:00, the loads of loads.csv); the others the medoid of their group.",
          f"#   Annual energy of the five days vs the year: {100 * stats['energy_error']:+.1f} %.",
          *(["# The full year (365 days, weight 1, 29 Feb dropped): profiles_year.csv; reduce it with",
             "#   python instances/tools/reduce_profiles.py profiles_year.csv profiles_k12.csv -k 12"] if year else []),
          ""]
    s += ["[growth]", 'file = "growth.csv"',
          "# Per class: (class peak in SimBench scenario 1) / (class peak in scenario 2) in 2024, 1 in 2034, linear;",
          ("# after 2034 the same line continues (assumption: SimBench ends in 2034)." if after_2034 == "trend"
           else "# held at 1 after 2034."),
          (f"# New in scenario 2 (0 in 2024): {', '.join(new)}." if new else "# No class is new in scenario 2."), ""]
    s += ["[economics]", f"base_year = {BASE_YEAR}", f"end_year = {END_YEAR}", f"stages = {list(STAGES)}",
          "discount_rate = 0.035             # 1/yr, HM Treasury Green Book social rate", 'investment_cost = "annuity"',
          "", "[operation]", 'years_per_stage = "last"', ""]
    if lv:
        s += ["[limits]", "v_min_pu = 0.90                   # SimBench LV bus limits (EN 50160 +-10 %)",
              "v_max_pu = 1.10", "max_loading_pct = 100.0", ""]
    else:
        s += ["[limits]", "v_min_pu = 0.965                  # SimBench MV bus limits: the rest of the +-10 % band is "
              "left to the LV grids below", "v_max_pu = 1.055", "max_loading_pct = 100.0", ""]
    if lv:
        c150 = 100000 if area == "urban" else 60000
        s.append(catalogue_toml(LV_LINE_TYPES, LV_TRAFO_TYPES, c150, f"LV cable incl. earthworks, {area}: "
                                f"{c150 // 1000} kEUR/km; MV/LV transformer 10 kEUR", 0.4, (0.0, 1.0)))
        if g.buses["vn_kv"].max() >= 1.0:  # a region (MV with its LV grids): the MV level's catalogue too
            s.append(catalogue_toml(MV_LINE_TYPES, MV_TRAFO_TYPES, 80000, "MV cable incl. earthworks, rural: 80 "
                                    "kEUR/km; HV/MV transformer 1000 kEUR", 20.0, (10.0, 30.0), header=False))
    else:
        s.append(catalogue_toml(MV_LINE_TYPES, MV_TRAFO_TYPES, 80000, "MV cable incl. earthworks, rural: 80 kEUR/km; "
                                "HV/MV transformer 1000 kEUR; the two 25 MVA units are one 50 MVA branch here", 20.0,
                                (10.0, 30.0)))
    if fleets:
        s += ["# EV fleets: SimBench scenario 2 models each EV charger as a load (one load = one charger = one EV)",
              "# with its own charging profile (HLS_* home, APLS_* workplace/public; LoadProfile.csv, 2016, 15 min).",
              "# Each becomes part of a fleet with simbench_profile = that profile; counts are EVs per bus:",
              "# SimBench scenario 1 (2024) and 2 (2034) at that bus and profile, linear, "
              + ("continued to 2044 (assumption)." if after_2034 == "trend" else "held after 2034."),
              f"# {n_ev} chargers in 2034 for {len(loads)} other loads "
              f"({int(loads['class'].str.startswith('H0').sum())} of them households).", ""]
        for f in fleets:
            s += ["[[ev_fleets]]", f'name = "{f["name"]}"',
                  "buses = [" + ", ".join(_toml_str(b) for b in f["buses"]) + "]",
                  f'simbench_profile = "{f["profile"]}"     # {f["charger_kw"]:g} kW charger',
                  "evs = {" + ", ".join(f"{y} = {v:g}" for y, v in f["evs"].items()) + "}   # EVs per bus", ""]
    return "\n".join(s).rstrip() + "\n"


# --------------------------------------------------------------------------- CIGRE LV
CIGRE_LV_RATINGS = {  # line type -> (max_i_ka, the type it stands for)
    "UG1": (0.313, "NAYY 4x185 (Al, r 0.164 ohm/km)"),
    "UG2": (0.242, "NAYY 4x120 SE (pandapower std type, r 0.225 ohm/km)"),
    "UG3": (0.123, "NAYY 4x35 (Al, r 0.868 ohm/km)"),
    "OH1": (0.21, "48-AL1/8-ST1A 0.4 (pandapower std type, r 0.594 ohm/km)"),
    "OH2": (0.14, "24-AL1/4-ST1A 0.4 (pandapower std type, r 1.201 ohm/km)"),
    "OH3": (0.105, "15-AL1/3-ST1A 0.4 (pandapower std type, r 1.877 ohm/km)"),
}
CIGRE_LV_PROFILES = {"residential": ["H0-A", "H0-B", "H0-C", "H0-G", "H0-L"], "industrial": ["G3-A"],
                     "commercial": ["G0-A", "G1-A", "G4-A", "G6-A"]}


def simbench_standard_profiles(names) -> pd.DataFrame:
    """Hourly SimBench load profiles (8760 x names) from the package's complete scenario-2 data."""
    import simbench

    path = Path(simbench.__file__).parent / "networks" / "1-complete_data-mixed-all-2-sw" / "LoadProfile.csv"
    cols = [f"{n}_pload" for n in names]
    df = pd.read_csv(path, sep=";", usecols=cols)
    return pd.DataFrame(hourly(df[cols].to_numpy()), columns=list(names))


def write_cigre_lv(folder: Path, year: bool = True, log=print) -> dict:
    """``cigre_lv``: pandapower's ``create_cigre_network_lv`` (CIGRE TF C6.04.02, Strunz et al. 2014:
    residential, industrial and commercial feeders, each behind its own 20/0.4 kV transformer).

    * ``line_ratings.csv``: pandapower gives every CIGRE LV line max_i_ka = 1 (a placeholder); each
      CIGRE conductor type gets the ampacity of the standard cable / overhead type of about its
      resistance (:data:`CIGRE_LV_RATINGS`, assumption);
    * ``loads.csv``: CIGRE's loads with classes residential (R*), industrial (I*), commercial (C*);
    * profiles: the mean of SimBench profiles (:data:`CIGRE_LV_PROFILES`; CIGRE's loads are
      aggregates of many customers), each class normalised to a peak of 1 (CIGRE gives peak
      loads), five representative days like the SimBench instances;
    * EV fleets: generated home charging (behaviour = "home") at the residential buses, with the
      home-charger density of SimBench 1-LV-urban6 scenario 2 (8 HLS chargers for 0.3179 MW of H0
      household load: 25.2 EVs/MW) in 2034, 0 in 2024, linear and continued to 2044."""
    import pandapower.networks as pn

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = pn.create_cigre_network_lv()
    lines = net.line
    rows = [dict(line=i, max_i_ka=CIGRE_LV_RATINGS[t][0]) for i, t in zip(lines.index, lines.std_type)]
    pd.DataFrame(rows).to_csv(folder / "line_ratings.csv", index=False, lineterminator="\n")
    from ..instance.network_io import from_pandapower

    patched = copy.deepcopy(net)
    patched.line["max_i_ka"] = [r["max_i_ka"] for r in rows]
    network = from_pandapower(patched, "cigre_lv")
    candidate_rows(network.branches, LV_LINE_TYPES, LV_TRAFO_TYPES).to_csv(folder / "candidates.csv", index=False,
                                                                           lineterminator="\n")
    cls = {"R": "residential", "I": "industrial", "C": "commercial"}
    ld = pd.DataFrame(dict(bus=[str(net.bus.at[b, "name"]) for b in net.load.bus], p_mw=net.load.p_mw,
                           q_mvar=net.load.q_mvar, **{"class": [cls[n.split()[-1][0]] for n in net.load.name]},
                           name=net.load.name))
    _csv(ld, folder / "loads.csv", {"p_mw": "%.9g", "q_mvar": "%.9g"})
    names = sorted({p for ps in CIGRE_LV_PROFILES.values() for p in ps})
    f = simbench_standard_profiles(names)
    prof = pd.DataFrame({c: f[ps].mean(axis=1) / f[ps].mean(axis=1).max() for c, ps in CIGRE_LV_PROFILES.items()})
    class_mw = ld.groupby("class")["p_mw"].sum().to_dict()
    days, stats = representative_days(prof, class_mw)
    write_profiles(folder / "profiles.csv", [(label, d, wt) for label, _, d, wt in days], prof)
    if year:
        idx = year_index()
        write_profiles(folder / "profiles_year.csv", [(day, i, 1) for i, day in enumerate(idx["day"][::24])], prof)
    density = 8 / 0.3179  # home EVs per MW of household load, SimBench 1-LV-urban6--2-sw (see docstring)
    res = ld[ld["class"] == "residential"]
    fleets = []
    for _, r in res.iterrows():
        n = round(density * r.p_mw, 2)
        fleets.append(f'[[ev_fleets]]\nname = "home_{r.bus.split()[-1]}"\nbus = "{r.bus}"\nbehaviour = "home"\n'
                      f"evs = {{2024 = 0, 2034 = {n:g}, 2044 = {2 * n:g}}}   # {r.p_mw * 1000:g} kW of household "
                      f"load x {density:.1f} EVs/MW\nv2g_share = 0.3                   # assumption, as ieee33_ev\n"
                      f"seed = {len(fleets) + 1}\nsample_evs = 300\nsample_days = 14\n")
    ratings = "\n".join(f"#   {t}: {v[0]} kA ~ {v[1]}" for t, v in CIGRE_LV_RATINGS.items())
    profs = "\n".join(f"#   {c}: mean of SimBench {', '.join(ps)}, peak 1" for c, ps in CIGRE_LV_PROFILES.items())
    text = f'''name = "cigre_lv"
description = """CIGRE LV benchmark (pandapower create_cigre_network_lv; CIGRE TF C6.04.02, Strunz et al.
2014): residential (0.5 MVA), industrial (0.15 MVA) and commercial (0.3 MVA) feeders, each behind
its own 20/0.4 kV transformer from one MV bus. Load profiles: SimBench standard profiles (household,
continuous business, commercial means), growth 1 %/yr; generated home-charging EV fleets at the
residential buses with SimBench urban scenario-2 EV density (2034), continued to 2044.
Written by flexplan/convert/simbench.py (write_cigre_lv)."""

[network]
source = "pandapower"
name = "create_cigre_network_lv"
line_patch = "line_ratings.csv"   # pandapower has max_i_ka = 1 kA on every CIGRE LV line (placeholder):
{ratings}
loads = "loads.csv"                 # CIGRE's loads; class by the load's feeder letter (R, I, C)

[profiles]
file = "profiles.csv"
# Classes:
{profs}
# Five days of the 2016 SimBench year (hourly), weights in days/yr:
#   {", ".join(f"{k} = {v}" for k, v in stats["days"].items())}
#   Annual energy of the five days vs the year: {100 * stats["energy_error"]:+.1f} %. Full year: profiles_year.csv.

[growth]
annual_rate = 0.01                # 1/yr on every load (assumption, as ieee33_ev); EVs come on top

[economics]
base_year = {BASE_YEAR}
end_year = {END_YEAR}
stages = {list(STAGES)}
discount_rate = 0.035             # 1/yr, HM Treasury Green Book social rate
investment_cost = "annuity"

[operation]
years_per_stage = "last"

[limits]
v_min_pu = 0.90                   # EN 50160 -10 %
v_max_pu = 1.10
max_loading_pct = 100.0

{catalogue_toml(LV_LINE_TYPES, LV_TRAFO_TYPES, 100000, "LV cable incl. earthworks, urban: 100 kEUR/km; MV/LV "
               "transformer 10 kEUR", 0.4, (0.0, 1.0))}
# EV fleets: generated home charging (flexplan/ev/generator.py), EVs per bus = household load x
# {density:.1f} EVs/MW (SimBench 1-LV-urban6 scenario 2: 8 home chargers for 0.3179 MW of H0 loads) in 2034,
# none in 2024, linear, continued to 2044 (assumption).
''' + "\n".join(fleets)
    (folder / "instance.toml").write_text(text)
    summary = dict(name="cigre_lv", buses=len(net.bus), lines=len(net.line), loads=len(ld), classes=len(prof.columns),
                   fleets=len(fleets), peak=stats)
    log(f"cigre_lv -> {folder} ({len(net.line)} lines, 3 transformers, {len(ld)} loads, {len(fleets)} EV fleets)")
    return summary


# --------------------------------------------------------------------------- command line
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flexplan.convert.simbench",
                                description="Convert SimBench grids (and CIGRE LV) into flexplan instance folders.")
    p.add_argument("names", nargs="*", help=f"shipped instances to (re)write: {', '.join(GRIDS)}, cigre_lv "
                   "(default: all)")
    p.add_argument("--code", help="a SimBench code (e.g. 1-LV-rural2--2-sw) instead of the shipped names; needs --out")
    p.add_argument("--out", type=Path, help="output folder (default instances/NAME)")
    p.add_argument("--instances", type=Path, default=Path(__file__).resolve().parents[2] / "instances",
                   help="folder of the shipped instances")
    p.add_argument("--classes", choices=["profile", "group"], default="profile")
    p.add_argument("--ev", choices=["fleets", "loads"], default="fleets")
    p.add_argument("--after-2034", choices=["trend", "hold"], default="trend")
    p.add_argument("--no-year", action="store_true", help="do not write profiles_year.csv")
    a = p.parse_args(argv)
    kw = dict(classes=a.classes, ev=a.ev, after_2034=a.after_2034, year=not a.no_year)
    if a.code:
        if not a.out:
            p.error("--code needs --out")
        convert(a.out.name, a.code, a.out, **kw)
        return 0
    names = a.names or list(GRIDS) + ["cigre_lv"]
    bad = [n for n in names if n not in GRIDS and n != "cigre_lv"]
    if bad:
        p.error(f"unknown instance(s) {', '.join(bad)}; known: {', '.join(GRIDS)}, cigre_lv")
    for n in names:
        out = a.out if a.out and len(names) == 1 else a.instances / n
        if n == "cigre_lv":
            write_cigre_lv(out, year=not a.no_year)
        else:
            convert(n, GRIDS[n], out, **kw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
