"""``[[ev_fleets]]`` sections of instance.toml -> :class:`flexplan.ev.fleet.EVFleet`.

```toml
[[ev_fleets]]
name = "home"
buses = ["7", "12", "25"]        # or bus = "7"; the counts below are per bus
behaviour = "home"               # generator: home | workplace | public
evs = {2025 = 5, 2030 = 20, 2040 = 60}   # EVs per bus: linear between the years given
# uptake = {final = 60, midpoint = 2032, rate = 0.45}   # or a logistic S-curve
v2g_share = 0.2                  # share of EVs with bidirectional chargers (generator)
seed = 1                         # the same seed gives the same sessions
sample_evs = 500                 # size of the generated sample (not the fleet size)
sample_days = 14
# sessions = "sessions.csv"      # instead of the generator: measured sessions
# ev_days = 700                  # EV-days the CSV covers (default: its distinct EVs)
# clip_sessions = true           # lower unreachable requirements instead of refusing
# simbench_profile = "HLS_A_11.0"   # or: one SimBench charger's profile (scenario 2, 2016, 15 min)
# profile = "charger.csv"        # or: a metered charger, column p_kw, with profile_step_h (0.25)
#                                #   and profile_charger_kw; profile_battery_kwh (50);
#                                #   departure = "home" | "workplace" | "public" | "end_of_charging"
```

A profile is one charger over whole days (``ev_days`` = its days): each charging run
becomes a session (:mod:`flexplan.ev.profiles`), and ``evs`` scales it like any fleet.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InstanceError, Problem
from ..ev.envelopes import validate_sessions
from ..ev.fleet import EVFleet, evs_per_year, is_integer_year
from ..ev.generator import BEHAVIOURS, GeneratorOptions, generate_sessions
from ..ev.profiles import sessions_from_profile, simbench_ev_profile
from .tables import check_section, data_path, read_csv

FLEET_KEYS = {"name": "str", "bus": "str", "buses": "list", "behaviour": "str", "evs": "table", "uptake": "table",
              "v2g_share": "float+", "seed": "int", "sample_evs": "int", "sample_days": "int", "sessions": "str",
              "ev_days": "float++", "clip_sessions": "bool", "soc_min": "float+", "soc_max": "float++",
              "eta_charge": "float++", "eta_discharge": "float++", "battery_kwh": "list", "battery_probs": "list",
              "charger_kw": "list", "charger_probs": "list", "mean_daily_km": "float++", "alpha": "float+",
              "target_soc": "float++", "profile": "str", "simbench_profile": "str", "profile_step_h": "float++",
              "profile_charger_kw": "float++", "profile_battery_kwh": "float++", "departure": "str", "phase": "list|str"}
PROFILE_KEYS = ("profile", "simbench_profile", "profile_step_h", "profile_charger_kw", "profile_battery_kwh",
                "departure")
GENERATOR_KEYS = ("v2g_share", "sample_evs", "sample_days", "battery_kwh", "battery_probs", "charger_kw",
                  "charger_probs", "mean_daily_km", "alpha", "target_soc")
UPTAKE_KEYS = {"final": "float+", "midpoint": "float", "rate": "float++", "initial": "float+"}
#: Plausible ranges (lowest, highest, unit) of fleet keys, EV counts, batteries and chargers.
YEARS = (1900, 2200, "(a calendar year)")
MAX_EVS = 1e6  # EVs per bus
BATTERY = (1.0, 1000.0, "kWh")
CHARGER = (0.1, 1000.0, "kW (was it given in W?)")
FLEET_BOUNDS = {"seed": (0, 2 ** 32 - 1, ""), "sample_evs": (1, 100_000, "EVs"), "sample_days": (1, 366, "days"),
                "ev_days": (1e-3, 1e7, "EV-days"), "eta_charge": (0.5, 1.0, ""), "eta_discharge": (0.5, 1.0, ""),
                "mean_daily_km": (0.1, 1000.0, "km/day"), "alpha": (0.0, 100.0, ""),
                "target_soc": (0.05, 1.0, "(fraction of the battery)"), "profile_step_h": (1 / 60, 24.0, "h"),
                "profile_charger_kw": CHARGER, "profile_battery_kwh": BATTERY}
UPTAKE_BOUNDS = {"final": (0.0, MAX_EVS, "EVs per bus"), "initial": (0.0, MAX_EVS, "EVs per bus"),
                 "midpoint": YEARS, "rate": (1e-3, 10.0, "1/yr")}
SESSION_BOUNDS = {"energy_arrival_kwh": (0.0, BATTERY[1], "kWh"), "energy_required_kwh": (0.0, BATTERY[1], "kWh"),
                  "battery_kwh": BATTERY, "charger_kw": CHARGER}


def load_fleets(specs, folder: Path, shown: str, network, profiles, years: list[int]) -> tuple[EVFleet, ...]:
    """Validate and build every fleet; all problems of all fleets in one error."""
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise InstanceError(Problem(shown, "must be an array of tables ([[ev_fleets]])", field="ev_fleets"))
    index = {str(n): i for i, n in enumerate(network.buses["name"])}
    problems, fleets, names = [], [], set()
    for k, spec in enumerate(specs):
        name = spec.get("name", f"fleet{k}")
        where = f"ev_fleets[{name}]." if isinstance(name, str) else f"ev_fleets[{k}]."
        probs = check_section(spec, shown, where, FLEET_KEYS, required=("name",), bounds=FLEET_BOUNDS)
        if isinstance(name, str) and name in names:
            probs.append(Problem(shown, f"fleet name '{name}' is used twice", field=f"{where}name"))
        names.add(name if isinstance(name, str) else k)
        bad = {p.field[len(where):] for p in probs if p.field and p.field.startswith(where)}
        probs += _check_fleet({key: v for key, v in spec.items() if key not in bad}, shown, where, index, years)
        if probs:
            problems += probs
            continue
        try:
            fleets.append(_fleet(spec, folder, shown, where, index, profiles, years))
        except InstanceError as e:
            problems += e.problems
    if problems:
        raise InstanceError(problems)
    return tuple(fleets)


def _check_fleet(spec, shown, where, index, years) -> list[Problem]:
    probs = []
    if ("bus" in spec) == ("buses" in spec):
        probs.append(Problem(shown, "give exactly one of 'bus' (a bus name) or 'buses' (a list)", field=f"{where}bus"))
    buses = [spec["bus"]] if "bus" in spec else spec.get("buses", [])
    if "buses" in spec and not buses:
        probs.append(Problem(shown, "empty list", field=f"{where}buses"))
    for b in buses:
        if str(b) not in index:
            probs.append(Problem(shown, f"unknown bus '{b}'", field=f"{where}buses" if "buses" in spec else f"{where}bus"))
    if ("evs" in spec) == ("uptake" in spec):
        probs.append(Problem(shown, "give exactly one of 'evs' ({year = count, ...}) or 'uptake' "
                             "({final, midpoint, rate})", field=f"{where}evs"))
    if "evs" in spec:
        probs += _check_counts(spec["evs"], shown, where)
    if "uptake" in spec:
        probs += check_section(spec["uptake"], shown, f"{where}uptake.", UPTAKE_KEYS,
                               required=("final", "midpoint", "rate"), bounds=UPTAKE_BOUNDS)
    sources = [k for k in ("sessions", "profile", "simbench_profile") if k in spec]
    if len(sources) > 1:
        probs.append(Problem(shown, f"give at most one session source, not {' and '.join(sources)}",
                             field=f"{where}{sources[1]}"))
    if sources:
        for key in GENERATOR_KEYS + (("seed",) if sources[0] == "sessions" else ()):
            if key in spec:
                probs.append(Problem(shown, f"is a generator option; a fleet with '{sources[0]}' takes its sessions "
                                     "from it", field=f"{where}{key}"))
        for key in PROFILE_KEYS:
            if key in spec and sources[0] == "sessions" and key not in sources:
                probs.append(Problem(shown, "is an option of 'profile' / 'simbench_profile' fleets",
                                     field=f"{where}{key}"))
        if "ev_days" in spec and sources[0] != "sessions":
            probs.append(Problem(shown, "only with 'sessions' (a profile covers its own days)", field=f"{where}ev_days"))
        if sources[0] == "profile" and "profile_charger_kw" not in spec:
            probs.append(Problem(shown, "missing key: the charger's rated power (kW) of the profile",
                                 field=f"{where}profile_charger_kw"))
        if "simbench_profile" in spec and "profile_charger_kw" in spec:
            probs.append(Problem(shown, "a SimBench profile's charger power is in its name", field=f"{where}profile_charger_kw"))
        dep = spec.get("departure")
        if dep is not None and dep != "end_of_charging" and dep not in BEHAVIOURS:
            probs.append(Problem(shown, f"'{dep}' is not one of: end_of_charging, {', '.join(BEHAVIOURS)}",
                                 field=f"{where}departure"))
    else:
        for key in PROFILE_KEYS:
            if key in spec:
                probs.append(Problem(shown, "is an option of 'profile' / 'simbench_profile' fleets",
                                     field=f"{where}{key}"))
        beh = spec.get("behaviour")
        if beh is None:
            probs.append(Problem(shown, f"missing key: a behaviour for the generator ({', '.join(BEHAVIOURS)}) or "
                                 "a 'sessions' file", field=f"{where}behaviour"))
        elif beh not in BEHAVIOURS:
            probs.append(Problem(shown, f"'{beh}' is not one of: {', '.join(BEHAVIOURS)}", field=f"{where}behaviour"))
        if "ev_days" in spec:
            probs.append(Problem(shown, "only with 'sessions' (the generator knows its sample)", field=f"{where}ev_days"))
    if "v2g_share" in spec and spec["v2g_share"] > 1:
        probs.append(Problem(shown, f"{spec['v2g_share']} is a share, 0..1", field=f"{where}v2g_share"))
    if "phase" in spec and phase_shares(spec["phase"]) is None:
        probs.append(Problem(shown, f"phase must be \"a\", \"b\", \"c\", \"abc\" (balanced) or three shares >= 0 "
                             f"summing to 1, got {spec['phase']!r}", field=f"{where}phase"))
    smin, smax = spec.get("soc_min", 0.2), spec.get("soc_max", 1.0)
    if not 0 <= smin < smax <= 1:
        probs.append(Problem(shown, f"need 0 <= soc_min ({smin}) < soc_max ({smax}) <= 1", field=f"{where}soc_min"))
    mix = [_check_mix(spec, shown, where, vals, probs_key, lo_hi, probs)
           for vals, probs_key, lo_hi in (("battery_kwh", "battery_probs", BATTERY), ("charger_kw", "charger_probs", CHARGER))]
    if not probs and not any(k in spec for k in ("sessions", "profile", "simbench_profile")):
        probs += _check_daily_energy(spec, shown, where, *mix)
    return probs


def _check_counts(evs: dict, shown: str, where: str) -> list[Problem]:
    """``evs = {year = count}``: whole years in range, counts >= 0 and plausible."""
    probs = [] if evs else [Problem(shown, "empty table", field=f"{where}evs")]
    for y, n in evs.items():
        if not is_integer_year(y) or not YEARS[0] <= int(y) <= YEARS[1]:
            probs.append(Problem(shown, f"'{y}' is not a year ({YEARS[0]}..{YEARS[1]})", field=f"{where}evs.{y}"))
        elif isinstance(n, bool) or not isinstance(n, (int, float)) or not np.isfinite(float(n)) or n < 0:
            probs.append(Problem(shown, f"{n!r} is not a count >= 0", field=f"{where}evs.{y}"))
        elif n > MAX_EVS:
            probs.append(Problem(shown, f"must be between 0 and {MAX_EVS:g} EVs per bus (got {n:g})",
                                 field=f"{where}evs.{y}"))
    return probs


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(float(x))


def _check_mix(spec, shown, where, vals, probs_key, lo_hi, probs) -> tuple | None:
    """A generator mix (``battery_kwh`` + ``battery_probs`` or the charger's): values in
    ``lo_hi`` (lowest, highest, unit), probabilities >= 0 summing to 1.  Returns the values
    when they are valid, else None."""
    if (vals in spec) != (probs_key in spec):
        probs.append(Problem(shown, f"give '{vals}' and '{probs_key}' together", field=f"{where}{vals}"))
        return None
    if vals not in spec:
        return None
    v, p = spec[vals], spec[probs_key]
    lo, hi, unit = lo_hi
    if len(v) != len(p) or not v:
        probs.append(Problem(shown, f"{len(v)} values but {len(p)} probabilities", field=f"{where}{probs_key}"))
    elif not all(_number(x) and lo <= x <= hi for x in v):
        probs.append(Problem(shown, f"values must be numbers between {lo:g} and {hi:g} {unit} (got {v})",
                             field=f"{where}{vals}"))
    elif not all(_number(x) and x >= 0 for x in p) or abs(sum(p) - 1) > 1e-6:
        probs.append(Problem(shown, f"probabilities {p} must be >= 0 and sum to 1", field=f"{where}{probs_key}"))
    else:
        return tuple(float(x) for x in v)
    return None


def _check_daily_energy(spec, shown, where, batteries, chargers) -> list[Problem]:
    """A generated fleet must be able to recharge a mean day of driving: the energy
    (mean_daily_km x consumption, kWh) within the smallest battery's charge range
    (target_soc x B, kWh) and what the smallest charger delivers in the behaviour's mean
    plug-in window (eta_charge x kW x h)."""
    from ..ev.generator import BATTERY_KWH, MEAN_DAILY_KM

    beh = BEHAVIOURS[spec["behaviour"]]
    b = min(batteries or BATTERY_KWH)
    kw = min(chargers or beh.charger_kw)
    km = float(spec.get("mean_daily_km", MEAN_DAILY_KM))
    need = km * (0.14 + 0.0009 * b)  # kWh/day, the generator's consumption model
    hold = min(float(spec.get("target_soc", 1.0)), float(spec.get("soc_max", 1.0))) * b
    window = (beh.duration_mean_h if beh.duration_mean_h is not None
              else (beh.departure_mean_h - beh.arrival_mean_h) % 24.0)
    deliver = float(spec.get("eta_charge", 0.95)) * kw * window
    probs = []
    if need > hold:
        probs.append(Problem(shown, f"a day of {km:g} km needs {need:.1f} kWh, more than the smallest battery "
                             f"charges ({b:g} kWh x target_soc = {hold:.1f} kWh)", field=f"{where}mean_daily_km"))
    if need > deliver:
        probs.append(Problem(shown, f"a day of {km:g} km needs {need:.1f} kWh, more than the smallest charger "
                             f"({kw:g} kW) delivers in the mean {window:g} h plug-in window ({deliver:.1f} kWh)",
                             field=f"{where}mean_daily_km"))
    return probs


def phase_shares(value) -> tuple[float, float, float] | None:
    """A fleet's ``phase``: "a", "b", "c" (its chargers on that phase), "abc" (balanced) or three
    shares; None if it is none of those."""
    if isinstance(value, str):
        return {"a": (1.0, 0.0, 0.0), "b": (0.0, 1.0, 0.0), "c": (0.0, 0.0, 1.0),
                "abc": (1 / 3, 1 / 3, 1 / 3)}.get(value)
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                           and v >= 0 for v in value) and abs(sum(value) - 1) < 1e-6:
        return tuple(float(v) / sum(value) for v in value)
    return None


def _fleet(spec, folder, shown, where, index, profiles, years) -> EVFleet:
    bus_names = tuple(str(b) for b in ([spec["bus"]] if "bus" in spec else spec["buses"]))
    counts = evs_per_year(spec["evs"] if "evs" in spec else spec["uptake"], years)
    soc_min, soc_max = float(spec.get("soc_min", 0.2)), float(spec.get("soc_max", 1.0))
    eta_c, eta_d = float(spec.get("eta_charge", 0.95)), float(spec.get("eta_discharge", 0.95))
    hours, dt = profiles.hours, profiles.dt_h
    if "sessions" in spec:
        path = data_path(folder, spec["sessions"], shown, f"{where}sessions")
        df = read_csv(path, str(path), {c: ("str" if c == "ev" else "float") for c in
                                        ("ev", "arrival_h", "departure_h", "energy_arrival_kwh",
                                         "energy_required_kwh", "battery_kwh", "charger_kw")},
                      {"v2g": "bool"}, allow_extra=True, bounds=SESSION_BOUNDS)
        _no_repeated_sessions(df, str(path))
        sessions, clipped = validate_sessions(df, str(path), hours, dt, eta_charge=eta_c, soc_max=soc_max,
                                              clip=bool(spec.get("clip_sessions", False)))
        ev_days = float(spec.get("ev_days", df["ev"].nunique()))
        source, behaviour = str(path), spec.get("behaviour", "sessions")
    elif "profile" in spec or "simbench_profile" in spec:
        sessions, clipped, ev_days, source, behaviour = _profile_sessions(spec, folder, where, hours, dt, eta_c,
                                                                          soc_max, toml=shown)
    else:
        opt = GeneratorOptions(
            battery_kwh=tuple(spec.get("battery_kwh", GeneratorOptions.battery_kwh)),
            battery_probs=_normalised(spec.get("battery_probs", GeneratorOptions.battery_probs)),
            mean_daily_km=float(spec.get("mean_daily_km", GeneratorOptions.mean_daily_km)),
            alpha=float(spec.get("alpha", GeneratorOptions.alpha)),
            target_soc=min(float(spec.get("target_soc", 1.0)), soc_max), eta_charge=eta_c,
            v2g_share=float(spec.get("v2g_share", 0.0)),
            charger_kw=tuple(spec["charger_kw"]) if "charger_kw" in spec else None,
            charger_probs=_normalised(spec["charger_probs"]) if "charger_probs" in spec else None)
        seed = int(spec.get("seed", 1))
        df, stats = generate_sessions(spec["behaviour"], int(spec.get("sample_evs", 500)),
                                      int(spec.get("sample_days", 14)), seed, dt_h=dt, options=opt)
        sessions, clipped = validate_sessions(df, f"{shown} [{where}generated]", hours, dt, eta_charge=eta_c,
                                              soc_max=soc_max)
        ev_days = stats["ev_days"]
        source, behaviour = f"generator:{spec['behaviour']} seed={seed}", spec["behaviour"]
    return EVFleet(name=spec["name"], buses=tuple(index[b] for b in bus_names), bus_names=bus_names,
                   behaviour=behaviour, evs=pd.Series(counts, index=pd.Index(years, name="year")),
                   sessions=sessions, ev_days=ev_days, soc_min=soc_min, soc_max=soc_max, eta_charge=eta_c,
                   eta_discharge=eta_d, source=source, clipped=clipped,
                   phase=phase_shares(spec["phase"]) if "phase" in spec else None)


def _profile_sessions(spec, folder, where, hours, dt, eta_c, soc_max, toml: str = "instance.toml"):
    """Sessions of one charger's power profile (a CSV column ``p_kw`` or a SimBench profile)."""
    if "simbench_profile" in spec:
        name = spec["simbench_profile"]
        try:
            factor, step_h, charger_kw = simbench_ev_profile(name)
        except (ValueError, KeyError, ImportError) as e:
            raise InstanceError(Problem(where.rstrip("."), str(e).strip('"'), field=f"{where}simbench_profile")) from e
        power = factor * charger_kw
        shown = f"simbench:{name}"
        default_dep = "home" if name.startswith("HLS_") else "workplace"
    else:
        path = data_path(folder, spec["profile"], toml, f"{where}profile")
        shown = str(path)
        df = read_csv(path, shown, {"p_kw": "float"}, allow_extra=True)
        power = df["p_kw"].to_numpy(float)
        step_h = float(spec.get("profile_step_h", 0.25))
        charger_kw = float(spec["profile_charger_kw"])
        default_dep = "home"
        if (len(power) * step_h) % 24 > 1e-9:
            raise InstanceError(Problem(shown, f"{len(power)} steps of {step_h:g} h are not whole days", row=1,
                                        field="p_kw"))
        over = np.flatnonzero(power > charger_kw * 1.001)
        if len(over):
            raise InstanceError(Problem(shown, f"{power[over[0]]:g} kW exceeds the charger's {charger_kw:g} kW "
                                        f"({len(over)} rows)", row=int(over[0]) + 2, field="p_kw"))
    departure = spec.get("departure", default_dep)
    df, stats = sessions_from_profile(power, step_h, charger_kw, model_dt_h=dt,
                                      battery_kwh=float(spec.get("profile_battery_kwh", 50.0)), eta_charge=eta_c,
                                      soc_max=soc_max, departure=departure, seed=int(spec.get("seed", 1)))
    if df.empty:
        raise InstanceError(Problem(shown, "the profile has no charging (no power above 1 % of the charger's)",
                                    field="p_kw"))
    sessions, clipped = validate_sessions(df, f"{shown} [sessions]", hours, dt, eta_charge=eta_c, soc_max=soc_max,
                                          clip=True)
    return sessions, clipped, stats["ev_days"], f"{shown} departure={departure}", spec.get("behaviour", departure)


def _normalised(probs) -> tuple[float, ...]:
    """Probabilities scaled to sum to exactly 1 (the check allows 1e-6; numpy wants less)."""
    total = float(sum(probs))
    return tuple(float(p) / total for p in probs)


def _no_repeated_sessions(df: pd.DataFrame, shown: str) -> None:
    """Refuse a session file in which a row repeats another exactly (a copy-paste slip:
    one EV cannot charge twice at the same time)."""
    first, probs = {}, []
    for i, row in enumerate(df.astype(str).itertuples(index=False)):
        key = tuple(row)
        if key in first:
            probs.append(Problem(shown, f"repeats row {first[key] + 2} exactly (EV '{row[0]}' twice at the same time)",
                                 row=i + 2, field="ev"))
        else:
            first[key] = i
    if probs:
        raise InstanceError(probs)
