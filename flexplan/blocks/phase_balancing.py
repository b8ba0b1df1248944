"""Phase balancing as a DSO decision (docs/formulation.md §2.12): single-phase loads may be
reconnected to another phase, once, at a cost per move.

For each movable load L (a single-phase load of the instance, at bus j on phase φ₀, with its
profile p_L(t), q_L(t) as the ``demand`` block withdraws it) the block decides at the tree's root
which phase it is on, x_Lφ ∈ {0, 1}, Σ_φ x_Lφ = 1, and the load becomes

    withdrawal on phase φ at (j, t) = x_Lφ · p_L(t)        (q likewise)

(its fixed withdrawal on φ₀ is taken back from the Hub and given again as these injections, so
the bus's total is unchanged and only the three-phase formulation sees the difference).  Each
move costs ``cost_eur_per_move`` once, at the base year (cost category ``phase_balancing``):

    cost = c_move · Σ_L (1 − x_Lφ₀)

The balanced formulations see the same totals, so the block matters only with
``network.formulation = "lindist3flow"``.  A moved load is no longer sheddable.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo

from ..errors import RecipeError
from . import BlockSpec, register_block
from .demand import PHASE_INDEX

PHASES = "abc"


@dataclass
class PhaseBalancingConfig:
    """``loads``: names of the loads that may move (default: every single-phase load of the
    instance); ``cost_eur_per_move``: one-off cost of reconnecting one load to another phase
    (EUR; default 250: a crew visit to swap a service cable's phase in a cabinet, an assumption
    of the order of a DSO's connection-work hourly rates [check])."""

    loads: list[str] = field(default_factory=list)
    cost_eur_per_move: float = 250.0

    def validate(self):
        if not self.cost_eur_per_move >= 0:
            return f"phase_balancing.cost_eur_per_move must be >= 0, got {self.cost_eur_per_move}"


def add_phase_balancing(b, inst, ix, hub, cfg: PhaseBalancingConfig) -> None:
    from .demand import load_matrices

    loads = inst.network.loads
    if "phase" not in loads:
        raise RecipeError(f"phase_balancing: instance '{inst.name}' has no single-phase loads (its loads have no "
                          "'phase')")
    single = loads[loads["phase"].isin(list(PHASE_INDEX))]
    names = [str(n) for n in single["name"]]
    if cfg.loads:
        unknown = [n for n in cfg.loads if n not in names]
        if unknown:
            raise RecipeError(f"phase_balancing.loads: {', '.join(repr(u) for u in unknown[:5])} "
                              f"{'is not a single-phase load' if len(unknown) == 1 else 'are not single-phase loads'} "
                              f"of instance '{inst.name}'")
        single = single[single["name"].astype(str).isin(cfg.loads)]
    if single.empty:
        raise RecipeError(f"phase_balancing: instance '{inst.name}' has no single-phase load to move")
    root = ix.node_names[0]
    L = range(len(single))
    b.x = pyo.Var(L, range(3), within=pyo.Binary)
    b.one = pyo.Constraint(L, rule=lambda _, i: sum(b.x[i, k] for k in range(3)) == 1)
    hub.decide(root, [b.x[i, k] for i in L for k in range(3)])
    rows = []
    for i, (idx, ld) in enumerate(single.iterrows()):
        # this load's own withdrawals: the demand block's, for an instance of this load alone
        one = inst.network.loads.loc[[idx]]
        P, Q = _one_load(inst, ix, one, load_matrices)
        j, k0 = int(ld["bus"]), PHASE_INDEX[ld["phase"]]
        p, q = P[j], Q[j]
        hub.p_withdraw[j] -= p
        hub.q_withdraw[j] -= q
        hub.p_phase[j, k0] -= p
        hub.q_phase[j, k0] -= q
        for t in np.flatnonzero((p != 0) | (q != 0)):
            for k in range(3):
                hub.inject(j, int(t), p=-float(p[t]) * b.x[i, k], q=-float(q[t]) * b.x[i, k], phase=k)
        hub.bound_injection(j, float(np.hypot(p, q).max()))
        rows.append((str(ld["name"]), str(inst.network.buses["name"].iloc[j]), PHASES[k0]))
    start = {i: PHASE_INDEX[r[2]] for i, r in enumerate(rows)}
    hub.cost("phase_balancing", root, float(cfg.cost_eur_per_move) * sum(1 - b.x[i, start[i]] for i in L))
    b._rows = rows


def _one_load(inst, ix, one, load_matrices):
    """The demand block's withdrawals (MW, Mvar per bus and op) of one load."""
    import dataclasses

    net = dataclasses.replace(inst.network, loads=one)
    return load_matrices(dataclasses.replace(inst, network=net), ix)


def extract_phase_balancing(b, inst, ix) -> dict:
    import pandas as pd

    out = []
    for i, (name, bus, was) in enumerate(b._rows):
        now = PHASES[int(np.argmax([pyo.value(b.x[i, k]) for k in range(3)]))]
        out.append(dict(load=name, bus=bus, phase_before=was, phase_after=now, moved=now != was))
    df = pd.DataFrame(out, columns=["load", "bus", "phase_before", "phase_after", "moved"])
    return {"phase_moves": df, "summary": {"phase_balancing": dict(loads=len(df), moved=int(df["moved"].sum()))}}


register_block(BlockSpec("phase_balancing", add_phase_balancing, PhaseBalancingConfig, requires=("demand",),
                         extract=extract_phase_balancing, doc=__doc__))
