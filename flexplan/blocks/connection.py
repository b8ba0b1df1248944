"""Connection agreements: time-of-day charging caps for EV chargers (docs/formulation.md §6, the
seed paper's "connection agreements"; Amsterdam FlexPower, Bons et al., Zenodo 4026755).

Provides the channel ``charging_cap`` (a cap per plugged-in EV and step of the day) that the
``ev_fleet`` block applies in every mode: DSO-controlled charging
stays under it, uncontrolled and tariff-driven charging respond to it (as early / as cheap
as the cap allows).  An EV that cannot get its energy under the caps is an error naming its
fleet.  The DSO may grant a connection-cost discount per EV and year (cost category
``connection_discount``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..channels import ChargingCap
from . import BlockSpec, register_block


@dataclass
class ConnectionConfig:
    """Options of the ``connection`` block (kW per EV, hours of the day).

    * ``cap_kw_by_hour``: a cap per hour of the day (24 values; default: none, use the
      window below).
    * ``peak_cap_kw`` (default 3.7 kW, one phase at 16 A) from ``peak_start_h`` (18) for
      ``peak_hours`` (3): FlexPower reduced public chargers in the evening peak and raised
      them at night (Bons et al.; the exact FlexPower levels differ by phase: an assumption).
    * ``discount_eur_per_ev_year``: connection-cost discount the DSO grants per EV and year
      (default 0).
    """

    cap_kw_by_hour: list[float] = field(default_factory=list)
    peak_cap_kw: float = 3.7
    peak_start_h: int = 18
    peak_hours: int = 3
    discount_eur_per_ev_year: float = 0.0

    def validate(self):
        if self.cap_kw_by_hour and (len(self.cap_kw_by_hour) != 24 or
                                    not all(isinstance(c, (int, float)) and c >= 0 for c in self.cap_kw_by_hour)):
            return "connection.cap_kw_by_hour must be 24 caps >= 0 (kW per EV, hours 0..23)"
        if self.peak_cap_kw < 0 or self.discount_eur_per_ev_year < 0:
            return "connection.peak_cap_kw and discount_eur_per_ev_year must be >= 0"
        if not 0 <= self.peak_start_h < 24 or not 0 <= self.peak_hours <= 24:
            return "connection.peak_start_h must be 0..23 and peak_hours 0..24"

    def caps_kw(self) -> np.ndarray:
        """kW per EV for hours 0..23."""
        if self.cap_kw_by_hour:
            return np.asarray(self.cap_kw_by_hour, dtype=float)
        caps = np.full(24, np.inf)
        hours = (self.peak_start_h + np.arange(self.peak_hours)) % 24
        caps[hours] = self.peak_cap_kw
        return caps


def add_connection(b, inst, ix, hub, cfg: ConnectionConfig) -> None:
    kw = cfg.caps_kw()
    hour_of_step = (np.arange(ix.hours) * ix.dt_h).astype(int) % 24
    hub.put("charging_cap", ChargingCap(kw[hour_of_step] / 1000.0))  # MW per plugged-in EV, per step of the day
    b._caps_kw = kw
    if cfg.discount_eur_per_ev_year > 0:
        for f in inst.ev_fleets:
            for node in ix.node_names:
                for year in ix.nodes[node].modelled_years:
                    hub.cost("connection_discount", node,
                             float(cfg.discount_eur_per_ev_year * f.evs[year] * ix.ev_factor(node, f.name)
                                   * len(f.buses)), year=year)


def extract_connection(b, inst, ix) -> dict:
    caps = [None if not np.isfinite(c) else float(c) for c in b._caps_kw]
    return {"summary": {"connection": dict(cap_kw_by_hour=caps)}}


register_block(BlockSpec("connection", add_connection, ConnectionConfig, provides=("charging_cap",),
                         extract=extract_connection, doc=__doc__, day_separable=True))
