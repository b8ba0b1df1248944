"""Demand block: the feeder's fixed loads, scaled by profile and growth, withdrawn at
their buses.

p(bus, op) = Σ_loads-at-bus p_base · profile[class][day, hour] · growth[class][year] · f_node
(q likewise, so each load keeps its base power factor); f_node is the scenario tree's
``demand_factor`` of the op's node (1 in a deterministic study).  A load with a ``phase``
(``a``, ``b``, ``c``: a single-phase load) is withdrawn on that phase, for the three-phase
formulation (§2.12); the balanced formulations see the totals.  docs/formulation.md §2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..channels import DemandLoads
from . import BlockSpec, register_block


@dataclass
class DemandConfig:
    """``scale``: multiplier on every load (dimensionless, default 1.0: the instance as given)."""

    scale: float = 1.0

    def validate(self):
        if self.scale < 0:
            return f"demand.scale must be >= 0, got {self.scale}"


PHASE_INDEX = {"a": 0, "b": 1, "c": 2}


def load_matrices(inst, ix, scale: float = 1.0, phase: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fixed load per (bus, op): P (MW) and Q (Mvar), arrays of shape (n_buses, n_ops); with
    ``phase`` (``a``, ``b``, ``c``) only the loads on that phase."""
    net = inst.network
    P = np.zeros((net.n_buses, ix.n_ops))
    Q = np.zeros((net.n_buses, ix.n_ops))
    growth = inst.growth
    node_factor = ix.op_demand_factor()  # scenario-tree multiplier (1 outside stochastic studies)
    loads = net.loads
    if phase is not None:
        loads = loads[loads["phase"] == phase] if "phase" in loads else loads.iloc[:0]
    for cls, grp in loads.groupby("load_class"):
        prof = inst.profiles.factors[cls][ix.op_day, ix.op_hour]
        g = growth[cls].reindex(ix.op_year).to_numpy()
        shape = prof * g * scale * node_factor
        pb = grp.groupby("bus")["p_mw"].sum()
        qb = grp.groupby("bus")["q_mvar"].sum()
        P[pb.index.to_numpy()] += np.outer(pb.to_numpy(), shape)
        Q[qb.index.to_numpy()] += np.outer(qb.to_numpy(), shape)
    return P, Q


def add_demand(b, inst, ix, hub, cfg: DemandConfig) -> None:
    P, Q = load_matrices(inst, ix, cfg.scale)
    hub.put("demand", DemandLoads(P, Q))
    phased = "phase" in inst.network.loads and (inst.network.loads["phase"] != "abc").any()
    if not phased:
        for bus in np.where(np.any(P != 0, axis=1) | np.any(Q != 0, axis=1))[0]:
            hub.withdraw(int(bus), P[bus], Q[bus])
        return
    # single-phase loads carry their phase (the three-phase formulation sees it); the rest is balanced
    rest_p, rest_q = P.copy(), Q.copy()
    for ph, k in PHASE_INDEX.items():
        Pk, Qk = load_matrices(inst, ix, cfg.scale, phase=ph)
        rest_p -= Pk
        rest_q -= Qk
        for bus in np.where(np.any(Pk != 0, axis=1) | np.any(Qk != 0, axis=1))[0]:
            hub.withdraw(int(bus), Pk[bus], Qk[bus], phase=k)
    for bus in np.where(np.any(np.abs(rest_p) > 1e-15, axis=1) | np.any(np.abs(rest_q) > 1e-15, axis=1))[0]:
        hub.withdraw(int(bus), rest_p[bus], rest_q[bus])


register_block(BlockSpec("demand", add_demand, DemandConfig, provides=("demand",), doc=__doc__, day_separable=True))
