"""Pieces shared by the network formulations."""
from __future__ import annotations

import math

import numpy as np

from ..arrays import ArrayVar

#: A rating above this (MVA) is treated as "no thermal limit" (pandapower's case33bw
#: carries max_i_ka = 99999 as a placeholder).
UNLIMITED_MVA = 1.0e4


def polygon(sides: int) -> list[tuple[float, float, float]]:
    """Edges (a, b, c) of a regular polygon inscribed in the unit circle with vertices on
    the P and Q axes: ``a·P + b·Q <= c·S`` for every edge keeps (P, Q) inside the circle of
    radius S (the linear limit never overstates capacity) and allows the full rating for
    pure active or pure reactive flow when ``sides`` is a multiple of 4."""
    if sides < 4 or sides % 4:
        raise ValueError("polygon sides must be a multiple of 4 and >= 4")
    c = math.cos(math.pi / sides)
    return [(math.cos((2 * m + 1) * math.pi / sides), math.sin((2 * m + 1) * math.pi / sides), c)
            for m in range(sides)]


def flow_ranges(net, hub) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact physical ranges of each branch's flow per op in a lossless radial network:
    arrays (n_branches, n_ops) Pmin, Pmax, Qmin, Qmax (MW, Mvar).

    The flow into a branch's child equals everything withdrawn below it: fixed loads minus
    shed load (shed ∈ [0, load], keeping the load's power factor) minus variable injections
    (|injection| <= the bound declared in the Hub).  These ranges bound the flows and
    give the big-M of the disjunctive voltage drop, so they are as tight as the data allow.
    """
    below = net.downstream_buses()
    pw, qw = hub.p_withdraw, hub.q_withdraw
    ps, qs = hub.sheddable()  # the rest (firm: EV charging) is always withdrawn
    sheddable = ps > 0
    p_lo = np.where(sheddable, pw - ps, pw)
    p_hi = pw
    q_lo = np.where(sheddable, qw - qs + np.minimum(qs, 0.0), qw)
    q_hi = np.where(sheddable, qw - qs + np.maximum(qs, 0.0), qw)
    T = pw.shape[1]
    out = [np.zeros((net.n_branches, T)) for _ in range(4)]
    for k, bs in enumerate(below):
        inj = hub.max_injection[bs].sum()
        out[0][k] = p_lo[bs].sum(axis=0) - inj
        out[1][k] = p_hi[bs].sum(axis=0) + inj
        out[2][k] = q_lo[bs].sum(axis=0) - inj
        out[3][k] = q_hi[bs].sum(axis=0) + inj
    return tuple(out)


def polygon_edges_needed(edges, pmin, pmax, qmin, qmax) -> list[int]:
    """Edges of the (axis-symmetric) polygon that can bind for flows in the box
    [pmin, pmax] x [qmin, qmax]: where P >= 0 an edge with a < 0 is implied by its mirror
    image (-a, b), and likewise for P <= 0 and for Q.  Load-only feeders need a quarter of
    the edges."""
    keep = []
    for m, (a, b, _) in enumerate(edges):
        # a range that is exactly {0} keeps the positive side of the pair
        if (a < 0 and pmin >= 0) or (a > 0 and pmax <= 0 and pmin < 0):
            continue
        if (b < 0 and qmin >= 0) or (b > 0 and qmax <= 0 and qmin < 0):
            continue
        keep.append(m)
    return keep


# -- violations of the soft limits (each formulation reports its own) ---------------------------
VIOLATION_COLUMNS = ["kind", "constraint", "element_type", "element", "node", "year", "day", "hour", "amount",
                     "unit", "value", "limit", "penalty_weight_eur"]
#: slack values at or below this are solver noise, not violations
VIOLATION_TOL = 1e-6


def slack_violations(pm, blk, slacks: dict, element, detail=None):
    """One row per soft-limit slack variable of ``blk`` above :data:`VIOLATION_TOL`: which
    constraint (``network.<constraint>``), where, when, the ``amount`` in ``unit``, and
    ``penalty_weight_eur`` (amount x penalty x the op's hours, undiscounted, per year).

    ``slacks``: variable name -> (kind, constraint, unit, penalty attribute of the instance's
    ``penalties``); ``element(var_name, index) -> (element type, element name)``;
    ``detail(row, var_name, index, t)`` may fill ``value`` / ``limit`` / ``amount`` (e.g. the
    voltage in pu instead of the squared slack).  Sorted by penalty, worst first."""
    import pandas as pd

    inst, ix = pm.instance, pm.index
    ops = ix.op_frame()
    hours = np.asarray(ix.op_hours(), dtype=float)
    rows = []
    for var_name, (kind, con, unit, penalty) in slacks.items():
        var = getattr(blk, var_name, None)
        if var is None:
            continue
        weight = float(getattr(inst.penalties, penalty))
        if isinstance(var, ArrayVar):  # only the violated elements, found with numpy
            vals = np.nan_to_num(var.value_array().reshape(-1))
            keys = var.keys
            found = [(keys[i], float(vals[i])) for i in np.flatnonzero(vals > VIOLATION_TOL).tolist()]
        else:
            found = [(idx, v.value) for idx, v in var.items()]
        for idx, val in found:
            if val is None or val <= VIOLATION_TOL:
                continue
            el, t = idx[0], idx[-1]
            etype, name = element(var_name, el)
            row = dict(kind=kind, constraint=f"network.{con}", element_type=etype, element=name,
                       node=ops.at[t, "node"], year=int(ops.at[t, "year"]), day=ops.at[t, "day"],
                       hour=int(ops.at[t, "hour"]), amount=float(val), unit=unit, value=np.nan, limit=np.nan,
                       penalty_weight_eur=float(val) * weight * hours[t])
            if detail is not None:
                detail(row, var_name, el, t)
            rows.append(row)
    df = pd.DataFrame(rows, columns=VIOLATION_COLUMNS)
    if len(df):
        df = df.sort_values(["penalty_weight_eur", "kind", "element"], ascending=[False, True, True],
                            kind="mergesort").reset_index(drop=True)
    return df
