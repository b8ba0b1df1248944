"""Phase balancing as a DSO decision (docs/formulation.md §2.12): single-phase loads may be
reconnected to another phase, once, at a cost per move.

For each movable load L (a single-phase load of the instance, at bus j on phase φ₀, with its
profile p_L(t), q_L(t) as the ``demand`` block withdraws it) the block decides at the tree's root
which phase it is on, x_Lφ ∈ {0, 1}, Σ_φ x_Lφ = 1, and the load becomes

    withdrawal on phase φ at (j, t) = x_Lφ · p_L(t)        (q likewise)

(its fixed withdrawal on φ₀ is taken back from the Hub and given again as these injections, so
the bus's total is unchanged and only the three-phase formulation sees the difference).  Each
move costs ``cost_eur_per_move`` once, at the base year (cost category ``phase_balancing``):

    cost = c_move · Σ_L (1 − x_Lφ₀)

The balanced formulations see the same totals, so the block matters only with
``network.formulation = "lindist3flow"``.  A moved load is no longer sheddable.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo

from ..errors import RecipeError
from . import BlockSpec, register_block
from .demand import PHASE_INDEX

PHASES = "abc"


@dataclass
class PhaseBalancingConfig:
    """``loads``: names of the loads that may move (default: every single-phase load of the
    instance, unless ``fleets`` is given); ``fleets``: names of single-phase EV fleets whose
    chargers may move, bus by bus (one move per fleet and bus: an uncontrolled fleet's fixed
    charging moves as a load's does; a smart or V2G fleet's net injection, a decision, is split
    over the phases by the move's binaries, with a big-M per op from its variables' bounds);
    ``cost_eur_per_move``: one-off cost of reconnecting one load to another phase
    (EUR; default 250: a crew visit to swap a service cable's phase in a cabinet, an assumption
    of the order of a DSO's connection-work hourly rates [check])."""

    loads: list[str] = field(default_factory=list)
    cost_eur_per_move: float = 250.0
    fleets: list[str] = field(default_factory=list)

    def validate(self):
        if not self.cost_eur_per_move >= 0:
            return f"phase_balancing.cost_eur_per_move must be >= 0, got {self.cost_eur_per_move}"


def add_phase_balancing(b, inst, ix, hub, cfg: PhaseBalancingConfig) -> None:
    from .demand import load_matrices

    root = ix.root
    moves = _add_fleet_moves(b, inst, ix, hub, cfg, root) if cfg.fleets else 0
    if cfg.fleets and not cfg.loads:
        b._rows = []
        hub.cost("phase_balancing", root, moves)
        return
    loads = inst.network.loads
    if "phase" not in loads:
        raise RecipeError(f"phase_balancing: instance '{inst.name}' has no single-phase loads (its loads have no "
                          "'phase')")
    single = loads[loads["phase"].isin(list(PHASE_INDEX))]
    names = [str(n) for n in single["name"]]
    if cfg.loads:
        unknown = [n for n in cfg.loads if n not in names]
        if unknown:
            raise RecipeError(f"phase_balancing.loads: {', '.join(repr(u) for u in unknown[:5])} "
                              f"{'is not a single-phase load' if len(unknown) == 1 else 'are not single-phase loads'} "
                              f"of instance '{inst.name}'")
        single = single[single["name"].astype(str).isin(cfg.loads)]
    if single.empty:
        raise RecipeError(f"phase_balancing: instance '{inst.name}' has no single-phase load to move")
    L = range(len(single))
    b.x = pyo.Var(L, range(3), within=pyo.Binary)
    b.one = pyo.Constraint(L, rule=lambda _, i: sum(b.x[i, k] for k in range(3)) == 1)
    hub.decide(root, [b.x[i, k] for i in L for k in range(3)])
    rows = []
    for i, (idx, ld) in enumerate(single.iterrows()):
        # this load's own withdrawals: the demand block's, for an instance of this load alone
        one = inst.network.loads.loc[[idx]]
        P, Q = _one_load(inst, ix, one, load_matrices)
        j, k0 = int(ld["bus"]), PHASE_INDEX[ld["phase"]]
        _movable(hub, j, k0, P[j], Q[j], [b.x[i, k] for k in range(3)], firm=False)
        rows.append((str(ld["name"]), str(inst.network.buses["name"].iloc[j]), PHASES[k0]))
    start = {i: PHASE_INDEX[r[2]] for i, r in enumerate(rows)}
    hub.cost("phase_balancing", root, moves + float(cfg.cost_eur_per_move) * sum(1 - b.x[i, start[i]] for i in L))
    b._rows = rows


def _add_fleet_moves(b, inst, ix, hub, cfg, root):
    """The chargers of ``cfg.fleets`` (single-phase, uncontrolled) may move to another phase, per
    fleet and bus: their charging (from the ``ev_storage`` channel) leaves its phase's fixed
    withdrawal and comes back as x_uφ · p(t) on each phase φ, as a load's does.  Returns the moves'
    cost expression."""
    from collections import defaultdict

    fleets = {f.name: f for f in inst.ev_fleets}
    unknown = [n for n in cfg.fleets if n not in fleets]
    if unknown:
        raise RecipeError(f"phase_balancing.fleets: {', '.join(repr(u) for u in unknown)} not an EV fleet of instance "
                          f"'{inst.name}' (fleets: {', '.join(fleets) or 'none'})")
    home = {}
    for n in cfg.fleets:
        w = fleets[n].phase
        if w is None or max(w) < 1.0:
            raise RecipeError(f"phase_balancing.fleets: fleet '{n}' is not single-phase (set its phase = \"a\", \"b\" "
                              "or \"c\")")
        home[n] = int(np.argmax(w))
    store = hub.get("ev_storage")
    if store is None:
        raise RecipeError("phase_balancing.fleets needs the ev_fleet block in the recipe")
    rule = hub.get("charger_q")
    q_per_p = float(rule.q_per_p) if rule is not None else 0.0
    prof = defaultdict(lambda: np.zeros(ix.n_ops))
    decided = defaultdict(list)  # (fleet, bus) -> [(op, net injection expression)] of a smart or V2G fleet
    for st in store.states:
        if st.fleet in home:
            if isinstance(st.charge, (int, float)) and not st.discharge:
                prof[(st.fleet, st.bus)][st.op] += float(st.charge)
            else:
                decided[(st.fleet, st.bus)].append((st.op, st))
    ev_blk = b.model().component("ev_fleet")
    if decided and ev_blk is not None and ev_blk.component("q") is not None:
        raise RecipeError("phase_balancing.fleets: the chargers of a smart fleet whose reactive power is a decision "
                          "(ev_fleet.reactive = true) cannot be moved between phases; set reactive = false")
    units = sorted(set(prof) | set(decided))
    U = range(len(units))
    b.xf = pyo.Var(U, range(3), within=pyo.Binary)
    b.one_fleet = pyo.Constraint(U, rule=lambda _, u: sum(b.xf[u, k] for k in range(3)) == 1)
    hub.decide(root, [b.xf[u, k] for u in U for k in range(3)])
    rows, split_keys = [], []
    for u, (name, j) in enumerate(units):
        k0 = home[name]
        x = [b.xf[u, k] for k in range(3)]
        if (name, j) in prof:
            p = prof[(name, j)]
            _movable(hub, j, k0, p, -q_per_p * p, x, firm=True)
        for o, st in decided.get((name, j), ()):
            split_keys.append((u, j, k0, o, st))
        rows.append((f"{name}@{inst.network.buses['name'].iloc[j]}", str(inst.network.buses["name"].iloc[j]),
                     PHASES[k0]))
    if split_keys:
        _split_decided(b, hub, split_keys, q_per_p)
    b._fleet_rows = rows
    return float(cfg.cost_eur_per_move) * sum(1 - b.xf[u, home[units[u][0]]] for u in U)


def _bound(expr) -> float:
    """The largest |expr| over its variables' bounds (MW): a big-M derived from the model, not guessed."""
    from .linear import affine

    a = affine(expr)
    total = abs(a.const)
    for c, v in zip(a.coefs, a.vars):
        lo, hi = v.bounds
        if lo is None or hi is None:
            raise RecipeError(f"phase_balancing.fleets: the charging of a moved fleet has an unbounded term ({v.name})")
        total += abs(c) * max(abs(lo), abs(hi))
    return total


def _split_decided(b, hub, keys, q_per_p: float) -> None:
    """A smart or V2G fleet's net injection p(t) (a decision) at bus j leaves its phase φ₀ and is
    split over the phases by the move's binaries x_φ (the disaggregation of x_φ · p(t), exact for
    binary x):  Σ_φ w_φ(t) = p(t),  -P̄ x_φ <= w_φ(t) <= P̄ x_φ,  with P̄ the largest |p(t)| over
    its variables' bounds; the grid code's reactive power follows (q = -q_per_p · w on each
    phase, charging being a negative injection; a V2G fleet with a grid code is refused: its
    reactive power follows the charging only)."""
    from .linear import affine, lin

    n = len(keys)
    b.wf = pyo.Var(range(n), range(3))
    rows_sum, rows_on = [], []
    for i, (u, j, k0, o, st) in enumerate(keys):
        if q_per_p and st.discharge is not None and not (isinstance(st.discharge, (int, float)) and st.discharge == 0):
            raise RecipeError("phase_balancing.fleets: a V2G fleet under a grid code's reactive power cannot be moved "
                              "between phases (its Q follows the charging, not the net injection)")
        p = (st.discharge if st.discharge is not None else 0.0) - st.charge
        bound = _bound(p)
        a = affine(p)
        rows_sum.append(([1.0, 1.0, 1.0] + [-c for c in a.coefs], [b.wf[i, 0], b.wf[i, 1], b.wf[i, 2], *a.vars],
                         a.const, a.const))
        for k in range(3):
            rows_on.append(([1.0, -bound], [b.wf[i, k], b.xf[u, k]], None, 0.0))
            rows_on.append(([-1.0, -bound], [b.wf[i, k], b.xf[u, k]], None, 0.0))
        # off phase φ₀ (the ev_fleet block injected p there), onto each phase as w_φ
        hub.inject(j, o, p=lin([-c for c in a.coefs], a.vars, -a.const),
                   q=lin([q_per_p * c for c in a.coefs], a.vars, q_per_p * a.const) if q_per_p else None, phase=k0)
        for k in range(3):
            hub.inject(j, o, p=b.wf[i, k], q=-q_per_p * b.wf[i, k] if q_per_p else None, phase=k)
    from .rows import add_rows

    add_rows(b, "fleet_split", range(len(rows_sum)), lambda i: rows_sum[i])
    add_rows(b, "fleet_split_on", range(len(rows_on)), lambda i: rows_on[i])


def _movable(hub, j: int, k0: int, p: np.ndarray, q: np.ndarray, x: list, firm: bool) -> None:
    """A fixed withdrawal ``p``, ``q`` (MW, Mvar per op) at bus ``j`` on phase ``k0`` becomes
    movable: it leaves the Hub's fixed withdrawals (and the firm ones, for ``firm``) and comes back
    as x[φ] · (p, q) on each phase φ."""
    hub.p_withdraw[j] -= p
    hub.q_withdraw[j] -= q
    if firm:
        hub.p_firm[j] -= p
        hub.q_firm[j] -= q
    hub.p_phase[j, k0] -= p
    hub.q_phase[j, k0] -= q
    for t in np.flatnonzero((p != 0) | (q != 0)):
        for k in range(3):
            hub.inject(j, int(t), p=-float(p[t]) * x[k], q=-float(q[t]) * x[k] if q[t] else None, phase=k)
    hub.bound_injection(j, float(np.hypot(p, q).max()))


def _one_load(inst, ix, one, load_matrices):
    """The demand block's withdrawals (MW, Mvar per bus and op) of one load."""
    import dataclasses

    net = dataclasses.replace(inst.network, loads=one)
    return load_matrices(dataclasses.replace(inst, network=net), ix)


def extract_phase_balancing(b, inst, ix) -> dict:
    import pandas as pd

    out = []
    for i, (name, bus, was) in enumerate(b._rows):
        now = PHASES[int(np.argmax([pyo.value(b.x[i, k]) for k in range(3)]))]
        out.append(dict(load=name, bus=bus, phase_before=was, phase_after=now, moved=now != was))
    for u, (name, bus, was) in enumerate(getattr(b, "_fleet_rows", [])):
        now = PHASES[int(np.argmax([pyo.value(b.xf[u, k]) for k in range(3)]))]
        out.append(dict(load=name, bus=bus, phase_before=was, phase_after=now, moved=now != was))
    df = pd.DataFrame(out, columns=["load", "bus", "phase_before", "phase_after", "moved"])
    return {"phase_moves": df, "summary": {"phase_balancing": dict(loads=len(df), moved=int(df["moved"].sum()))}}


register_block(BlockSpec("phase_balancing", add_phase_balancing, PhaseBalancingConfig, requires=("demand",),
                         uses=("ev_storage", "charger_q"),
                         extract=extract_phase_balancing, doc=__doc__))
