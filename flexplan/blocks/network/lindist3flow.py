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
a third of it per phase.  A parallel cable that is its branch's only candidate enters as the
replacement it amounts to (:func:`parallel_as_replacement`: the pair's impedance per sequence,
the rating at which the more loaded part reaches its own).  Otherwise (several parallels, or
parallels and replacements on one branch) a parallel candidate c is a branch of its own beside
k: per-phase flows P_c, Q_c (zero until built: |P_c| ≤ P̄ z_c), the same drops of Y and θ as k
while built (relaxed by the largest drop along k otherwise), its own rating, a third per phase;
the to-bus balance takes P_k + Σ_c P_c.  This is exact but its relaxation is weaker.
Losses are neglected, as in LinDistFlow.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from ...errors import RecipeError
from ...threephase import angle_matrices, flow_matrices, phase_matrix, unbalance_factor
from .. import BlockSpec, register_formulation
from ..arrays import ArrayExpr, ArrayVar, registry
from ..linear import Affine, affine
from ..rows import add_array_rows, add_rows
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


def parallel_as_replacement(o, branch):
    """A parallel candidate ``o`` on ``branch`` as the replacement it amounts to: the two cables
    in parallel, per sequence z = z_k z_c / (z_k + z_c) (exact: a phase impedance matrix of
    sequence impedances z1, z0 stays one under inversion and sums), and the rating at which the
    more loaded part reaches its own rating, S = min(S_k / d_k, S_c / d_c), with d the part's
    share of the current, the larger of the positive- and zero-sequence divisions (|z_c / (z_k +
    z_c)| for the branch).  Exact for a parallel of the same impedance angle and sequence ratio
    as the branch (a second cable of the same kind: the shares are the impedance ratio); else
    an approximation on the side of the larger share."""
    import dataclasses

    z1 = complex(branch["r_pu"], branch["x_pu"])
    z0 = complex(branch.get("r0_pu", np.nan), branch.get("x0_pu", np.nan))
    zk = (z1, z0 if np.isfinite(z0.real) and np.isfinite(z0.imag) else z1)  # a virtual branch: z0 = z1
    zc = (complex(o.r_pu, o.x_pu), complex(o.r0_pu, o.x0_pu))
    eq = [a * c / (a + c) for a, c in zip(zk, zc)]
    dk = max(abs(c / (a + c)) for a, c in zip(zk, zc))
    dc = max(abs(a / (a + c)) for a, c in zip(zk, zc))
    sk = float(branch["rating_mva"])
    rating = min(sk / dk if sk < UNLIMITED_MVA else np.inf, o.rating_mva / dc)
    return dataclasses.replace(o, kind="replace", r_pu=eq[0].real, x_pu=eq[0].imag, r0_pu=eq[1].real,
                               x0_pu=eq[1].imag, rating_mva=min(rating, UNLIMITED_MVA))


def _phase_injections(hub, j: int, t: int):
    """The variable injections of bus j at op t per phase as lists of (coefficient, expression):
    an injection the Hub holds with a phase goes to that phase, the rest is split evenly."""
    ip, iq = [[] for _ in PH], [[] for _ in PH]
    for src, spec, out in ((hub.p_terms, hub.p_phase_terms, ip), (hub.q_terms, hub.q_phase_terms, iq)):
        total = src.get((j, t), ())
        phased = [spec.get((j, t, k), ()) for k in PH]
        for k in PH:
            out[k] += [(1.0, e) for e in phased[k]]
            out[k] += [(1.0 / 3.0, e) for e in total]
            out[k] += [(-1.0 / 3.0, e) for kk in PH for e in phased[kk]]
    return ip, iq


def add_lindist3flow(b, inst, ix, hub, cfg: LinDist3FlowConfig) -> None:
    net = inst.network
    lim, pen = inst.limits, inst.penalties
    options = {k: list(opts) for k, opts in hub.branch_options.items() if opts}
    no_z0 = [o.candidate for opts in options.values() for o in opts
             if not (np.isfinite(getattr(o, "r0_pu", np.nan)) and np.isfinite(getattr(o, "x0_pu", np.nan)))]
    if no_z0:
        raise RecipeError(f"{inst.name}: the three-phase formulation needs the zero-sequence impedance of every "
                          f"replacement; candidate(s) {', '.join(no_z0[:3])}{' ...' if len(no_z0) > 3 else ''} have "
                          "none (give r0_ohm_per_km and x0_ohm_per_km in the line type)")
    br = net.branches
    # a parallel cable that is its branch's only candidate enters as the replacement it amounts
    # to (tight: two alternatives whose drops differ little); other parallel cables are branches
    # of their own (flows, drops, ratings); `options` keeps the alternatives of the branch itself
    paired = {k: opts[0] for k, opts in options.items() if len(opts) == 1 and opts[0].kind != "replace"}
    parallels = [(k, o) for k, opts in options.items() if k not in paired for o in opts if o.kind != "replace"]
    options = {k: rs for k, opts in options.items()
               if (rs := ([parallel_as_replacement(paired[k], br.loc[k])] if k in paired
                          else [o for o in opts if o.kind == "replace"]))}
    frm, to = br["from_bus"].tolist(), br["to_bus"].tolist()
    rating = br["rating_mva"].astype(float).tolist()
    mp, mq, nmp, nmq = branch_matrices(net, f"instance '{inst.name}'")
    nT, nK, nb = ix.n_ops, net.n_branches, net.n_buses
    T = range(nT)
    K = range(nK)
    hours = np.asarray(ix.op_hours(), dtype=float)
    opnode = [ix.node_names[k] for k in ix.op_node]
    slack_v = {int(bus): float(vm) ** 2 for bus, vm in zip(net.slack["bus"], net.slack["vm_pu"])}
    buses = [j for j in range(nb) if j not in slack_v]
    nB = len(buses)
    bpos = np.full(nb, -1, dtype=np.int64)
    bpos[np.asarray(buses, dtype=np.int64)] = np.arange(nB)
    children = defaultdict(list)
    for k in K:
        children[frm[k]].append(k)
    feed = {to[k]: k for k in K}
    ar_t = np.arange(nT, dtype=np.int64)

    # a bound on every phase's flow: what can be withdrawn or injected below the branch, all on
    # one phase (fixed withdrawals in magnitude, plus the declared bound on variable injections)
    below = net.downstream_buses()
    pa, qa = np.abs(hub.p_withdraw), np.abs(hub.q_withdraw)
    fmax = np.zeros((nK, nT))
    qmax = np.zeros((nK, nT))
    for k, bs in enumerate(below):
        inj = hub.max_injection[bs].sum()
        fmax[k] = pa[bs].sum(axis=0) + inj
        qmax[k] = qa[bs].sum(axis=0) + inj
    # where a branch has parallel cables, each part carries a share of the pair's current: per
    # sequence at most all of it (|z_c / Σ z| <= 1 for impedances with r, x >= 0), so a part's
    # phase current is at most |I0| + |I1| + |I2| <= Σ_φ |I_φ|, in power at most P̄ + Q̄ (the
    # bounds hold everything below on one phase) -- on P and on Q alike, since unlike cables
    # exchange reactive power between the parts where the total has none; doubled as a margin
    for k in {k for k, _ in parallels}:
        fmax[k] = qmax[k] = 2.0 * (fmax[k] + qmax[k])
    # the network's variables are array variables (blocks/arrays.py); var[key] is one element
    reg = registry(b.model())
    fb, qb = np.repeat(fmax[:, None, :], 3, axis=1), np.repeat(qmax[:, None, :], 3, axis=1)
    b.P = ArrayVar(b, "P", axes=(K, PH, T), lb=-fb, ub=fb)
    b.Q = ArrayVar(b, "Q", axes=(K, PH, T), lb=-qb, ub=qb)
    C = range(len(parallels))
    pbr = np.asarray([k for k, _ in parallels], dtype=np.int64)
    b.Pc = ArrayVar(b, "Pc", axes=(C, PH, T), lb=-fb[pbr], ub=fb[pbr])
    b.Qc = ArrayVar(b, "Qc", axes=(C, PH, T), lb=-qb[pbr], ub=qb[pbr])
    tPc, tQc = b.Pc.tokens(), b.Qc.tokens()
    b.y = ArrayVar(b, "y", axes=(buses, PH, T), lb=cfg.v_hard_min_pu ** 2, ub=cfg.v_hard_max_pu ** 2)
    b.s_vlo = ArrayVar(b, "s_vlo", axes=(buses, PH, T), lb=0.0)
    b.s_vhi = ArrayVar(b, "s_vhi", axes=(buses, PH, T), lb=0.0)
    b.th = ArrayVar(b, "th", axes=(buses, PH, T))
    tP, tQ, tY, tTH = b.P.tokens(), b.Q.tokens(), b.y.tokens(), b.th.tokens()

    # fixed withdrawals per phase (a power the Hub holds with a phase goes to it, the rest is
    # split evenly), and the variable injections per (bus, op) with terms (_phase_injections)
    def evenly(total, phased):
        """What is not on a phase, a third per phase; a rounding residue (below 1 µW: a bus whose
        power is all on phases, a load moved off a phase) is 0, not 1e-20 MW that HiGHS would take
        as data."""
        out = phased + ((total - phased.sum(axis=1)) / 3.0)[:, None, :]
        out[np.abs(out) < 1e-12] = 0.0
        return out

    wp = evenly(hub.p_withdraw, hub.p_phase)  # (bus, phase, op)
    wq = evenly(hub.q_withdraw, hub.q_phase)
    term_keys = {(j, t) for (j, t), v in hub.p_terms.items() if v} | {(j, t) for (j, t), v in hub.q_terms.items() if v}
    term_keys |= {(j, t) for (j, t, _), v in hub.p_phase_terms.items() if v}
    term_keys |= {(j, t) for (j, t, _), v in hub.q_phase_terms.items() if v}
    split = {key: _phase_injections(hub, *key) for key in sorted(term_keys)}

    # load shedding per phase, in proportion to the bus's sheddable share
    ps, _ = hub.sheddable()
    share = np.divide(ps, hub.p_withdraw, out=np.zeros_like(ps), where=hub.p_withdraw > 0)
    sj, sk, st_ = np.nonzero((share[:, None, :] > 0) & (wp > 0))  # (bus, phase, op)
    order = np.lexsort((sk, st_, sj))  # bus, then op, then phase
    sj, sk, st_ = sj[order], sk[order], st_[order]
    shed_keys = list(zip(sj.tolist(), sk.tolist(), st_.tolist()))
    b.shed = ArrayVar(b, "shed", keys=shed_keys, lb=0.0, ub=share[sj, st_] * wp[sj, sk, st_])
    tshed = b.shed.tokens(np.arange(len(shed_keys)))
    qr = np.divide(wq[sj, sk, st_], wp[sj, sk, st_])

    # balance per branch (at its to-bus), phase and op: P_k - Σ children + shed + injections = w
    kk = np.arange(nK, dtype=np.int64)
    brow = (kk[:, None, None] * 3 + np.arange(3)[None, :, None]) * nT + ar_t[None, None, :]  # (K, 3, T)
    kid_pairs = [(k, c) for k in K for c in children[to[k]]]
    feeds_of = {j: k for k, j in enumerate(to)}

    def balance(name, tok, w, reactive):
        rows, toks, coefs = [brow.reshape(-1)], [tok.reshape(-1)], [np.ones(brow.size)]
        if kid_pairs:
            ks, cs = np.array(kid_pairs).T
            rows.append(brow[ks].reshape(-1))
            toks.append(tok[cs].reshape(-1))
            coefs.append(-np.ones(len(ks) * 3 * nT))
        tc = tPc if tok is tP else tQc
        for c, k in enumerate(pbr.tolist()):  # a parallel cable feeds its branch's to-bus ...
            rows.append(brow[k].reshape(-1))
            toks.append(tc[c].reshape(-1))
            coefs.append(np.ones(3 * nT))
            up = feeds_of.get(frm[k])  # ... and is fed through the branch above
            if up is not None:
                rows.append(brow[up].reshape(-1))
                toks.append(tc[c].reshape(-1))
                coefs.append(-np.ones(3 * nT))
        fed = np.array([feeds_of.get(j, -1) for j in sj.tolist()], dtype=np.int64)
        ok = fed >= 0
        if ok.any():
            rows.append(((fed[ok] * 3 + sk[ok]) * nT + st_[ok]))
            toks.append(tshed[ok])
            coefs.append(qr[ok] if reactive else np.ones(int(ok.sum())))
        rhs = w[np.asarray(to, dtype=np.int64)].reshape(-1) if nK else np.empty(0)  # (K, 3, T) -> row order
        x_row, x_coef, x_var = [], [], []
        for (j, t), (ip, iq) in split.items():
            k = feeds_of.get(j)
            if k is None:
                continue
            for ph in PH:
                r0 = (k * 3 + ph) * nT + t
                for c, e in (iq if reactive else ip)[ph]:
                    a = affine(e, c)
                    rhs[r0] -= a.const
                    x_row.extend([r0] * len(a.coefs))
                    x_coef.extend(a.coefs)
                    x_var.extend(a.vars)
        cat = np.concatenate
        add_array_rows(b, name, nK * 3 * nT, lambda: product(K, PH, T), cat(rows), cat(toks), cat(coefs), rhs, rhs,
                       extra=(x_row, x_coef, x_var))

    balance("balance_p", tP, wp, False)
    balance("balance_q", tQ, wq, True)

    plain = [k for k in K if k not in options]

    def drops(name, tV, mP, mQ, slack_val):
        """V_to - V_from - M_P P - M_Q Q = 0 per plain branch, phase and op (slack: a constant)."""
        n = len(plain)
        rr = (np.arange(n, dtype=np.int64)[:, None, None] * 3 + np.arange(3)[None, :, None]) * nT + ar_t[None, None, :]
        rows, toks, coefs = [], [], []
        const = np.zeros((n, 3, nT))
        for i, k in enumerate(plain):
            for bus, sgn in ((to[k], 1.0), (frm[k], -1.0)):
                if bus in slack_v:
                    const[i] += sgn * slack_val(bus)
                else:
                    rows.append(rr[i].reshape(-1))
                    toks.append(tV[bpos[bus]].reshape(-1))
                    coefs.append(np.full(3 * nT, sgn))
            for ph in PH:
                for s in PH:
                    for m, tok in ((mP, tP), (mQ, tQ)):
                        c = -float(m[k][ph][s])
                        if c:
                            rows.append(rr[i, ph])
                            toks.append(tok[k, s])
                            coefs.append(np.full(nT, c))
        rhs = -const.reshape(-1)
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt)) if rows else (lambda xs, dt: np.empty(0, dt))
        add_array_rows(b, name, n * 3 * nT, lambda: product(plain, PH, T), cat(rows, np.int64), cat(toks, np.int64),
                       cat(coefs, float), rhs, rhs)

    drops("drop", tY, mp, mq, lambda bus: slack_v[bus])
    drops("drop_angle", tTH, nmp, nmq, lambda bus: 0.0)

    # replaced branches: one pair of relaxed rows per alternative (the branch as it is, each candidate)
    scale = 3.0 / float(net.s_base_mva)

    def matrices(o):
        """(M_P, M_Q, N_P, N_Q) of candidate ``o``, per MW of per-phase flow (as branch_matrices)."""
        z = phase_matrix(complex(o.r_pu, o.x_pu), complex(o.r0_pu, o.x0_pu))
        return tuple(m * scale for m in (*flow_matrices(z, 1.0), *angle_matrices(z, 1.0)))

    alts = []  # (branch, matrices (mp, mq, np, nq), state by node as an Affine, M per phase and op)
    for k, opts in options.items():
        states = {id(o): {n: affine(o.state[n]) for n in ix.node_names} for o in opts}
        existing = {n: Affine(1.0) for n in ix.node_names}
        for o in opts:
            for n in ix.node_names:
                existing[n].add(states[id(o)][n], -1.0)
        zs = [(mp[k], mq[k], nmp[k], nmq[k], existing)] + [(*matrices(o), states[id(o)]) for o in opts]
        for ap, aq, anp, anq, st in zs:
            # M per phase and op: the largest residual while another alternative is in place
            my = np.max([np.abs(bp - ap).sum(axis=1)[:, None] * fmax[k][None, :]
                         + np.abs(bq - aq).sum(axis=1)[:, None] * qmax[k][None, :] for bp, bq, _, _, _ in zs], axis=0)
            mth = np.max([np.abs(bp - anp).sum(axis=1)[:, None] * fmax[k][None, :]
                          + np.abs(bq - anq).sum(axis=1)[:, None] * qmax[k][None, :] for _, _, bp, bq, _ in zs], axis=0)
            alts.append((k, ap.tolist(), aq.tolist(), anp.tolist(), anq.tolist(), st, my.tolist(), mth.tolist(),
                         (b.P, b.Q, k)))
    # parallel cables: their own drop while built; while not, they carry nothing and the residual
    # is the drop along the branch with any of its alternatives in place
    par_state = []
    for c, (k, o) in enumerate(parallels):
        st = {n: affine(o.state[n]) for n in ix.node_names}
        par_state.append(st)
        own = [(mp[k], mq[k], nmp[k], nmq[k])] + [matrices(r) for r in options.get(k, ())]
        my = np.max([np.abs(bp).sum(axis=1)[:, None] * fmax[k][None, :] + np.abs(bq).sum(axis=1)[:, None]
                     * qmax[k][None, :] for bp, bq, _, _ in own], axis=0)
        mth = np.max([np.abs(bp).sum(axis=1)[:, None] * fmax[k][None, :] + np.abs(bq).sum(axis=1)[:, None]
                      * qmax[k][None, :] for _, _, bp, bq in own], axis=0)
        alts.append((k, *(m.tolist() for m in matrices(o)), st, my.tolist(), mth.tolist(), (b.Pc, b.Qc, c)))
    A = range(len(alts))

    def relaxed(i, ph, t, angle, sign):
        """sign (V_to - V_from - M_P P - M_Q Q) + M state <= M (the alternative's drop while in place)."""
        k, ap, aq, anp, anq, st, my, mth, (VP, VQ, e) = alts[i]
        cp, cq, M = (anp, anq, mth) if angle else (ap, aq, my)
        tV = b.th if angle else b.y
        a = Affine(0.0)
        for bus, sgn in ((to[k], sign), (frm[k], -sign)):
            if bus in slack_v:
                a.const += sgn * (0.0 if angle else slack_v[bus])
            else:
                a.term(sgn, tV[bus, ph, t])
        for s in PH:
            a.term(-sign * cp[ph][s], VP[e, s, t]).term(-sign * cq[ph][s], VQ[e, s, t])
        a.add(st[opnode[t]], M[ph][t])
        return a.coefs, a.vars, None, M[ph][t] - a.const

    for name, angle in (("drop_alt", False), ("drop_angle_alt", True)):
        for suffix, sign in (("_up", 1.0), ("_dn", -1.0)):
            add_rows(b, name + suffix, product(A, PH, T), lambda i, ph, t, angle=angle, sign=sign:
                     relaxed(i, ph, t, angle, sign))

    def carries(c, ph, t, V, bound, sign):
        """sign F_c - bound z_c <= 0: a parallel cable carries nothing until it is built."""
        k = pbr[c]
        a = Affine(0.0, [sign], [V[c, ph, t]])
        a.add(par_state[c][opnode[t]], -float(bound[k, t]))
        return a.coefs, a.vars, None, -a.const

    for name, V, bound in (("par_p", b.Pc, fmax), ("par_q", b.Qc, qmax)):
        for suffix, sign in (("_up", 1.0), ("_dn", -1.0)):
            add_rows(b, name + suffix, product(C, PH, T), lambda c, ph, t, V=V, bound=bound, sign=sign:
                     carries(c, ph, t, V, bound, sign))

    vmin2, vmax2 = lim.v_min_pu ** 2, lim.v_max_pu ** 2
    n3 = nB * 3 * nT
    rr = np.arange(n3, dtype=np.int64)
    bus_keys = lambda: product(buses, PH, T)  # noqa: E731 (made on first use)
    add_array_rows(b, "v_min", n3, bus_keys, np.concatenate([rr, rr]),
                   np.concatenate([tY.reshape(-1), b.s_vlo.tokens().reshape(-1)]), np.ones(2 * n3), vmin2, np.inf)
    add_array_rows(b, "v_max", n3, bus_keys, np.concatenate([rr, rr]),
                   np.concatenate([tY.reshape(-1), b.s_vhi.tokens().reshape(-1)]),
                   np.concatenate([np.ones(n3), -np.ones(n3)]), -np.inf, vmax2)
    u = cfg.vuf_max_pct / 100.0
    # EN 50160 applies at the supply terminals: the buses where something is connected
    with_terms = {j for j, _ in split}
    supply = [j for j in buses if hub.p_withdraw[j].any() or hub.q_withdraw[j].any() or hub.max_injection[j] > 0
              or j in with_terms]
    if cfg.vuf_max_pct > 0 and supply:
        b.s_unb = ArrayVar(b, "s_unb", axes=(supply, T), lb=0.0)
        tU = b.s_unb.tokens()
        # V₂ = Σ_φ c_φ e_φ / 3, c = (1, α, α²), e_φ = Y_φ/2 + j θ_φ (+ constants that cancel):
        # Re V₂ = Σ (Re c Y/2 − Im c θ)/3, Im V₂ = Σ (Im c Y/2 + Re c θ)/3
        c = np.exp(2j * np.pi / 3 * np.arange(3))
        sides = polygon(cfg.polygon_sides)
        nE, nS = len(sides), len(supply)
        cy = np.array([[(sd[0] * c[s].real + sd[1] * c[s].imag) / 6.0 for s in PH] for sd in sides])
        ct = np.array([[(-sd[0] * c[s].imag + sd[1] * c[s].real) / 3.0 for s in PH] for sd in sides])
        ec = np.array([sd[2] for sd in sides])
        sp = bpos[np.asarray(supply, dtype=np.int64)]
        ur = (np.arange(nS)[:, None, None] * nE + np.arange(nE)[None, :, None]) * nT + ar_t[None, None, :]  # (S, E, T)
        rows, toks, coefs = [], [], []
        for s in PH:
            rows += [ur, ur]
            toks += [np.broadcast_to(tY[sp, s][:, None, :], ur.shape), np.broadcast_to(tTH[sp, s][:, None, :], ur.shape)]
            coefs += [np.broadcast_to(cy[:, s][None, :, None], ur.shape), np.broadcast_to(ct[:, s][None, :, None], ur.shape)]
        rows.append(ur)
        toks.append(np.broadcast_to(tU[:, None, :], ur.shape))
        coefs.append(np.broadcast_to(-ec[None, :, None], ur.shape))
        add_array_rows(b, "unbalance", nS * nE * nT, lambda: product(supply, range(nE), T),
                       np.concatenate([np.ravel(a) for a in rows]), np.concatenate([np.ravel(a) for a in toks]),
                       np.concatenate([np.ravel(a) for a in coefs]), -np.inf,
                       np.broadcast_to((ec * u)[None, :, None], ur.shape).reshape(-1))

    # thermal limits per phase: a third of the rating (the same current in each phase); only the
    # polygon edges that the flow bounds let bind (a branch-op whose flow box lies inside the
    # polygon gets no row and no slack: exact)
    load_frac = lim.max_loading_pct / 100.0
    edges = polygon(cfg.polygon_sides)
    # the rating in place (MVA) per branch and node, and the smallest it can be (which edges can bind)
    base = {k: rating[k] if rating[k] < UNLIMITED_MVA else 0.0 for k in K}
    rating_aff = {}
    for k in K:
        if rating[k] < UNLIMITED_MVA or k in options:
            for n in ix.node_names:
                a = Affine(base[k])
                for o in options.get(k, ()):
                    a.add(affine(o.state[n]), o.rating_mva - base[k])
                rating_aff[k, n] = a
    rating_at = {key: a.expr() for key, a in rating_aff.items()}
    smallest = {k: min([base[k]] + [o.rating_mva for o in options.get(k, ())]) for k in K}
    E = np.asarray(edges, dtype=float)

    def binding(k, cap):
        """(phase, edge, op) of the polygon edges that the flow bounds of branch k let bind at a
        per-phase capacity ``cap``, in the order op, phase, edge."""
        f, q = fmax[k], qmax[k]
        busy = np.hypot(f, q) > E[0, 2] * cap
        binds = (np.abs(E[:, 0])[None, :] * f[:, None] + np.abs(E[:, 1])[None, :] * q[:, None]) > E[:, 2][None, :] * cap
        out = []
        for t in np.flatnonzero(busy).tolist():
            ms = np.flatnonzero(binds[t]).tolist()
            out += [(ph, m, t) for ph in PH for m in ms]
        return out

    therm = [(k, ph, m, t) for k in K if rating[k] < UNLIMITED_MVA or k in options
             for ph, m, t in binding(k, load_frac * smallest[k] / 3.0)]  # branch, op, phase, edge
    over_keys = sorted({(k, ph, t) for k, ph, _, t in therm})
    b.s_over = ArrayVar(b, "s_over", keys=over_keys, lb=0.0)

    def thermal(k, ph, m, t):
        """a_m P + b_m Q - e_m s_over - e_m loading rating/3 <= 0"""
        e = edges[m][2]
        a = Affine(0.0, [edges[m][0], edges[m][1], -e], [b.P[k, ph, t], b.Q[k, ph, t], b.s_over[k, ph, t]])
        a.add(rating_aff[k, opnode[t]], -e * load_frac / 3.0)
        return a.coefs, a.vars, None, -a.const

    add_rows(b, "thermal", therm, thermal)

    # parallel cables: each within its own rating, a third per phase (nothing flows until built)
    therm_c = [(c, ph, m, t) for c, (k, o) in enumerate(parallels) if o.rating_mva < UNLIMITED_MVA
               for ph, m, t in binding(k, load_frac * o.rating_mva / 3.0)]
    over_c = sorted({(c, ph, t) for c, ph, _, t in therm_c})
    b.s_over_par = ArrayVar(b, "s_over_par", keys=over_c, lb=0.0)

    def thermal_par(c, ph, m, t):
        """a_m Pc + b_m Qc - e_m s_over_par <= e_m loading rating_c/3"""
        e = edges[m][2]
        a = Affine(0.0, [edges[m][0], edges[m][1], -e], [b.Pc[c, ph, t], b.Qc[c, ph, t], b.s_over_par[c, ph, t]])
        return a.coefs, a.vars, None, e * load_frac * parallels[c][1].rating_mva / 3.0

    add_rows(b, "thermal_par", therm_c, thermal_par)

    by_ny = defaultdict(list)
    for t in T:
        by_ny[(opnode[t], int(ix.op_year[t]))].append(t)
    tvlo, tvhi = b.s_vlo.tokens(), b.s_vhi.tokens()
    over_t = np.asarray([t for _, _, t in over_keys], dtype=np.int64)
    tover = b.s_over.tokens(np.arange(len(over_keys)))
    over_ct = np.asarray([t for _, _, t in over_c], dtype=np.int64)
    tover_c = b.s_over_par.tokens(np.arange(len(over_c)))
    for (n, y), ts in by_ny.items():
        ts_a = np.asarray(ts, dtype=np.int64)
        in_ts = np.zeros(nT, dtype=bool)
        in_ts[ts_a] = True
        sel = in_ts[st_]
        hub.cost("penalty_unserved", n, ArrayExpr(reg, pen.voll_eur_per_mwh * hours[st_[sel]], tshed[sel]), year=y)
        s1, s2 = in_ts[over_t], in_ts[over_ct]
        hub.cost("penalty_overload", n, ArrayExpr.total(reg, [
            ArrayExpr(reg, pen.overload_eur_per_mvah * hours[over_t[s1]], tover[s1]),
            ArrayExpr(reg, pen.overload_eur_per_mvah * hours[over_ct[s2]], tover_c[s2])]), year=y)
        hv = np.broadcast_to(hours[ts_a][None, None, :], (nB, 3, len(ts_a))).reshape(-1)
        parts = [ArrayExpr(reg, pen.voltage_eur_per_pu2h * hv, tvlo[:, :, ts_a].reshape(-1)),
                 ArrayExpr(reg, pen.voltage_eur_per_pu2h * hv, tvhi[:, :, ts_a].reshape(-1))]
        if hasattr(b, "s_unb"):
            hu = np.broadcast_to(hours[ts_a][None, :], (len(supply), len(ts_a))).reshape(-1)
            parts.append(ArrayExpr(reg, pen.voltage_eur_per_pu2h * hu, b.s_unb.tokens()[:, ts_a].reshape(-1)))
        hub.cost("penalty_voltage", n, ArrayExpr.total(reg, parts), year=y)
    b._meta = dict(slack_v=slack_v, rating=rating, feed=feed, vuf=cfg.vuf_max_pct > 0, rating_at=rating_at,
                   options=options, parallels=parallels, paired=paired, buses=buses)
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
    if meta["buses"]:
        jj = np.asarray(meta["buses"], dtype=np.int64)
        V[jj] = np.sqrt(np.maximum(np.nan_to_num(b.y.value_array()), 0.0))
        TH[jj] = np.nan_to_num(b.th.value_array())
    names = net.buses["name"].to_numpy()
    volt = pd.concat([ops.assign(bus=names[j], v_pu=V[j].min(axis=0)) for j in range(nb)], ignore_index=True)
    vuf = np.stack([unbalance_factor(V[:, :, t], TH[:, :, t]) for t in range(T)], axis=1) if T else \
        np.zeros((nb, 0))
    v3 = pd.concat([ops.assign(bus=names[j], v_a_pu=V[j, 0], v_b_pu=V[j, 1], v_c_pu=V[j, 2], unbalance_pct=vuf[j])
                    for j in range(nb)], ignore_index=True)
    P = b.P.value_array().reshape(net.n_branches, 3, T)
    Q = b.Q.value_array().reshape(net.n_branches, 3, T)
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
    pars = meta.get("parallels", [])
    if pars:  # parallel cables: rows of their own while built
        Pc = b.Pc.value_array().reshape(len(pars), 3, T)
        Qc = b.Qc.value_array().reshape(len(pars), 3, T)
        for c, (k, o) in enumerate(pars):
            built = np.array([float(pyo.value(o.state[n])) > 0.5 for n in ix.node_names])[ix.op_node]
            rat = np.where(built, o.rating_mva, np.nan)
            s = np.hypot(Pc[c], Qc[c]).max(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                pct = np.where(rat > 0, 100 * s / (rat / 3.0), np.nan)
            rows.append(ops.assign(line=str(o.candidate), p_mw=Pc[c].sum(axis=0), q_mvar=Qc[c].sum(axis=0),
                                   rating_mva=rat, loading_pct=pct))
    w = ix.op_expected_hours()
    shed_t = np.asarray([t for _, _, t in b.shed.keys], dtype=np.int64)
    shed = float(np.nan_to_num(b.shed.value_array()) @ w[shed_t]) if len(shed_t) else 0.0
    summary = {"three_phase": dict(formulation="lindist3flow", lowest_phase_voltage_pu=float(V.min()),
                                   largest_unbalance_pct=float(vuf.max()) if vuf.size else 0.0)}
    return {"voltages": volt, "voltages_3ph": v3, "line_loading": pd.concat(rows, ignore_index=True),
            "unserved_mwh_modelled": float(shed), "summary": summary}


register_formulation(BlockSpec("lindist3flow", add_lindist3flow, LinDist3FlowConfig, requires=("demand",),
                               extract=extract_lindist3flow, doc=__doc__))
