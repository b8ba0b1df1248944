"""Seeded synthetic charging sessions, calibrated on the UK Electric Nation trial.

The plug-in model of Gonzalez Venegas, Petit & Perez, "Plug-in behavior of electric
vehicles users: insights from a large-scale trial and impacts on grid integration
studies", eTransportation 8 (2021) 100131 (code: fgonzalezvenegas/EVModel), docs/formulation.md §4:

* every EV gets a battery B (25 / 50 / 75 kWh with probabilities 0.2 / 0.6 / 0.2), a
  charger (behaviour-specific mix of 3.7 / 7.4 / 11 / 22 kW), a consumption
  0.14 + 0.0009 B kWh/km (Weiss et al. 2020, as in EVModel) and a one-way commuting
  distance drawn once, lognormal (σ = 0.736, scale e^2.75 km, truncated at 120 km; EVModel),
  scaled so that the mean daily distance (two trips) is 38.1 km (the trial's mean);
* every day it drives its daily distance, then, arriving where the behaviour charges,
  plugs in if its state of charge is below SOC_trip = max(1.5 × next day's energy / B, 0.2)
  (the 0.2 floor as in the EVModel version the paper was calibrated with), or else
  with probability p = 1 − ((SOC − SOC_trip) / (SOC_max − SOC_trip))^α, α = 1.31 (the
  paper's average user); it then charges at full power until full or until it leaves.

With these defaults the model gives 0.43 sessions per EV and day (mean over ten seeds of
1 000 EVs x 70 days: 0.434, s.d. 0.004), 3 % below the trial's 0.447, which the paper
reached by fitting α per user group; ``tests/test_ev_generator.py`` holds it to within 5 %.
Arrival and departure times are normal (EVModel's defaults for home charging: arrival N(18 h, 2 h), departure
N(8 h, 2 h), at least 3 h plugged in); workplace and public times and charger mixes are
stated assumptions (:data:`BEHAVIOURS`), to be replaced by measured data where there is
some (a user's session CSV).  Times are snapped to the model's step grid (arrival up,
departure down) so that every session is exactly representable.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import pandas as pd

#: Battery sizes (kWh) and probabilities (docs/formulation.md §4, Electric Nation mix).
BATTERY_KWH = (25.0, 50.0, 75.0)
BATTERY_PROBS = (0.2, 0.6, 0.2)
#: Mean daily distance (km/day), Electric Nation (Gonzalez Venegas et al. 2021, Table 2).
MEAN_DAILY_KM = 38.1
#: Plug-in model exponent α (dimensionless), the paper's average user.
ALPHA = 1.31
#: Range-anxiety factor: plug in for sure below 1.5 × the next day's energy (EVModel),
#: and below SOC_FLOOR (fraction of B).
RANGE_FACTOR = 1.5
SOC_FLOOR = 0.2
#: One-way distance lognormal (EVModel ``set_dist``): shape σ, scale (km), truncation (km).
DIST_SIGMA, DIST_SCALE_KM, DIST_MAX_KM = 0.736, float(np.exp(2.75)), 120.0


@dataclass(frozen=True)
class Behaviour:
    """Where and when a fleet charges.

    ``plug_rule``: ``if_needed`` (the α model above) or ``daily`` (plug in with probability
    ``plug_probability`` each day, e.g. 5/7 for weekdays only); times in hours of the day
    (normal, wrapped onto 0..24); either a departure time distribution or, for short
    stays, a duration one (``duration_mean_h``); ``min_duration_h``: shorter draws are
    redrawn; ``charger_kw`` / ``charger_probs``: the charger mix (kW, probabilities)."""

    name: str
    arrival_mean_h: float
    arrival_std_h: float
    departure_mean_h: float | None
    departure_std_h: float | None
    min_duration_h: float
    charger_kw: tuple[float, ...]
    charger_probs: tuple[float, ...]
    plug_rule: str = "if_needed"
    plug_probability: float = 1.0
    duration_mean_h: float | None = None
    duration_std_h: float | None = None
    source: str = ""


BEHAVIOURS: dict[str, Behaviour] = {
    "home": Behaviour(
        "home", 18.0, 2.0, 8.0, 2.0, 3.0, (3.7, 7.4), (0.3, 0.7),
        source="times: EVModel defaults for home charging (arrival N(18, 2) h, departure N(8, 2) h, >= 3 h); "
               "chargers: Electric Nation installed 3.6 kW and 7 kW home chargers (share 30/70: assumption)"),
    "workplace": Behaviour(
        "workplace", 8.5, 1.0, 17.5, 1.0, 3.0, (7.4, 11.0, 22.0), (0.3, 0.5, 0.2), plug_rule="daily",
        plug_probability=5 / 7,
        source="assumption: office hours (arrival N(8.5, 1) h, departure N(17.5, 1) h), weekdays only "
               "(5/7 of days), AC chargers 7.4/11/22 kW at 30/50/20 %"),
    "public": Behaviour(
        "public", 13.0, 3.0, None, None, 1.0, (11.0, 22.0), (0.4, 0.6), duration_mean_h=2.0, duration_std_h=0.75,
        source="assumption: daytime stays (arrival N(13, 3) h, stay N(2, 0.75) h, >= 1 h) at 11/22 kW AC "
               "public chargers (40/60 %), plug-in by the same alpha model as home"),
}


@dataclass(frozen=True)
class GeneratorOptions:
    """Defaults as in the module docstring; ``target_soc`` (fraction of B) is what an
    uncontrolled charge reaches and what the EV must leave with (EVModel's default 1.0);
    ``warmup_days``: days simulated before sessions are recorded, so that the SOC process has
    forgotten its random start (default 14 days; assumption: a 50 kWh battery at the mean
    7 kWh/day drains from full to the plug-in threshold in about a week); ``v2g_share``: share
    of EVs with bidirectional chargers (default 0)."""

    battery_kwh: tuple[float, ...] = BATTERY_KWH
    battery_probs: tuple[float, ...] = BATTERY_PROBS
    mean_daily_km: float = MEAN_DAILY_KM
    alpha: float = ALPHA
    target_soc: float = 1.0
    eta_charge: float = 0.95
    v2g_share: float = 0.0
    warmup_days: int = 14
    charger_kw: tuple[float, ...] | None = None  # None: the behaviour's mix
    charger_probs: tuple[float, ...] | None = None
    extra: dict = field(default_factory=dict)


@lru_cache(maxsize=None)
def _distance_scale(mean_daily_km: float) -> float:
    """Factor on the truncated lognormal one-way distance so that 2 x its mean is the
    target daily distance."""
    from scipy import stats

    dist = stats.lognorm(DIST_SIGMA, scale=DIST_SCALE_KM)
    mean_one_way = dist.expect(lambda x: x, ub=DIST_MAX_KM, conditional=True)
    return mean_daily_km / (2.0 * mean_one_way)


def _one_way_km(rng, n: int) -> np.ndarray:
    d = rng.lognormal(np.log(DIST_SCALE_KM), DIST_SIGMA, n)
    while np.any(d > DIST_MAX_KM):
        bad = d > DIST_MAX_KM
        d[bad] = rng.lognormal(np.log(DIST_SCALE_KM), DIST_SIGMA, int(bad.sum()))
    return d


def _times(rng, beh: Behaviour, n: int, dt_h: float) -> tuple[np.ndarray, np.ndarray]:
    """Arrival hour (0..24) and plugged-in duration (h), both on the step grid, the
    duration at least ``min_duration_h``."""
    arr = np.zeros(n)
    dur = np.zeros(n)
    todo = np.arange(n)
    for _ in range(1000):
        if len(todo) == 0:
            break
        a = rng.normal(beh.arrival_mean_h, beh.arrival_std_h, len(todo)) % 24.0
        if beh.duration_mean_h is not None:
            d = a + np.maximum(rng.normal(beh.duration_mean_h, beh.duration_std_h, len(todo)), 0.0)
        else:
            d = rng.normal(beh.departure_mean_h, beh.departure_std_h, len(todo)) % 24.0
            d = np.where(d <= a, d + 24.0, d)
        a = np.ceil(a / dt_h - 1e-9) * dt_h
        d = np.floor(d / dt_h + 1e-9) * dt_h
        ok = (d - a >= beh.min_duration_h - 1e-9) & (d - a <= 24.0)
        arr[todo[ok]] = a[ok] % 24.0
        dur[todo[ok]] = d[ok] - a[ok]
        todo = todo[~ok]
    if len(todo):  # pragma: no cover - only with a pathological behaviour
        raise ValueError(f"behaviour '{beh.name}' cannot produce stays of {beh.min_duration_h} h")
    return arr, dur


def generate_sessions(behaviour: str | Behaviour, n_evs: int, n_days: int, seed: int, dt_h: float = 1.0,
                      options: GeneratorOptions | None = None) -> tuple[pd.DataFrame, dict]:
    """Simulate ``n_evs`` EVs for ``n_days`` days (after a warm-up) and return their
    sessions (columns of :data:`flexplan.ev.envelopes.SESSION_COLUMNS` plus ``v2g`` and
    ``day``) and statistics: ``ev_days``, ``sessions_per_ev_day``, ``mean_daily_km``,
    ``mean_energy_kwh``.  The same arguments give the same sessions."""
    opt = options or GeneratorOptions()
    beh = BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour
    if opt.charger_kw is not None:
        beh = replace(beh, charger_kw=tuple(opt.charger_kw), charger_probs=tuple(opt.charger_probs))
    rng = np.random.default_rng(seed)
    B = rng.choice(np.asarray(opt.battery_kwh, float), n_evs, p=np.asarray(opt.battery_probs, float))
    charger = rng.choice(np.asarray(beh.charger_kw, float), n_evs, p=np.asarray(beh.charger_probs, float))
    cons = 0.14 + 0.0009 * B  # kWh/km
    daily_km = 2.0 * _one_way_km(rng, n_evs) * _distance_scale(opt.mean_daily_km)
    need = daily_km * cons / B  # SOC per day
    v2g = rng.random(n_evs) < opt.v2g_share
    soc = rng.uniform(0.5, 1.0, n_evs)
    thresh = np.maximum(RANGE_FACTOR * need, SOC_FLOOR)
    out = []
    for day in range(opt.warmup_days + n_days):
        soc = np.maximum(soc - need, 0.0)
        if beh.plug_rule == "daily":
            plug = rng.random(n_evs) < beh.plug_probability
        else:
            u = rng.random(n_evs)
            ratio = np.clip((soc - thresh) / np.maximum(1.0 - thresh, 1e-9), 0.0, 1.0)
            plug = (soc < thresh) | ((soc < 1.0) & (u < 1.0 - ratio ** opt.alpha))
        idx = np.flatnonzero(plug)
        arr, dur = _times(rng, beh, len(idx), dt_h)
        e0 = soc[idx] * B[idx]
        reach = e0 + opt.eta_charge * charger[idx] * dur
        ereq = np.minimum(np.maximum(opt.target_soc * B[idx], e0), reach)
        soc[idx] = ereq / B[idx]
        if day >= opt.warmup_days:
            out.append(pd.DataFrame({"ev": idx, "day": day - opt.warmup_days, "arrival_h": arr,
                                     "departure_h": (arr + dur) % 24.0, "energy_arrival_kwh": e0,
                                     "energy_required_kwh": ereq, "battery_kwh": B[idx],
                                     "charger_kw": charger[idx], "v2g": v2g[idx]}))
    sessions = pd.concat(out, ignore_index=True)
    ev_days = float(n_evs * n_days)
    stats = dict(ev_days=ev_days, sessions_per_ev_day=len(sessions) / ev_days,
                 mean_daily_km=float(daily_km.mean()),
                 mean_energy_kwh=float((sessions["energy_required_kwh"] - sessions["energy_arrival_kwh"]).mean()),
                 behaviour=beh.name, seed=seed, source=beh.source)
    return sessions, stats
