"""Charging power time series -> charging sessions (SimBench EV profiles, metered chargers).

A profile of one charger's power (kW, steps of ``dt_h`` hours, any number of days) is cut
into charging runs: maximal stretches where the power exceeds ``threshold`` x the charger
power, joined across gaps shorter than ``merge_gap_h``.  Each run is one session:

* arrival: the run's first step (rounded down to the model's grid), energy charged into the
  battery: η_c Σ p Δt over the run;
* the EV leaves full (uncontrolled charging ends when the battery is full): required
  energy = ``soc_max`` x B, energy at arrival = required − charged (B raised to the charged
  energy where a run charges more than the battery holds; counted in ``stats``);
* departure: unknown in a power profile.  ``departure = "end_of_charging"`` (the run's end,
  rounded up: no flexibility beyond what the profile shows) or a behaviour of
  :data:`flexplan.ev.generator.BEHAVIOURS` (``"home"``, ``"workplace"``): a departure time
  drawn from that behaviour's distribution (seeded), never before the run ends and at most
  24 h after arrival.

The profiles of SimBench (``simbench`` package, LoadProfile.csv of scenario 2: ``HLS_*`` home
and ``APLS_*`` workplace/public chargers of 3.7-50 kW, normalised to the charger's rated power,
15-minute steps over 2016) look like uncontrolled charging of one car each.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from .generator import BEHAVIOURS

SIMBENCH_EV_PREFIXES = ("HLS_", "APLS_")


def charging_runs(power_kw: np.ndarray, dt_h: float, threshold_kw: float, merge_gap_h: float = 0.0):
    """(start, stop) step indices of the runs where power > threshold (stop exclusive)."""
    on = np.asarray(power_kw) > threshold_kw
    edges = np.diff(np.concatenate([[0], on.astype(int), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if merge_gap_h > 0 and len(starts) > 1:
        gap = (starts[1:] - stops[:-1]) * dt_h
        keep = np.concatenate([[True], gap > merge_gap_h + 1e-9])
        starts = starts[keep]
        stops = np.concatenate([stops[:-1][keep[1:]], [stops[-1]]])
    return list(zip(starts.tolist(), stops.tolist()))


def sessions_from_profile(power_kw, dt_h: float, charger_kw: float, model_dt_h: float = 1.0,
                          battery_kwh: float = 50.0, eta_charge: float = 0.95, soc_max: float = 1.0,
                          departure: str = "home", seed: int = 1, threshold: float = 0.01,
                          merge_gap_h: float = 0.25, ev: str = "profile") -> tuple[pd.DataFrame, dict]:
    """Sessions (the columns of :data:`flexplan.ev.envelopes.SESSION_COLUMNS` + ``v2g``) of
    one charger's profile, on a model grid of ``model_dt_h`` hours, and statistics
    (``ev_days``: the profile's length in days, ``runs``, ``raised_battery``).  Defaults:
    ``battery_kwh`` 50 (the mean of the Electric Nation mix, docs/formulation.md §4),
    ``threshold`` 1 % of the charger power (kW below it is noise: SimBench carries values
    down to −1e-5), runs closer than ``merge_gap_h`` 0.25 h (one SimBench step: a dip of one
step inside a charge, seen in the HLS profiles) are one session; ``departure`` as in the
module docstring, drawn with ``seed``."""
    p = np.clip(np.asarray(power_kw, dtype=float), 0.0, None)
    if departure != "end_of_charging" and departure not in BEHAVIOURS:
        raise ValueError(f"departure must be 'end_of_charging' or one of {', '.join(BEHAVIOURS)}, got '{departure}'")
    runs = charging_runs(p, dt_h, threshold * charger_kw, merge_gap_h)
    rng = np.random.default_rng(seed)
    rows, raised = [], 0
    for a, b in runs:
        energy = eta_charge * p[a:b].sum() * dt_h  # kWh into the battery
        t_arr = a * dt_h
        t_end = b * dt_h
        arr = math.floor(t_arr / model_dt_h + 1e-9) * model_dt_h
        end = math.ceil(t_end / model_dt_h - 1e-9) * model_dt_h
        if departure == "end_of_charging":
            dep = end
        else:
            beh = BEHAVIOURS[departure]
            if beh.departure_mean_h is not None:
                d = rng.normal(beh.departure_mean_h, beh.departure_std_h) % 24.0
                # the first such clock time after the end of charging
                day0 = math.floor(t_end / 24.0) * 24.0
                dep = day0 + d if day0 + d >= t_end else day0 + 24.0 + d
            else:
                dep = t_end + max(rng.normal(beh.duration_mean_h, beh.duration_std_h), 0.0)
            dep = max(end, math.floor(dep / model_dt_h + 1e-9) * model_dt_h)
        dep = min(dep, arr + 24.0)
        B = battery_kwh
        if energy > soc_max * B:
            B = energy / soc_max
            raised += 1
        e_req = soc_max * B
        rows.append(dict(ev=ev, arrival_h=arr % 24.0, departure_h=dep % 24.0, energy_arrival_kwh=e_req - energy,
                         energy_required_kwh=e_req, battery_kwh=B, charger_kw=float(charger_kw), v2g=False,
                         day=int(t_arr // 24)))
    days = len(p) * dt_h / 24.0
    cols = ["ev", "arrival_h", "departure_h", "energy_arrival_kwh", "energy_required_kwh", "battery_kwh",
            "charger_kw", "v2g", "day"]
    return pd.DataFrame(rows, columns=cols), dict(ev_days=days, runs=len(runs), raised_battery=raised)


@lru_cache(maxsize=32)
def simbench_ev_profile(name: str) -> tuple[np.ndarray, float, float]:
    """The normalised active-power profile ``name`` (e.g. ``HLS_A_11.0``) from the
    ``simbench`` package's scenario-2 data, its step (h) and its charger power (kW, from the
    name).  Needs the ``simbench`` extra: ``pip install flexplan-dso[simbench]``."""
    parts = name.split("_")
    if not name.startswith(SIMBENCH_EV_PREFIXES) or len(parts) != 3:
        raise ValueError(f"'{name}' is not the profile of one SimBench EV charger (HLS_<type>_<kW> or "
                         "APLS_<type>_<kW>; the MV profiles APLS_<MW> aggregate many chargers)")
    try:
        import simbench
    except ImportError as e:  # pragma: no cover - the test extra installs it
        raise ImportError("SimBench profiles need the 'simbench' package: pip install 'flexplan-dso[simbench]'") from e
    from pathlib import Path

    path = Path(simbench.__file__).parent / "networks" / "1-complete_data-mixed-all-2-sw" / "LoadProfile.csv"
    col = f"{name}_pload"
    head = pd.read_csv(path, sep=";", nrows=0).columns
    if col not in head:
        names = sorted({c[:-6] for c in head if c.endswith("_pload") and c.startswith(SIMBENCH_EV_PREFIXES)
                        and len(c[:-6].split("_")) == 3})
        raise KeyError(f"no SimBench EV profile '{name}'; available: {', '.join(names)}")
    factor = pd.read_csv(path, sep=";", usecols=[col])[col].to_numpy(dtype=float)
    return factor, 0.25, float(parts[2])
