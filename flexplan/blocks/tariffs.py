"""Tariffs block: what EV owners pay for charging (docs/formulation.md §6, the seed paper's
"network tariffs" framework).

Provides the channel ``tariff`` (a price signal) that the ``ev_fleet`` block uses in two ways: every fleet's charging is billed to its owners in the cost
category ``ev_energy`` (energy price + volumetric network tariff, EUR/MWh; V2G export
credited at the same price), and with ``ev_fleet.mode = "tariff"`` the owners schedule their
charging themselves to minimise that bill (:mod:`flexplan.ev.response`) before the DSO plans
around the result.

Price per hour of the day (the same every day and year):

* flat: ``energy_eur_per_mwh`` everywhere;
* time of use (``offpeak_hours`` > 0): ``offpeak_eur_per_mwh`` from ``offpeak_start_h`` for
  ``offpeak_hours`` hours; ``stagger_h`` (e.g. [0, 1, 2, 3, 4, 5]) splits the EVs evenly into
  groups whose window opens that many hours later (French practice staggers 22:00-03:00);
* dynamic: ``hourly_eur_per_mwh`` (one price per step of the day) overrides both.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..channels import TariffSignal
from . import BlockSpec, register_block


@dataclass
class TariffConfig:
    """Options of the ``tariffs`` block (prices in EUR/MWh, hours of the day).

    * ``energy_eur_per_mwh``: the (peak) energy price, default 270: EDF Tarif Bleu "heures
      pleines" 0.2700 EUR/kWh incl. taxes, Feb 2024 (CRE) [check].
    * ``offpeak_eur_per_mwh``: off-peak price, default 207 ("heures creuses" 0.2068 EUR/kWh,
      same source) [check]; ``offpeak_start_h`` (default 22) and ``offpeak_hours`` (default 0:
      no time of use; 8 for the usual 22:00-06:00); ``stagger_h``: window offsets of equal
      groups of EVs (default [0]: one window for all).
    * ``hourly_eur_per_mwh``: a dynamic price per step of the day (default none).
    * ``network_eur_per_mwh``: volumetric network tariff added to every MWh (default 0: taken
      to be inside the energy price).
    * ``network_eur_per_kw_year``: capacity network tariff on each fleet's peak charging per
      bus and year (default 0), cost category ``ev_network_capacity``.
    * ``bus_hourly_eur_per_mwh``: a nodal network tariff, per bus name a price per step of the
      day (EUR/MWh) added at that bus (default none).  ``flexplan frameworks`` sets it to the
      feeder's nodal prices (:mod:`flexplan.prices`) for the DLMP-tariff framework.
    """

    energy_eur_per_mwh: float = 270.0
    offpeak_eur_per_mwh: float = 207.0
    offpeak_start_h: int = 22
    offpeak_hours: int = 0
    stagger_h: list[int] = field(default_factory=lambda: [0])
    hourly_eur_per_mwh: list[float] = field(default_factory=list)
    network_eur_per_mwh: float = 0.0
    network_eur_per_kw_year: float = 0.0
    bus_hourly_eur_per_mwh: dict[str, list[float]] = field(default_factory=dict)

    def validate(self):
        if self.energy_eur_per_mwh < 0 or self.offpeak_eur_per_mwh < 0 or self.network_eur_per_mwh < 0 \
                or self.network_eur_per_kw_year < 0:
            return "tariffs: prices must be >= 0"
        if not 0 <= self.offpeak_start_h < 24 or not 0 <= self.offpeak_hours <= 24:
            return "tariffs.offpeak_start_h must be an hour 0..23 and offpeak_hours 0..24"
        if not self.stagger_h or not all(isinstance(s, int) and 0 <= s < 24 for s in self.stagger_h):
            return f"tariffs.stagger_h must be a non-empty list of hour offsets 0..23, got {self.stagger_h}"
        if self.hourly_eur_per_mwh and not all(isinstance(p, (int, float)) and p >= 0 for p in self.hourly_eur_per_mwh):
            return "tariffs.hourly_eur_per_mwh must be prices >= 0"

    def group_prices(self, hours: int, dt_h: float) -> list[np.ndarray]:
        """EUR/MWh per step of the day, one array per stagger group."""
        if self.hourly_eur_per_mwh:
            if len(self.hourly_eur_per_mwh) != hours:
                raise ValueError(f"tariffs.hourly_eur_per_mwh has {len(self.hourly_eur_per_mwh)} prices, the "
                                 f"instance's day has {hours} steps")
            return [np.asarray(self.hourly_eur_per_mwh, dtype=float) + self.network_eur_per_mwh]
        t = np.arange(hours) * dt_h  # hour of each step
        out = []
        for s in self.stagger_h:
            p = np.full(hours, self.energy_eur_per_mwh)
            if self.offpeak_hours:
                since = (t - (self.offpeak_start_h + s)) % 24.0
                p[since < self.offpeak_hours - 1e-9] = self.offpeak_eur_per_mwh
            out.append(p + self.network_eur_per_mwh)
        return out


def add_tariffs(b, inst, ix, hub, cfg: TariffConfig) -> None:
    from ..errors import RecipeError

    try:
        groups = cfg.group_prices(ix.hours, ix.dt_h)
    except ValueError as e:
        raise RecipeError(str(e)) from e
    names = {str(n): i for i, n in enumerate(inst.network.buses["name"])}
    adder = {}
    for bus, prices in cfg.bus_hourly_eur_per_mwh.items():
        if bus not in names:
            raise RecipeError(f"tariffs.bus_hourly_eur_per_mwh: bus '{bus}' is not a bus of instance '{inst.name}'")
        if len(prices) != ix.hours:
            raise RecipeError(f"tariffs.bus_hourly_eur_per_mwh['{bus}'] has {len(prices)} prices, the instance's day "
                              f"has {ix.hours} steps")
        adder[names[bus]] = np.asarray(prices, dtype=float)
    b._tariff = TariffSignal(groups=groups, price=np.mean(groups, axis=0),
                             network_eur_per_kw_year=float(cfg.network_eur_per_kw_year), bus_adder=adder,
                             network_eur_per_mwh=float(cfg.network_eur_per_mwh))
    hub.put("tariff", b._tariff)


def extract_tariffs(b, inst, ix) -> dict:
    t = b._tariff
    return {"summary": {"tariff": dict(price_eur_per_mwh_by_step=[round(float(p), 4) for p in t.price],
                                       groups=len(t.groups))}}


register_block(BlockSpec("tariffs", add_tariffs, TariffConfig, provides=("tariff",), extract=extract_tariffs,
                         doc=__doc__))
