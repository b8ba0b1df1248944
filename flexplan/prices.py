"""Prices from duals: what one more MW costs at a bus and hour (docs/formulation.md §2.10).

With the plan's integer decisions fixed (:meth:`flexplan.solve.HighsSession.fix_integers`)
the planning model is an LP whose optimal dual values price its operation:

* **nodal price** (DLMP) of bus j in op t: the change of the objective per MW of extra *firm*
  withdrawal at (j, t) — the dual of the bus's active-power balance, whose right-hand side is
  the fixed load (the network's flow-range bounds, implied by the loads, are freed for the
  pricing solve so that they do not absorb the price).  The objective counts an op's cost with the weight
  w(t) = π(node) · year_weight(node, year) · hours(t) (probability, discounting and the
  representative day's hours), so ``marginal_p_eur_per_mw`` (EUR of present value per MW in
  that op) over w(t) is ``dlmp_p_eur_per_mwh``, the price in EUR per MWh of that year.
  Reactive likewise (``dlmp_q_eur_per_mvarh``);
* **line shadow price**: per branch and op, minus the duals of its thermal rows times their
  active-power coefficient: what a MWh more of active flow through the branch would cost
  (positive where its rating binds), EUR/MWh;
* **voltage price**: the duals of the bus's voltage limits (EUR per pu² of tighter limit,
  per hour);
* **decomposition** of the active price (LinDistFlow): the flow on a branch k = (i → j) is
  free in the pricing LP, so its stationarity reads λ_j = λ_i + 2 r_k/S_base · y_drop(k)
  − Σ_m a_m y_thermal(k, m) + (rows of replaced or parallel branches); summed along the path
  from the slack this splits λ_j into ``energy`` (the slack's price: 0, the model buys no
  energy), ``congestion`` (the ratings on the path), ``voltage`` (the voltage-drop rows, which
  carry the voltage limits' prices up the feeder) and ``other`` (the rest: the big-M drop
  rows of replaced branches, parallel candidates; 0 on a feeder without them).  Lossless, so
  there is no loss part;
* **marginal value of flexibility** at a bus: ``flex_value_eur_per_mw`` = Σ_t marginal_p, the
  objective saved per MW of load the bus sheds in every op (present value over the horizon).

In the lossless LinDistFlow there is no energy price at the substation (the model buys no
energy), so every nodal price is network cost: congestion (ratings, their overload penalty),
voltage (limits, their penalty) or unserved load at VOLL.  A price is exact for a small change
in a non-degenerate LP; where the LP is degenerate the dual is one subgradient, between the left
and right derivatives (tests/test_prices.py checks both against finite differences).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .blocks.arrays import ArrayVar
from .blocks.rows import LinearRows
from .errors import SolverError
from .results import per_bus_frame


def _duals_getter(session):
    def duals(block, name: str):
        obj = block.__dict__.get(name)
        if obj is None:
            obj = getattr(block, name, None)
        if obj is None:
            return [], np.empty(0)
        if isinstance(obj, LinearRows):
            return list(obj.keys), session.family_duals(obj)
        keys, y = [], []
        for k, con in obj.items():
            try:
                y.append(session.constraint_dual(con))
            except KeyError:  # eliminated by the compiler (no variable left): no price
                y.append(0.0)
            keys.append(k)
        return keys, np.asarray(y, dtype=float)
    return duals


def op_weights(pm) -> np.ndarray:
    """w(t): the objective's weight of a cost of 1 EUR per hour in op t (see the module docstring)."""
    ix = pm.index
    prob = np.array([ix.nodes[n].prob for n in ix.node_names])[ix.op_node]
    yw = np.array([ix.year_weight[(ix.node_names[k], int(y))] for k, y in zip(ix.op_node, ix.op_year)])
    return prob * yw * ix.op_hours()


def nodal_prices(pm, session, objective: float | None = None, rel_tol: float = 1e-6) -> dict:
    """Tables ``nodal_prices`` and ``line_prices`` and a ``prices`` summary for the solved
    model ``pm`` in HiGHS ``session``; a MIP is re-solved as the LP with its integer decisions
    fixed first (its objective must equal the plan's ``objective`` within ``rel_tol``)."""
    net_spec, blk = pm.blocks["network"]
    if net_spec.prices is None:
        return {}
    inst, ix = pm.instance, pm.index
    fixed = session.fix_integers()
    freed = session.free_columns([v for c in getattr(blk, "_implied_bounds", ())
                                  for v in ([c] if isinstance(c, ArrayVar) else c.values())])
    lp_objective = objective
    if fixed or freed:
        # cold: the old basis, with the freed bounds, sent the dual simplex into excessive dual
        # values on a model with penalty costs of 1e8 (a warm start is no faster here anyway)
        out = session.run(write_back=False, cold=True)
        if out.status != "optimal":
            raise SolverError(f"the LP with the plan's {fixed} integer decisions fixed stopped with status "
                              f"'{out.highs_status}': no prices")
        lp_objective = out.objective
        if objective is not None and (lp_objective - objective > rel_tol * max(1.0, abs(objective))
                                      or (not fixed and abs(lp_objective - objective) > rel_tol * max(1.0, abs(objective)))):
            raise SolverError(f"the pricing LP (integer decisions fixed, implied flow bounds freed) has objective "
                              f"{lp_objective:.6f}, the plan {objective:.6f}: its duals would price another plan")
    p = net_spec.prices(blk, inst, ix, _duals_getter(session))
    w = op_weights(pm)
    safe = np.where(w > 0, w, np.nan)
    names = inst.network.buses["name"].to_numpy()
    zero = np.zeros_like(p["p"])
    cong, volt = p.get("congestion", zero), p.get("voltage_part", zero)
    nodal = per_bus_frame(ix, names, marginal_p_eur_per_mw=p["p"], dlmp_p_eur_per_mwh=p["p"] / safe,
                          energy_eur_per_mwh=0.0, congestion_eur_per_mwh=cong / safe, voltage_eur_per_mwh=volt / safe,
                          other_eur_per_mwh=(p["p"] - cong - volt) / safe, dlmp_q_eur_per_mvarh=p["q"] / safe,
                          voltage_dual_eur_per_pu2h=p["voltage"] / safe)
    lines = inst.network.branches["name"].to_numpy()
    line = per_bus_frame(ix, lines, shadow_eur_per_mwh=-p["line"] / safe).rename(columns={"bus": "line"})
    flex = p["p"].sum(axis=1)
    top = np.argsort(-flex)[:5]
    peak = nodal.loc[nodal["dlmp_p_eur_per_mwh"].abs().idxmax()] if len(nodal) else None
    summary = dict(
        lp_objective_eur=lp_objective, integer_decisions_fixed=int(fixed),
        max_dlmp_p_eur_per_mwh=float(peak["dlmp_p_eur_per_mwh"]) if peak is not None else 0.0,
        max_dlmp_at=dict(bus=str(peak["bus"]), node=str(peak["node"]), year=int(peak["year"]), day=str(peak["day"]),
                         hour=int(peak["hour"])) if peak is not None else None,
        flex_value_eur_per_mw={str(names[j]): round(float(flex[j]), 4) for j in top if flex[j] != 0})
    return {"nodal_prices": nodal, "line_prices": line, "summary": summary}
