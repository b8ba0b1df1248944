"""Evaluate a solved charging schedule with the full nonlinear ageing laws, outside the LP.

For every cohort of every fleet-day the schedule gives the cohort's energy and plugged-in
capacity per step; their ratio is the average member's state of charge.  A day of that EV
is the window (arrival → charging / V2G → departure) closed by the drive back to the
arrival SOC.  Then:

* **cycling**: the ``rainflow`` package (ASTM E1049-85) counts the cycles of the closed daily
  SOC trace; their depths and counts go through the chemistry's √FEC law
  (:meth:`~flexplan.ev.chemistry.Chemistry.cycle_loss`), continued from the loss of a
  battery of the configured age that has cycled like this every day (time-equivalent rule);
* **calendar**: the exact SOC dependence (no piecewise-linear envelope) over the plugged-in
  hours, with the increment of the time law over the year at the battery's age (the secant
  ((a + 1 yr)^z − a^z) instead of the LP's tangent at a).

The LP's own estimate (:class:`flexplan.blocks.ageing.AgeingModel`) is computed for the same
schedule, so the linearisation error is reported next to it, for the plan and for
uncontrolled charging.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

HOURS_PER_YEAR = 8760.0


def _closed_trace(soc: np.ndarray, soc_end: float) -> np.ndarray:
    """The day of the cohort's average EV: its window, the departure, then back to arrival."""
    return np.concatenate([soc, [soc_end, soc[0]]])


def count_cycles(trace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depths and counts (0.5 for a half cycle) of a periodic SOC trace, by rainflow; the
    trace is rotated to start at its maximum so that the periodic closure is one cycle."""
    import rainflow

    k = int(np.argmax(trace))
    t = np.concatenate([trace[k:], trace[:k], [trace[k]]])
    cycles = list(rainflow.count_cycles(t.tolist()))
    if not cycles:
        return np.zeros(0), np.zeros(0)
    d, n = zip(*cycles)
    return np.asarray(d, dtype=float), np.asarray(n, dtype=float)


def evaluate(model, cohorts: list[dict], units: list[dict], day_weight, dt_h: float, value) -> pd.DataFrame:
    """Per (node, year, fleet): capacity lost per year (MWh) by the LP's estimate and by the
    nonlinear laws, for the schedule and for uncontrolled charging.  ``value`` turns a Pyomo
    expression or a number into a float."""
    chem, cfg = model.chem, model.cfg
    z_cal = chem.calendar_exponent
    age = model.age_h
    secant = ((age + HOURS_PER_YEAR) ** z_cal - age ** z_cal) / HOURS_PER_YEAR  # per hour, exact increment
    tangent = z_cal * age ** (z_cal - 1.0)
    rows = defaultdict(lambda: defaultdict(float))
    for c in cohorts:
        u = units[c["unit"]]
        key = (u["node"], u["year"], u["fleet"])
        w = float(day_weight[u["day"]])
        cap = np.asarray(c["capacity"], dtype=float)
        if cap.sum() <= 0:
            continue
        eta_c, eta_d = u["eta_charge"], u["eta_discharge"]
        for which, e_list, ch_list, dis_list in (
                ("plan", c["energy"], c["charge"], c["discharge"]),
                ("base", c["baseline_energy"], c["baseline_charge"], None)):
            e = np.array([value(x) for x in e_list])
            ch = np.array([value(x) for x in ch_list])
            dis = np.zeros_like(e) if dis_list is None else np.array([value(x) for x in dis_list])
            soc = np.clip(e / np.where(cap > 0, cap, 1.0), 0.0, 1.0)
            # calendar over the plugged-in hours: MWh of capacity lost per year
            k_exact = chem.calendar_stress(soc, cfg.temperature_c)
            rows[key][f"cal_exact_{which}"] += float((k_exact * cap).sum() * dt_h * w * secant)
            rows[key][f"cal_lp_{which}"] += float(sum(model.calendar_rate(ei, ci) for ei, ci in zip(e, cap))
                                                  * dt_h * w)
            # cycling: rainflow on the closed daily trace of the average member
            e_end = e[-1] + (eta_c * ch[-1] - dis[-1] / eta_d) * dt_h
            trace = _closed_trace(soc, float(np.clip(e_end / cap[-1], 0.0, 1.0)) if cap[-1] > 0 else soc[-1])
            depth, count = count_cycles(trace)
            members = float(cap.max())  # MWh of batteries in this cohort (the most plugged in at once)
            rows[key][f"cycles_{which}"] += float((depth * count).sum()) * w  # FEC per year per battery
            rows[key][f"cyc_exact_{which}"] += members * w * _cycle_increment(chem, depth, count, model)
        rows[key]["capacity_mwh"] = max(rows[key]["capacity_mwh"], u["n_evs"] * u["battery_kwh_mean"] / 1000.0)
    out = []
    for (node, year, fleet), r in sorted(rows.items()):
        out.append(dict(node=node, year=year, fleet=fleet,
                        calendar_lp_mwh=r["cal_lp_plan"], calendar_exact_mwh=r["cal_exact_plan"],
                        calendar_error_pct=100 * (r["cal_lp_plan"] / r["cal_exact_plan"] - 1) if r["cal_exact_plan"]
                        else 0.0,
                        calendar_lp_baseline_mwh=r["cal_lp_base"], calendar_exact_baseline_mwh=r["cal_exact_base"],
                        cycling_exact_mwh=r["cyc_exact_plan"], cycling_exact_baseline_mwh=r["cyc_exact_base"],
                        time_linearisation_factor=tangent / secant))
    return pd.DataFrame(out)


def _cycle_increment(chem, depth, count, model) -> float:
    """Capacity lost (fraction) by one day of these cycles for a battery of the configured age
    that has cycled like this every day: the √FEC law's increment at that age."""
    if len(depth) == 0:
        return 0.0
    days = model.cfg.battery_age_years * 365.0
    order = np.argsort(depth)
    d, n = depth[order], count[order]
    q0 = chem.cycle_loss(np.tile(d, 1), n * days, c_rate=model.c_rate)  # the battery's past
    return chem.cycle_loss(d, n, c_rate=model.c_rate, q0=q0) - q0
