"""How EV owners charge when they minimise their own bill under a tariff (docs/formulation.md §6).

The fleet's own problem, solved before the DSO plans (the network-tariff framework): every
cohort charges within its envelope (:mod:`flexplan.ev.envelopes`) at least cost for the
price of each hour.  Where the price is flat (all of an off-peak window), the owners' timers
start charging as soon as the cheap window opens: a tiny cost rising with the hours since
the window opened breaks the tie that way, which is what makes the charging of a whole fleet
synchronise at the window start (the rebound peak).  A staggered tariff gives groups of EVs
windows that open at different hours; the fleet's response is the average over the groups.

Solved with HiGHS through ``scipy.optimize.linprog``: a small LP per fleet (cohorts x steps).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from ..errors import SolverError

#: EUR/MWh per hour since the cheap window opened: far below any price difference, it only
#: orders hours of equal price (earliest first).
TIE_BREAK = 1e-4


def cheapest_window_start(price: np.ndarray) -> int:
    """The hour at which the cheapest price level begins (after a dearer hour)."""
    low = price <= price.min() + 1e-9
    starts = [h for h in range(len(price)) if low[h] and not low[h - 1]]
    return starts[0] if starts else 0


def tariff_response(env, price: np.ndarray | None, cap_mw: np.ndarray | None = None,
                    name: str = "fleet", per_cohort: bool = False) -> tuple[np.ndarray, ...]:
    """Per-EV charging (MW per clock step) and energy of the plugged-in EVs (MWh per clock
    step) of a fleet whose owners minimise their bill at ``price`` (EUR/MWh per step), or,
    with ``price`` None, charge as early as they can (uncontrolled).  ``cap_mw``: a charging
    cap per plugged-in EV and step (a connection agreement); an EV that cannot get its
    energy under it is an error naming the fleet.  ``per_cohort``: also each cohort's
    charging per clock step (an array cohorts × steps, per EV of the fleet)."""
    H = env.hours
    if price is None:
        price_arr = np.zeros(H)
        asap = True
    else:
        price_arr = np.asarray(price, dtype=float)
        asap = False
        if price_arr.shape != (H,):
            raise ValueError(f"price must have {H} values, got {price_arr.shape}")
    start = cheapest_window_start(price_arr)
    rank = (np.arange(H) - start) % H  # hours since the cheapest window opened
    cost_h = price_arr + TIE_BREAK * rank
    cols_c, cols_lo, cols_hi = [], [], []  # objective and bounds of all variables
    rows, cols, vals, rhs = [], [], [], []
    index = []  # per cohort: (offset of p, offset of e, W)
    n = 0
    r = 0
    eta_dt = env.eta_charge * env.dt_h
    for c in env.cohorts:
        W = c.width
        steps = c.clock_steps(H)
        p0, e0, d0 = n, n + W, n + 2 * W
        cost = (TIE_BREAK * np.arange(W)) if asap else cost_h[steps]  # asap: earliest in the window
        cols_c += list(cost) + [0.0] * W + [0.0] * (W + 1)
        cols_lo += [0.0] * W + list(c.e_min_mwh) + list(c.dep_min_mwh)
        p_hi = c.p_max_mw if cap_mw is None else np.minimum(c.p_max_mw, cap_mw[steps] * c.plugged)
        cols_hi += list(p_hi) + list(c.e_max_mwh) + list(c.dep_max_mwh)
        n += 3 * W + 1
        index.append((p0, e0, W))
        for tau in range(W):
            # e[τ+1] − e[τ] − η Δt p[τ] + dep[τ+1] = Arr[τ+1]   (e[W] = 0)
            if tau + 1 < W:
                rows.append(r), cols.append(e0 + tau + 1), vals.append(1.0)
            rows += [r, r, r]
            cols += [e0 + tau, p0 + tau, d0 + tau + 1]
            vals += [-1.0, -eta_dt, 1.0]
            rhs.append(float(c.arrivals_mwh[tau + 1]))
            r += 1
    A = sparse.csr_matrix((vals, (rows, cols)), shape=(r, n))
    # scale to kWh-per-EV magnitudes for the solver; the LP is homogeneous in the scale
    s = 1e3
    res = linprog(np.asarray(cols_c), A_eq=A, b_eq=np.asarray(rhs) * s,
                  bounds=list(zip(np.asarray(cols_lo) * s, np.asarray(cols_hi) * s)), method="highs")
    if res.status == 2 and cap_mw is not None:
        from ..errors import RecipeError

        raise RecipeError(f"fleet '{name}': under the connection agreement's caps some EVs cannot charge the energy "
                          "they need before they leave; raise the caps or shorten the capped hours")
    if res.status != 0:
        raise SolverError(f"the fleet's own charging problem failed: {res.message}")
    x = res.x / s
    charge = np.zeros(H)
    energy = np.zeros(H)
    cohorts = np.zeros((len(env.cohorts), H))
    for k, (c, (p0, e0, W)) in enumerate(zip(env.cohorts, index)):
        steps = c.clock_steps(H)
        np.add.at(cohorts[k], steps, x[p0:p0 + W])
        np.add.at(energy, steps, x[e0:e0 + W])
    charge = cohorts.sum(axis=0)
    return (charge, energy, cohorts) if per_cohort else (charge, energy)


def staggered_response(env, prices: list[np.ndarray], cap_mw=None, name: str = "fleet", per_cohort: bool = False):
    """The fleet split evenly between tariff groups (one price profile each): the average of
    the groups' responses (with ``per_cohort``, also of their cohorts' charging)."""
    out = [tariff_response(env, p, cap_mw, name, per_cohort=per_cohort) for p in prices]
    return tuple(np.mean([o[i] for o in out], axis=0) for i in range(len(out[0])))
