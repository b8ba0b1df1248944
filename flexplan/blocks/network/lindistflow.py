"""LinDistFlow on a radial feeder (docs/formulation.md §2), the default network formulation.

Per op t, branch k = (i -> j) with flow P_k, Q_k (MW, Mvar) into bus j, squared voltage
v_j (pu²), S_base the instance's base power (MVA):

* balance at j:  P_k + inj_j + shed_j = Σ_{children m of j} P_m   (Q likewise, with the
  shed load keeping the load's power factor; inj = variable injections − fixed loads);
* voltage drop:  v_j = v_i − 2 (r_k P_k + x_k Q_k) / S_base, slack buses fixed at vm²;
* voltage band (soft): v_j + s⁻_j ≥ v_min², v_j − s⁺_j ≤ v_max²;
* thermal (soft): a_m P_k + b_m Q_k ≤ cos(π/N) · S_k · loading + s^ov_k for the N edges
  of a polygon inscribed in the circle (never overstates capacity);
* bounds: v ∈ [v_hard_min², v_hard_max²]; P_k, Q_k within the exact range of what can
  be withdrawn below k (:func:`common.flow_ranges`); polygon edges that cannot bind for
  flows in that range are left out (:func:`common.polygon_edges_needed`).

Investments (Hub branch options, state z(n) ∈ {0,1}):
* replacement c of branch k: rating S_k(n) = S_k + Σ_c (S_c − S_k) z_c(n); the voltage
  drop holds for the alternative that is in place, the others are relaxed by
  M_a(t) = max_b 2 (|r_b − r_a| P̄(t) + |x_b − x_a| Q̄(t)) / S_base — the largest value
  alternative a's residual takes while b is in place, derived from the flow range, not
  guessed;
* parallel candidate c: a branch of its own with flow (Pc, Qc), |Pc| ≤ P̄ z_c(n),
  |Qc| ≤ Q̄ z_c(n), thermal polygon and a disjunctive voltage drop whose M is the largest
  drop along the branch it parallels.

Penalties (Hub cost categories): ``penalty_unserved`` (VOLL, EUR/MWh), ``penalty_overload``
(EUR per MVAh beyond the rating, ``s_over`` scaled so that a flow on a polygon vertex —
pure active or reactive power — pays for exactly its excess MVA), ``penalty_voltage`` (EUR per pu² h).  Losses are neglected: voltages are
optimistic; ``tests/test_lindistflow_ac.py`` measures the error against pandapower's AC
power flow.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from .. import BlockSpec, register_formulation
from ...errors import RecipeError
from ..linear import Affine, affine, lin
from ..arrays import ArrayExpr, ArrayVar, registry
from ..rows import add_array_rows, add_rows
from .common import UNLIMITED_MVA, flow_ranges, polygon, polygon_edges_needed, slack_violations


@dataclass
class LinDistFlowConfig:
    """``polygon_sides``: edges of the thermal-limit polygon (multiple of 4; default 12:
    at worst 3.4 % below the circle); ``v_hard_min_pu`` / ``v_hard_max_pu``: physical
    bounds on voltage used to derive big-M (default 0.8 / 1.2 pu, well outside any
    planning band)."""

    polygon_sides: int = 12
    v_hard_min_pu: float = 0.8
    v_hard_max_pu: float = 1.2

    def validate(self):
        if self.polygon_sides < 4 or self.polygon_sides % 4:
            return f"network.polygon_sides must be a multiple of 4 and >= 4, got {self.polygon_sides}"
        if not 0 < self.v_hard_min_pu < self.v_hard_max_pu:
            return "network.v_hard_min_pu must be positive and below v_hard_max_pu"


@dataclass
class BranchFlowConfig(LinDistFlowConfig):
    """The branch-flow model with losses (:mod:`.branchflow`), on top of LinDistFlow's options
    (``polygon_sides`` 48 here: at worst 0.21 % inside the circle, where 12 sides, 3.4 %, made a
    plan that holds in AC at 99 % loading look infeasible: the reduced ieee33 plan cost 54 % more):

    ``loss_price_eur_per_mwh``: what a MWh lost in the branches costs in the objective (EUR/MWh;
    must be > 0: it keeps the squared current on its cone, so that the model's voltages and flows
    are the AC power flow's).  The default, 0.01, is a token price that does that without
    weighing in the plan (10 GWh of losses over a horizon cost 100 EUR), so the plan is
    comparable with LinDistFlow's, which ignores losses.  The DSO's real price (e.g. 78.0, the
    2024 annual mean of the German-Luxembourg day-ahead price, Fraunhofer ISE Energy-Charts;
    DSOs buy their losses on that market) makes the plan reduce losses too, at the cost of a
    harder MIP: its relaxation can buy loss reductions with fractional builds;
    ``current_bound``: ``"limits"`` (default) bounds the squared current by the flow range at
    the lower voltage limit ``v_min_pu`` (every AC-feasible plan respects it: the lower bound
    stays valid for those, and the relaxation is tighter), ``"hard"`` at ``v_hard_min_pu``;
    ``replacements``: how a replaced branch's alternatives enter: ``"bigm"`` (default: one
    voltage-drop row per alternative relaxed by a big-M derived from the flow and current ranges,
    as in LinDistFlow, and the current split between the alternatives, only the one in place
    carrying it, so that each one's losses use its own resistance) or ``"hull"`` (the flow split
    too, each part within its range times its state, with the perspective of its cone: the
    convex hull of the choice, tighter when losses are priced, about twice the columns).  The
    current must follow the resistance it meets: losses counted at another alternative's
    resistance than the voltage drop's would let a relaxed current raise voltages;
    ``loss_ops``: the ops that get currents and cones: ``"stressed"`` (default) those where the
    lossless voltage of the feeder as it stands, under the fixed withdrawals, comes within
    ``stress_margin_pu`` (default 0.03 pu, ten times LinDistFlow's error on case33bw) of a
    voltage limit or a branch within that share of its rating; reinforcement only relieves the
    others, which stay lossless (every op when a block injects a variable power: flexibility
    can move load into any op), ``"all"``: every op.  The AC loop checks every op anyway;
    ``cone_tol``: relative accuracy of the polygonal outer approximation of the cone
    ``P² + Q² <= v·l``, refined by cuts where the solution violates it by more (default 1e-4:
    losses within 0.01 % of the exact branch-flow value, voltages within ~1e-6 pu);
    ``max_cut_rounds``: cut rounds at most per solve (default 30)."""

    polygon_sides: int = 48
    loss_ops: str = "stressed"
    stress_margin_pu: float = 0.03
    loss_price_eur_per_mwh: float = 0.01
    current_bound: str = "limits"
    replacements: str = "bigm"
    cone_tol: float = 1e-4
    max_cut_rounds: int = 30

    def validate(self):
        msg = super().validate()
        if msg:
            return msg
        if not self.loss_price_eur_per_mwh > 0:
            return ("network.loss_price_eur_per_mwh must be > 0 (it keeps the current on its cone: at 0 the losses "
                    f"are free to be overstated), got {self.loss_price_eur_per_mwh}")
        if self.replacements not in ("bigm", "hull"):
            return f"network.replacements must be 'bigm' or 'hull', got {self.replacements!r}"
        if self.loss_ops not in ("stressed", "all"):
            return f"network.loss_ops must be 'stressed' or 'all', got {self.loss_ops!r}"
        if not 0 <= self.stress_margin_pu < 0.5:
            return f"network.stress_margin_pu must be in [0, 0.5), got {self.stress_margin_pu}"
        if self.current_bound not in ("limits", "hard"):
            return f"network.current_bound must be 'limits' or 'hard', got {self.current_bound!r}"
        if not 0 < self.cone_tol < 0.1:
            return f"network.cone_tol must be in (0, 0.1), got {self.cone_tol}"
        if self.max_cut_rounds < 0:
            return f"network.max_cut_rounds must be >= 0, got {self.max_cut_rounds}"


def current_bounds(net, r_max, x_max, sb, pabs, qabs, v2_min):
    """Upper bounds of the squared current ``l`` (pu²) of every branch and op, and of the active
    and reactive losses of each branch's subtree, itself included (MW, Mvar): leaves first, a
    branch carries at most ``|P| + losses below`` and ``l = (P² + Q²) / (S_base² v)`` at the
    hard lower voltage bound, solved by fixed-point iteration (which increases to the
    smallest root; where it has none, no power flow exists at the worst case and the bound
    is capped at four times the lossless value)."""
    K, T = pabs.shape
    lmax = np.zeros((K, T))
    lp_sub = np.zeros((K, T))
    lq_sub = np.zeros((K, T))
    frm = net.branches["from_bus"].to_numpy(int)
    parent = net.parent_branch()
    child_branches = defaultdict(list)
    for k in range(K):
        child_branches[int(frm[k])].append(k)
    for j in reversed(net.topological_order()):
        k = parent[j]
        if k < 0:
            continue
        below_p = sum((lp_sub[m] for m in child_branches[j]), np.zeros(T))
        below_q = sum((lq_sub[m] for m in child_branches[j]), np.zeros(T))
        a, b = pabs[k] + below_p, qabs[k] + below_q
        l0 = (a ** 2 + b ** 2) / (sb ** 2 * v2_min)
        ell = l0.copy()
        for _ in range(100):
            new = ((a + r_max[k] * sb * ell) ** 2 + (b + x_max[k] * sb * ell) ** 2) / (sb ** 2 * v2_min)
            done = np.abs(new - ell) <= 1e-9 * np.maximum(new, 1e-12)
            ell = np.minimum(new, 4.0 * l0 + 1e-12)
            if done.all():
                break
        lmax[k] = ell
        lp_sub[k] = below_p + r_max[k] * sb * ell
        lq_sub[k] = below_q + x_max[k] * sb * ell
    return lmax, lp_sub, lq_sub


def stressed_ops(net, hub, lim, margin: float) -> list[int]:
    """Ops where the feeder as it stands, lossless, under the fixed withdrawals, comes within
    ``margin`` (pu of voltage, and the same share of a rating) of a limit: the recursion
    v_j = v_i - 2 (r P + x Q) / S_base down the tree with P, Q the withdrawals below each branch.
    Every op if any block injects a variable power (flexibility can move load anywhere)."""
    T = hub.p_withdraw.shape[1]
    if hub.p_terms or hub.q_terms or np.any(hub.max_injection > 0):
        return list(range(T))
    sb = float(net.s_base_mva)
    br = net.branches
    below = net.downstream_buses()
    P = np.array([hub.p_withdraw[b].sum(axis=0) for b in below]).reshape(len(below), T)
    Q = np.array([hub.q_withdraw[b].sum(axis=0) for b in below]).reshape(len(below), T)
    v2 = np.ones((net.n_buses, T))
    for bus, vm in zip(net.slack["bus"], net.slack["vm_pu"]):
        v2[int(bus)] = float(vm) ** 2
    parent = net.parent_branch()
    frm = br["from_bus"].to_numpy(int)
    r, x = br["r_pu"].to_numpy(float), br["x_pu"].to_numpy(float)
    for j in net.topological_order():
        k = parent[j]
        if k >= 0:
            v2[j] = v2[frm[k]] - 2.0 * (r[k] * P[k] + x[k] * Q[k]) / sb
    v = np.sqrt(np.clip(v2, 0.0, None))
    near_v = (v.min(axis=0) < lim.v_min_pu + margin) | (v.max(axis=0) > lim.v_max_pu - margin)
    rating = br["rating_mva"].to_numpy(float)
    limited = rating < UNLIMITED_MVA
    s = np.hypot(P, Q)
    near_s = np.zeros(T, dtype=bool)
    if limited.any():
        cap = rating[limited, None] * lim.max_loading_pct / 100.0
        near_s = (s[limited] > (1.0 - margin) * cap).any(axis=0)
    return [int(t) for t in np.flatnonzero(near_v | near_s)]


def z2_coef(ra: float, xa: float, rb: float, xb: float) -> float:
    """The coefficient of alternative b's current in alternative a's voltage-drop row:
    min(|z_a|², 2 (r_a r_b + x_a x_b)), at most what b's losses add to a's drop; for b = a it is
    |z_a|² itself (2 |z_a|² is the larger)."""
    return min(ra * ra + xa * xa, 2.0 * (ra * rb + xa * xb))


def zscale(r_pu: float, x_pu: float) -> float:
    """The scale of a branch's current variable, w = |z| l (1 for a branch without impedance)."""
    z = math.hypot(r_pu, x_pu)
    return z if z > 0 else 1.0


def cone_cut(cone: dict, i: int, a: float, b: float, sb: float):
    """The tangent plane of cone ``i`` at (P, Q) / (S_base v_from) = (a, b) as a row
    ``l - 2a P/S_base - 2b Q/S_base + (a² + b²) v_from >= 0``, times the cone's scale s
    (its current is held as w = s l): (coefficients, variables, lo, hi); a slack bus's fixed
    squared voltage moves into the bound."""
    s = cone["scale"][i]
    coefs = [1.0, -2.0 * a * s / sb, -2.0 * b * s / sb]
    vs = [cone["l"][i], cone["P"][i], cone["Q"][i]]
    n2 = (a * a + b * b) * s
    if cone["v"][i] is None:
        return coefs, vs, -n2 * cone["vs"][i], None
    coefs.append(n2)
    vs.append(cone["v"][i])
    return coefs, vs, 0.0, None


def add_lindistflow(b, inst, ix, hub, cfg: LinDistFlowConfig) -> None:
    net = inst.network
    lim, pen = inst.limits, inst.penalties
    br = net.branches
    # plain Python numbers in everything that multiplies a Pyomo expression: numpy scalars
    # send Pyomo down its slow ufunc path (measured in benchmarks/)
    frm = br["from_bus"].tolist()
    to = br["to_bus"].tolist()
    r = br["r_pu"].astype(float).tolist()
    x = br["x_pu"].astype(float).tolist()
    rating = br["rating_mva"].astype(float).tolist()
    T = range(ix.n_ops)
    K = range(net.n_branches)
    sb = float(net.s_base_mva)
    opnode = [ix.node_names[k] for k in ix.op_node]
    hours = ix.op_hours().tolist()

    options = hub.branch_options
    Pmin, Pmax, Qmin, Qmax = flow_ranges(net, hub)
    replaces = {k: [o for o in opts if o.kind == "replace"] for k, opts in options.items()}
    parallels = [o for opts in options.values() for o in opts if o.kind == "parallel"]
    has_par = {o.branch for o in parallels}
    # a branch with a parallel shares the flow: each part within +-(largest magnitude)
    Pabs = np.maximum(np.abs(Pmin), np.abs(Pmax))
    Qabs = np.maximum(np.abs(Qmin), np.abs(Qmax))
    for k in has_par:
        Pmin[k], Pmax[k], Qmin[k], Qmax[k] = -Pabs[k], Pabs[k], -Qabs[k], Qabs[k]
    losses = isinstance(cfg, BranchFlowConfig)
    if losses:
        Tl = list(T) if cfg.loss_ops == "all" or cfg.replacements == "hull" else \
            stressed_ops(net, hub, lim, cfg.stress_margin_pu)
    else:
        Tl = []
    in_Tl = set(Tl)
    if losses:
        # the sending end carries the subtree's losses too (losses only add to P and Q)
        r_max = [max([r[k]] + [o.r_pu for o in options.get(k, [])]) for k in K]
        x_max = [max([x[k]] + [o.x_pu for o in options.get(k, [])]) for k in K]
        lmax, lp_sub, lq_sub = current_bounds(net, np.array(r_max), np.array(x_max), sb, Pabs, Qabs,
                                              (lim.v_min_pu if cfg.current_bound == "limits" else cfg.v_hard_min_pu) ** 2)
        Pmax, Qmax = Pmax + lp_sub, Qmax + lq_sub
        for k in has_par:
            Pmin[k], Qmin[k] = Pmin[k] - lp_sub[k], Qmin[k] - lq_sub[k]
        Pabs = np.maximum(np.abs(Pmin), np.abs(Pmax))
        Qabs = np.maximum(np.abs(Qmin), np.abs(Qmax))
        lmax_l = lmax.tolist()

    vh_lo, vh_hi = cfg.v_hard_min_pu ** 2, cfg.v_hard_max_pu ** 2
    vmin2, vmax2 = lim.v_min_pu ** 2, lim.v_max_pu ** 2
    slack_v = {int(bus): float(vm) ** 2 for bus, vm in zip(net.slack["bus"], net.slack["vm_pu"])}
    buses = [j for j in range(net.n_buses) if j not in slack_v]
    supply_dv = {int(k): v for k, v in getattr(hub, "supply_dv", {}).items()}
    if supply_dv and losses:
        raise RecipeError("a supply voltage decided with the grid above (a region's LV grid) needs the lindistflow "
                          "formulation; branchflow's cones use the slack voltage as a number")

    # the network's variables are array variables (blocks/arrays.py): bounds as arrays, rows
    # over their tokens with numpy; var[key] gives an element for the rows written one by one
    nT = ix.n_ops
    reg = registry(b.model())
    b.P = ArrayVar(b, "P", axes=(K, T), lb=Pmin, ub=Pmax)
    b.Q = ArrayVar(b, "Q", axes=(K, T), lb=Qmin, ub=Qmax)
    b.v = ArrayVar(b, "v", axes=(buses, T), lb=vh_lo, ub=vh_hi)
    b.s_vlo = ArrayVar(b, "s_vlo", axes=(buses, T), lb=0.0)
    b.s_vhi = ArrayVar(b, "s_vhi", axes=(buses, T), lb=0.0)
    P_, Q_, v_ = b.P, b.Q, b.v  # var[key]: one element, for the rows written one by one

    # load shedding where there is load
    pw, qw = hub.p_withdraw, hub.q_withdraw
    ps, qs = hub.sheddable()  # firm withdrawals (EV charging) are never shed
    shed_j, shed_t = np.nonzero(ps > 0)  # bus-major, as (j, t) for j, t
    shed_keys = list(zip(shed_j.tolist(), shed_t.tolist()))
    b.shed = ArrayVar(b, "shed", keys=shed_keys, lb=0.0, ub=ps[shed_j, shed_t])
    q_ratio = np.divide(qs, ps, out=np.zeros_like(ps), where=ps > 0)
    Pabs_l, Qabs_l = Pabs.tolist(), Qabs.tolist()

    # parallel branches
    PC = range(len(parallels))
    pbr = [o.branch for o in parallels]
    b.Pp = ArrayVar(b, "Pp", axes=(PC, T), lb=-Pabs[pbr] if pbr else 0.0, ub=Pabs[pbr] if pbr else 0.0)
    b.Qp = ArrayVar(b, "Qp", axes=(PC, T), lb=-Qabs[pbr] if pbr else 0.0, ub=Qabs[pbr] if pbr else 0.0)
    Pp_, Qp_ = b.Pp, b.Qp
    par_on = defaultdict(list)
    for c, o in enumerate(parallels):
        par_on[o.branch].append(c)

    # investment states, taken apart once per (option, node)
    state_of = {id(o): {n: affine(o.state[n]) for n in ix.node_names} for opts in options.values() for o in opts}

    # alternatives of a replaced branch: (branch, r, x, state by node, M per op).  When
    # alternative b is in place the residual of alternative a is
    # 2((r_b - r_a) P + (x_b - x_a) Q) / S_base (- (z_b² - z_a²) l with losses), so M_a = max_b
    # of its bound.
    alt = []
    alts_of = defaultdict(list)
    for k, opts in replaces.items():
        if not opts:
            continue
        existing = {n: Affine(1.0) for n in ix.node_names}  # 1 - Σ states
        for o in opts:
            for n in ix.node_names:
                existing[n].add(state_of[id(o)][n], -1.0)
        rx = [(r[k], x[k], existing)] + [(o.r_pu, o.x_pu, state_of[id(o)]) for o in opts]
        for ra, xa, st in rx:
            M = np.max([2.0 * (abs(rb - ra) * Pabs[k] + abs(xb - xa) * Qabs[k]) / sb
                        + (abs(rb * rb + xb * xb - z2_coef(ra, xa, rb, xb)) * lmax[k] if losses else 0.0)
                        for rb, xb, _ in rx], axis=0)
            alts_of[k].append(len(alt))
            alt.append((k, ra, xa, st, M.tolist()))
    A = range(len(alt))

    if losses:
        # squared current l (pu² of the base current) per branch, per alternative of a replaced
        # branch (only the one in place carries it) and per parallel candidate, held as w = |z| l
        # (1 where there is no impedance), so that its coefficients (|z| in the drop, r/|z| S_base
        # in the balance) sit in the range of the flows' (2r / S_base): the LP solved 1.7 times
        # faster on ieee33 than with l itself
        zk = [zscale(r[k], x[k]) for k in K]
        za = [zscale(alt[i][1], alt[i][2]) for i in A]
        zp = [zscale(o.r_pu, o.x_pu) for o in parallels]
        b.l = pyo.Var(K, Tl, bounds=lambda _, k, t: (0.0, lmax[k, t] * zk[k]))
        b.l_alt = pyo.Var(A, Tl, bounds=lambda _, i, t: (0.0, lmax[alt[i][0], t] * za[i]))
        b.l_par = pyo.Var(PC, Tl, bounds=lambda _, c, t: (0.0, lmax[pbr[c], t] * zp[c]))
        l_, l_alt_, l_par_ = dict(b.l.items()), dict(b.l_alt.items()), dict(b.l_par.items())

    # -- balances ------------------------------------------------------------------------
    children = defaultdict(list)
    for k in K:
        children[frm[k]].append(k)
    parent = net.parent_branch()

    # Every row below is a row of a family (blocks/rows.py): coefficients, variables and
    # bounds as plain lists, appended to HiGHS's matrix at the hand-off.
    injections = {}  # id(expr) -> Affine: an injection's terms, taken apart once

    def injection(term):
        key = id(term)
        if key not in injections:
            injections[key] = (term, affine(term))  # keep term alive so that its id stays unique
        return injections[key][1]

    # rows of the bus x op families: row = position of the bus in ``buses`` x n_ops + op
    nB = len(buses)
    bpos = np.full(net.n_buses, -1, dtype=np.int64)
    bpos[np.asarray(buses, dtype=np.int64)] = np.arange(nB)
    ar_t = np.arange(nT, dtype=np.int64)
    tokP, tokQ = b.P.tokens(), b.Q.tokens()
    tokPp, tokQp = b.Pp.tokens(), b.Qp.tokens()
    tok_shed = b.shed.tokens()
    bus_keys = lambda: product(buses, T)  # noqa: E731 (made on first use)
    tokV2 = b.v.tokens()
    node_at = {n: i for i, n in enumerate(ix.node_names)}
    opnode_a = np.asarray([node_at[n] for n in opnode], dtype=np.int64)

    def bus_rows(jj) -> np.ndarray:
        """Rows (len(jj), n_ops) of buses ``jj`` in a bus x op family."""
        return bpos[np.asarray(jj, dtype=np.int64)][:, None] * nT + ar_t[None, :]

    def balance(kind):
        flow, pflow = (tokP, tokPp) if kind == "p" else (tokQ, tokQp)
        fixed = pw if kind == "p" else qw
        terms = hub.p_terms if kind == "p" else hub.q_terms
        rows, toks, coefs = [], [], []

        def put(jj, tok, coef):
            r = bus_rows(jj)
            rows.append(r.reshape(-1))
            toks.append(np.asarray(tok).reshape(-1))
            coefs.append(np.broadcast_to(np.asarray(coef, dtype=float), r.shape).reshape(-1))

        jj = np.asarray(buses, dtype=np.int64)
        kk = np.asarray([parent[j] for j in buses], dtype=np.int64)
        if nB:
            put(jj, flow[kk], 1.0)  # what arrives from the parent branch
        out = [(frm[m], m) for m in K if frm[m] not in slack_v]  # what leaves to the children
        if out:
            put([j for j, _ in out], flow[[m for _, m in out]], -1.0)
        for c in PC:
            if bpos[to[pbr[c]]] >= 0:
                put([to[pbr[c]]], pflow[c][None, :], 1.0)
            if frm[pbr[c]] not in slack_v:
                put([frm[pbr[c]]], pflow[c][None, :], -1.0)
        inb = bpos[shed_j] >= 0
        if inb.any():
            rows.append(bpos[shed_j[inb]] * nT + shed_t[inb])
            toks.append(tok_shed[inb])
            coefs.append(np.ones(int(inb.sum())) if kind == "p" else q_ratio[shed_j[inb], shed_t[inb]])
        rhs = fixed[np.asarray(buses, dtype=np.int64)].reshape(-1).astype(float) if nB else np.empty(0)
        x_row, x_coef, x_var = [], [], []
        if Tl:  # the flow arriving at j is the sending-end flow less the branch's losses
            for j in buses:
                k = parent[j]
                for t in Tl:
                    r0 = bpos[j] * nT + t
                    if alts_of[k]:
                        for i in alts_of[k]:
                            x_row.append(r0)
                            x_coef.append(-(alt[i][1] if kind == "p" else alt[i][2]) * sb / za[i])
                            x_var.append(l_alt_[i, t])
                    else:
                        x_row.append(r0)
                        x_coef.append(-(r[k] if kind == "p" else x[k]) * sb / zk[k])
                        x_var.append(l_[k, t])
                    for c in par_on[k]:
                        x_row.append(r0)
                        x_coef.append(-(parallels[c].r_pu if kind == "p" else parallels[c].x_pu) * sb / zp[c])
                        x_var.append(l_par_[c, t])
        for (j, t), ts in terms.items():
            if j in slack_v or not ts:
                continue
            r0 = int(bpos[j]) * nT + t
            for term in ts:
                a = injection(term)
                rhs[r0] -= a.const
                x_row.extend([r0] * len(a.coefs))
                x_coef.extend(a.coefs)
                x_var.extend(a.vars)
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt)) if rows else (lambda xs, dt: np.empty(0, dt))
        add_array_rows(b, f"balance_{kind}", nB * nT, bus_keys, cat(rows, np.int64), cat(toks, np.int64),
                       cat(coefs, float), rhs, rhs, extra=(x_row, x_coef, x_var))

    balance("p")
    balance("q")

    # -- voltage drop ---------------------------------------------------------------------
    def eq_zero(a: Affine):
        return a.coefs, a.vars, -a.const, -a.const

    plain = [k for k in K if k not in replaces or not replaces[k]]
    # v_from - v_to - 2 (r P + x Q) / S_base [+ |z|² l] = 0, a slack's squared voltage in the bound
    nPl = len(plain)
    pk = np.asarray(plain, dtype=np.int64)
    prow = (np.arange(nPl, dtype=np.int64)[:, None] * nT + ar_t[None, :])
    rows, toks, coefs = [prow, prow], [tokP[pk], tokQ[pk]], [
        np.repeat(-2.0 * np.asarray(r, dtype=float)[pk] / sb, nT) if nPl else np.empty(0),
        np.repeat(-2.0 * np.asarray(x, dtype=float)[pk] / sb, nT) if nPl else np.empty(0)]
    const = np.zeros((nPl, nT))
    x_row, x_coef, x_var = [], [], []
    for i, k in enumerate(plain):
        for bus, sign in ((frm[k], 1.0), (to[k], -1.0)):
            if bus in slack_v:
                const[i] += sign * slack_v[bus]
                if sign > 0 and bus in supply_dv:
                    x_row.extend((i * nT + ar_t).tolist())
                    x_coef.extend([1.0] * nT)
                    x_var.extend(supply_dv[bus][t] for t in T)
            else:
                rows.append(prow[i])
                toks.append(tokV2[bpos[bus]])
                coefs.append(np.full(nT, sign))
        if losses:
            for t in Tl:
                x_row.append(i * nT + t)
                x_coef.append((r[k] * r[k] + x[k] * x[k]) / zk[k])
                x_var.append(l_[k, t])
    rhs = -const.reshape(-1)
    add_array_rows(b, "vdrop", nPl * nT, lambda: product(plain, T), np.concatenate([np.ravel(a) for a in rows]),
                   np.concatenate([np.ravel(a) for a in toks]), np.concatenate([np.ravel(a) for a in coefs]), rhs, rhs,
                   extra=(x_row, x_coef, x_var))


    def switched(var, sign, bound, state: Affine):
        """sign var <= bound state"""
        a = Affine(0.0, [sign], [var]).add(state, -bound)
        return a.coefs, a.vars, None, -a.const

    def switched_drops(name, items, sign, tokp, tokq):
        """Rows ``sign · drop + M(t) · state <= M(t)`` (the voltage drop of an alternative or a
        parallel, relaxed by M while it is not in place) for every item and op, with numpy;
        ``items``: (branch, flow row, r, x, M per op, state by node, extra(t) -> [(coef, var)]
        or None)."""
        rows, toks, coefs, his = [], [], [], []
        x_row, x_coef, x_var = [], [], []
        for n_i, (k, fi, rr, xx, M, state, extra) in enumerate(items):
            rr0 = n_i * nT + ar_t
            M = np.asarray(M, dtype=float)
            const = np.zeros(nT)
            rows += [rr0, rr0]
            toks += [tokp[fi], tokq[fi]]
            coefs += [np.full(nT, -sign * 2.0 * rr / sb), np.full(nT, -sign * 2.0 * xx / sb)]
            for bus, sgn in ((frm[k], sign), (to[k], -sign)):
                if bus in slack_v:
                    const += sgn * slack_v[bus]
                    if sgn == sign and bus in supply_dv:
                        x_row.extend(rr0.tolist())
                        x_coef.extend([sign] * nT)
                        x_var.extend(supply_dv[bus][t] for t in T)
                else:
                    rows.append(rr0)
                    toks.append(tokV2[bpos[bus]])
                    coefs.append(np.full(nT, sgn))
            if extra is not None:
                for t in Tl:
                    for c, var in extra(t):
                        x_row.append(int(rr0[t]))
                        x_coef.append(sign * c)
                        x_var.append(var)
            for ni, nn in enumerate(ix.node_names):
                a_ = state[nn]
                sel = np.flatnonzero(opnode_a == ni)
                if not len(sel):
                    continue
                const[sel] += M[sel] * a_.const
                for c, var in zip(a_.coefs, a_.vars):
                    x_row.extend(rr0[sel].tolist())
                    x_coef.extend((M[sel] * c).tolist())
                    x_var.extend([var] * len(sel))
            his.append(M - const)
        n = len(items) * nT
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt)) if rows else (lambda xs, dt: np.empty(0, dt))
        add_array_rows(b, name, n, lambda: product(range(len(items)), T), cat(rows, np.int64), cat(toks, np.int64),
                       cat(coefs, float), -np.inf, cat(his, float) if his else np.empty(0),
                       extra=(x_row, x_coef, x_var))

    hull = losses and cfg.replacements == "hull"
    if not hull:
        # with losses, alternative a's row carries each alternative i's current with
        # c(a, i) = min(z_a², 2 (r_a r_i + x_a x_i)): z_a² for its own (exact once built), and for
        # the others (zero once the choice is integer) at most what their losses add to the
        # drop, so that a relaxed current never raises a voltage
        def zterms(i, t):
            if t not in in_Tl:
                return ()
            ra, xa = alt[i][1], alt[i][2]
            return [(z2_coef(ra, xa, alt[m][1], alt[m][2]) / za[m], l_alt_[m, t]) for m in alts_of[alt[i][0]]]

        items = [(alt[i][0], alt[i][0], alt[i][1], alt[i][2], alt[i][4], alt[i][3],
                  (lambda t, i=i: zterms(i, t)) if losses else None) for i in A]
        switched_drops("vdrop_alt_up", items, 1.0, tokP, tokQ)
        switched_drops("vdrop_alt_dn", items, -1.0, tokP, tokQ)
    else:
        # with losses a replaced branch's flow is split between its alternatives, each within its
        # range times its state (the convex hull of the disjunction, no big-M): the drop is the
        # sum of the alternatives' drops, each alternative has its own current and cone
        b.P_alt = pyo.Var(A, T, bounds=lambda _, i, t: (min(Pmin[alt[i][0], t], 0.0), max(Pmax[alt[i][0], t], 0.0)))
        b.Q_alt = pyo.Var(A, T, bounds=lambda _, i, t: (min(Qmin[alt[i][0], t], 0.0), max(Qmax[alt[i][0], t], 0.0)))
        P_alt_, Q_alt_ = dict(b.P_alt.items()), dict(b.Q_alt.items())
        split = [k for k in K if alts_of[k]]
        for name, tot, part in (("p_split", P_, P_alt_), ("q_split", Q_, Q_alt_)):
            add_rows(b, name, product(split, T), lambda k, t, tot=tot, part=part: (
                [1.0] + [-1.0] * len(alts_of[k]), [tot[k, t]] + [part[i, t] for i in alts_of[k]], 0.0, 0.0))
        for name, part, lo, hi in (("p_alt_on", P_alt_, Pmin, Pmax), ("q_alt_on", Q_alt_, Qmin, Qmax)):
            add_rows(b, name + "_up", [(i, t) for i in A for t in T if hi[alt[i][0], t] > 0], lambda i, t, part=part,
                     hi=hi: switched(part[i, t], 1.0, float(hi[alt[i][0], t]), alt[i][3][opnode[t]]))
            add_rows(b, name + "_dn", [(i, t) for i in A for t in T if lo[alt[i][0], t] < 0], lambda i, t, part=part,
                     lo=lo: switched(part[i, t], -1.0, float(-lo[alt[i][0], t]), alt[i][3][opnode[t]]))

        def hull_drop(k, t):
            a = Affine()
            f, g = frm[k], to[k]
            a.term(1.0, slack_v[f] if f in slack_v else v_[f, t])
            a.term(-1.0, slack_v[g] if g in slack_v else v_[g, t])
            for i in alts_of[k]:
                ra, xa = alt[i][1], alt[i][2]
                a.term(-2.0 * ra / sb, P_alt_[i, t]).term(-2.0 * xa / sb, Q_alt_[i, t])
                a.term((ra * ra + xa * xa) / za[i], l_alt_[i, t])
            return eq_zero(a)

        add_rows(b, "vdrop_alt", product(split, T), hull_drop)
        # each alternative's cone uses the from-bus voltage times its state (the perspective of the
        # cone, so that a fractional state interpolates the alternatives' losses instead of
        # sharing the flow like parallel cables): v_alt <= v² s, linearised within the
        # voltage band (McCormick: v_alt <= v_hi² s, v_alt <= v - v_lo² (1 - s))
        vb_lo, vb_hi = (vmin2, vmax2) if cfg.current_bound == "limits" else (vh_lo, vh_hi)
        b.v_alt = pyo.Var(A, T, bounds=(0.0, vb_hi))
        v_alt_ = dict(b.v_alt.items())

        def persp(i, t, which):
            k = alt[i][0]
            f = frm[k]
            st = alt[i][3][opnode[t]]
            if f in slack_v:
                return switched(v_alt_[i, t], 1.0, slack_v[f], st) if which == "hi" else None
            if which == "hi":
                return switched(v_alt_[i, t], 1.0, vb_hi, st)
            # v_alt - v_f - v_lo² s <= -v_lo²
            a = Affine(0.0, [1.0, -1.0], [v_alt_[i, t], v_[f, t]]).add(st, -vb_lo)
            return a.coefs, a.vars, None, -vb_lo - a.const

        add_rows(b, "v_alt_on", product(A, T), lambda i, t: persp(i, t, "hi"))
        add_rows(b, "v_alt_mc", [(i, t) for i in A if frm[alt[i][0]] not in slack_v for t in T],
                 lambda i, t: persp(i, t, "mc"))

    # a parallel that is not built carries nothing, so its residual is the drop along the
    # branch it parallels: at most 2 (max r · |P| + max x · |Q|) / S_base
    Mp = []
    for o in parallels:
        k = o.branch
        rmax = max([r[k]] + [q.r_pu for q in replaces.get(k, [])])
        xmax = max([x[k]] + [q.x_pu for q in replaces.get(k, [])])
        Mp.append((2.0 * (rmax * Pabs[k] + xmax * Qabs[k]) / sb
                   + ((rmax * rmax + xmax * xmax) * lmax[k] if losses else 0.0)).tolist())
    par_state = [state_of[id(o)] for o in parallels]
    items = [(pbr[c], c, parallels[c].r_pu, parallels[c].x_pu, Mp[c], par_state[c],
              (lambda t, c=c: [((parallels[c].r_pu ** 2 + parallels[c].x_pu ** 2) / zp[c], l_par_[c, t])])
              if losses else None) for c in PC]
    switched_drops("vdrop_par_up", items, 1.0, tokPp, tokQp)
    switched_drops("vdrop_par_dn", items, -1.0, tokPp, tokQp)

    for name, var, bound in (("par_p_on", Pp_, Pabs_l), ("par_q_on", Qp_, Qabs_l)):
        for suffix, sign in (("_up", 1.0), ("_dn", -1.0)):
            add_rows(b, name + suffix, product(PC, T), lambda c, t, var=var, bound=bound, sign=sign:
                     switched(var[c, t], sign, bound[pbr[c]][t], par_state[c][opnode[t]]))

    if losses:
        # only the alternative in place, and a parallel that is built, carries current
        split = [k for k in K if alts_of[k]]
        add_rows(b, "l_split", product(split, Tl), lambda k, t: (
            [1.0 / zk[k]] + [-1.0 / za[i] for i in alts_of[k]], [l_[k, t]] + [l_alt_[i, t] for i in alts_of[k]],
            0.0, 0.0))
        add_rows(b, "l_alt_on", product(A, Tl), lambda i, t: switched(l_alt_[i, t], 1.0, lmax_l[alt[i][0]][t] * za[i],
                                                                      alt[i][3][opnode[t]]))
        add_rows(b, "l_par_on", product(PC, Tl), lambda c, t: switched(l_par_[c, t], 1.0, lmax_l[pbr[c]][t] * zp[c],
                                                                       par_state[c][opnode[t]]))
        # the cone (P² + Q²) / S_base² <= v_from · l, outer-approximated by tangent planes: the one
        # at a point with (P, Q) / (S_base v_from) = (a, b) reads
        #   l - 2 a P / S_base - 2 b Q / S_base + (a² + b²) v_from >= 0,
        # first at the flow of the fixed withdrawals (half of it where a parallel may share it);
        # flexplan.acfeasible adds the planes where a solution lies outside the cone
        cone = dict(l=[], P=[], Q=[], v=[], vs=[], where=[], scale=[])
        a0, b0 = [], []
        below = net.downstream_buses()
        for k in K:
            f = frm[k]
            share = 0.5 if k in has_par else 1.0
            p0 = (share * pw[below[k]].sum(axis=0) / sb).tolist()
            q0 = (share * qw[below[k]].sum(axis=0) / sb).tolist()
            if hull and alts_of[k]:  # one cone per alternative (they imply the branch's own)
                items = [("alternative", i, l_alt_, P_alt_, Q_alt_, i, za[i]) for i in alts_of[k]]
            elif r[k] == 0.0 and x[k] == 0.0 and not alts_of[k]:
                items = []  # no impedance (a virtual branch): its current changes nothing
            else:
                items = [("branch", k, l_, P_, Q_, k, zk[k])]
            items += [("parallel", c, l_par_, Pp_, Qp_, c, zp[c]) for c in par_on[k]]
            for kind, idx, L, PP, QQ, i, scale in items:
                for t in Tl:
                    cone["scale"].append(scale)
                    cone["l"].append(L[i, t])
                    cone["P"].append(PP[i, t])
                    cone["Q"].append(QQ[i, t])
                    if kind == "alternative":
                        cone["v"].append(v_alt_[i, t])
                        cone["vs"].append(0.0)
                    else:
                        cone["v"].append(None if f in slack_v else v_[f, t])
                        cone["vs"].append(slack_v.get(f, 0.0))
                    cone["where"].append((kind, idx, t))
                    a0.append(p0[t])
                    b0.append(q0[t])
        first = [i for i in range(len(cone["l"])) if a0[i] or b0[i]]
        add_rows(b, "cone", first, lambda i: cone_cut(cone, i, a0[i], b0[i], sb))
        b._cones = cone
        b._cfg, b._sb = cfg, sb
        b._loss_ops = Tl
        # what the DSO pays for its losses, per (node, year)
        price = float(cfg.loss_price_eur_per_mwh)
        loss_by_t = []
        for t in T:
            cs, vs = [], []
            if t not in in_Tl:
                loss_by_t.append((cs, vs))
                continue
            for k in K:
                if alts_of[k]:
                    for i in alts_of[k]:
                        cs.append(alt[i][1] * sb / za[i])
                        vs.append(l_alt_[i, t])
                else:
                    cs.append(r[k] * sb / zk[k])
                    vs.append(l_[k, t])
                for c in par_on[k]:
                    cs.append(parallels[c].r_pu * sb / zp[c])
                    vs.append(l_par_[c, t])
            loss_by_t.append((cs, vs))
        b._loss_by_t = loss_by_t

    # -- voltage band ---------------------------------------------------------------------
    tokV, tokLo, tokHi = tokV2.reshape(-1), b.s_vlo.tokens().reshape(-1), b.s_vhi.tokens().reshape(-1)
    rr = np.arange(nB * nT, dtype=np.int64)
    if hub.v_margin is None:
        lo = np.full(nB * nT, vmin2)
    else:  # AC correction: LinDistFlow's overstatement of each bus's voltage, measured in AC
        lo = ((lim.v_min_pu + np.asarray(hub.v_margin)[np.asarray(buses, dtype=np.int64)]) ** 2).reshape(-1)
    add_array_rows(b, "v_min", nB * nT, bus_keys, np.concatenate([rr, rr]), np.concatenate([tokV, tokLo]),
                   np.ones(2 * nB * nT), lo, np.inf)
    add_array_rows(b, "v_max", nB * nT, bus_keys, np.concatenate([rr, rr]), np.concatenate([tokV, tokHi]),
                   np.concatenate([np.ones(nB * nT), -np.ones(nB * nT)]), -np.inf, vmax2)

    # -- thermal limits -------------------------------------------------------------------
    load_frac = lim.max_loading_pct / 100.0
    limited = [k for k in K if rating[k] < UNLIMITED_MVA or replaces.get(k)]
    rating_aff = {}  # (branch, node) -> rating in MVA as an Affine of the investment states
    for k in limited:
        base = rating[k] if rating[k] < UNLIMITED_MVA else 0.0
        for n in ix.node_names:
            a = Affine(base)
            for o in replaces.get(k, []):
                a.add(state_of[id(o)][n], o.rating_mva - base)
            rating_aff[k, n] = a
    edges = polygon(cfg.polygon_sides)

    E = np.asarray(edges, dtype=float)
    ea, eb, ec = E[:, 0], E[:, 1], E[:, 2]

    def binding(pmin, pmax, qmin, qmax, cap):
        """(n_ops, edges) mask of the polygon edges that can bind for flows in the box at the
        smallest rating the branch can have (``cap``, MVA x loading): an edge whose largest
        value over the box stays within it is implied by the flow bounds and left out (exact,
        also for the LP relaxation); a branch-op without edges gets no overload slack either.
        Where P >= 0 an edge with a < 0 is implied by its mirror image, likewise for P <= 0 and
        for Q (:func:`common.polygon_edges_needed`)."""
        p0, p1, q0, q1 = pmin[:, None], pmax[:, None], qmin[:, None], qmax[:, None]
        skip = (((ea < 0) & (p0 >= 0)) | ((ea > 0) & (p1 <= 0) & (p0 < 0))
                | ((eb < 0) & (q0 >= 0)) | ((eb > 0) & (q1 <= 0) & (q0 < 0)))
        top = np.maximum(ea * p0, ea * p1) + np.maximum(eb * q0, eb * q1)
        return ~skip & (top > ec * cap)

    def thermal_family(name, slack_name, items, tokp, tokq):
        """Rows a_m P + b_m Q - e_m s_over - e_m · loading · rating(states) <= 0 of each
        (element, edge, op) that can bind; ``items``: (element, pmin, pmax, qmin, qmax, cap,
        rating by node as an Affine of the investment states).  Returns the slack's keys."""
        per = []
        for el, pmin, pmax, qmin, qmax, cap, rat in items:
            tt, mm = np.nonzero(binding(pmin, pmax, qmin, qmax, cap))  # op-major, then edge: as before
            if len(tt):
                per.append((el, tt, mm, rat))
        over_keys, first = [], 0
        parts = []
        for el, tt, mm, rat in per:
            ut = np.unique(tt)
            over_keys.extend((el, t) for t in ut.tolist())
            parts.append((el, tt, mm, rat, first + np.searchsorted(ut, tt)))
            first += len(ut)
        slack = ArrayVar(b, slack_name, keys=over_keys, lb=0.0)
        tok_s = slack.tokens(np.arange(len(over_keys)))
        rows, toks, coefs, hi, keys = [], [], [], [], []
        x_row, x_coef, x_var = [], [], []
        n = 0
        for el, tt, mm, rat, spos in parts:
            nr = len(tt)
            rr = n + np.arange(nr, dtype=np.int64)
            rows += [rr, rr, rr]
            toks += [tokp[el][tt], tokq[el][tt], tok_s[spos]]
            coefs += [ea[mm], eb[mm], -ec[mm]]
            node = opnode_a[tt]
            const = np.array([rat[nn].const for nn in ix.node_names])
            hi.append(ec[mm] * load_frac * const[node])
            for ni, nn in enumerate(ix.node_names):
                a_ = rat[nn]
                if not a_.coefs:
                    continue
                sel = np.flatnonzero(node == ni)
                if not len(sel):
                    continue
                nt = len(a_.coefs)
                x_row.extend(np.repeat(rr[sel], nt).tolist())
                x_coef.extend((-ec[mm[sel]][:, None] * load_frac * np.asarray(a_.coefs, dtype=float)[None, :])
                              .reshape(-1).tolist())
                x_var.extend(a_.vars * len(sel))
            keys.append((el, mm, tt))
            n += nr

        def make_keys(keys=keys):
            return [(el, m, t) for el, mm, tt in keys for m, t in zip(mm.tolist(), tt.tolist())]

        cat = (lambda xs, dt: np.concatenate(xs).astype(dt)) if rows else (lambda xs, dt: np.empty(0, dt))
        add_array_rows(b, name, n, make_keys, cat(rows, np.int64), cat(toks, np.int64), cat(coefs, float), -np.inf,
                       cat(hi, float) if hi else np.empty(0), extra=(x_row, x_coef, x_var))
        return over_keys

    items = []
    for k in limited:
        base = rating[k] if rating[k] < UNLIMITED_MVA else 0.0
        cap = load_frac * min([base] + [o.rating_mva for o in replaces.get(k, [])])
        items.append((k, Pmin[k], Pmax[k], Qmin[k], Qmax[k], cap, {n: rating_aff[k, n] for n in ix.node_names}))
    over_keys = thermal_family("thermal", "s_over", items, tokP, tokQ)
    par_rating = [{n: Affine().add(st, o.rating_mva) for n, st in par_state[c].items()} for c, o in enumerate(parallels)]
    items = [(c, -Pabs[pbr[c]], Pabs[pbr[c]], -Qabs[pbr[c]], Qabs[pbr[c]], load_frac * parallels[c].rating_mva,
              par_rating[c]) for c in PC]
    over_par_keys = thermal_family("thermal_par", "s_over_par", items, tokPp, tokQp)
    rating_expr = {key: a.expr() for key, a in rating_aff.items()}

    # -- penalties ------------------------------------------------------------------------
    by_ny = defaultdict(list)
    for t in T:
        by_ny[(opnode[t], int(ix.op_year[t]))].append(t)
    hours_a = np.asarray(hours, dtype=float)
    over_kt = np.asarray([t for _, t in over_keys], dtype=np.int64)
    over_par_t = np.asarray([t for _, t in over_par_keys], dtype=np.int64)
    tok_over, tok_over_par = b.s_over.tokens(np.arange(len(over_keys))), b.s_over_par.tokens(np.arange(len(over_par_keys)))
    tok_vlo, tok_vhi = b.s_vlo.tokens(), b.s_vhi.tokens()
    for (n, y), ts in by_ny.items():
        ts_a = np.asarray(ts, dtype=np.int64)
        in_ts = np.zeros(nT, dtype=bool)
        in_ts[ts_a] = True
        sel = in_ts[shed_t]
        hub.cost("penalty_unserved", n, ArrayExpr(reg, pen.voll_eur_per_mwh * hours_a[shed_t[sel]], tok_shed[sel]),
                 year=y)
        s1, s2 = in_ts[over_kt], in_ts[over_par_t]
        hub.cost("penalty_overload", n, ArrayExpr(
            reg, pen.overload_eur_per_mvah * np.concatenate([hours_a[over_kt[s1]], hours_a[over_par_t[s2]]]),
            np.concatenate([tok_over[s1], tok_over_par[s2]])), year=y)
        hv = np.broadcast_to(hours_a[ts_a][None, :], (nB, len(ts_a))).reshape(-1)
        hub.cost("penalty_voltage", n, ArrayExpr(
            reg, pen.voltage_eur_per_pu2h * np.concatenate([hv, hv]),
            np.concatenate([tok_vlo[:, ts_a].reshape(-1), tok_vhi[:, ts_a].reshape(-1)])), year=y)
        if losses:
            cs, vs = [], []
            for t in ts:
                cs.extend(price * hours[t] * c for c in loss_by_t[t][0])
                vs.extend(loss_by_t[t][1])
            hub.cost("losses", n, lin(cs, vs), year=y)

    b._sides = cfg.polygon_sides
    b._implied_bounds = (b.P, b.Q, b.Pp, b.Qp)  # flow ranges: implied by the loads (freed for prices)
    b._meta = dict(buses=buses, limited=limited, parallels=parallels, rating_expr=rating_expr, slack_v=slack_v,
                   supply_dv=supply_dv,
                   opnode=opnode, losses=losses, over_keys=over_keys)


def _rating_at(expr) -> float:
    return float(pyo.value(expr)) if not isinstance(expr, (int, float)) else float(expr)


def _stacked(ops: pd.DataFrame, **cols) -> pd.DataFrame:
    """``ops`` repeated once per element, element by element, with the element's label (1-D
    array, one per element) and its values (2-D arrays, element x op) as columns."""
    n = next((len(v) for v in cols.values()), 0)
    T = len(ops)
    out = {c: np.tile(ops[c].to_numpy(), n) for c in ops.columns}
    for name, v in cols.items():
        v = np.asarray(v)
        out[name] = np.repeat(v, T) if v.ndim == 1 else v.reshape(-1)
    return pd.DataFrame(out, columns=[*ops.columns, *cols])


def extract_lindistflow(b, inst, ix) -> dict:
    """voltages (node, year, day, hour, bus, v_pu), line_loading (node, year, day, hour,
    line, p_mw, q_mvar, loading_pct) and the slack values."""
    net = inst.network
    meta = b._meta
    ops = ix.op_frame()
    T = ix.n_ops
    nb = net.n_buses
    V = np.zeros((nb, T))
    for bus, v2 in meta["slack_v"].items():
        dv = meta.get("supply_dv", {}).get(bus)
        V[bus] = np.sqrt(v2 if dv is None else np.maximum(v2 + np.array([d.value or 0.0 for d in dv]), 0.0))
    if meta["buses"]:
        V[np.asarray(meta["buses"], dtype=np.int64)] = np.sqrt(np.maximum(np.nan_to_num(b.v.value_array()), 0.0))
    names = net.buses["name"].to_numpy()
    volt = _stacked(ops, bus=names, v_pu=V)

    P = b.P.value_array().reshape(net.n_branches, T)
    Q = b.Q.value_array().reshape(net.n_branches, T)
    nodes_at = np.asarray(ix.op_node)
    rat_node = np.full((net.n_branches, len(ix.node_names)), np.nan)
    for (k, n), expr in meta["rating_expr"].items():
        rat_node[k, ix.node_names.index(n)] = _rating_at(expr)
    rat = rat_node[:, nodes_at]
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = [np.where(rat > 0, 100 * np.hypot(P, Q) / np.where(rat > 0, rat, 1), np.nan)]
    lines, ps_, qs_, rats = [net.branches["name"].to_numpy()], [P], [Q], [rat]
    for c, o in enumerate(meta["parallels"]):
        st = np.array([_rating_at(o.state[n]) for n in ix.node_names])[nodes_at]
        if st.max() < 0.5:
            continue
        lines.append(np.array([o.candidate], dtype=object))
        ps_.append(b.Pp.value_array()[c][None, :])
        qs_.append(b.Qp.value_array()[c][None, :])
        rats.append(np.where(st > 0.5, o.rating_mva, np.nan)[None, :])
        pct.append(100 * np.hypot(ps_[-1], qs_[-1]) / o.rating_mva)
    P_all, Q_all, R_all, load_pct = np.vstack(ps_), np.vstack(qs_), np.vstack(rats), np.vstack(pct)
    loading = _stacked(ops, line=np.concatenate(lines), p_mw=P_all, q_mvar=Q_all, rating_mva=R_all,
                       loading_pct=load_pct)
    w = ix.op_expected_hours()
    shed_t = np.asarray([t for _, t in b.shed.keys], dtype=np.int64)
    shed = float(np.nan_to_num(b.shed.value_array()) @ w[shed_t]) if len(shed_t) else 0.0
    out = {"voltages": volt, "line_loading": loading, "unserved_mwh_modelled": float(shed)}
    if meta.get("losses"):
        loss_mw = np.array([sum(c * (v.value or 0.0) for c, v in zip(*b._loss_by_t[t])) for t in range(T)])
        cone = b._cones
        out["summary"] = {"network_losses": dict(
            formulation="branchflow", losses_mwh_horizon=float(loss_mw @ w), peak_loss_mw=float(loss_mw.max()) if T else 0.0,
            cone_planes=int(len(b.cone) + getattr(b, "_cuts_added", 0)), cones=len(cone["l"]),
            ops_with_losses=len(b._loss_ops), ops=T,
            max_cone_gap_rel=getattr(b, "_cone_gap", None))}
        out["losses"] = ops.assign(loss_mw=loss_mw)
    return out


#: soft-limit slacks: variable -> (kind, constraint, unit, penalty of the instance)
SLACKS = {"s_vlo": ("undervoltage", "v_min", "pu", "voltage_eur_per_pu2h"),
          "s_vhi": ("overvoltage", "v_max", "pu", "voltage_eur_per_pu2h"),
          "s_over": ("overload", "thermal", "MVA", "overload_eur_per_mvah"),
          "s_over_par": ("overload", "thermal_par", "MVA", "overload_eur_per_mvah"),
          "shed": ("unserved", "balance_p", "MW", "voll_eur_per_mwh")}


def violations_lindistflow(b, pm):
    """The plan's soft-limit violations (:func:`common.slack_violations`): under/over-voltage
    at buses (amount and value in pu of voltage, not squared), overload of lines and parallel
    candidates (value: loading in % of the rating in place), load shed at buses."""
    net, lim = pm.instance.network, pm.instance.limits
    buses, branches = net.buses["name"].tolist(), net.branches["name"].tolist()
    meta = b._meta
    parallels = meta["parallels"]
    ops = pm.index.op_frame()

    def element(var_name, el):
        if var_name == "s_over_par":
            return "line", parallels[el].candidate
        if var_name == "s_over":
            return "line", branches[el]
        return "bus", buses[el]

    def detail(row, var_name, el, t):
        if var_name in ("s_vlo", "s_vhi"):
            v_pu = math.sqrt(max(float(b.v[el, t].value), 0.0))
            limit = lim.v_min_pu if var_name == "s_vlo" else lim.v_max_pu
            row.update(value=v_pu, limit=limit, amount=abs(limit - v_pu), unit="pu")
        elif var_name == "s_over":
            row.update(limit=lim.max_loading_pct)
            rating = _rating_at(meta["rating_expr"][el, ops.at[t, "node"]])
            if rating > 0:
                row["value"] = 100 * math.hypot(b.P[el, t].value or 0.0, b.Q[el, t].value or 0.0) / rating
        elif var_name == "s_over_par":
            row.update(limit=lim.max_loading_pct)
            if parallels[el].rating_mva > 0:
                row["value"] = 100 * math.hypot(b.Pp[el, t].value or 0.0, b.Qp[el, t].value or 0.0) \
                    / parallels[el].rating_mva

    return slack_violations(pm, b, SLACKS, element, detail)


BUS_FAMILIES = {"v", "s_vlo", "s_vhi", "balance_p", "balance_q", "v_min", "v_max", "shed"}
BRANCH_FAMILIES = {"P", "Q", "l", "l_split", "p_split", "q_split", "vdrop", "vdrop_alt", "thermal", "s_over",
                   "vdrop_alt_up", "vdrop_alt_dn"}
PARALLEL_FAMILIES = {"Pp", "Qp", "l_par", "l_par_on", "thermal_par", "s_over_par", "vdrop_par_up", "vdrop_par_dn"}


def locate_lindistflow(b, local: str, first: int, inst):
    """The bus or line a row or variable family of this block is indexed by first (for
    ``flexplan diagnose``), or (None, None)."""
    net = inst.network
    if local in BUS_FAMILIES and first < net.n_buses:
        return "bus", str(net.buses["name"].iloc[first])
    if local in BRANCH_FAMILIES and first < net.n_branches:
        return "line", str(net.branches["name"].iloc[first])
    parallels = b._meta["parallels"]
    if local in PARALLEL_FAMILIES and first < len(parallels):
        return "line", str(parallels[first].candidate)
    return None, None


def prices_lindistflow(b, inst, ix, duals) -> dict:
    """Marginal objective (EUR per MW, resp. Mvar, of extra firm withdrawal) per (bus, op) from
    the duals of the P and Q balances (0 at slack buses: unlimited supply at no energy price);
    per (branch, op) the shadow price of its rating (the thermal edges' duals times their P
    coefficient: EUR per MW of extra flow); per (bus, op) the duals of the voltage limits."""
    net = inst.network
    out = {}
    for kind in ("p", "q"):
        keys, y = duals(b, f"balance_{kind}")
        m = np.zeros((net.n_buses, ix.n_ops))
        if len(keys):
            jj, tt = np.array(keys).T
            m[jj, tt] = y
        out[kind] = m
    line = np.zeros((net.n_branches, ix.n_ops))
    keys, y = duals(b, "thermal") if hasattr(b, "thermal") else ([], [])
    if len(keys):
        edges = polygon(getattr(b, "_sides", 12))
        kk, mm, tt = np.array(keys).T
        np.add.at(line, (kk, tt), np.asarray(y) * np.array([edges[m][0] for m in mm]))
    out["line"] = line
    vol = np.zeros((net.n_buses, ix.n_ops))
    for name in ("v_min", "v_max"):
        keys, y = duals(b, name)
        if len(keys):
            jj, tt = np.array(keys).T
            np.add.at(vol, (jj, tt), y)
    out["voltage"] = vol
    # decomposition along each bus's path from its slack (P_k is free in the pricing LP, so its
    # stationarity gives  λ_j = λ_i + 2 r_k / S_base · y_vdrop(k) − Σ_m a_m y_thermal(k, m) + …):
    # congestion sums the path's line terms, voltage its drop terms; what remains (the big-M
    # drop rows of replaced branches, parallels) is reported as "other"
    sb = float(net.s_base_mva)
    r = net.branches["r_pu"].to_numpy(float)
    drop = np.zeros((net.n_branches, ix.n_ops))
    keys, y = duals(b, "vdrop")
    if len(keys):
        kk, tt = np.array(keys).T
        drop[kk, tt] = 2.0 * r[kk] / sb * np.asarray(y)
    cong = np.zeros((net.n_buses, ix.n_ops))
    volt = np.zeros((net.n_buses, ix.n_ops))
    parent = net.parent_branch()
    frm = net.branches["from_bus"].to_numpy(int)
    for j in net.topological_order():
        k = parent[j]
        if k < 0:
            continue
        cong[j] = cong[frm[k]] - line[k]
        volt[j] = volt[frm[k]] + drop[k]
    out["congestion"], out["voltage_part"] = cong, volt
    return out


register_formulation(BlockSpec("lindistflow", add_lindistflow, LinDistFlowConfig, requires=("demand",),
                               extract=extract_lindistflow, doc=__doc__, prices=prices_lindistflow,
                               violations=violations_lindistflow, locate=locate_lindistflow))
