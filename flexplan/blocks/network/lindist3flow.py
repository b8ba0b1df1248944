"""LinDist3Flow: the three-phase linearised feeder (docs/formulation.md §2.12), for LV
feeders with single-phase loads and chargers.

Per op t, branch k = (i -> j) and phase φ, with per-phase flows P_kφ, Q_kφ (MW, Mvar) into
bus j and squared phase-to-neutral voltages Y_jφ (pu²):

* balance at j, per phase: P_kφ = w_jφ − inj_jφ − shed_jφ + Σ_{children m of j} P_mφ, where a
  power the Hub holds with a phase (``phase=``: single-phase loads, chargers of a fleet with a
  phase) goes to that phase and the rest is split evenly (Q likewise, the shed load keeping
  the bus's power factor);
* voltage drop: Y_j = Y_i + M_P(k) P_k + M_Q(k) Q_k (3-vectors; M from the branch's positive-
  and zero-sequence impedances, ``r_pu``/``x_pu`` and ``r0_pu``/``x0_pu``, :mod:`flexplan.threephase`);
  slack buses fixed at vm² on every phase;
* voltage band per phase (soft): Y_jφ + s⁻ ≥ v_min², Y_jφ − s⁺ ≤ v_max²;
* angles: θ_j = θ_i + N_P(k) P_k + N_Q(k) Q_k, each phase's angle against its balanced position
  (rad; the imaginary part of the same linearised drop), slack buses at 0;
* unbalance (soft, at the supply points: buses with something connected, where EN 50160
  applies): the negative-sequence voltage, to first order, V₂ ≈ (e_a + α e_b + α² e_c)/3
  with e_φ = (Y_φ − 1)/2 + j θ_φ and α = exp(j 2π/3), kept inside a polygon of ``polygon_sides``
  edges inscribed in the circle of radius u = ``vuf_max_pct`` / 100 (+ s^u): EN 50160's voltage
  unbalance factor |V₂|/|V₁| (|V₁| ≈ 1).  The angles matter: from the magnitudes alone the IEEE
  European LV feeder's on-peak unbalance would read 2.0 %; with them 0.61 %, against 0.73 % in
  ``runpp_3ph`` (:func:`flexplan.threephase.unbalance_factor`);
* thermal per phase (soft): the polygon of ``polygon_sides`` edges on (P_kφ, Q_kφ) within a third of
  the branch rating × loading (the same current on each phase at nominal voltage) + s^ov, only
  the edges the flow bounds let bind (each phase's flow is bounded by everything below the
  branch put on one phase);
* penalties as LinDistFlow's (``penalty_unserved``, ``penalty_overload``, ``penalty_voltage``;
  the unbalance slack at the voltage price).

Reinforcement (Hub branch options, state z(n) ∈ {0,1}): a replacement c of branch k gives it
c's impedances (positive and zero sequence, ``r0_pu``/``x0_pu`` of the candidate: a line type's
``r0_ohm_per_km``/``x0_ohm_per_km``) and rating; the drops of Y and θ hold for the alternative
in place, the others' rows are relaxed by M_a,φ(t) = max_b Σ_s (|M_P(b) − M_P(a)|_φs P̄ +
|M_Q(b) − M_Q(a)|_φs Q̄) (the largest value alternative a's residual takes while b is in place,
from the flow bounds), and the thermal rows see the rating in place, S_k + Σ_c (S_c − S_k) z_c,
a third of it per phase.  Parallel candidates are not modelled in three phases (refused).
Losses are neglected, as in LinDistFlow.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from ...errors import RecipeError
from ...threephase import angle_matrices, flow_matrices, phase_matrix, unbalance_factor
from .. import BlockSpec, register_formulation
from .common import UNLIMITED_MVA, polygon

PH = range(3)


@dataclass
class LinDist3FlowConfig:
    """``polygon_sides``: edges of the per-phase thermal polygon (multiple of 4, default 12);
    ``v_hard_min_pu`` / ``v_hard_max_pu``: bounds on every phase voltage (default 0.8 / 1.2 pu);
    ``vuf_max_pct``: the unbalance limit (%, default 2: EN 50160's limit on the voltage
    unbalance factor |V₂|/|V₁| in LV and MV networks, 95 % of the 10-minute means of a week),
    applied through the linear proxy of the module docstring; 0 switches it off."""

    polygon_sides: int = 12
    v_hard_min_pu: float = 0.8
    v_hard_max_pu: float = 1.2
    vuf_max_pct: float = 2.0

    def validate(self):
        if self.polygon_sides < 4 or self.polygon_sides % 4:
            return f"network.polygon_sides must be a multiple of 4 and >= 4, got {self.polygon_sides}"
        if not 0 < self.v_hard_min_pu < self.v_hard_max_pu:
            return "network.v_hard_min_pu must be positive and below v_hard_max_pu"
        if not 0 <= self.vuf_max_pct < 50:
            return f"network.vuf_max_pct must be in [0, 50), got {self.vuf_max_pct}"


def branch_matrices(net, where: str) -> tuple[np.ndarray, ...]:
    """(M_P, M_Q, N_P, N_Q) per branch (n × 3 × 3), per MW (Mvar) of per-phase flow, from the
    branch table's positive- and zero-sequence impedances in per unit."""
    br = net.branches
    missing = [n for n, a, b in zip(br["name"], br.get("r0_pu", pd.Series(np.nan, index=br.index)),
                                    br.get("x0_pu", pd.Series(np.nan, index=br.index)))
               if pd.isna(a) or pd.isna(b)]
    virtual = set(br["name"][br["virtual"]]) if "virtual" in br else set()
    missing = [n for n in missing if n not in virtual]
    if missing:
        raise RecipeError(f"{where}: the three-phase formulation needs zero-sequence impedances; branch(es) "
                          f"{', '.join(repr(m) for m in missing[:5])}{' ...' if len(missing) > 5 else ''} have none "
                          "(give r0_ohm and x0_ohm in the lines file, or a pandapower network with "
                          "r0/x0_ohm_per_km and vk0/vkr0_percent)")
    scale = 3.0 / float(net.s_base_mva)  # per MW of one phase -> per unit of S_base / 3
    mp, mq, np_, nq = (np.zeros((len(br), 3, 3)) for _ in range(4))
    for k, row in enumerate(br.itertuples()):
        z1 = complex(row.r_pu, row.x_pu)
        z0 = complex(getattr(row, "r0_pu", np.nan), getattr(row, "x0_pu", np.nan))
        if row.name in virtual or not np.isfinite(z0.real):
            z0 = z1
        z = phase_matrix(z1, z0)
        a, c = flow_matrices(z, 1.0)
        mp[k], mq[k] = a * scale, c * scale
        a, c = angle_matrices(z, 1.0)
        np_[k], nq[k] = a * scale, c * scale
    return mp, mq, np_, nq


def _phase_split(hub, j: int, t: int):
    """Fixed withdrawals (MW, Mvar) of bus j at op t per phase, and the variable injections per
    phase as lists of (coefficient, expression)."""
    pw, qw = hub.p_withdraw[j, t], hub.q_withdraw[j, t]
    pp, qp = hub.p_phase[j, :, t], hub.q_phase[j, :, t]
    wp = pp + (pw - pp.sum()) / 3.0
    wq = qp + (qw - qp.sum()) / 3.0
    ip, iq = [[] for _ in PH], [[] for _ in PH]
    for src, spec, out in ((hub.p_terms, hub.p_phase_terms, ip), (hub.q_terms, hub.q_phase_terms, iq)):
        total = src.get((j, t), ())
        phased = [spec.get((j, t, k), ()) for k in PH]
        for k in PH:
            out[k] += [(1.0, e) for e in phased[k]]
            out[k] += [(1.0 / 3.0, e) for e in total]
            out[k] += [(-1.0 / 3.0, e) for kk in PH for e in phased[kk]]
    return wp, wq, ip, iq


def add_lindist3flow(b, inst, ix, hub, cfg: LinDist3FlowConfig) -> None:
    net = inst.network
    lim, pen = inst.limits, inst.penalties
    options = {k: list(opts) for k, opts in hub.branch_options.items() if opts}
    parallel = [o.candidate for opts in options.values() for o in opts if o.kind != "replace"]
    if parallel:
        raise RecipeError(f"{inst.name}: the three-phase formulation models replacements, not parallel candidates "
                          f"({', '.join(parallel[:3])}{' ...' if len(parallel) > 3 else ''}); generate replacements "
                          "only ([reinforcement] generate = [\"replace\"]) or plan with 'lindistflow'")
    no_z0 = [o.candidate for opts in options.values() for o in opts
             if not (np.isfinite(getattr(o, "r0_pu", np.nan)) and np.isfinite(getattr(o, "x0_pu", np.nan)))]
    if no_z0:
        raise RecipeError(f"{inst.name}: the three-phase formulation needs the zero-sequence impedance of every "
                          f"replacement; candidate(s) {', '.join(no_z0[:3])}{' ...' if len(no_z0) > 3 else ''} have "
                          "none (give r0_ohm_per_km and x0_ohm_per_km in the line type)")
    br = net.branches
    frm, to = br["from_bus"].tolist(), br["to_bus"].tolist()
    rating = br["rating_mva"].astype(float).tolist()
    mp, mq, nmp, nmq = branch_matrices(net, f"instance '{inst.name}'")
    T = range(ix.n_ops)
    K = range(net.n_branches)
    hours = ix.op_hours().tolist()
    opnode = [ix.node_names[k] for k in ix.op_node]
    slack_v = {int(bus): float(vm) ** 2 for bus, vm in zip(net.slack["bus"], net.slack["vm_pu"])}
    buses = [j for j in range(net.n_buses) if j not in slack_v]
    children = defaultdict(list)
    for k in K:
        children[frm[k]].append(k)
    feed = {to[k]: k for k in K}

    # a bound on every phase's flow: what can be withdrawn or injected below the branch, all on
    # one phase (fixed withdrawals in magnitude, plus the declared bound on variable injections)
    below = net.downstream_buses()
    pa, qa = np.abs(hub.p_withdraw), np.abs(hub.q_withdraw)
    fmax = np.zeros((len(br), ix.n_ops))
    qmax = np.zeros((len(br), ix.n_ops))
    for k, bs in enumerate(below):
        inj = hub.max_injection[bs].sum()
        fmax[k] = pa[bs].sum(axis=0) + inj
        qmax[k] = qa[bs].sum(axis=0) + inj
    fl, ql = fmax.tolist(), qmax.tolist()
    b.P = pyo.Var(K, PH, T, bounds=lambda _, k, ph, t: (-fl[k][t], fl[k][t]))
    b.Q = pyo.Var(K, PH, T, bounds=lambda _, k, ph, t: (-ql[k][t], ql[k][t]))
    b.y = pyo.Var(buses, PH, T, bounds=(cfg.v_hard_min_pu ** 2, cfg.v_hard_max_pu ** 2), initialize=1.0)
    b.s_vlo = pyo.Var(buses, PH, T, within=pyo.NonNegativeReals)
    b.s_vhi = pyo.Var(buses, PH, T, within=pyo.NonNegativeReals)
    b.th = pyo.Var(buses, PH, T, initialize=0.0)

    def Y(j, k, t):
        return slack_v[j] if j in slack_v else b.y[j, k, t]

    def TH(j, k, t):
        return 0.0 if j in slack_v else b.th[j, k, t]

    # load shedding per phase, in proportion to the bus's sheddable share
    ps, _ = hub.sheddable()
    share = np.divide(ps, hub.p_withdraw, out=np.zeros_like(ps), where=hub.p_withdraw > 0)
    split = {}
    shed_keys = []
    for j in range(net.n_buses):
        for t in T:
            if hub.p_withdraw[j, t] > 0 or (j, t) in hub.p_terms or any((j, t, k) in hub.p_phase_terms for k in PH):
                split[j, t] = _phase_split(hub, j, t)
                if share[j, t] > 0:
                    shed_keys += [(j, k, t) for k in PH if split[j, t][0][k] > 0]
    b.shed = pyo.Var(shed_keys, bounds=lambda _, j, k, t: (0.0, share[j, t] * split[j, t][0][k]))
    qr = {(j, k, t): split[j, t][1][k] / split[j, t][0][k] for j, k, t in shed_keys}

    def balance(m, k, ph, t, reactive):
        j = to[k]
        flow = (b.Q if reactive else b.P)
        rhs = sum(flow[c, ph, t] for c in children[j])
        if (j, t) in split:
            wp, wq, ip, iq = split[j, t]
            rhs += (wq if reactive else wp)[ph]
            rhs -= sum(c * e for c, e in (iq if reactive else ip)[ph])
            if (j, ph, t) in qr:
                rhs -= (qr[j, ph, t] if reactive else 1.0) * b.shed[j, ph, t]
        return flow[k, ph, t] == rhs

    b.balance_p = pyo.Constraint(K, PH, T, rule=lambda m, k, ph, t: balance(m, k, ph, t, False))
    b.balance_q = pyo.Constraint(K, PH, T, rule=lambda m, k, ph, t: balance(m, k, ph, t, True))
    plain = [k for k in K if k not in options]
    mp_l, mq_l = mp.tolist(), mq.tolist()
    b.drop = pyo.Constraint(plain, PH, T, rule=lambda m, k, ph, t: Y(to[k], ph, t) == Y(frm[k], ph, t) + sum(
        mp_l[k][ph][s] * b.P[k, s, t] + mq_l[k][ph][s] * b.Q[k, s, t] for s in PH))
    np_l, nq_l = nmp.tolist(), nmq.tolist()
    b.drop_angle = pyo.Constraint(plain, PH, T, rule=lambda m, k, ph, t: TH(to[k], ph, t) == TH(frm[k], ph, t) + sum(
        np_l[k][ph][s] * b.P[k, s, t] + nq_l[k][ph][s] * b.Q[k, s, t] for s in PH))
    # replaced branches: one pair of relaxed rows per alternative (the branch as it is, each candidate)
    scale = 3.0 / float(net.s_base_mva)
    alts = []  # (branch, matrices (mp, mq, np, nq), state by node)
    for k, opts in options.items():
        existing = {n: 1.0 - sum(o.state[n] for o in opts) for n in ix.node_names}
        zs = [(mp[k], mq[k], nmp[k], nmq[k], existing)]
        for o in opts:
            z = phase_matrix(complex(o.r_pu, o.x_pu), complex(o.r0_pu, o.x0_pu))
            a_p, a_q = flow_matrices(z, 1.0)
            n_p, n_q = angle_matrices(z, 1.0)
            zs.append((a_p * scale, a_q * scale, n_p * scale, n_q * scale, o.state))
        for i, (ap, aq, anp, anq, st) in enumerate(zs):
            # M per phase and op: the largest residual while another alternative is in place
            my = np.max([np.abs(bp - ap).sum(axis=1)[:, None] * fmax[k][None, :]
                         + np.abs(bq - aq).sum(axis=1)[:, None] * qmax[k][None, :] for bp, bq, _, _, _ in zs], axis=0)
            mth = np.max([np.abs(bp - anp).sum(axis=1)[:, None] * fmax[k][None, :]
                          + np.abs(bq - anq).sum(axis=1)[:, None] * qmax[k][None, :] for _, _, bp, bq, _ in zs], axis=0)
            alts.append((k, ap.tolist(), aq.tolist(), anp.tolist(), anq.tolist(), st, my.tolist(), mth.tolist()))
    A = range(len(alts))

    def relaxed(i, ph, t, angle, sign):
        k, ap, aq, anp, anq, st, my, mth = alts[i]
        cp, cq, M = (anp, anq, mth) if angle else (ap, aq, my)
        V = TH if angle else Y
        resid = V(to[k], ph, t) - V(frm[k], ph, t) - sum(cp[ph][s] * b.P[k, s, t] + cq[ph][s] * b.Q[k, s, t]
                                                         for s in PH)
        return sign * resid <= M[ph][t] * (1 - st[opnode[t]])

    for name, angle in (("drop_alt", False), ("drop_angle_alt", True)):
        for suffix, sign in (("_up", 1.0), ("_dn", -1.0)):
            b.add_component(name + suffix, pyo.Constraint(A, PH, T, rule=lambda m, i, ph, t, angle=angle, sign=sign:
                                                          relaxed(i, ph, t, angle, sign)))
    vmin2, vmax2 = lim.v_min_pu ** 2, lim.v_max_pu ** 2
    b.v_min = pyo.Constraint(buses, PH, T, rule=lambda m, j, k, t: b.y[j, k, t] + b.s_vlo[j, k, t] >= vmin2)
    b.v_max = pyo.Constraint(buses, PH, T, rule=lambda m, j, k, t: b.y[j, k, t] - b.s_vhi[j, k, t] <= vmax2)
    u = cfg.vuf_max_pct / 100.0
    # EN 50160 applies at the supply terminals: the buses where something is connected
    supply = [j for j in buses if hub.p_withdraw[j].any() or hub.q_withdraw[j].any() or hub.max_injection[j] > 0
              or any(k[0] == j for k in split)]
    if cfg.vuf_max_pct > 0 and supply:
        b.s_unb = pyo.Var(supply, T, within=pyo.NonNegativeReals)
        # V₂ = Σ_φ c_φ e_φ / 3, c = (1, α, α²), e_φ = Y_φ/2 + j θ_φ (+ constants that cancel):
        # Re V₂ = Σ (Re c Y/2 − Im c θ)/3, Im V₂ = Σ (Im c Y/2 + Re c θ)/3
        c = np.exp(2j * np.pi / 3 * np.arange(3))
        sides = polygon(cfg.polygon_sides)
        cy = [[(sd[0] * c[s].real + sd[1] * c[s].imag) / 6.0 for s in PH] for sd in sides]
        ct = [[(-sd[0] * c[s].imag + sd[1] * c[s].real) / 3.0 for s in PH] for sd in sides]
        b.unbalance = pyo.Constraint(supply, range(len(sides)), T, rule=lambda m, j, e, t: sum(
            cy[e][s] * b.y[j, s, t] + ct[e][s] * b.th[j, s, t] for s in PH) <= sides[e][2] * (u + b.s_unb[j, t]))

    # thermal limits per phase: a third of the rating (the same current in each phase); only the
    # polygon edges that the flow bounds let bind (a branch-op whose flow box lies inside the
    # polygon gets no row and no slack: exact)
    load_frac = lim.max_loading_pct / 100.0
    edges = polygon(cfg.polygon_sides)
    # the rating in place (MVA) per branch and node, and the smallest it can be (which edges can bind)
    base = {k: rating[k] if rating[k] < UNLIMITED_MVA else 0.0 for k in K}
    rating_at = {(k, n): base[k] + sum((o.rating_mva - base[k]) * o.state[n] for o in options.get(k, ()))
                 for k in K if rating[k] < UNLIMITED_MVA or k in options for n in ix.node_names}
    smallest = {k: min([base[k]] + [o.rating_mva for o in options.get(k, ())]) for k in K}
    therm = [(k, ph, m, t) for k in K if rating[k] < UNLIMITED_MVA or k in options for t in T
             if np.hypot(fl[k][t], ql[k][t]) > edges[0][2] * load_frac * smallest[k] / 3.0
             for ph in PH for m in range(len(edges))
             if abs(edges[m][0]) * fl[k][t] + abs(edges[m][1]) * ql[k][t] > edges[m][2] * load_frac * smallest[k] / 3.0]
    over_keys = sorted({(k, ph, t) for k, ph, _, t in therm})
    limited = sorted({k for k, _, _ in over_keys})
    b.s_over = pyo.Var(over_keys, within=pyo.NonNegativeReals)
    b.thermal = pyo.Constraint(therm, rule=lambda _, k, ph, m, t: edges[m][0] * b.P[k, ph, t]
                               + edges[m][1] * b.Q[k, ph, t]
                               <= edges[m][2] * (load_frac * rating_at[k, opnode[t]] / 3.0 + b.s_over[k, ph, t]))

    by_ny = defaultdict(list)
    for t in T:
        by_ny[(opnode[t], int(ix.op_year[t]))].append(t)
    shed_at, over_at = defaultdict(list), defaultdict(list)
    for j, k, t in shed_keys:
        shed_at[t].append((j, k))
    for k, ph, t in over_keys:
        over_at[t].append((k, ph))
    for (n, y), ts in by_ny.items():
        hub.cost("penalty_unserved", n, pen.voll_eur_per_mwh * sum(hours[t] * b.shed[j, k, t] for t in ts
                                                                     for j, k in shed_at[t]), year=y)
        hub.cost("penalty_overload", n, pen.overload_eur_per_mvah * sum(
            hours[t] * b.s_over[k, ph, t] for t in ts for k, ph in over_at[t]), year=y)
        hub.cost("penalty_voltage", n, pen.voltage_eur_per_pu2h * (sum(
            hours[t] * (b.s_vlo[j, k, t] + b.s_vhi[j, k, t]) for j in buses for k in PH for t in ts)
            + (sum(hours[t] * b.s_unb[j, t] for j in supply for t in ts) if hasattr(b, "s_unb") else 0.0)), year=y)
    b._meta = dict(slack_v=slack_v, rating=rating, feed=feed, vuf=cfg.vuf_max_pct > 0, rating_at=rating_at,
                   options=options)
    b._vuf_limit = cfg.vuf_max_pct if cfg.vuf_max_pct > 0 else None


def extract_lindist3flow(b, inst, ix) -> dict:
    """voltages (the lowest phase, v_pu) and voltages_3ph (v_a_pu, v_b_pu, v_c_pu and the
    unbalance proxy, %); line_loading (the three phases' P and Q summed; loading: the most loaded
    phase against a third of the rating)."""
    net, meta = inst.network, b._meta
    ops = ix.op_frame()
    T, nb = ix.n_ops, net.n_buses
    V, TH = np.ones((nb, 3, T)), np.zeros((nb, 3, T))
    for bus, v2 in meta["slack_v"].items():
        V[bus] = np.sqrt(v2)
    for (j, k, t), var in b.y.items():
        V[j, k, t] = np.sqrt(max(var.value, 0.0))
        TH[j, k, t] = b.th[j, k, t].value or 0.0
    names = net.buses["name"].to_numpy()
    volt = pd.concat([ops.assign(bus=names[j], v_pu=V[j].min(axis=0)) for j in range(nb)], ignore_index=True)
    vuf = np.stack([unbalance_factor(V[:, :, t], TH[:, :, t]) for t in range(T)], axis=1) if T else \
        np.zeros((nb, 0))
    v3 = pd.concat([ops.assign(bus=names[j], v_a_pu=V[j, 0], v_b_pu=V[j, 1], v_c_pu=V[j, 2], unbalance_pct=vuf[j])
                    for j in range(nb)], ignore_index=True)
    P = np.array([v.value for v in b.P.values()]).reshape(net.n_branches, 3, T)
    Q = np.array([v.value for v in b.Q.values()]).reshape(net.n_branches, 3, T)
    rows = []
    rating_at = meta.get("rating_at", {})
    for k in range(net.n_branches):
        if any((k, n) in rating_at for n in ix.node_names):
            rat = np.array([float(pyo.value(rating_at[k, n])) for n in ix.node_names])[ix.op_node]
        else:
            r0 = meta["rating"][k]
            rat = np.full(T, r0 if r0 < UNLIMITED_MVA else np.nan)
        s = np.hypot(P[k], Q[k]).max(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = np.where(rat > 0, 100 * s / (rat / 3.0), np.nan)
        rows.append(ops.assign(line=net.branches.at[k, "name"], p_mw=P[k].sum(axis=0), q_mvar=Q[k].sum(axis=0),
                               rating_mva=rat, loading_pct=pct))
    w = ix.op_expected_hours()
    shed = sum((var.value or 0.0) * w[t] for (j, k, t), var in b.shed.items())
    summary = {"three_phase": dict(formulation="lindist3flow", lowest_phase_voltage_pu=float(V.min()),
                                   largest_unbalance_pct=float(vuf.max()) if vuf.size else 0.0)}
    return {"voltages": volt, "voltages_3ph": v3, "line_loading": pd.concat(rows, ignore_index=True),
            "unserved_mwh_modelled": float(shed), "summary": summary}


register_formulation(BlockSpec("lindist3flow", add_lindist3flow, LinDist3FlowConfig, requires=("demand",),
                               extract=extract_lindist3flow, doc=__doc__))
