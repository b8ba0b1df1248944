"""PV block: rooftop / field PV at buses, which the DSO may curtail at a price.

The PV units come from the instance's ``[pv]`` table (:func:`parse_pv_section`): a CSV of
units (bus, peak ``p_mw``, profile) and/or the static generators (``sgen``) of a pandapower
network (the instance's own, or a built-in or JSON one).  Per bus b and op t (day d, hour h,
year y):

    A[b, t] = Σ_{units u at b} p_u · π_u[d, h] · scale · (1 + g)^(y − y0)       (MW available)
    0 ≤ c[b, t] ≤ A[b, t]                                                    (MW curtailed)
    hub.inject(b, t, p = A[b, t] − c[b, t])                                   (generation > 0)

with π_u the unit's per-unit profile (a column of the section's profile file or of the
instance's ``profiles.csv``, or the section's ``hourly`` list) and g ``annual_growth``.
PV runs at unity power factor (no Q).  Curtailment costs ``curtailment_eur_per_mwh`` per MWh
(cost category ``pv_curtailment``): Σ_t price · hours(t) · c[b, t] per (node, year).

Reverse flow raises the voltage: in LinDistFlow v_j = v_i − 2 (r P + x Q) / S_base with P the
flow into j, so an export (P < 0) lifts v_j, and the network's upper limit v_j ≤ v_max² (soft,
at the voltage penalty) makes the plan curtail just enough.  With ``curtail = false`` (the
reference without flexibility) every MWh available is injected.

Each day's curtailment is independent and its cost non-negative: ``day_separable``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from ..errors import InstanceError, Problem
from . import BlockSpec, register_block
from .linear import lin

#: The built-in profile name: a clear-sky half sine from 6 h to 18 h, peak 1 at noon.
CLEAR_SKY = "clear_sky"


@dataclass
class PVConfig:
    """Options of the ``pv`` block.

    * ``curtailment_eur_per_mwh``: what the DSO pays per MWh curtailed (EUR/MWh).  Default
      80: the order of the statutory payment for small rooftop PV under Germany's EEG 2023
      (about 8 ct/kWh), which is what a curtailed plant is compensated for under §13a EnWG
      (Redispatch 2.0) [check].
    * ``curtail``: the DSO may curtail (default true; false: the reference without
      flexibility, all PV is injected).
    * ``scale``: multiplier on every unit's peak power (dimensionless, default 1.0: the
      instance as given).
    * ``annual_growth``: growth of the installed PV per year from the base year (fraction per
      year, compounded; default 0.0: the instance's capacity in every year).
    """

    curtailment_eur_per_mwh: float = 80.0
    curtail: bool = True
    scale: float = 1.0
    annual_growth: float = 0.0

    def validate(self):
        if self.curtailment_eur_per_mwh < 0:
            return f"pv.curtailment_eur_per_mwh must be >= 0, got {self.curtailment_eur_per_mwh}"
        if self.scale < 0:
            return f"pv.scale must be >= 0, got {self.scale}"
        if not -1 < self.annual_growth <= 1:
            return f"pv.annual_growth is a fraction per year in (-1, 1] (0.05 for 5 %/yr), got {self.annual_growth}"


@dataclass(frozen=True)
class PVSection:
    """What the ``[pv]`` table says: ``units`` (bus index, bus name, p_mw, profile name,
    name, source) and ``profiles``: name -> per-unit output per step of the day, an array
    (hours,) for every day alike (``hourly``, ``clear_sky``) or a dict day name -> array
    (hours,) (the section's profile file).  A unit may also name a load class of the
    instance's profiles, read when the model is built, so that day screening and profile
    reduction (which change the instance's days) carry it along."""

    units: pd.DataFrame
    profiles: dict


PV_KEYS = {"file": "str", "profiles": "str", "hourly": "list", "sgens": "bool", "pandapower": "str",
           "pandapower_file": "str", "simbench": "str", "simbench_days": "table", "sgen_types": "list",
           "sgen_profile": "str"}
SGEN_SOURCES = ("sgens", "pandapower", "pandapower_file", "simbench")


def clear_sky(hours: int) -> np.ndarray:
    """Per-unit output of each step of the day: sin(π (t − 6) / 12) between 6 h and 18 h (t the
    middle of the step), 0 at night.  A shape for sketches and tests, not a measured profile."""
    dt = 24.0 / hours
    mid = (np.arange(hours) + 0.5) * dt
    return np.where((mid > 6) & (mid < 18), np.sin(np.pi * (mid - 6) / 12), 0.0)


def parse_pv_section(table, ctx) -> PVSection:
    """``[pv]`` of instance.toml.

    * ``file``: CSV of units: ``bus`` (name), ``p_mw`` (peak, MWp), optional ``profile``
      (a column of ``profiles``, a load class of the instance's profiles, or
      ``clear_sky``) and ``name``;
    * ``profiles``: CSV ``day, hour, <profile>...`` (per-unit output, 0..1.5) for the
      instance's representative days (a ``weight`` column is ignored);
    * ``hourly``: one per-unit value per step of the day, the profile of units without one;
    * ``sgens = true``: also the static generators of the instance's own pandapower network;
      ``pandapower`` (a built-in name) or ``pandapower_file`` (a JSON file): those of another
      pandapower network with the same buses (matched by pandapower index, else by bus name);
      ``simbench`` (a SimBench code, e.g. ``1-LV-rural1--2-sw``, needs the simbench extra):
      the sgens of that SimBench grid, at the buses flexplan's SimBench conversion names
      (merged buses included), each with its SimBench profile (``PV5``...: the hourly mean of
      the 15-minute per-unit values of 2016) on the dates ``simbench_days`` gives per
      representative day (``{peak = "2016-01-02", ...}``; not needed when the day names are
      dates, as in a converted instance's ``profiles_year.csv``);
      ``sgen_types``: keep only these sgen ``type`` values (default all); ``sgen_profile``:
      their profile (default: the sgen's ``profile`` column where it names a known profile,
      else ``hourly``, else ``clear_sky``).
    """
    from ..instance.tables import check_section, read_csv

    shown = ctx.shown
    if not isinstance(table, dict):
        raise InstanceError(Problem(shown, "must be one table [pv], not an array of tables", field="pv"))
    problems = check_section(table, shown, "pv.", PV_KEYS)
    if problems:
        raise InstanceError(problems)
    if not any(k in table for k in ("file",) + SGEN_SOURCES):
        raise InstanceError(Problem(shown, "give the PV units: file, sgens = true, pandapower, pandapower_file or "
                                    "simbench", field="pv"))
    prof = ctx.profiles
    nd, H = len(prof.days), prof.hours
    profiles: dict = {CLEAR_SKY: clear_sky(H)}
    if "hourly" in table:
        h = table["hourly"]
        if len(h) != H or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1.5
                                  for v in h):
            raise InstanceError(Problem(shown, f"must be {H} numbers in 0..1.5 (per-unit output per step of the day)",
                                        field="pv.hourly"))
        profiles["hourly"] = np.asarray(h, dtype=float)
    if "profiles" in table:
        path = ctx.folder / table["profiles"]
        df = read_csv(path, str(path), {"day": "str", "hour": "int"}, allow_extra=True)
        cols = [c for c in df.columns if c not in ("day", "hour", "weight")]
        probs = []
        if not cols:
            probs.append(Problem(str(path), "no profile column besides day, hour", row=1))
        keyed = {(d, int(h)): i for i, (d, h) in enumerate(zip(df["day"], df["hour"]))}
        missing = [(d, h) for d in prof.days for h in range(H) if (d, h) not in keyed]
        if missing:
            probs.append(Problem(str(path), f"no row for day '{missing[0][0]}' hour {missing[0][1]} (the instance's "
                                 f"profiles have days {', '.join(prof.days)} with hours 0..{H - 1})", field="day"))
        if probs:
            raise InstanceError(probs)
        rows = [keyed[(d, h)] for d in prof.days for h in range(H)]
        for c in cols:
            vals = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)[rows]
            bad = np.flatnonzero(~np.isfinite(vals) | (vals < 0) | (vals > 1.5))
            if len(bad):
                probs.append(Problem(str(path), f"{df[c].iloc[rows[bad[0]]]!r} is not a per-unit output in 0..1.5",
                                     row=rows[bad[0]] + 2, field=c))
            profiles[c] = dict(zip(prof.days, vals.reshape(nd, H)))
        if probs:
            raise InstanceError(probs)
    default = "hourly" if "hourly" in profiles else CLEAR_SKY
    names = {n: i for i, n in enumerate(ctx.network.buses["name"])}
    rows: list[dict] = []
    if "file" in table:
        path = ctx.folder / table["file"]
        df = read_csv(path, str(path), {"bus": "str", "p_mw": "float+"}, {"profile": "str", "name": "str"},
                      bounds={"p_mw": (0.0, 1e4, "MWp (was it given in kW?)")})
        probs = []
        for i, r in df.iterrows():
            if r["bus"] not in names:
                probs.append(Problem(str(path), f"unknown bus '{r['bus']}'", row=i + 2, field="bus"))
                continue
            p = r.get("profile", "")
            p = default if p is None or (isinstance(p, float) and math.isnan(p)) or p == "" else str(p)
            if p not in profiles and p not in prof.factors:
                known = ", ".join(sorted(set(profiles) | set(prof.factors)))
                probs.append(Problem(str(path), f"unknown profile '{p}' (known: {known})",
                                     row=i + 2, field="profile"))
                continue
            nm = r.get("name", "")
            rows.append(dict(bus=names[r["bus"]], bus_name=r["bus"], p_mw=float(r["p_mw"]), profile=p,
                             name=str(nm) if isinstance(nm, str) and nm else f"pv_{i}", source=f"{path} row {i + 2}"))
        if probs:
            raise InstanceError(probs)
    if any(k in table for k in SGEN_SOURCES) and table.get("sgens", True) is not False:
        rows += _sgen_units(table, ctx, profiles, default)
    units = pd.DataFrame(rows, columns=["bus", "bus_name", "p_mw", "profile", "name", "source"])
    return PVSection(units=units, profiles=profiles)


def _sgen_units(table, ctx, profiles, default) -> list[dict]:
    """PV units from the ``sgen`` table of a pandapower network (see :func:`parse_pv_section`)."""
    from ..instance import network_io

    shown = ctx.shown
    bus_of = None  # pandapower bus -> flexplan bus name, where a conversion says so
    if "simbench" in table:
        net, label, bus_of = _simbench(table, ctx, profiles)
    elif "pandapower" in table:
        net, label = network_io.pandapower_builtin(table["pandapower"], shown), f"pandapower:{table['pandapower']}"
    elif "pandapower_file" in table:
        path = ctx.folder / table["pandapower_file"]
        net, label = network_io.pandapower_json(path, shown), str(path)
    else:
        src = ctx.network.source
        if src.startswith("pandapower:"):
            net = network_io.pandapower_builtin(src.split(":", 1)[1], shown)
        elif src.endswith(".json") and Path(src).exists():
            net = network_io.pandapower_json(Path(src), shown)
        else:
            raise InstanceError(Problem(shown, f"sgens = true needs a pandapower network (source pandapower or json); "
                                        f"this instance's network is '{src}': give pandapower or pandapower_file",
                                        field="pv.sgens"))
        label = src
    buses = ctx.network.buses
    by_pp = {int(p): i for i, p in enumerate(buses["pp_index"])} if "pp_index" in buses else {}
    by_name = {n: i for i, n in enumerate(buses["name"])}
    types = table.get("sgen_types")
    rows, probs = [], []
    for idx, sg in net.sgen.iterrows():
        if not bool(sg.get("in_service", True)):
            continue
        if types is not None and str(sg.get("type", "")) not in types:
            continue
        bus_name = net.bus.at[sg.bus, "name"] if sg.bus in net.bus.index else None
        if bus_of is not None:
            bus_name = bus_of.get(int(sg.bus))
        bus = by_pp.get(int(sg.bus)) if bus_of is None else None
        if bus is None and bus_name is not None:
            bus = by_name.get(str(bus_name))
        if bus is None:
            probs.append(Problem(label, f"sgen {idx} is at pandapower bus {sg.bus} ({bus_name}), which is not a bus of "
                                 "the instance's network", field=f"sgen.{idx}"))
            continue
        p = table.get("sgen_profile")
        if p is None:
            own = sg.get("profile")
            p = str(own) if isinstance(own, str) and (own in profiles or own in ctx.profiles.factors) else default
        if p not in profiles and p not in ctx.profiles.factors:
            probs.append(Problem(shown, f"unknown profile '{p}'", field="pv.sgen_profile"))
            break
        name = sg.get("name")
        rows.append(dict(bus=bus, bus_name=str(buses["name"].iloc[bus]),
                         p_mw=float(sg.p_mw) * float(sg.get("scaling", 1.0) or 1.0), profile=p,
                         name=str(name) if isinstance(name, str) and name else f"sgen_{idx}",
                         source=f"{label} sgen {idx}"))
    if probs:
        raise InstanceError(probs)
    return rows


def _simbench(table, ctx, profiles):
    """(net, label, bus_of) of the SimBench grid ``table["simbench"]``; adds its renewables'
    profiles, per representative day, to ``profiles``."""
    from ..convert import simbench as sc  # the conversion names the buses as the shipped instances do

    shown, code = ctx.shown, table["simbench"]
    try:
        import simbench as sb
    except ImportError:
        raise InstanceError(Problem(shown, "reading SimBench sgens needs the simbench package (the 'simbench' "
                                    "extra)", field="pv.simbench")) from None
    try:
        net = sb.get_simbench_net(code)
    except Exception as e:  # noqa: BLE001 - simbench raises several kinds for an unknown code
        raise InstanceError(Problem(shown, f"not a SimBench code SimBench knows: {e}", field="pv.simbench")) from e
    if ctx.profiles.hours != 24:
        raise InstanceError(Problem(shown, f"SimBench profiles are hourly here; the instance has {ctx.profiles.hours} "
                                    "steps per day", field="pv.simbench"))
    idx = sc.year_index()
    dates = list(dict.fromkeys(idx["day"]))
    mapping = table.get("simbench_days") or {d: d for d in ctx.profiles.days}
    bad = [d for d in ctx.profiles.days if d not in mapping or mapping[d] not in dates]
    if bad:
        raise InstanceError(Problem(shown, f"day(s) {', '.join(bad[:5])} have no date of SimBench's year 2016 "
                                    "(2016-MM-DD, 29 February left out); give simbench_days = {day = '2016-MM-DD'}",
                                    field="pv.simbench_days"))
    ren = net.profiles["renewables"]
    used = {str(p) for p in net.sgen["profile"] if isinstance(p, str) and p in ren.columns}
    for p in sorted(used):
        year = sc.hourly(ren[[p]].to_numpy())[:, 0].reshape(len(dates), 24)
        profiles[p] = {d: year[dates.index(mapping[d])] for d in ctx.profiles.days}
    return net, f"simbench:{code}", sc.convert_grid(net, code).bus_of


def available_mw(inst, ix, cfg: PVConfig) -> np.ndarray:
    """MW of PV available per (bus, op): Σ p_u · π_u[day, hour] · scale · (1 + g)^(y − y0); zero
    without a ``[pv]`` table (the block then models nothing, like the EV fleet without fleets)."""
    sec = inst.sections.get("pv")
    A = np.zeros((inst.network.n_buses, ix.n_ops))
    if sec is None:
        return A
    growth = (1.0 + cfg.annual_growth) ** (ix.op_year - inst.economics.base_year) * cfg.scale
    for (bus, profile), grp in sec.units.groupby(["bus", "profile"]):
        A[int(bus)] += float(grp["p_mw"].sum()) * _profile(inst, ix, sec, profile)[ix.op_day, ix.op_hour] * growth
    return A


def _profile(inst, ix, sec: PVSection, name: str) -> np.ndarray:
    """Per-unit output (model days, hours) of profile ``name`` (see :class:`PVSection`)."""
    from ..errors import RecipeError

    p = sec.profiles.get(name)
    if p is None:
        return np.asarray(inst.profiles.factors[name], dtype=float)
    if isinstance(p, np.ndarray):
        return np.tile(p, (len(ix.days), 1))
    missing = [d for d in ix.days if d not in p]
    if missing:
        raise RecipeError(f"the [pv] profile '{name}' is given for the days {', '.join(p)}, but the model has the "
                          f"day(s) {', '.join(missing)} (were the instance's profiles reduced?); give it per hour "
                          "(hourly) or as a load class of the instance's profiles instead")
    return np.stack([p[d] for d in ix.days])


def add_pv(b, inst, ix, hub, cfg: PVConfig) -> None:
    A = available_mw(inst, ix, cfg)
    buses = [int(j) for j in np.flatnonzero(A.max(axis=1) > 0)]
    keys = [(j, t) for j in buses for t in range(ix.n_ops) if A[j, t] > 0]
    b._pv = dict(A=A, buses=buses, keys=keys, cfg=cfg)
    if cfg.curtail:
        b.curtail = pyo.Var(keys, bounds=lambda _, j, t: (0.0, float(A[j, t])))
    for j in buses:
        hub.bound_injection(j, float(A[j].max()))
    for j, t in keys:
        p = lin([-1.0], [b.curtail[j, t]], float(A[j, t])) if cfg.curtail else float(A[j, t])
        hub.inject(j, t, p=p)
    if cfg.curtail and cfg.curtailment_eur_per_mwh > 0:
        hours = ix.op_hours()
        per_ny = defaultdict(list)
        for j, t in keys:
            per_ny[(ix.node_names[ix.op_node[t]], int(ix.op_year[t]))].append(
                float(cfg.curtailment_eur_per_mwh * hours[t]) * b.curtail[j, t])
        for (n, y), terms in per_ny.items():
            hub.cost("pv_curtailment", n, sum(terms), year=y)


def extract_pv(b, inst, ix) -> dict:
    """``pv`` table (node, year, day, hour, bus, available_mw, curtailed_mw, injected_mw)
    and the ``pv`` summary section (MWh per year available and curtailed, per node and year)."""
    info = b._pv
    A, cfg = info["A"], info["cfg"]
    frame = ix.op_frame()
    names = inst.network.buses["name"].to_numpy()
    parts = []
    for j in info["buses"]:
        c = np.zeros(ix.n_ops)
        if cfg.curtail:
            for t in range(ix.n_ops):
                if (j, t) in b.curtail:
                    c[t] = b.curtail[j, t].value or 0.0
        parts.append(frame.assign(bus=names[j], available_mw=A[j], curtailed_mw=c, injected_mw=A[j] - c))
    cols = ["node", "year", "day", "hour", "bus", "available_mw", "curtailed_mw", "injected_mw"]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    years = []
    if len(df):
        w = dict(zip(ix.days, ix.day_weight))
        h = np.array([w[d] for d in df["day"]]) * ix.dt_h
        g = df.assign(avail_mwh=df["available_mw"] * h, curt_mwh=df["curtailed_mw"] * h)
        for (node, year), grp in g.groupby(["node", "year"], sort=False):
            a, c = float(grp["avail_mwh"].sum()), float(grp["curt_mwh"].sum())
            years.append(dict(node=node, year=int(year), available_mwh_per_year=a, curtailed_mwh_per_year=c,
                              curtailed_share=c / a if a > 0 else 0.0))
    sec = inst.sections.get("pv")
    n_units = len(sec.units) if sec is not None else 0
    summary = dict(units=n_units, peak_mw=float(sec.units["p_mw"].sum()) * cfg.scale if n_units else 0.0,
                   curtail=cfg.curtail, curtailment_eur_per_mwh=cfg.curtailment_eur_per_mwh, years=years)
    return {"pv": df, "summary": {"pv": summary}}


def _reference(options: dict) -> dict | None:
    """The options without flexibility (no curtailment), or None when already so."""
    if options.get("curtail", PVConfig.curtail) is False:
        return None
    return {**options, "curtail": False}


register_block(BlockSpec("pv", add_pv, PVConfig, extract=extract_pv, doc=__doc__, day_separable=True,
                         reference=_reference, section=parse_pv_section))
