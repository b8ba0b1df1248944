"""Rule-based framework: a grid-code reactive power requirement on EV chargers, no payment
(docs/formulation.md §6; the seed paper's "rule-based" approach).

Fixed power factor: while charging at P, every charger also injects Q = tan(arccos(pf)) · P
(over-excited, capacitive), which raises the voltage along a feeder that sags under load.
Provides the channel ``charger_q``, which the ``ev_fleet`` block applies to its charging in every mode.
A linearised Q(V) droop needs the bus voltage inside the fleet block; it is not modelled yet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..channels import ChargerQRule
from . import BlockSpec, register_block


@dataclass
class GridCodeConfig:
    """``power_factor``: cos φ while charging (default 0.95: the common fixed-cos φ setting of
    European connection codes for inverters and chargers, e.g. VDE-AR-N 4105's 0.95 band [check])."""

    power_factor: float = 0.95

    def validate(self):
        if not 0 < self.power_factor <= 1:
            return f"grid_code.power_factor must be in (0, 1], got {self.power_factor}"


def add_grid_code(b, inst, ix, hub, cfg: GridCodeConfig) -> None:
    b._q = math.tan(math.acos(cfg.power_factor))  # Mvar injected per MW charged
    hub.put("charger_q", ChargerQRule(b._q))


def extract_grid_code(b, inst, ix) -> dict:
    return {"summary": {"grid_code": dict(q_per_p=b._q)}}


register_block(BlockSpec("grid_code", add_grid_code, GridCodeConfig, provides=("charger_q",),
                         extract=extract_grid_code, doc=__doc__, day_separable=True))
