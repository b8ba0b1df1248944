"""Charging sessions -> per-cohort energy envelopes on a periodic day (FORMULATION.md §4).

A session i: arrival a_i and departure d_i (hours after midnight; d_i <= a_i means the next
morning), energy in the battery at arrival e_i^arr and required at departure e_i^req (kWh),
battery B_i (kWh), charger p̄_i (kW).  On a grid of H steps of Δt hours it is plugged in for
the steps that lie wholly inside [a_i, d_i): from A_i = ceil(a_i / Δt) for
L_i = floor(d_i / Δt) − A_i steps (wrapping past midnight onto the same periodic day).

Sessions with the same (A, L) form a cohort; its envelope after τ = 0..L plugged steps is
the sum of its sessions' envelopes

    E^max(τ) = Σ_i min(e_i^arr + η_c p̄_i τ Δt, SOC_max B_i)               (charge at once)
    E^min(τ) = Σ_i max(e_i^lo, e_i^req − η_c p̄_i (L − τ) Δt)               (charge at the last moment)

with e_i^lo = e_i^arr without V2G and SOC_min B_i with V2G, and the baseline (uncontrolled)
charging: every session at full power from arrival until its battery is full
(``SOC_max B_i``).  Within a cohort the sum of individual envelopes is exact for the
aggregate energy when all sessions share one charger size, and an outer approximation
otherwise; more cohorts (splitting by charger) shrink the gap.

Everything is per EV of the fleet: cohort totals are divided by the number of EV-days in
the sample, so that a node with N EVs scales every quantity by N and the model's size
depends on cohorts x time only, never on the number of EVs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InstanceError, Problem

SESSION_COLUMNS = ["ev", "arrival_h", "departure_h", "energy_arrival_kwh", "energy_required_kwh", "battery_kwh",
                   "charger_kw"]


@dataclass(frozen=True)
class CohortEnvelopes:
    """Per-EV cohort data (MW, MWh) on a day of ``hours`` steps of ``dt_h`` hours.

    Per cohort k: ``start[k]`` (first plugged step), ``length[k]`` (plugged steps),
    ``p_max_mw[k]`` (sum of chargers), ``p_dis_max_mw[k]`` (V2G chargers, 0 without),
    ``e_arr_mwh[k]``, ``e_req_mwh[k]``, ``e_max_mwh[k]`` / ``e_min_mwh[k]`` (arrays of
    length L+1: energy after τ plugged steps), ``baseline_mw[k]`` (length L: uncontrolled
    charging power in each plugged step), ``sessions[k]`` (how many sample sessions).
    """

    hours: int
    dt_h: float
    eta_charge: float
    eta_discharge: float
    start: np.ndarray
    length: np.ndarray
    p_max_mw: np.ndarray
    p_dis_max_mw: np.ndarray
    e_arr_mwh: np.ndarray
    e_req_mwh: np.ndarray
    e_max_mwh: list
    e_min_mwh: list
    baseline_mw: list
    sessions: np.ndarray
    ev_days: float

    @property
    def n_cohorts(self) -> int:
        return len(self.start)

    def steps(self, k: int) -> np.ndarray:
        """The day steps (0..H-1) cohort k is plugged in, in order."""
        return (self.start[k] + np.arange(self.length[k])) % self.hours

    def baseline_profile_mw(self) -> np.ndarray:
        """Uncontrolled charging per EV over the day (MW per step)."""
        out = np.zeros(self.hours)
        for k in range(self.n_cohorts):
            np.add.at(out, self.steps(k), self.baseline_mw[k])
        return out


def validate_sessions(df: pd.DataFrame, shown: str, hours: int, dt_h: float, eta_charge: float = 0.95,
                      soc_max: float = 1.0, clip: bool = False) -> tuple[pd.DataFrame, int]:
    """Check sessions; return them (with ``start`` and ``length`` slots) and how many were
    clipped.  ``eta_charge`` 0.95 and ``soc_max`` 1.0 as in :func:`build_envelopes`.  Errors name the CSV line (header = line 1) and field; with ``clip`` an
    unreachable requirement is lowered to what the charger can deliver instead."""
    missing = [c for c in SESSION_COLUMNS if c not in df.columns]
    if missing:
        raise InstanceError(Problem(shown, f"missing column(s) {', '.join(missing)}", row=1, field=missing[0]))
    problems, clipped = [], 0
    df = df.copy().reset_index(drop=True)
    starts, lengths = [], []
    for i, s in df.iterrows():
        line = i + 2
        for col in SESSION_COLUMNS[1:]:
            v = s[col]
            if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                problems.append(Problem(shown, f"{v!r} is not a finite number", row=line, field=col))
        if problems and problems[-1].row == line:
            starts.append(0)
            lengths.append(0)
            continue
        for col in ("arrival_h", "departure_h"):
            if not 0 <= s[col] <= 24:
                problems.append(Problem(shown, f"{s[col]} is not an hour of the day (0..24)", row=line, field=col))
        for col in ("battery_kwh", "charger_kw"):
            if s[col] <= 0:
                problems.append(Problem(shown, f"{s[col]} must be > 0", row=line, field=col))
        if s["energy_arrival_kwh"] < 0:
            problems.append(Problem(shown, "must be >= 0", row=line, field="energy_arrival_kwh"))
        if s["energy_required_kwh"] > soc_max * s["battery_kwh"] + 1e-9:
            problems.append(Problem(shown, f"{s['energy_required_kwh']} kWh exceeds the usable capacity "
                                    f"{soc_max * s['battery_kwh']:g} kWh", row=line, field="energy_required_kwh"))
        if s["energy_arrival_kwh"] > s["battery_kwh"] + 1e-9:
            problems.append(Problem(shown, "exceeds battery_kwh", row=line, field="energy_arrival_kwh"))
        a = s["arrival_h"]
        d = s["departure_h"] if s["departure_h"] > a else s["departure_h"] + 24.0
        start = math.ceil(a / dt_h - 1e-9)
        length = math.floor(d / dt_h + 1e-9) - start
        if length < 1:
            problems.append(Problem(shown, f"plugged in for less than one {dt_h:g} h step ({a:g} h to "
                                    f"{s['departure_h']:g} h)", row=line, field="departure_h"))
        elif length > hours:
            length = hours
        reach = s["energy_arrival_kwh"] + eta_charge * s["charger_kw"] * max(length, 0) * dt_h
        if length >= 1 and s["energy_required_kwh"] > reach + 1e-9:
            if clip:
                df.at[i, "energy_required_kwh"] = reach
                clipped += 1
            else:
                problems.append(Problem(shown, f"{s['energy_required_kwh']} kWh cannot be reached: the charger "
                                        f"delivers at most {reach:.3f} kWh in the {length} plugged step(s)",
                                        row=line, field="energy_required_kwh"))
        starts.append(start % hours)
        lengths.append(length)
    if problems:
        raise InstanceError(problems)
    return df.assign(start=starts, length=lengths), clipped


def build_envelopes(sessions: pd.DataFrame, n_ev_days: float, hours: int, dt_h: float, eta_charge: float = 0.95,
                    eta_discharge: float = 0.95, soc_min: float = 0.2, soc_max: float = 1.0, v2g: bool = False,
                    split_by_charger: bool = True, max_cohorts: int | None = None) -> CohortEnvelopes:
    """Cohort envelopes per EV from validated sessions (with ``start``/``length``).

    Defaults (FORMULATION.md §4, calibrated on the UK Electric Nation trial, Gonzalez
    Venegas et al., eTransportation 2021): ``eta_charge`` / ``eta_discharge`` 0.95
    (dimensionless), ``soc_min`` 0.2 (fraction of B, the V2G floor), ``soc_max`` 1.0
    (fraction of B, "full").

    ``n_ev_days``: EVs x days the sessions were drawn from (divides every total, so the
    result is per EV and day); ``split_by_charger``: cohorts also by charger power (exact
    aggregate when a cohort shares one charger); ``max_cohorts``: merge the smallest
    windows into their nearest (by start, then length) until at most this many remain
    (a coarser, outer-approximating aggregate)."""
    key_cols = ["start", "length"] + (["charger_kw"] if split_by_charger else [])
    groups = sessions.assign(_key=list(zip(*[sessions[c] for c in key_cols]))).groupby("_key", sort=True)
    keys = list(groups.groups)
    if max_cohorts is not None and len(keys) > max_cohorts:
        counts = groups.size().sort_values(ascending=False)
        keep = list(counts.index[:max_cohorts])
        kept = np.array([[k[0], k[1]] for k in keep], dtype=float)

        def nearest(k):
            dist = np.abs(kept[:, 0] - k[0]) * 1000 + np.abs(kept[:, 1] - k[1])
            return keep[int(np.argmin(dist))]

        mapping = {k: (k if k in keep else nearest(k)) for k in keys}
        sessions = sessions.assign(_key=[mapping[k] for k in zip(*[sessions[c] for c in key_cols])])
        # a merged session keeps its own energies but takes the cohort's window: shorten
        # its requirement to what the (possibly shorter) window can deliver
        L = np.array([k[1] for k in sessions["_key"]])
        reach = sessions["energy_arrival_kwh"] + eta_charge * sessions["charger_kw"] * L * dt_h
        sessions = sessions.assign(start=[k[0] for k in sessions["_key"]], length=L,
                                   energy_required_kwh=np.minimum(sessions["energy_required_kwh"], reach))
        groups = sessions.groupby("_key", sort=True)
    out = dict(start=[], length=[], p_max=[], p_dis=[], e_arr=[], e_req=[], e_max=[], e_min=[], base=[], n=[])
    kw = 1e-3 / n_ev_days  # kW or kWh of the sample -> MW or MWh per EV
    for key, g in groups:
        A, L = int(key[0]), int(key[1])
        p = g["charger_kw"].to_numpy(float)
        B = g["battery_kwh"].to_numpy(float)
        e0 = g["energy_arrival_kwh"].to_numpy(float)
        ereq = g["energy_required_kwh"].to_numpy(float)
        tau = np.arange(L + 1)[:, None]
        e_full = soc_max * B
        emax = np.minimum(e0 + eta_charge * p * tau * dt_h, np.maximum(e_full, e0))
        lo = np.minimum(soc_min * B, e0) if v2g else e0
        emin = np.maximum(lo, ereq - eta_charge * p * (L - tau) * dt_h)
        # baseline: full power until full
        base = np.diff(emax, axis=0) / (eta_charge * dt_h)
        out["start"].append(A)
        out["length"].append(L)
        out["p_max"].append(p.sum() * kw)
        out["p_dis"].append(p.sum() * kw if v2g else 0.0)
        out["e_arr"].append(e0.sum() * kw)
        out["e_req"].append(ereq.sum() * kw)
        out["e_max"].append(emax.sum(axis=1) * kw)
        out["e_min"].append(emin.sum(axis=1) * kw)
        out["base"].append(base.sum(axis=1) * kw)
        out["n"].append(len(g))
    return CohortEnvelopes(hours=hours, dt_h=dt_h, eta_charge=eta_charge, eta_discharge=eta_discharge,
                           start=np.array(out["start"], dtype=int), length=np.array(out["length"], dtype=int),
                           p_max_mw=np.array(out["p_max"]), p_dis_max_mw=np.array(out["p_dis"]),
                           e_arr_mwh=np.array(out["e_arr"]), e_req_mwh=np.array(out["e_req"]),
                           e_max_mwh=out["e_max"], e_min_mwh=out["e_min"], baseline_mw=out["base"],
                           sessions=np.array(out["n"]), ev_days=float(n_ev_days))
