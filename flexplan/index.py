"""ModelIndex: scenario-tree nodes, years, representative days, hours and their weights.

Investment stages are tree nodes from the start: a deterministic study is a chain
``n2025 -> n2030 -> ...`` with probability 1 at every node; a stochastic study
(:func:`tree_index`) adds branches without changing any block.  Each node carries the
multipliers of its branch (EV counts per fleet, fixed demand, flexibility prices), which the
blocks read through :meth:`ModelIndex.ev_factor`, :meth:`ModelIndex.op_demand_factor` and
:meth:`ModelIndex.op_price_factor`.  Built capacity at a node is the sum of the
builds at the node and its ancestors (``ancestors_incl``).

Operating points ("ops") are the tuples (node, year, day, hour), numbered 0..T-1 and
stored as parallel arrays so that blocks index plain integer ranges.  Each modelled
(node, year) carries ``year_weight``: the sum of the discount factors of the calendar
years it stands for (one year with ``years_per_stage = "all"``, the whole stage with
``"last"``), so that an operating cost in EUR of that year times ``year_weight`` is its
present value; the assembler also multiplies by the node probability.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .economics import discount_factor
from .instance.model import Instance


@dataclass(frozen=True)
class Node:
    name: str
    stage: int
    parent: str | None
    cond_prob: float
    prob: float
    first_year: int
    years: tuple[int, ...]  # calendar years the node covers
    modelled_years: tuple[int, ...]  # years with operating variables
    ev_factor: tuple = ()  # ((fleet or "*", multiplier), ...): EV counts, dimensionless
    demand_factor: float = 1.0  # multiplier of every fixed load
    price_factor: float = 1.0  # multiplier of flexibility prices and contract fees
    factors: tuple = ()  # ((uncertain quantity, multiplier), ...): what blocks declare (their ``uncertain`` trait)

    def factor(self, name: str) -> float:
        """The node's multiplier of the uncertain quantity ``name`` (1 where the tree gives none)."""
        return float(dict(self.factors).get(name, 1.0))

    def ev(self, fleet: str) -> float:
        d = dict(self.ev_factor)
        return float(d.get(fleet, d.get("*", 1.0)))


@dataclass
class ModelIndex:
    nodes: dict[str, Node]
    days: tuple[str, ...]
    day_weight: np.ndarray  # days/year
    hours: int
    dt_h: float
    op_node: np.ndarray  # per op: node position in node_names
    op_year: np.ndarray
    op_day: np.ndarray
    op_hour: np.ndarray
    node_names: list[str]
    year_weight: dict[tuple[str, int], float]
    year_count: dict[tuple[str, int], int]
    ancestors_incl: dict[str, list[str]] = field(default_factory=dict)
    end_year: int = 0

    @property
    def n_ops(self) -> int:
        return len(self.op_year)

    @property
    def root(self) -> str:
        """The name of the tree's root node (the first: nodes are listed parents first)."""
        return self.node_names[0]

    def ops_of(self, node: str, year: int) -> np.ndarray:
        k = self.node_names.index(node)
        return np.where((self.op_node == k) & (self.op_year == year))[0]

    def ev_factor(self, node: str, fleet: str) -> float:
        """Multiplier of ``fleet``'s EV count at ``node`` (1 outside stochastic studies)."""
        return self.nodes[node].ev(fleet)

    def max_ev_factor(self, fleet: str) -> float:
        return max(n.ev(fleet) for n in self.nodes.values())

    def op_demand_factor(self) -> np.ndarray:
        """Per op: multiplier of the fixed loads at the op's node."""
        return np.array([self.nodes[n].demand_factor for n in self.node_names])[self.op_node]

    def op_factor(self, name: str) -> np.ndarray:
        """Per op, its node's multiplier of the uncertain quantity ``name`` (a block's trait)."""
        return np.array([self.nodes[n].factor(name) for n in self.node_names])[self.op_node]

    def op_price_factor(self) -> np.ndarray:
        """Per op: multiplier of flexibility prices at the op's node."""
        return np.array([self.nodes[n].price_factor for n in self.node_names])[self.op_node]

    def op_hours(self) -> np.ndarray:
        """Hours per year each op stands for: day weight x step length (h)."""
        return self.day_weight[self.op_day] * self.dt_h

    def op_expected_hours(self) -> np.ndarray:
        """Probability-weighted hours over the whole horizon each op stands for
        (undiscounted): multiply MW by this to get expected MWh over the horizon."""
        w = np.array([self.nodes[self.node_names[n]].prob * self.year_count[(self.node_names[n], int(y))]
                      for n, y in zip(self.op_node, self.op_year)])
        return w * self.op_hours()

    def op_frame(self):
        import pandas as pd

        return pd.DataFrame({"node": [self.node_names[k] for k in self.op_node], "year": self.op_year,
                             "day": [self.days[d] for d in self.op_day], "hour": self.op_hour})


def deterministic_index(inst: Instance) -> ModelIndex:
    """A chain of one node per investment stage, every multiplier 1."""
    from .instance.tree import single_node_tree

    return tree_index(inst, single_node_tree(inst.economics.stages))


def tree_index(inst: Instance, tree=None, nodes=None, unit_probability: bool = False) -> ModelIndex:
    """The index of a scenario tree (default: the instance's ``[tree]``).  ``nodes``: only
    these tree nodes (a path, for one scenario); ``unit_probability``: every node gets
    probability 1 (a scenario's own model, whose objective is that scenario's cost)."""
    from .instance.tree import ScenarioTree

    tree = tree if tree is not None else inst.tree
    if not isinstance(tree, ScenarioTree):
        raise ValueError(f"instance '{inst.name}' has no scenario tree ([tree] in instance.toml)")
    econ = inst.economics
    if tree.n_stages != len(econ.stages):
        raise ValueError(f"the tree has {tree.n_stages} stages but economics.stages has {len(econ.stages)}")
    keep = None if nodes is None else {n.name if hasattr(n, "name") else n for n in nodes}
    out: dict[str, Node] = {}
    year_weight: dict[tuple[str, int], float] = {}
    year_count: dict[tuple[str, int], int] = {}
    for tn in tree.nodes:
        if keep is not None and tn.name not in keep:
            continue
        k = tn.stage
        years = econ.stage_years(k)
        modelled = years if inst.years_per_stage == "all" else [years[-1]]
        prob = 1.0 if unit_probability else tree.prob(tn.name)
        parent = tn.parent if keep is None or tn.parent in keep else None
        out[tn.name] = Node(tn.name, k, parent, 1.0 if unit_probability else tn.cond_prob, prob, econ.stages[k],
                            tuple(years), tuple(modelled), tuple(sorted(tn.ev_factor.items())),
                            float(tn.demand_factor), float(tn.price_factor),
                            tuple(sorted(getattr(tn, "factors", {}).items())))
        for y in years:
            rep = y if y in modelled else modelled[-1]
            year_weight[(tn.name, rep)] = year_weight.get((tn.name, rep), 0.0) + discount_factor(
                y, econ.base_year, econ.discount_rate)
            year_count[(tn.name, rep)] = year_count.get((tn.name, rep), 0) + 1
    return _finish(out, year_weight, year_count, inst, econ.end_year)


def _finish(nodes: dict[str, Node], year_weight, year_count, inst: Instance, end_year: int) -> ModelIndex:
    prof = inst.profiles
    names = list(nodes)
    op_node, op_year, op_day, op_hour = [], [], [], []
    nd, H = len(prof.days), prof.hours
    for k, name in enumerate(names):
        for y in nodes[name].modelled_years:
            op_node.append(np.full(nd * H, k))
            op_year.append(np.full(nd * H, y))
            op_day.append(np.repeat(np.arange(nd), H))
            op_hour.append(np.tile(np.arange(H), nd))
    anc = {}
    for name in names:
        chain, cur = [], name
        while cur is not None:
            chain.append(cur)
            cur = nodes[cur].parent
        anc[name] = chain[::-1]
    return ModelIndex(nodes=nodes, days=prof.days, day_weight=prof.weights, hours=H, dt_h=prof.dt_h,
                      op_node=np.concatenate(op_node), op_year=np.concatenate(op_year),
                      op_day=np.concatenate(op_day), op_hour=np.concatenate(op_hour), node_names=names,
                      year_weight=year_weight, year_count=year_count, ancestors_incl=anc, end_year=end_year)
