"""Copper-plate network: every radial tree is one bus (no voltages, no line limits);
only the branches leaving the slack bus (the substation transformers or the virtual
substation) limit the import.  Per tree and op t:

* Σ_j (inj_j + shed_j) + P_imp = 0 (Q likewise);
* polygon: a_m P_imp + b_m Q_imp ≤ cos(π/N) · Σ_{k at slack} S_k(n) · loading + s^ov.

Use it to screen substation capacity quickly, or to see what the line and voltage limits of
LinDistFlow cost (the difference between the two plans).  Line candidates stay in the
model but have no effect, so they are never built.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from .. import BlockSpec, register_formulation
from .common import UNLIMITED_MVA, polygon, slack_violations


@dataclass
class CopperplateConfig:
    """``polygon_sides``: edges of the import-limit polygon (multiple of 4; default 12)."""

    polygon_sides: int = 12

    def validate(self):
        if self.polygon_sides < 4 or self.polygon_sides % 4:
            return f"network.polygon_sides must be a multiple of 4 and >= 4, got {self.polygon_sides}"


def _trees(net):
    """Slack bus of every bus."""
    root = np.full(net.n_buses, -1)
    par = net.parent_branch()
    frm = net.branches["from_bus"].to_numpy()
    for j in net.topological_order():
        root[j] = j if par[j] < 0 else root[frm[par[j]]]
    return root


def add_copperplate(b, inst, ix, hub, cfg: CopperplateConfig) -> None:
    net, lim, pen = inst.network, inst.limits, inst.penalties
    T = range(ix.n_ops)
    root = _trees(net)
    slacks = [int(s) for s in net.slack["bus"]]
    members = {s: np.where(root == s)[0] for s in slacks}
    br = net.branches
    at_slack = {s: [k for k in range(net.n_branches) if br.at[k, "from_bus"] == s] for s in slacks}
    opnode = [ix.node_names[k] for k in ix.op_node]
    hours = ix.op_hours().tolist()  # plain floats: numpy scalars slow Pyomo down
    pw, qw = hub.p_withdraw, hub.q_withdraw
    ps, qs = hub.sheddable()  # firm withdrawals (EV charging) are never shed
    q_ratio = np.divide(qs, ps, out=np.zeros_like(ps), where=ps > 0).tolist()

    b.P_imp = pyo.Var(slacks, T)
    b.Q_imp = pyo.Var(slacks, T)
    shed_keys = [(j, t) for j in range(net.n_buses) if np.any(ps[j] > 0) for t in T if ps[j, t] > 0]
    b.shed = pyo.Var(shed_keys, bounds=lambda _, j, t: (0.0, ps[j, t]))
    shed_at = defaultdict(list)
    for j, t in shed_keys:
        shed_at[(root[j], t)].append(j)

    def balance(kind):
        fixed = pw if kind == "p" else qw
        terms = hub.p_terms if kind == "p" else hub.q_terms
        imp = b.P_imp if kind == "p" else b.Q_imp

        def rule(_, s, t):
            e = imp[s, t] - float(fixed[members[s], t].sum())
            for j in shed_at[(s, t)]:
                e += b.shed[j, t] if kind == "p" else q_ratio[j][t] * b.shed[j, t]
            for j in members[s]:
                for term in terms.get((j, t), ()):
                    e += term
            return e == 0
        return rule

    b._members = members
    b.balance_p = pyo.Constraint(slacks, T, rule=balance("p"))
    b.balance_q = pyo.Constraint(slacks, T, rule=balance("q"))

    options = hub.branch_options
    cap = {}
    for s in slacks:
        for n in ix.node_names:
            total = 0.0
            for k in at_slack[s]:
                base = br.at[k, "rating_mva"]
                base = 0.0 if base >= UNLIMITED_MVA else base
                opts = [o for o in options.get(k, []) if o.kind == "replace"]
                total = total + base + sum((o.rating_mva - base) * o.state[n] for o in opts)
            cap[s, n] = total
    limited = [s for s in slacks if any(br.at[k, "rating_mva"] < UNLIMITED_MVA for k in at_slack[s])]
    edges = polygon(cfg.polygon_sides)
    frac = lim.max_loading_pct / 100.0
    b.s_over = pyo.Var(limited, T, within=pyo.NonNegativeReals)
    b.thermal = pyo.Constraint(limited, range(len(edges)), T, rule=lambda _, s, m, t: edges[m][0] * b.P_imp[s, t]
                               + edges[m][1] * b.Q_imp[s, t] <= edges[m][2] * (frac * cap[s, opnode[t]] + b.s_over[s, t]))

    by_ny = defaultdict(list)
    for t in T:
        by_ny[(opnode[t], int(ix.op_year[t]))].append(t)
    for (n, y), ts in by_ny.items():
        hub.cost("penalty_unserved", n, pen.voll_eur_per_mwh * sum(
            hours[t] * b.shed[j, t] for t in ts for s in slacks for j in shed_at[(s, t)]), year=y)
        hub.cost("penalty_overload", n, pen.overload_eur_per_mvah * sum(
            hours[t] * b.s_over[s, t] for s in limited for t in ts), year=y)
    b._meta = dict(slacks=slacks, at_slack=at_slack, cap=cap, opnode=opnode)


def extract_copperplate(b, inst, ix) -> dict:
    """No voltages; the import through each slack bus reported as the loading of its
    substation branches together (named after them, joined by '+')."""
    meta = b._meta
    ops = ix.op_frame()
    rows = []
    br = inst.network.branches
    for s in meta["slacks"]:
        p = np.array([b.P_imp[s, t].value for t in range(ix.n_ops)])
        q = np.array([b.Q_imp[s, t].value for t in range(ix.n_ops)])
        cap = np.array([float(pyo.value(meta["cap"][s, n])) for n in ix.node_names])[ix.op_node]
        rows.append(ops.assign(line="+".join(br.at[k, "name"] for k in meta["at_slack"][s]), p_mw=p, q_mvar=q,
                               rating_mva=cap, loading_pct=np.where(cap > 0, 100 * np.hypot(p, q) / np.where(cap > 0, cap, 1),
                                                                    np.nan)))
    w = ix.op_expected_hours()
    shed = sum((var.value or 0.0) * w[t] for (j, t), var in b.shed.items())
    return {"voltages": pd.DataFrame(columns=["node", "year", "day", "hour", "bus", "v_pu"]),
            "line_loading": pd.concat(rows, ignore_index=True), "unserved_mwh_modelled": float(shed)}


SLACKS = {"s_over": ("overload", "thermal", "MVA", "overload_eur_per_mvah"),
          "shed": ("unserved", "balance_p", "MW", "voll_eur_per_mwh")}


def violations_copperplate(b, pm):
    """Overload of a substation's import limit, load shed at buses."""
    buses = pm.instance.network.buses["name"].tolist()

    def element(var_name, el):
        return ("substation", f"substation at {buses[el]}") if var_name == "s_over" else ("bus", buses[el])

    return slack_violations(pm, b, SLACKS, element)


def locate_copperplate(b, local: str, first: int, inst):
    """The element a row or variable of this block is about (for ``flexplan diagnose``)."""
    if local in ("shed",) and isinstance(first, int) and first < inst.network.n_buses:
        return "bus", str(inst.network.buses["name"].iloc[first])
    if isinstance(first, int) and first < inst.network.n_buses:
        return "substation", f"substation at {inst.network.buses['name'].iloc[first]}"
    return None, None


def prices_copperplate(b, inst, ix, duals) -> dict:
    """Every bus has the price of its slack's balance (no network inside the feeder)."""
    net = inst.network
    out = {}
    for kind in ("p", "q"):
        keys, y = duals(b, f"balance_{kind}")
        per = {k: v for k, v in zip(keys, y)}
        m = np.zeros((net.n_buses, ix.n_ops))
        for (s, t), v in per.items():
            members = b._members[s]
            m[members, t] = v
        out[kind] = m
    out["line"] = np.zeros((net.n_branches, ix.n_ops))
    out["voltage"] = np.zeros((net.n_buses, ix.n_ops))
    return out


register_formulation(BlockSpec("copperplate", add_copperplate, CopperplateConfig, requires=("demand",),
                               extract=extract_copperplate, doc=__doc__,
                               prices=prices_copperplate, violations=violations_copperplate,
                               locate=locate_copperplate))
