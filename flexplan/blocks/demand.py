"""Demand block: the feeder's fixed loads, scaled by profile and growth, withdrawn at
their buses.

p(bus, op) = Σ_loads-at-bus p_base · profile[class][day, hour] · growth[class][year] · f_node
(q likewise, so each load keeps its base power factor); f_node is the scenario tree's
``demand_factor`` of the op's node (1 in a deterministic study).  docs/formulation.md §2.
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


def load_matrices(inst, ix, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed load per (bus, op): P (MW) and Q (Mvar), arrays of shape (n_buses, n_ops)."""
    net = inst.network
    P = np.zeros((net.n_buses, ix.n_ops))
    Q = np.zeros((net.n_buses, ix.n_ops))
    growth = inst.growth
    node_factor = ix.op_demand_factor()  # scenario-tree multiplier (1 outside stochastic studies)
    for cls, grp in net.loads.groupby("load_class"):
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
    for bus in np.where(np.any(P != 0, axis=1) | np.any(Q != 0, axis=1))[0]:
        hub.withdraw(int(bus), P[bus], Q[bus])


register_block(BlockSpec("demand", add_demand, DemandConfig, provides=("demand",), doc=__doc__, day_separable=True))
