"""ModelIndex: scenario-tree nodes, years, representative days, hours and their weights.

Investment stages are tree nodes from the start: a deterministic study is a chain
``n2025 -> n2030 -> ...`` with probability 1 at every node; a stochastic study (later)
adds branches without changing any block.  Built capacity at a node is the sum of the
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

    def ops_of(self, node: str, year: int) -> np.ndarray:
        k = self.node_names.index(node)
        return np.where((self.op_node == k) & (self.op_year == year))[0]

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
    """A chain of one node per investment stage."""
    econ = inst.economics
    nodes: dict[str, Node] = {}
    year_weight: dict[tuple[str, int], float] = {}
    year_count: dict[tuple[str, int], int] = {}
    parent = None
    for k, start in enumerate(econ.stages):
        years = econ.stage_years(k)
        modelled = years if inst.years_per_stage == "all" else [years[-1]]
        name = f"n{start}"
        nodes[name] = Node(name, k, parent, 1.0, 1.0, start, tuple(years), tuple(modelled))
        for y in years:
            rep = y if y in modelled else modelled[-1]
            year_weight[(name, rep)] = year_weight.get((name, rep), 0.0) + discount_factor(
                y, econ.base_year, econ.discount_rate)
            year_count[(name, rep)] = year_count.get((name, rep), 0) + 1
        parent = name
    return _finish(nodes, year_weight, year_count, inst, econ.end_year)


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
