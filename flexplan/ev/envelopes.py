"""Charging sessions -> per-cohort energy envelopes on a periodic day (docs/formulation.md §4).

A session i: arrival a_i and departure d_i (hours after midnight; d_i <= a_i means the next
morning), energy in the battery at arrival e_i^arr and required at departure e_i^req (kWh),
battery B_i (kWh), charger p̄_i (kW).  On a grid of H steps of Δt hours it is plugged in for
the steps that lie wholly inside [a_i, d_i): from s_i = ceil(a_i / Δt) for
L_i = floor(d_i / Δt) − s_i steps (wrapping past midnight onto the same periodic day: the
day is a steady state, so a session's morning steps fall on the same clock hours as the
previous day's sessions).  Its envelope after τ = 0..L_i plugged steps is

    E_i^max(τ) = min(e_i^arr + η_c p̄_i τ Δt, max(SOC_max B_i, e_i^arr))     (charge at once)
    E_i^min(τ) = max(e_i^lo, e_i^req − η_c p̄_i (L_i − τ) Δt)                 (charge at the last moment)

with e_i^lo = e_i^arr, or min(SOC_min B_i, e_i^arr) for a V2G session in V2G mode.  The
baseline (uncontrolled) charging is full power from arrival until full: the steps of E^max.

**Cohorts.**  Sessions are grouped into cohorts; a cohort c lives on a window of W_c steps
starting at clock step A_c, and each member i on its own sub-window [r_i, r_i + L_i) of it.
The cohort's state e_c(τ) is the energy of the members plugged in during step τ:

    e_c(τ+1) = e_c(τ) + η_c p_ch(τ) Δt − p_dis(τ) Δt / η_d + Arr_c(τ+1) − Dep_c(τ+1),
    Σ_{i plugged at τ} E_i^min(τ − r_i) <= e_c(τ) <= Σ_{i plugged at τ} E_i^max(τ − r_i),
    0 <= p_ch(τ) <= Σ_{i plugged at τ} p̄_i,   0 <= p_dis(τ) <= Σ_{V2G i plugged at τ} p̄_i,
    Σ_{i leaving at τ} E_i^min(L_i) <= Dep_c(τ) <= Σ_{i leaving at τ} E_i^max(L_i),

with Arr_c(τ) the (fixed) energy of the members arriving at τ, e_c(0) = Arr_c(0) and
e_c(W_c) = 0.  Summing any individually feasible schedules gives a feasible cohort schedule,
so a cohort is an outer approximation of its members; with one session per cohort it is
exact.  By default the cohorts are the distinct (arrival step, plugged steps, charger)
windows, and in V2G mode V2G-capable sessions form cohorts of their own; ``max_cohorts``
merges windows into fewer, looser cohorts; ``per_session`` gives the exact (brute-force)
model.

Everything is per EV of the fleet: totals are divided by the number of EV-days in the
sample, so that a node with N EVs scales every quantity by N and the model's size depends
on cohorts x time only, never on the number of EVs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InstanceError, Problem

SESSION_COLUMNS = ["ev", "arrival_h", "departure_h", "energy_arrival_kwh", "energy_required_kwh", "battery_kwh",
                   "charger_kw"]
OPTIONAL_COLUMNS = ["v2g"]  # 1 (or true) where the EV and its charger can discharge; default 0


@dataclass(frozen=True)
class Cohort:
    """One cohort's data per EV of the fleet (MW, MWh) on a window of ``width`` steps.

    Arrays of length W (one per step τ, or per state e(τ) for τ = 0..W-1): ``p_max_mw``,
    ``p_dis_max_mw``, ``e_min_mwh``, ``e_max_mwh``, ``baseline_mw``, ``capacity_mwh`` (the
    plugged-in members' battery sizes); arrays of length W+1
    (per boundary τ = 0..W): ``arrivals_mwh`` (fixed energy plugging in), ``dep_min_mwh``,
    ``dep_max_mwh`` (bounds on the energy leaving)."""

    start: int
    width: int
    p_max_mw: np.ndarray
    p_dis_max_mw: np.ndarray
    e_min_mwh: np.ndarray
    e_max_mwh: np.ndarray
    arrivals_mwh: np.ndarray
    dep_min_mwh: np.ndarray
    dep_max_mwh: np.ndarray
    baseline_mw: np.ndarray
    sessions: int
    capacity_mwh: np.ndarray | None = None  # (W,) batteries of the members plugged in at τ
    plugged: np.ndarray | None = None  # (W,) members plugged in at τ, per EV of the fleet

    def clock_steps(self, hours: int) -> np.ndarray:
        """The day step (0..H-1) of each window step."""
        return (self.start + np.arange(self.width)) % hours


@dataclass(frozen=True)
class FleetEnvelopes:
    """All cohorts of a fleet, per EV, on a day of ``hours`` steps of ``dt_h`` hours."""

    hours: int
    dt_h: float
    eta_charge: float
    eta_discharge: float
    cohorts: tuple[Cohort, ...]
    ev_days: float
    n_sessions: int

    @property
    def n_cohorts(self) -> int:
        return len(self.cohorts)

    def baseline_profile_mw(self) -> np.ndarray:
        """Uncontrolled charging per EV over the day (MW per step)."""
        return self.per_clock_step(lambda c: c.baseline_mw)

    def p_max_profile_mw(self) -> np.ndarray:
        """Plugged-in charger power per EV over the day (MW per step)."""
        return self.per_clock_step(lambda c: c.p_max_mw)

    def per_clock_step(self, values) -> np.ndarray:
        out = np.zeros(self.hours)
        for c in self.cohorts:
            np.add.at(out, c.clock_steps(self.hours), values(c))
        return out

    @property
    def energy_required_mwh(self) -> float:
        """Energy the EVs leave with at least, minus what they arrive with, per EV and day
        (MWh): what the chargers must put into the batteries."""
        return float(sum(c.dep_min_mwh.sum() - c.arrivals_mwh.sum() for c in self.cohorts))

    @property
    def n_variables_per_day(self) -> int:
        return int(sum(c.width for c in self.cohorts))


def validate_sessions(df: pd.DataFrame, shown: str, hours: int, dt_h: float, eta_charge: float = 0.95,
                      soc_max: float = 1.0, clip: bool = False) -> tuple[pd.DataFrame, int]:
    """Check sessions; return them (with ``start``, ``length`` and ``v2g``) and how many were
    clipped.  ``eta_charge`` 0.95 and ``soc_max`` 1.0 as in :func:`build_envelopes`.  Errors
    name the CSV line (header = line 1) and field; with ``clip`` an unreachable requirement
    is lowered to what the charger can deliver instead."""
    missing = [c for c in SESSION_COLUMNS if c not in df.columns]
    if missing:
        raise InstanceError(Problem(shown, f"missing column(s) {', '.join(missing)}", row=1, field=missing[0]))
    if len(df) == 0:
        raise InstanceError(Problem(shown, "no sessions", row=1))
    problems, clipped = [], 0
    df = df.copy().reset_index(drop=True)
    if "v2g" not in df.columns:
        df["v2g"] = False
    starts, lengths, v2g = [], [], []
    for i, s in enumerate(df.itertuples(index=False)):
        line = i + 2
        bad = False
        for col in SESSION_COLUMNS[1:]:
            v = getattr(s, col)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                problems.append(Problem(shown, f"{v!r} is not a finite number", row=line, field=col))
                bad = True
        flag = s.v2g
        if isinstance(flag, str):
            flag = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}.get(
                flag.strip().lower(), flag)
        elif isinstance(flag, (float, np.floating)) and math.isnan(flag):
            flag = False
        if flag not in (True, False, 0, 1):
            problems.append(Problem(shown, f"{s.v2g!r} is not 0/1 or true/false", row=line, field="v2g"))
            bad = True
        v2g.append(bool(flag) if flag in (True, False, 0, 1) else False)
        if bad:
            starts.append(0)
            lengths.append(0)
            continue
        for col in ("arrival_h", "departure_h"):
            if not 0 <= getattr(s, col) <= 24:
                problems.append(Problem(shown, f"{getattr(s, col)} is not an hour of the day (0..24)", row=line,
                                        field=col))
        for col in ("battery_kwh", "charger_kw"):
            if getattr(s, col) <= 0:
                problems.append(Problem(shown, f"{getattr(s, col)} must be > 0", row=line, field=col))
        if s.energy_arrival_kwh < 0:
            problems.append(Problem(shown, "must be >= 0", row=line, field="energy_arrival_kwh"))
        if s.energy_required_kwh > soc_max * s.battery_kwh + 1e-9:
            problems.append(Problem(shown, f"{s.energy_required_kwh} kWh exceeds the usable capacity "
                                    f"{soc_max * s.battery_kwh:g} kWh", row=line, field="energy_required_kwh"))
        if s.energy_arrival_kwh > s.battery_kwh + 1e-9:
            problems.append(Problem(shown, "exceeds battery_kwh", row=line, field="energy_arrival_kwh"))
        a = s.arrival_h
        d = s.departure_h if s.departure_h > a else s.departure_h + 24.0
        start = math.ceil(a / dt_h - 1e-9)
        length = math.floor(d / dt_h + 1e-9) - start
        if length < 1:
            problems.append(Problem(shown, f"plugged in for less than one {dt_h:g} h step ({a:g} h to "
                                    f"{s.departure_h:g} h)", row=line, field="departure_h"))
        elif length > hours:
            length = hours
        reach = s.energy_arrival_kwh + eta_charge * s.charger_kw * max(length, 0) * dt_h
        if length >= 1 and s.energy_required_kwh > reach + 1e-9:
            if clip:
                df.at[i, "energy_required_kwh"] = reach
                clipped += 1
            else:
                problems.append(Problem(shown, f"{s.energy_required_kwh} kWh cannot be reached: the charger "
                                        f"delivers at most {reach:.3f} kWh in the {length} plugged step(s)",
                                        row=line, field="energy_required_kwh"))
        starts.append(start % hours)
        lengths.append(length)
    if problems:
        raise InstanceError(problems)
    return df.assign(start=starts, length=lengths, v2g=v2g), clipped


def _cohort_keys(sessions: pd.DataFrame, hours: int, split_by_charger: bool, per_session: bool,
                 max_cohorts: int | None, split_v2g: bool = False) -> np.ndarray:
    """A cohort label per session.  With ``split_v2g`` V2G-capable sessions never share a
    cohort with the others (a mixed cohort could discharge energy that belongs to EVs
    without V2G through the V2G chargers)."""
    if per_session:
        return np.arange(len(sessions))
    cols = ["start", "length"] + (["charger_kw"] if split_by_charger else []) + (["v2g"] if split_v2g else [])
    keys = list(zip(*[sessions[c].to_numpy() for c in cols]))
    distinct = pd.Series(keys).value_counts(sort=True)  # most frequent window first
    label = {k: j for j, k in enumerate(distinct.index)}
    if max_cohorts is None or len(distinct) <= max_cohorts:
        return np.array([label[k] for k in keys])
    # keep the max_cohorts most frequent windows as centres; every other window joins the
    # centre nearest in (circular) arrival and departure
    centres = np.array([[k[0], k[0] + k[1]] for k in distinct.index[:max_cohorts]], dtype=float)
    flags = np.array([k[-1] for k in distinct.index[:max_cohorts]])

    def circ(a, b):
        d = np.abs(a - b) % hours
        return np.minimum(d, hours - d)

    out = {}
    for k, j in label.items():
        if j < max_cohorts:
            out[k] = j
        else:
            dist = circ(centres[:, 0], k[0]) + circ(centres[:, 1], k[0] + k[1])
            if split_v2g:  # join a centre of the same kind where there is one
                dist = dist + 1000.0 * (flags != k[-1])
            out[k] = int(np.argmin(dist))
    return np.array([out[k] for k in keys])


def build_envelopes(sessions: pd.DataFrame, n_ev_days: float, hours: int, dt_h: float, eta_charge: float = 0.95,
                    eta_discharge: float = 0.95, soc_min: float = 0.2, soc_max: float = 1.0, v2g: bool = False,
                    split_by_charger: bool = True, max_cohorts: int | None = None,
                    per_session: bool = False) -> FleetEnvelopes:
    """Cohort envelopes per EV from validated sessions (with ``start``/``length``/``v2g``).

    Defaults (docs/formulation.md §4, calibrated on the UK Electric Nation trial, Gonzalez
    Venegas et al., eTransportation 2021): ``eta_charge`` / ``eta_discharge`` 0.95
    (dimensionless), ``soc_min`` 0.2 (fraction of B, the V2G floor), ``soc_max`` 1.0
    (fraction of B, "full").

    ``n_ev_days``: EVs x days the sessions were drawn from (divides every total, so the
    result is per EV and day); ``v2g``: sessions flagged ``v2g`` may discharge;
    ``split_by_charger``: cohorts also by charger power; ``max_cohorts``: merge windows into
    at most this many cohorts (looser); ``per_session``: one cohort per session (exact)."""
    if n_ev_days <= 0:
        raise ValueError(f"n_ev_days must be > 0, got {n_ev_days}")
    labels = _cohort_keys(sessions, hours, split_by_charger, per_session, max_cohorts,
                          split_v2g=v2g and "v2g" in sessions and bool(sessions["v2g"].any()))
    kw = 1e-3 / n_ev_days  # kW or kWh of the sample -> MW or MWh per EV
    S = sessions
    start = S["start"].to_numpy(int)
    length = S["length"].to_numpy(int)
    p = S["charger_kw"].to_numpy(float)
    B = S["battery_kwh"].to_numpy(float)
    e0 = S["energy_arrival_kwh"].to_numpy(float)
    ereq = S["energy_required_kwh"].to_numpy(float)
    can_v2g = S["v2g"].to_numpy(bool) & v2g if "v2g" in S else np.zeros(len(S), bool)
    cohorts = []
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        # offsets on the unrolled window, measured from the member whose arrival is
        # earliest in circular order around the cohort's first member
        s0 = start[members[0]]
        rel = (start[members] - s0 + hours // 2) % hours - hours // 2
        rel = rel - rel.min()
        A = int((s0 - rel[0]) % hours)  # the clock step of window step 0
        W = int((rel + length[members]).max())
        pmax = np.zeros(W)
        pdis = np.zeros(W)
        emin = np.zeros(W)
        emax = np.zeros(W)
        base = np.zeros(W)
        cap = np.zeros(W)
        count = np.zeros(W)
        arr = np.zeros(W + 1)
        dmin = np.zeros(W + 1)
        dmax = np.zeros(W + 1)
        for i, r in zip(members, rel):
            L = length[i]
            tau = np.arange(L + 1)
            hi = np.minimum(e0[i] + eta_charge * p[i] * tau * dt_h, max(soc_max * B[i], e0[i]))
            lo_floor = min(soc_min * B[i], e0[i]) if can_v2g[i] else e0[i]
            lo = np.maximum(lo_floor, ereq[i] - eta_charge * p[i] * (L - tau) * dt_h)
            sl = slice(r, r + L)
            pmax[sl] += p[i]
            if can_v2g[i]:
                pdis[sl] += p[i]
            emin[sl] += lo[:-1]
            emax[sl] += hi[:-1]
            base[sl] += np.diff(hi) / (eta_charge * dt_h)
            cap[sl] += B[i]
            count[sl] += 1.0
            arr[r] += e0[i]
            dmin[r + L] += lo[-1]
            dmax[r + L] += hi[-1]
        # the state at τ = 0 is the arrivals' energy (a V2G floor below e_arr starts later)
        emin[0] = emax[0] = arr[0]
        cohorts.append(Cohort(start=A, width=W, p_max_mw=pmax * kw, p_dis_max_mw=pdis * kw, e_min_mwh=emin * kw,
                              e_max_mwh=emax * kw, arrivals_mwh=arr * kw, dep_min_mwh=dmin * kw,
                              dep_max_mwh=dmax * kw, baseline_mw=base * kw, sessions=len(members),
                              capacity_mwh=cap * kw, plugged=count / n_ev_days))
    return FleetEnvelopes(hours=hours, dt_h=dt_h, eta_charge=eta_charge, eta_discharge=eta_discharge,
                          cohorts=tuple(cohorts), ev_days=float(n_ev_days), n_sessions=len(S))
