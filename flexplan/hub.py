"""The Hub: the only coupling between blocks (DESIGN.md, "The block contract").

Blocks never see each other.  They put into the Hub

* power at buses per op: fixed withdrawals (``withdraw``: loads, with their reactive
  power, which the network may shed at the value of lost load) and variable injections
  (``inject``: expressions, generation positive), with an upper bound on their magnitude
  so that the network can derive its flow bounds;
* cost terms per (category, node[, year]) (``cost``);
* the variables decided at each tree node (``decide``: investments, contracted capacity);
* branch options that investments create (``add_branch_option``): a replacement that
  changes a branch's impedance and rating, or a parallel branch, each with its built state
  per tree node (an expression of the investment variables);
* typed values for other blocks, through declared channels (``put`` / ``get``,
  :mod:`flexplan.channels`): a tariff signal, charging caps, EV battery states...

Power may carry a phase (``phase=``: 0, 1, 2 for a, b, c, or three shares summing to 1): the
three-phase formulation (``lindist3flow``) splits what has none evenly over the phases; the
balanced formulations see the totals only.

The network formulation turns injections into bus balances; the assembler turns costs
into the objective (probability- and discount-weighted).  Reports break costs down by
the same category names.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .channels import channel
from .errors import RecipeError

if TYPE_CHECKING:
    from .blocks import BlockSpec


@dataclass
class BranchOption:
    """An investment option on a branch.

    ``kind``: ``replace`` (the branch gets ``r_pu``, ``x_pu``, ``rating_mva``) or
    ``parallel`` (a new branch with those data beside it); ``state``: node name ->
    expression in [0, 1] that is 1 where the option is built (at the node or before);
    ``r0_pu``, ``x0_pu``: zero-sequence impedance (the three-phase formulation; nan: unknown)."""

    candidate: str
    branch: int
    kind: str
    r_pu: float
    x_pu: float
    rating_mva: float
    state: dict
    r0_pu: float = float("nan")
    x0_pu: float = float("nan")


@dataclass
class StorageState:
    """A fleet's batteries at one bus in one op, published by the ``ev_fleet`` block for
    blocks that price how they are used (ageing).  ``energy`` (MWh, the plugged-in EVs at the
    start of the step), ``charge`` / ``discharge`` (MW, grid side): expressions or numbers;
    ``capacity_mwh``: the plugged-in batteries; ``baseline_*``: the same under uncontrolled
    charging; ``unit``: the (fleet, bus, node, year, day) the op belongs to."""

    fleet: str
    bus: int
    op: int
    unit: int
    energy: object
    charge: object
    discharge: object
    capacity_mwh: float
    baseline_energy_mwh: float
    baseline_charge_mw: float


@dataclass
class CostTerm:
    category: str
    node: str
    expr: object
    year: int | None  # None: already a present value (EUR at the base year)


class Hub:
    def __init__(self, n_buses: int, n_ops: int):
        self.n_buses, self.n_ops = n_buses, n_ops
        self.p_withdraw = np.zeros((n_buses, n_ops))  # MW, fixed loads
        self.q_withdraw = np.zeros((n_buses, n_ops))  # Mvar
        self.p_firm = np.zeros((n_buses, n_ops))  # MW of p_withdraw that may not be shed (EV charging)
        self.q_firm = np.zeros((n_buses, n_ops))  # Mvar of q_withdraw that goes with it
        self.p_terms: dict[tuple[int, int], list] = defaultdict(list)  # (bus, op) -> expressions, MW injected
        self.q_terms: dict[tuple[int, int], list] = defaultdict(list)
        # the part of the above that has a phase: fixed (MW, Mvar per bus, phase, op) and variable
        # ((bus, op, phase) -> expressions); the rest is balanced
        self.p_phase = np.zeros((n_buses, 3, n_ops))
        self.q_phase = np.zeros((n_buses, 3, n_ops))
        self.p_phase_terms: dict[tuple[int, int, int], list] = defaultdict(list)
        self.q_phase_terms: dict[tuple[int, int, int], list] = defaultdict(list)
        self.max_injection = np.zeros(n_buses)  # MVA, bound on |variable injections| per bus
        self.costs: list[CostTerm] = []
        self.decisions: dict[str, list] = defaultdict(list)  # node -> Pyomo variables decided there
        self.v_margin = None  # (n_buses, n_ops) pu added to v_min (AC correction), or None
        # slack bus -> per op a variable added to its squared voltage (pu²): a supply voltage decided
        # with the grid above (a region's LV grid, flexplan.blocks.lv_supply); empty: slack voltages fixed
        self.supply_dv: dict[int, list] = {}
        self.branch_options: dict[int, list[BranchOption]] = defaultdict(list)
        self.read: set[str] | None = None  # channels some block of the recipe reads (None: unknown, offer all)
        self.channels: dict[str, object] = {}  # channel name -> value put by its provider
        self.block: BlockSpec | None = None  # the block being built (the assembler sets it)

    # -- power ---------------------------------------------------------------------------
    def withdraw(self, bus: int, p_mw: np.ndarray, q_mvar: np.ndarray, sheddable: bool = True, phase=None) -> None:
        """A fixed load (MW, Mvar per op) at ``bus``.  The network may shed a sheddable load
        at VOLL; a firm one (the charging of uncontrolled EVs, which must leave with their
        energy, as under smart charging) is always served.  ``phase``: see :meth:`shares`."""
        self.p_withdraw[bus] += p_mw
        self.q_withdraw[bus] += q_mvar
        w = self.shares(phase)
        if w is not None:
            self.p_phase[bus] += np.outer(w, p_mw)
            self.q_phase[bus] += np.outer(w, q_mvar)
        if not sheddable:
            self.p_firm[bus] += p_mw
            self.q_firm[bus] += q_mvar

    def sheddable(self) -> tuple[np.ndarray, np.ndarray]:
        """(MW, Mvar) per (bus, op) that the network may shed: the withdrawals less the firm part."""
        return np.maximum(self.p_withdraw - self.p_firm, 0.0), self.q_withdraw - self.q_firm

    @staticmethod
    def shares(phase) -> np.ndarray | None:
        """The phase split of a power: None (balanced: none recorded), a phase 0, 1, 2 (a, b,
        c) or three non-negative shares summing to 1."""
        if phase is None:
            return None
        if isinstance(phase, (int, np.integer)):
            if not 0 <= int(phase) <= 2:
                raise RecipeError(f"phase must be 0, 1 or 2 (a, b, c), got {phase}")
            w = np.zeros(3)
            w[int(phase)] = 1.0
            return w
        w = np.asarray(phase, dtype=float)
        if w.shape != (3,) or (w < 0).any() or abs(w.sum() - 1.0) > 1e-9:
            raise RecipeError(f"phase shares must be three numbers >= 0 summing to 1, got {list(phase)}")
        return w

    def inject(self, bus: int, op: int, p=None, q=None, phase=None) -> None:
        """A variable injection (expression, MW / Mvar; generation positive) at (bus, op);
        ``phase``: see :meth:`shares`."""
        w = self.shares(phase)
        if p is not None:
            self.p_terms[(bus, op)].append(p)
        if q is not None:
            self.q_terms[(bus, op)].append(q)
        if w is not None:
            for k in range(3):
                if w[k]:
                    if p is not None:
                        self.p_phase_terms[(bus, op, k)].append(float(w[k]) * p)
                    if q is not None:
                        self.q_phase_terms[(bus, op, k)].append(float(w[k]) * q)

    def bound_injection(self, bus: int, max_mva: float) -> None:
        """Declare that the variable injections at ``bus`` never exceed ``max_mva``."""
        self.max_injection[bus] += max_mva

    # -- channels ------------------------------------------------------------------------
    def wants(self, name: str) -> bool:
        """Whether a block of the recipe reads channel ``name`` (true when not known): a block
        that ``offers`` a channel publishes it only then."""
        return self.read is None or name in self.read

    def put(self, name: str, value) -> None:
        """Publish ``value`` on channel ``name``; the building block must declare it in
        ``provides`` or ``offers`` and the value must be of the channel's type."""
        ch = channel(name)
        who = self.block.name if self.block is not None else "?"
        if self.block is not None and name not in self.block.writes():
            raise RecipeError(f"block '{who}' puts channel '{name}' without declaring it in provides/offers")
        if not isinstance(value, ch.type):
            raise RecipeError(f"block '{who}' puts a {type(value).__name__} on channel '{name}', which carries "
                              f"{ch.type.__name__}")
        if name in self.channels:
            raise RecipeError(f"channel '{name}' is put twice (second time by '{who}')")
        self.channels[name] = value

    def get(self, name: str):
        """The value on channel ``name``, or None if no block of the recipe provides it; the
        building block must declare it in ``requires`` or ``uses`` (the assembler then builds
        its provider first)."""
        channel(name)
        if self.block is not None and name not in self.block.reads():
            raise RecipeError(f"block '{self.block.name}' reads channel '{name}' without declaring it in "
                              "requires/uses (so the assembler cannot build its provider first)")
        value = self.channels.get(name)
        if value is None and self.block is not None and name in self.block.requires:
            raise RecipeError(f"block '{self.block.name}' requires channel '{name}', which was not provided")
        return value

    # -- money ---------------------------------------------------------------------------
    def cost(self, category: str, node: str, expr, year: int | None = None) -> None:
        """A cost in EUR.  With ``year``: paid in that (modelled) year, undiscounted; the
        assembler weights it by the node probability and the year's discount weight.
        Without: already a present value at the base year (weighted by probability only)."""
        self.costs.append(CostTerm(category, node, expr, year))

    def decide(self, node: str, variables) -> None:
        """Declare variables that are decided at tree ``node`` and hold for every scenario
        through it (investments, contracted capacities): the stochastic tools fix them
        (value of the stochastic solution) and hand them to mpi-sppy as non-anticipative."""
        self.decisions[node].extend(variables)

    # -- investments ---------------------------------------------------------------------
    def add_branch_option(self, option: BranchOption) -> None:
        self.branch_options[option.branch].append(option)
