"""Reinforcement block (docs/formulation.md §3).

Variables: ``build[c, n]`` in {0, 1} (or [0, 1] with ``binary = false``) for candidate c
at tree node n, decided at the node's first year.  With a lead time of L stages
(``lead_time_stages``, default 0) the asset is in service from the stage L after the
decision: in service at n: ``z[c, n] = Σ_{m ∈ ancestors(n) ∪ {n}, stage(m) <= stage(n) − L}
build[c, m]``; decisions in the last L stages could never serve and are fixed to 0.  With
L ≥ 1 a DSO facing uncertain EV uptake must decide before it knows the branch — the case
where waiting, and the flexibility that lets it wait, are worth something.

Constraints, for every node n (on the decisions up to n, in service or not):
* at most one replacement per asset: ``Σ_{c replaces a} Σ_{m ≤ n} build[c, m] <= 1``;
* a parallel candidate is built at most once.

Cost: ``capex_c · PV(n + L) · build[c, n]`` with ``PV(n + L)`` the present value per EUR of
capex of the annuities paid from the first year in service to the horizon end (or the
equivalent lump sum with salvage, :mod:`flexplan.economics`), category ``investment``.  The network
formulation reads the options through the Hub: a replacement changes the branch's
impedance (disjunctive, big-M) and rating, a parallel candidate is a branch of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyomo.environ as pyo

from ..economics import INVESTMENT_COST_METHODS
from ..hub import BranchOption
from . import BlockSpec, register_block


@dataclass
class ReinforcementConfig:
    """``binary``: integer build decisions (default true); false gives the LP relaxation
    (fractional builds), useful for screening and for benchmarks of the LP part.
    ``lead_time_stages``: investment stages between deciding an asset and its being in
    service (default 0: in service in the stage it is decided, as in a deterministic plan
    with perfect foresight).  MV cables and HV/MV transformers take 2–5 years from decision
    to commissioning (planning, permits, procurement: e.g. Ofgem RIIO-ED2 load-related
    reinforcement lead times [check]); with 5-year stages, 1 is the realistic value."""

    binary: bool = True
    lead_time_stages: int = 0

    def validate(self):
        if not isinstance(self.lead_time_stages, int) or self.lead_time_stages < 0:
            return f"reinforcement.lead_time_stages must be an integer >= 0, got {self.lead_time_stages!r}"


def add_reinforcement(b, inst, ix, hub, cfg: ReinforcementConfig) -> None:
    cands = inst.candidates
    econ = inst.economics
    pv_factor = INVESTMENT_COST_METHODS[econ.investment_cost]
    C = range(len(cands))
    L = cfg.lead_time_stages
    last = len(econ.stages) - 1
    b.build = pyo.Var(C, ix.node_names, domain=pyo.Binary if cfg.binary else pyo.UnitInterval)
    for n in ix.node_names:
        if ix.nodes[n].stage > last - L:  # would come into service after the horizon
            for c in C:
                b.build[c, n].fix(0)
        else:
            hub.decide(n, [b.build[c, n] for c in C])
    decided = {c: {n: sum(b.build[c, m] for m in ix.ancestors_incl[n]) for n in ix.node_names} for c in C}
    state = decided if L == 0 else {
        c: {n: sum(b.build[c, m] for m in ix.ancestors_incl[n] if ix.nodes[m].stage <= ix.nodes[n].stage - L)
            for n in ix.node_names} for c in C}

    replace_groups: dict[int, list[int]] = {}
    for c, (kind, branch) in enumerate(zip(cands["kind"], cands["branch"])):
        if kind == "replace":
            replace_groups.setdefault(int(branch), []).append(c)
    b.one_replacement = pyo.Constraint(
        [(k, n) for k in replace_groups for n in ix.node_names],
        rule=lambda _, k, n: sum(decided[c][n] for c in replace_groups[k]) <= 1)
    parallels = [c for c in C if cands.at[c, "kind"] == "parallel"]
    b.one_parallel = pyo.Constraint([(c, n) for c in parallels for n in ix.node_names if len(ix.ancestors_incl[n]) > 1],
                                    rule=lambda _, c, n: decided[c][n] <= 1)

    for n in ix.node_names:
        node = ix.nodes[n]
        if node.stage > last - L:
            continue
        in_service = econ.stages[node.stage + L]
        terms = []
        for c in C:
            f = pv_factor(in_service, econ.end_year, econ.base_year, econ.discount_rate,
                          int(cands.at[c, "lifetime_years"]))
            terms.append(float(cands.at[c, "capex_eur"]) * f * b.build[c, n])
        if terms:
            hub.cost("investment", n, sum(terms))

    for c in C:
        row = cands.iloc[c]
        hub.add_branch_option(BranchOption(candidate=row["id"], branch=int(row["branch"]), kind=row["kind"],
                                           r_pu=float(row["r_pu"]), x_pu=float(row["x_pu"]),
                                           rating_mva=float(row["rating_mva"]), state=state[c],
                                           r0_pu=float(row.get("r0_pu", float("nan"))),
                                           x0_pu=float(row.get("x0_pu", float("nan")))))
    b._lead = L


def extract_reinforcement(b, inst, ix) -> dict:
    """Builds (rounded to the nearest integer when binary) as a table: ``year`` is the first
    year in service, ``decided_year`` the year of the decision (the node's first year)."""
    cands = inst.candidates
    rows = []
    for (c, n), var in b.build.items():
        val = var.value or 0.0
        if val > 1e-6:
            row = cands.iloc[c]
            rows.append(dict(asset=row["asset"], kind=row["kind"], type=row["type"], candidate=row["id"], node=n,
                             year=inst.economics.stages[ix.nodes[n].stage + b._lead],
                             decided_year=ix.nodes[n].first_year, share=round(val, 6),
                             capex_eur=float(row["capex_eur"]) * val, rating_mva=float(row["rating_mva"])))
    cols = ["asset", "kind", "type", "candidate", "node", "year", "decided_year", "share", "capex_eur", "rating_mva"]
    return {"builds": pd.DataFrame(rows, columns=cols).sort_values(["year", "asset"]).reset_index(drop=True)}


register_block(BlockSpec("reinforcement", add_reinforcement, ReinforcementConfig, extract=extract_reinforcement,
                         doc=__doc__, day_separable=True))
