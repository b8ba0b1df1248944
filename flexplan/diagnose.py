"""Why a model has no plan: name the constraints (family, bus or line, year, day, hour).

``diagnose(instance, recipe)`` builds the model and solves it.  If it has a plan, there is
nothing to explain (the soft limits it pays for are in ``violations.csv`` of a normal
solve).  If HiGHS finds it infeasible (or infeasible or unbounded):

1. the LP relaxation is solved; if it is infeasible too, HiGHS's irreducible infeasible
   subset (``Highs.getIis``) names the few rows and column bounds that cannot hold
   together — removing any one of them makes the rest feasible; rows and columns map back
   to Pyomo names through the standard-form ``rows`` / ``columns`` of :func:`to_highs`;
2. otherwise (only the integer restrictions make it infeasible, or HiGHS gives no IIS) each
   block's constraints are switched off in turn, and then each constraint family of the
   blocks whose removal helps: the families whose removal makes the model feasible are
   the culprits.

An unbounded model is explained by HiGHS's primal ray: the variables that can grow
without limit.

Locations: in the network block the first index is a bus (``v``, ``balance_*``,
``v_min``, ``v_max``, ``shed``, slacks) or a branch (``P``, ``Q``, ``vdrop``, ``thermal``),
the last one the operating point, shown as scenario-tree node, year, day and hour.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import pandas as pd
import pyomo.environ as pyo

from .blocks.rows import materialize_rows
from .errors import SolverError
from .solve import HighsSession, SolveOptions, flexplan_status

#: network-block families whose first index is a bus / a branch / a parallel candidate
BOUND_NAMES = {2: "lower bound", 3: "upper bound", 4: "both bounds", 1: "free"}


@dataclass
class Diagnosis:
    """``status``: the model's flexplan status; ``method``: ``feasible``, ``iis``,
    ``drop-blocks`` or ``primal-ray``; ``culprits``: one dict per row / bound / family
    (``what`` constraint | bound | family | block | variable, ``family``, ``index``,
    ``element_type``, ``element``, ``node``, ``year``, ``day``, ``hour``, ``detail``);
    ``message``: a short explanation."""

    instance: str
    model: str
    status: str
    highs_status: str
    method: str
    culprits: list = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0

    @property
    def families(self) -> list[str]:
        """The constraint/variable families named, most frequent first."""
        fams = pd.Series([c["family"] for c in self.culprits if c.get("family")])
        return list(fams.value_counts(sort=True).index) if len(fams) else []

    def table(self) -> pd.DataFrame:
        cols = ["what", "family", "index", "element_type", "element", "node", "year", "day", "hour", "detail"]
        return pd.DataFrame(self.culprits, columns=cols)

    def to_dict(self) -> dict:
        return dict(instance=self.instance, model=self.model, status=self.status, highs_status=self.highs_status,
                    method=self.method, message=self.message, families=self.families, culprits=self.culprits,
                    seconds=round(self.seconds, 3))

    def text(self, limit: int = 40) -> str:
        lines = [f"{self.instance} under {self.model}: {self.status} (HiGHS: {self.highs_status})", self.message]
        for c in self.culprits[:limit]:
            where = ", ".join(str(c[k]) for k in ("element", "node", "year") if c.get(k) not in (None, ""))
            when = "" if c.get("day") in (None, "") else f" day {c['day']} hour {c['hour']}"
            lines.append(f"  {c['what']:<10} {c['family']}{c.get('index') or ''}"
                         + (f"  at {where}{when}" if where else "") + (f"  ({c['detail']})" if c.get("detail") else ""))
        if len(self.culprits) > limit:
            lines.append(f"  ... and {len(self.culprits) - limit} more")
        return "\n".join(lines)


def _locate(component_data, pm) -> dict:
    """Family, index and (for the network block) the bus/line and operating point."""
    comp = component_data.parent_component()
    family = comp.name
    idx = component_data.index()
    idx_t = idx if isinstance(idx, tuple) else (idx,) if idx is not None else ()
    out = dict(family=family, index="" if not idx_t else "[" + ",".join(map(str, idx_t)) + "]", element_type="",
               element="", node="", year="", day="", hour="")
    blk = comp.parent_block()
    local = comp.local_name
    if blk is None or blk.local_name != "network" or not idx_t:
        return out
    inst, ix = pm.instance, pm.index
    first, last = idx_t[0], idx_t[-1]
    spec = pm.blocks["network"][0] if "network" in pm.blocks else None
    if isinstance(first, (int, np.integer)) and spec is not None and spec.locate is not None:
        etype, element = spec.locate(blk, local, int(first), inst)
        if element is not None:
            out.update(element_type=etype, element=element)
    if isinstance(last, (int, np.integer)) and len(idx_t) >= 2 and 0 <= last < ix.n_ops:
        ops = ix.op_frame()
        out.update(node=str(ops.at[last, "node"]), year=int(ops.at[last, "year"]), day=str(ops.at[last, "day"]),
                   hour=int(ops.at[last, "hour"]), op=int(last))
    return out


def _load_culprits(pm, culprits: list, per_place: int = 3) -> list[dict]:
    """The fixed loads behind the culprits: for every bus or line named at an operating
    point, the buses it feeds (the bus itself and everything downstream) with the largest
    load at that point: an implausible load (-9000 MW) is named with its bus and hour."""
    if "demand" not in pm.recipe.blocks:
        return []
    from .blocks.demand import load_matrices

    inst, ix = pm.instance, pm.index
    net = inst.network
    scale = float((pm.recipe.options.get("demand") or {}).get("scale", 1.0))
    try:
        P, Q = load_matrices(inst, ix, scale)
    except Exception:  # noqa: BLE001 - a hint only
        return []
    children: dict[int, list[int]] = {}
    for a, b in zip(net.branches["from_bus"], net.branches["to_bus"]):
        children.setdefault(int(a), []).append(int(b))
    names = list(net.buses["name"])
    index = {str(n): i for i, n in enumerate(names)}
    line_to = {str(n): int(b) for n, b in zip(net.branches["name"], net.branches["to_bus"])}
    out, seen = [], set()
    for c in culprits:
        op = c.get("op")
        if op is None or c.get("element_type") not in ("bus", "line"):
            continue
        root = index.get(c["element"]) if c["element_type"] == "bus" else line_to.get(c["element"])
        if root is None:
            continue
        fed, stack = [], [root]
        while stack:
            u = stack.pop()
            fed.append(u)
            stack.extend(children.get(u, []))
        fed = [b for b in fed if P[b, op] != 0 or Q[b, op] != 0]
        for b in sorted(fed, key=lambda b: -abs(P[b, op]))[:per_place]:
            if (b, op) in seen:
                continue
            seen.add((b, op))
            out.append(dict(what="load", family="demand", index="", element_type="bus", element=str(names[b]),
                            node=c["node"], year=c["year"], day=c["day"], hour=c["hour"], op=op,
                            detail=f"fixed load {P[b, op]:,.3f} MW, {Q[b, op]:,.3f} Mvar at this hour "
                                   f"(fed through {c['element']})"))
    return out


def _run(session):
    """Solve in the session (no values written back); (HiGHS's status text, whether a feasible
    point was found), a HiGHS error included."""
    try:
        out = session.run(write_back=False)
    except SolverError as e:
        return e.highs_status, False
    return out.highs_status, out.has_solution


def _feasible(model, time_limit) -> bool:
    return _run(HighsSession(model, SolveOptions(time_limit=time_limit)))[1]


def diagnose_model(pm, time_limit: float | None = 300.0, progress=None, irreducible: bool = False) -> Diagnosis:
    """Diagnose a built :class:`~flexplan.assemble.PlanningModel` (see the module docstring)."""
    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    inst_name, model_name = pm.instance.name, pm.recipe.name
    materialize_rows(pm.model)  # IIS rows and switched-off families map back to Pyomo constraints
    session = HighsSession(pm.model, SolveOptions(time_limit=time_limit))
    repn = session.form
    say(f"solving {session.n_col} variables, {session.n_row} constraints, {session.n_int} integer")
    text, found = _run(session)
    status = flexplan_status(text)
    if found or status == "optimal":
        return Diagnosis(inst_name, model_name, status, text, "feasible", [],
                         "the model has a plan: nothing to diagnose (the soft limits it pays for are in "
                         "violations.csv of 'flexplan solve')", time.perf_counter() - t0)
    if status not in ("infeasible", "infeasible_or_unbounded", "unbounded"):
        return Diagnosis(inst_name, model_name, status, text, "none", [],
                         f"HiGHS stopped with '{text}' before deciding feasibility: raise the time limit",
                         time.perf_counter() - t0)
    session.relax_integers()  # the same HiGHS model, relaxed
    rel_text, _ = _run(session)
    hr = session.h
    rel_status = flexplan_status(rel_text)
    say(f"model {text}; LP relaxation {rel_text}")
    if rel_status == "unbounded" or (status == "unbounded"):
        return _ray(pm, hr, repn, status, text, t0)
    if rel_status in ("infeasible", "infeasible_or_unbounded"):
        got = _iis(pm, hr, repn, status, text, t0, irreducible=irreducible)
        if got is not None:
            return got
    return _drop_blocks(pm, status, text, time_limit, t0, say)


def _iis(pm, h, repn, status, text, t0, irreducible: bool = False):
    """HiGHS's IIS: first its light strategy (single rows or bounds in conflict, instant), then
    the subset from the LP's Farkas proof (``kIisStrategyFromLp``), reduced to an
    irreducible one only with ``irreducible`` (a deletion filter: far slower)."""
    strategies = [0, 2 | 4] if irreducible else [0, 2]
    iis = None
    for strategy in strategies:
        try:
            h.setOptionValue("iis_strategy", strategy)
            st, got = h.getIis()
        except Exception:  # noqa: BLE001 - no IIS in this HiGHS: fall back to dropping blocks
            return None
        if st != highspy.HighsStatus.kError and got.valid_ and (len(got.row_index_) or len(got.col_index_)):
            iis, used = got, strategy
            break
    if iis is None:
        return None
    culprits = []
    for i, b in zip(iis.row_index_, iis.row_bound_):
        con, _mult = repn.rows[int(i)]
        culprits.append(dict(what="constraint", detail=BOUND_NAMES.get(int(b), ""), **_locate(con, pm)))
    for j, b in zip(iis.col_index_, iis.col_bound_):
        var = repn.columns[int(j)]
        lo, hi = var.bounds
        detail = {2: f"lower bound {lo:g}" if lo is not None else "lower bound",
                  3: f"upper bound {hi:g}" if hi is not None else "upper bound",
                  4: f"bounds [{lo:g}, {hi:g}]" if lo is not None and hi is not None else "bounds"}.get(int(b), "")
        culprits.append(dict(what="bound", detail=detail, **_locate(var, pm)))
    fams = pd.Series([c["family"] for c in culprits]).value_counts()
    elements = pd.Series([c["element"] for c in culprits if c["element"]]).value_counts()
    loads = _load_culprits(pm, culprits)
    kind = "irreducible infeasible subset" if used in (0, 2 | 4) else "infeasible subset (not reduced; --irreducible for the minimal one)"
    msg = (f"{kind} (HiGHS IIS of the LP relaxation): {len(iis.row_index_)} constraint(s) and "
           f"{len(iis.col_index_)} variable bound(s) that cannot hold together; families: "
           + ", ".join(f"{f} ({n})" for f, n in fams.items())
           + ("; at: " + ", ".join(f"{e} ({n})" for e, n in elements.head(10).items()) if len(elements) else "")
           + ("; the largest loads they carry: " + ", ".join(
               f"bus {c['element']} {c['detail'].split(' at ')[0].removeprefix('fixed load ')} in {c['year']} day "
               f"{c['day']} hour {c['hour']}" for c in loads[:5]) if loads else ""))
    return Diagnosis(pm.instance.name, pm.recipe.name, status, text, "iis", culprits + loads, msg,
                     time.perf_counter() - t0)


def _ray(pm, h, repn, status, text, t0):
    culprits = []
    try:
        _st, has_ray, ray = h.getPrimalRay()
    except Exception:  # noqa: BLE001
        has_ray, ray = False, []
    if has_ray:
        ray = np.asarray(ray)
        for j in np.flatnonzero(np.abs(ray) > 1e-9)[:200]:
            culprits.append(dict(what="variable", detail=f"grows {'up' if ray[j] > 0 else 'down'} without limit",
                                 **_locate(repn.columns[int(j)], pm)))
    msg = ("unbounded: the objective falls without limit along HiGHS's primal ray; the variables on it lack a "
           "bound or a cost" if culprits else "unbounded, and HiGHS gives no primal ray")
    return Diagnosis(pm.instance.name, pm.recipe.name, status, text, "primal-ray", culprits, msg,
                     time.perf_counter() - t0)


def _active_constraints(blk):
    return [c for c in blk.component_objects(pyo.Constraint, active=True, descend_into=True)]


def _drop_blocks(pm, status, text, time_limit, t0, say):
    """Switch off each block's constraints (then each family of the blocks that matter)."""
    m = pm.model
    culprits = []
    helping = []
    for name in list(pm.blocks):
        blk = m.component(name)
        cons = _active_constraints(blk)
        for c in cons:
            c.deactivate()
        try:
            ok = _feasible(m, time_limit)
        finally:
            for c in cons:
                c.activate()
        say(f"  without the constraints of block '{name}': {'feasible' if ok else 'still infeasible'}")
        if ok:
            helping.append(name)
            culprits.append(dict(what="block", family=name, index="", element_type="", element="", node="", year="",
                                 day="", hour="", detail="dropping its constraints makes the model feasible"))
    for name in helping:
        for c in _active_constraints(m.component(name)):
            c.deactivate()
            try:
                ok = _feasible(m, time_limit)
            finally:
                c.activate()
            if ok:
                culprits.append(dict(what="family", family=c.name, index="", element_type="", element="", node="",
                                     year="", day="", hour="", detail="dropping this family makes the model feasible"))
    msg = ("no IIS (the LP relaxation is feasible, so the integer restrictions make it infeasible, or HiGHS found "
           "no subset); dropping blocks one at a time: " + (", ".join(helping) + " make(s) it feasible" if helping
                                else "no single block's removal makes it feasible"))
    return Diagnosis(pm.instance.name, pm.recipe.name, status, text, "drop-blocks", culprits, msg,
                     time.perf_counter() - t0)


def diagnose(instance, recipe="reinforce_only", time_limit: float | None = 300.0, progress=None,
             irreducible: bool = False) -> Diagnosis:
    """Build ``instance`` under ``recipe`` and :func:`diagnose_model` it."""
    import flexplan as fp

    pm = fp.build_model(instance, recipe)
    return diagnose_model(pm, time_limit=time_limit, progress=progress, irreducible=irreducible)

