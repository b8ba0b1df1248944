"""Channels: the typed values one block hands to another (the block contract, docs/blocks.md).

The Hub's sums (power at buses, costs, decisions, branch options) take contributions from any
block and are read by the assembler and the network formulation.  Everything else that a
block passes to another is a **channel**: a named value of a declared type that exactly one
block of a recipe ``provides`` and others ``requires`` (must be there) or ``uses`` (read if
there).  A block may also ``offer`` a channel: it publishes it only when a block of the recipe
reads it (the EV fleet's battery states cost memory and build time).

From these declarations the assembler orders the blocks (a provider is built before its
readers, whatever the recipe's order) and refuses a recipe where a required channel has no
provider, a channel has two providers, a provided channel has no reader, or the declarations
form a cycle.  At build time :meth:`flexplan.hub.Hub.put` checks the value's type and that
the putting block declared the channel, and :meth:`~flexplan.hub.Hub.get` that the reading
block did, so an undeclared coupling fails at once instead of changing the model silently.

A third-party block declares its own channels with :func:`register_channel`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import RecipeError


@dataclass(frozen=True)
class Channel:
    """A coupling between blocks: ``name``, the ``type`` of its value and what it means (with units)."""

    name: str
    type: type
    doc: str


CHANNELS: dict[str, Channel] = {}


def register_channel(name: str, type_: type, doc: str) -> Channel:
    """Declare a channel (idempotent for the same type; another type under a known name is an error)."""
    old = CHANNELS.get(name)
    if old is not None and old.type is not type_:
        raise ValueError(f"channel '{name}' is already declared with type {old.type.__name__}")
    ch = CHANNELS[name] = Channel(name, type_, doc)
    return ch


def channel(name: str) -> Channel:
    try:
        return CHANNELS[name]
    except KeyError:
        raise RecipeError(f"unknown channel '{name}'; declared channels: {', '.join(sorted(CHANNELS))}") from None


# -- the channels of flexplan's own blocks -------------------------------------------------------
@dataclass(frozen=True)
class ChargingCap:
    """A connection agreement's cap: ``mw_per_ev[s]`` MW per plugged-in EV at step ``s`` of the day
    (``inf`` where there is no cap)."""

    mw_per_ev: np.ndarray


@dataclass(frozen=True)
class ChargerQRule:
    """A grid code's fixed power factor: chargers inject ``q_per_p`` Mvar per MW they charge."""

    q_per_p: float


@dataclass(frozen=True)
class TariffSignal:
    """What EV owners pay: ``groups`` (EUR/MWh per step of the day, one array per stagger group),
    ``price`` (their mean, EUR/MWh per step), ``network_eur_per_kw_year`` (capacity tariff on
    each fleet's peak charging per bus and year), ``bus_adder`` (a nodal network tariff: per
    bus, EUR/MWh per step of the day added to every group's price there),
    ``network_eur_per_mwh`` (the volumetric network tariff inside ``price``, for reports that
    split the bill between energy and network)."""

    groups: list
    price: np.ndarray
    network_eur_per_kw_year: float = 0.0
    bus_adder: dict = field(default_factory=dict)  # bus index -> EUR/MWh per step of the day on top (a nodal tariff)
    network_eur_per_mwh: float = 0.0  # of which volumetric network tariff (EUR/MWh), everywhere

    def at_bus(self, bus: int) -> tuple[list, np.ndarray]:
        """(groups, mean price) that the owners at ``bus`` pay, EUR/MWh per step of the day."""
        add = self.bus_adder.get(bus)
        if add is None:
            return self.groups, self.price
        return [g + add for g in self.groups], self.price + add


@dataclass
class EVStorage:
    """The EV batteries as the ``ev_fleet`` block models them, for blocks that price their use:
    ``states`` (:class:`flexplan.hub.StorageState` per fleet, bus and op), ``units`` (per
    (fleet, bus, node, year, day): EV count and battery data) and ``cohorts`` (per unit and
    cohort: the window's energy, charge and discharge)."""

    states: list = field(default_factory=list)
    units: list = field(default_factory=list)
    cohorts: list = field(default_factory=list)


@dataclass(frozen=True)
class DemandLoads:
    """The fixed loads the ``demand`` block withdrew: ``p_mw`` and ``q_mvar`` per (bus, op)."""

    p_mw: np.ndarray
    q_mvar: np.ndarray


register_channel("charging_cap", ChargingCap, "MW per plugged-in EV per step of the day (connection agreement)")
register_channel("charger_q", ChargerQRule, "Mvar injected per MW of EV charging (grid code)")
register_channel("tariff", TariffSignal, "EUR/MWh per step of the day that EV owners pay (network tariff)")
register_channel("ev_storage", EVStorage, "EV battery states per fleet, bus and op (for ageing, contracts)")
register_channel("demand", DemandLoads, "fixed loads per bus and op (MW, Mvar), which the network serves")
