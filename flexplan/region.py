"""A region: an MV grid with its LV grids, planned by Dantzig–Wolfe decomposition
(docs/formulation.md §10).

:func:`split_region` cuts a region's network at its MV/LV transformers: each transformer whose
secondary side is LV (≤ ``lv_kv_max``, 1 kV: IEC 60038's low voltage) and primary side is not
starts an LV grid (the transformer and everything below it, supplied from a copy of its MV bus);
the rest is the MV grid.  Loads, EV fleets and reinforcement candidates go with their buses and
branches; stages, days, growth, tree, limits and penalties are shared, so every part has the
same operating points.

:func:`plan_region` then plans the region as one problem, decomposed:

* **pricing** (one solve per LV grid, independent, so in parallel: a process pool or a Dask
  cluster): the LV grid's own planning model with its import at the supply point priced at the
  MV grid's current prices, min C_g(x) + Σ_t (μ^P_t P_t(x) + μ^Q_t Q_t(x)); its plan is a column
  (cost C_g, import profile P, Q);
* **master** (the MV grid's planning model with the block ``lv_grids``): each LV grid is a
  convex combination of its columns, so the MV grid sees what the LV grids import and pays what
  their plans cost; its LP relaxation gives the prices μ (duals of the linking rows) and σ_g
  (the convexity rows').

A column whose reduced cost (pricing objective − σ_g) is negative improves the master; when no
grid has one, the master's LP is the optimum of the region's relaxation.  Every iteration gives a
lower bound on the region's optimum, master LP + Σ_g min(0, pricing dual bound − σ_g)
(Lagrangian), and the last step solves the master with one column per LV grid (λ binary) and the
MV grid's integer decisions: the region's plan, an upper bound.  The two bound the gap reported.
An LV grid's flexibility is therefore spent once: its plan (local reinforcement, local
congestion, what the MV grid asks for) is one solve of the LV grid with the MV grid's price on
its import.

Voltage rounds: the first round supplies every LV grid at ``lv_supply_vm_pu`` (default: the
region's slack voltage); each later round supplies it at its MV bus's voltage in the last MV plan
(block ``lv_supply``), until no supply voltage moves by more than ``voltage_tol_pu``: a fixed
point, which the monolithic model (:func:`plan_monolithic`) reaches jointly.

Checkpoints: with ``out``, every pricing solve is kept in ``out/columns/`` under a hash of what
it depends on (the LV grid's data, the recipe, the solver options, the prices and the supply
voltages), so a rerun after a crash, a killed worker or Ctrl-C repeats only what is missing, and
a changed instance, recipe or option is never mistaken for a finished one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InstanceError, Problem, RecipeError

#: kV: a bus at or below this voltage is LV (IEC 60038: low voltage is up to 1 kV AC).
LV_KV_MAX = 1.0


@dataclass
class LVGrid:
    """One LV grid of a region: ``name`` (its transformer's), ``mv_bus`` (index in the MV
    instance), ``mv_bus_name`` and ``instance`` (the transformer and what is below it, supplied
    from a copy of the MV bus, bus 0)."""

    name: str
    mv_bus: int
    mv_bus_name: str
    instance: object


@dataclass
class RegionSplit:
    region: object
    mv: object
    lv: list


def _subset(inst, keep: list[int], slack: pd.DataFrame, name: str, where: str):
    """The part of ``inst`` on buses ``keep`` (old indices, in the new order) and the branches
    feeding them, with ``slack`` (old bus indices, vm_pu)."""
    net = inst.network
    new = {old: i for i, old in enumerate(keep)}
    br = net.branches
    roots = set(int(b) for b in slack["bus"])
    region_slack = set(int(b) for b in net.slack["bus"])
    bkeep = [k for k in range(len(br)) if int(br.at[k, "to_bus"]) in new and int(br.at[k, "to_bus"]) not in roots]
    bnew = {old: i for i, old in enumerate(bkeep)}
    branches = br.iloc[bkeep].reset_index(drop=True).copy()
    for col in ("from_bus", "to_bus"):
        branches[col] = [new[int(b)] for b in branches[col]]
    own = [b for b in new if b not in roots or b in region_slack]  # a copied supply bus carries nothing
    loads = net.loads[net.loads["bus"].isin(own)].copy()
    loads["bus"] = [new[int(b)] for b in loads["bus"]]
    sl = slack.copy()
    sl["bus"] = [new[int(b)] for b in sl["bus"]]
    network = dataclasses.replace(net, buses=net.buses.iloc[keep].reset_index(drop=True),
                                  branches=branches, loads=loads.reset_index(drop=True),
                                  slack=sl.reset_index(drop=True), source=f"{net.source} ({where})")
    cand = inst.candidates
    if len(cand):
        cand = cand[cand["branch"].isin(bkeep)].copy()
        cand["branch"] = [bnew[int(b)] for b in cand["branch"]]
        cand = cand.reset_index(drop=True)
    fleets = []
    for f in inst.ev_fleets:
        pos = [i for i, b in enumerate(f.buses) if b in own]
        if pos:
            fleets.append(dataclasses.replace(f, buses=tuple(new[f.buses[i]] for i in pos),
                                              bus_names=tuple(f.bus_names[i] for i in pos), _cache={}))
    return dataclasses.replace(inst, name=name, network=network, candidates=cand, ev_fleets=tuple(fleets),
                               tree=inst.tree, extra=dict(inst.extra), sections=dict(inst.sections))


def split_region(instance, lv_kv_max: float = LV_KV_MAX, lv_supply_vm_pu: float | None = None) -> RegionSplit:
    """Cut a region into its MV grid and its LV grids (see the module docstring).  Raises
    :class:`InstanceError` when the network has no MV/LV transformer or a block section
    (heat pumps, PV, storage) that is not split yet."""
    from .assemble import load_instance
    from .paths import resolve_instance_path

    inst = instance if not isinstance(instance, (str, Path)) else load_instance(resolve_instance_path(instance))
    where = str(inst.path / "instance.toml") if inst.path is not None else inst.name
    sections = [k for k, v in inst.sections.items() if v]
    if sections:
        raise InstanceError([Problem(where, f"a region with {', '.join(sections)} cannot be split into MV and LV "
                                            "grids yet (only the network, loads, EV fleets and reinforcement "
                                            "candidates are)", field=sections[0])])
    net = inst.network
    vn = net.buses["vn_kv"].astype(float).to_numpy()
    br = net.branches
    down = net.downstream_buses()
    roots = [k for k in range(len(br)) if str(br.at[k, "kind"]) == "transformer"
             and vn[int(br.at[k, "to_bus"])] <= lv_kv_max < vn[int(br.at[k, "from_bus"])]]
    if not roots:
        raise InstanceError([Problem(where, f"no MV/LV transformer (secondary side <= {lv_kv_max} kV, primary "
                                            "above): nothing to split into LV grids", field="transformers")])
    if len(net.slack) != 1:
        raise InstanceError([Problem(where, "a region needs exactly one slack bus", field="slack_bus")])
    vm = float(net.slack["vm_pu"].iloc[0]) if lv_supply_vm_pu is None else float(lv_supply_vm_pu)
    names = net.buses["name"].astype(str).tolist()
    in_lv: set[int] = set()
    lv = []
    for k in roots:
        frm = int(br.at[k, "from_bus"])
        below = [int(b) for b in down[k]]
        in_lv.update(below)
        grid = str(br.at[k, "name"])
        sub = _subset(inst, [frm] + below, pd.DataFrame({"bus": [frm], "vm_pu": [vm]}),
                      f"{inst.name}/{grid}", f"LV grid of {grid}")
        lv.append(LVGrid(grid, frm, names[frm], sub))
    mv_keep = [b for b in range(net.n_buses) if b not in in_lv]
    mv = _subset(inst, mv_keep, net.slack, f"{inst.name}/mv", "MV grid")
    pos = {old: i for i, old in enumerate(mv_keep)}
    for g in lv:
        g.mv_bus = pos[g.mv_bus]
    return RegionSplit(inst, mv, lv)


def _no_price(mu_p, mu_q) -> bool:
    """Whether the MV grid does not price this import (None, or zero in every op): the LV grid is
    then planned alone."""
    return mu_p is None or (not np.any(mu_p) and not np.any(mu_q))


def _index(inst):
    """The model index: the instance's scenario tree (an extensive form) if it has one."""
    if inst.tree is None:
        return None
    from .index import tree_index

    return tree_index(inst, inst.tree)


# -- pricing: one LV grid --------------------------------------------------------------------------
def _imports(pm):
    """Per op, the (P, Q) expressions of what the LV grid takes at its supply point: the flows of
    the branches (and built parallel branches) leaving its slack bus (array expressions,
    :mod:`flexplan.blocks.arrays`), and a bound on |P| + |Q|."""
    from .blocks.arrays import ArrayExpr

    spec, b = pm.blocks["network"]
    if pm.recipe.formulation not in ("lindistflow", "branchflow"):
        raise RecipeError(f"a region is planned with the lindistflow or branchflow network formulation, not "
                          f"'{pm.recipe.formulation}'")
    net = pm.instance.network
    slack = set(int(s) for s in net.slack["bus"])
    out_k = [k for k in range(net.n_branches) if int(net.branches.at[k, "from_bus"]) in slack]
    par = [c for c, o in enumerate(b._meta["parallels"]) if int(net.branches.at[o.branch, "from_bus"]) in slack]
    T = pm.index.n_ops
    reg = b.P.registry
    P, Q = [], []
    for flow, pflow, out in ((b.P, b.Pp, P), (b.Q, b.Qp, Q)):
        toks = np.concatenate([flow.tokens()[out_k], pflow.tokens()[par]]) if T else np.empty((0, 0), np.int64)
        for t in range(T):
            out.append(ArrayExpr(reg, np.ones(toks.shape[0]), toks[:, t]))

    def reach(av, rows):
        if not rows:
            return np.zeros(T)
        lb, ub = av.lb.reshape(av.shape)[rows], av.ub.reshape(av.shape)[rows]
        return np.maximum(np.abs(np.nan_to_num(lb, posinf=0, neginf=0)), np.abs(np.nan_to_num(ub, posinf=0, neginf=0))).sum(axis=0)

    s = reach(b.P, out_k) + reach(b.Q, out_k) + reach(b.Pp, par) + reach(b.Qp, par)
    bound = float(s.max()) if T else 0.0
    return P, Q, bound


def price_grid(lv_instance, recipe, mu_p=None, mu_q=None, dv=None, solve_kw: dict | None = None,
               shortcut: bool = True) -> dict:
    """Plan one LV grid with its import priced at ``mu_p`` / ``mu_q`` (EUR per MW / Mvar per op,
    as weighted in the objective; None: alone) and supplied at the squared voltage v₀ + ``dv``
    per op (block ``lv_supply``; None: v₀, the slack's).  Returns its column: ``cost`` (EUR, the plan's objective without the prices), ``p``,
    ``q`` (import per op), ``dv`` (squared supply voltage less the slack's, per op), ``objective``
    and ``dual_bound`` (of the priced problem), ``status``, ``builds``, ``costs`` (EUR by
    category), ``max_mva``."""
    from .blocks.arrays import ArrayExpr

    from . import collect
    from .assemble import build_model
    from .solve import SolveOptions, solve_model

    solve_kw = dict(solve_kw or {})
    if _no_price(mu_p, mu_q):
        mu_p = mu_q = None
    if mu_p is None and shortcut:
        col = baseline_column(lv_instance, recipe, dv)
        if col is not None:
            return col
    t0 = time.perf_counter()
    held = {}

    def priced(pm):
        P, Q, bound = _imports(pm)
        held.update(P=P, Q=Q, bound=bound)
        if mu_p is not None:
            root = pm.index.root
            terms = [(float(a), e) for a, e in zip(mu_p, P) if a] + [(float(a), e) for a, e in zip(mu_q, Q) if a]
            if terms:
                pm.hub.cost("region_price", root, ArrayExpr(P[0].reg, np.concatenate([a * e.coefs for a, e in terms]),
                                                            np.concatenate([e.toks for _, e in terms])))

    from .blocks.lv_supply import LVSupply
    from .recipe import resolve_recipe

    rec = resolve_recipe(recipe)
    rec = dataclasses.replace(rec, blocks=[*rec.blocks, "lv_supply"], name=f"{rec.name}+lv_supply")
    supply = LVSupply(dv=None if dv is None else np.asarray(dv, dtype=float))
    inst = dataclasses.replace(lv_instance, sections={**lv_instance.sections, "lv_supply": supply})
    pm = build_model(inst, rec, index=_index(inst), extra_functionality=priced)
    opts = SolveOptions(mip_gap=solve_kw.pop("mip_gap", 1e-4), time_limit=solve_kw.pop("time_limit", None),
                        threads=solve_kw.pop("threads", 0), extra=solve_kw)
    out = solve_model(pm.model, opts)
    if not out.has_solution:
        raise RecipeError(f"LV grid {lv_instance.name}: no plan ({out.status}, HiGHS: {out.highs_status})")
    p = np.array([e.value() for e in held["P"]], dtype=float)
    q = np.array([e.value() for e in held["Q"]], dtype=float)
    dv = np.array([v.value or 0.0 for v in pm.model.lv_supply.dv.values()], dtype=float)
    price = float(np.dot(mu_p, p) + np.dot(mu_q, q)) if mu_p is not None else 0.0
    res = collect(pm, out)
    costs = {k: v for k, v in res.cost_breakdown_eur.items() if k != "region_price"}
    # how far the LV grid's squared voltages stay above v_min² (pu²): a lower supply voltage by less
    # leaves this plan feasible, at the same cost (Runner.run reuses it)
    net_blk = pm.blocks["network"][1]
    v2 = net_blk.v.value_array().reshape(-1)
    v2 = v2[~np.isnan(v2)]
    lo_margin = float(v2.min() - pm.instance.limits.v_min_pu ** 2) if v2.size else np.inf
    if costs.get("penalty_voltage", 0.0) > 0:
        lo_margin = 0.0
    bound = out.dual_bound if out.dual_bound is not None else out.objective
    return dict(cost=float(out.objective - price), p=p, q=q, dv=dv, objective=float(out.objective), dual_bound=float(bound),
                status=out.status, mip_gap=out.mip_gap, builds=res.builds, costs=costs, max_mva=float(held["bound"]),
                v2_margin=lo_margin, seconds=time.perf_counter() - t0)


def _shifted(col: dict, dv) -> dict | None:
    """``col`` supplied at ``dv`` instead, if that keeps it optimal: the new supply voltage is
    nowhere higher (the feasible plans only lose) and nowhere lower by as much as the plan's
    smallest margin to v_min² (the plan stays feasible, its cost unchanged), so the plan that was
    optimal stays optimal (exact for a MIP too)."""
    new = np.zeros_like(col["dv"]) if dv is None else np.asarray(dv, dtype=float)
    delta = new - col["dv"]
    if delta.size and (delta.max() > 1e-12 or -delta.min() >= 0.5 * col["v2_margin"]):
        return None
    return {**col, "dv": new, "seconds": 0.0, "shifted": True}


#: blocks whose costs are >= 0 and 0 for uncontrolled EVs and no builds: under a recipe of only
#: these, an LV grid whose uncontrolled charging breaks no limit needs nothing (its plan costs 0)
ZERO_BASE_BLOCKS = {"demand", "ev_fleet", "reinforcement"}


def baseline_column(lv_instance, recipe, dv=None) -> dict | None:
    """The LV grid's plan of doing nothing (EVs uncontrolled, no build) as a column, if that plan
    breaks no limit of the recipe's network model (LinDistFlow evaluated directly: each branch
    carries what is below it, each bus's squared voltage is the supply's less the drops on its
    path; the thermal polygon and the voltage band as ``lindistflow`` states them) and the recipe
    has only :data:`ZERO_BASE_BLOCKS` and no import price: then it costs 0 and no plan costs less,
    so no solve is needed.  None otherwise.  A 97-bus SimBench LV grid over 480 ops: about 1 s instead of 33–90 s
    (benchmarks/region.py; the longer on a busy machine)."""
    from .assemble import build_model
    from .blocks.network.common import polygon
    from .recipe import resolve_recipe

    rec = resolve_recipe(recipe)
    if rec.formulation != "lindistflow" or not set(rec.blocks) <= ZERO_BASE_BLOCKS:
        return None
    t0 = time.perf_counter()
    base = dataclasses.replace(rec, name=f"{rec.name}[baseline]", blocks=[b for b in rec.blocks if b != "reinforcement"],
                               formulation="copperplate",
                               options={**{k: v for k, v in rec.options.items() if k not in ("network", "reinforcement")},
                                        "ev_fleet": {**rec.options.get("ev_fleet", {}), "mode": "uncontrolled"}})
    pm = build_model(lv_instance, base, index=_index(lv_instance))
    hub, net, ix = pm.hub, lv_instance.network, pm.index
    if hub.p_terms or hub.q_terms:  # a variable injection: not a fixed baseline
        return None
    pw, qw = hub.p_withdraw, hub.q_withdraw  # MW, Mvar per (bus, op)
    down = net.downstream_buses()
    P = np.array([pw[d].sum(axis=0) for d in down])  # per branch and op, flow into its child
    Q = np.array([qw[d].sum(axis=0) for d in down])
    br = net.branches
    sb = float(net.s_base_mva)
    lim = lv_instance.limits
    sides = int(rec.options.get("network", {}).get("polygon_sides", 12))
    cap = br["rating_mva"].astype(float).to_numpy()[:, None] * lim.max_loading_pct / 100.0
    for a, b, c in polygon(sides):
        if np.any(a * P + b * Q > c * cap + 1e-9):
            return None
    v0 = float(net.slack["vm_pu"].iloc[0]) ** 2
    v = np.full((net.n_buses, ix.n_ops), np.nan)
    v[int(net.slack["bus"].iloc[0])] = v0 + (0.0 if dv is None else np.asarray(dv, dtype=float))
    frm, to = br["from_bus"].to_numpy(), br["to_bus"].to_numpy()
    r, x = br["r_pu"].astype(float).to_numpy(), br["x_pu"].astype(float).to_numpy()
    par = net.parent_branch()
    for j in net.topological_order():
        k = par[j]
        if k >= 0:
            v[j] = v[frm[k]] - 2.0 * (r[k] * P[k] + x[k] * Q[k]) / sb
    slack = set(int(b) for b in net.slack["bus"])
    vb = v[[j for j in range(net.n_buses) if j not in slack]]
    if vb.size and (vb.min() < lim.v_min_pu ** 2 - 1e-12 or vb.max() > lim.v_max_pu ** 2 + 1e-12):
        return None
    out_k = [k for k in range(len(br)) if int(frm[k]) in slack]
    p, q = P[out_k].sum(axis=0), Q[out_k].sum(axis=0)
    return dict(cost=0.0, p=p, q=q, dv=np.zeros(ix.n_ops) if dv is None else np.asarray(dv, dtype=float),
                objective=0.0, dual_bound=0.0, status="optimal", mip_gap=0.0, builds=pd.DataFrame(columns=["asset", "year"]),
                costs={}, max_mva=float(np.max(np.abs(p) + np.abs(q))) if p.size else 0.0,
                v2_margin=float(vb.min() - lim.v_min_pu ** 2) if vb.size else np.inf, baseline=True,
                seconds=time.perf_counter() - t0)


def _base_key(lv_instance, recipe, solve_kw) -> str:
    """What every pricing solve of an LV grid depends on, as a hash: its data, the recipe and the
    solver options (the expensive part of :func:`_key`: computed once per grid by the runner)."""
    from .recipe import resolve_recipe
    from .sensitivity import _fingerprint

    rec = resolve_recipe(recipe)
    h = hashlib.sha256()
    _fingerprint(lv_instance, h)
    h.update(json.dumps(dict(blocks=rec.blocks, formulation=rec.formulation, options=rec.options,
                             solve={k: solve_kw[k] for k in sorted(solve_kw)}), sort_keys=True, default=str).encode())
    return h.hexdigest()


def _key(base: str, mu_p, mu_q, dv) -> str:
    """A pricing solve's hash: :func:`_base_key` with the prices (none when zero, as
    :func:`price_grid` takes them) and the supply voltages."""
    if _no_price(mu_p, mu_q):
        mu_p = mu_q = None
    h = hashlib.sha256(base.encode())
    for mu in (mu_p, mu_q, dv):
        h.update(b"-" if mu is None else (np.round(np.asarray(mu, dtype=float), 9) + 0.0).tobytes())  # -0.0 is 0.0
    return h.hexdigest()[:20]


#: Dask's errors for a task whose worker (or the worker holding its data) was lost
DASK_LOST = {"KilledWorker", "FutureCancelledError", "CancelledError"}


def _worker_init() -> None:
    """A pool worker leaves Ctrl-C to the main process (which stops the pool) and ends on SIGTERM
    (flexplan's own handler would only stop the current solve and go on with the next)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _Runner:
    """Runs pricing solves in process, on a process pool or on a Dask cluster, through the
    checkpoint folder."""

    def __init__(self, workers: int = 1, scheduler: str | None = None, out: Path | None = None,
                 shortcut: bool = True):
        self.workers, self.shortcut = workers, shortcut
        self.out = None if out is None else Path(out) / "columns"
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        self.client = self.cluster = self.pool = None
        self.reused = 0  # pricing solves read from the checkpoint folder
        self.repeated = 0  # pricing solves this run had already done (same grid, prices and voltages)
        self.solved = 0  # pricing solves run
        self.baseline = 0  # of which needed no solve (baseline_column)
        self.shifted = 0  # plans kept at a lower supply voltage that leaves them feasible (_shifted)
        self.memo: dict = {}  # key -> column
        self.by_price: dict = {}  # (grid, key without the voltages) -> the last column solved there
        self.base_keys: dict = {}  # (id(LV instance), recipe, options) -> _base_key
        self.sent: dict = {}  # id(LV instance) -> (instance, its future on the Dask cluster or None)
        if scheduler is not None:
            try:
                from distributed import Client, LocalCluster
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise RecipeError("a Dask scheduler was asked for but the 'distributed' package is missing: "
                                  "pip install -e \".[dask]\"") from e
            if scheduler == "local":
                self.cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                            dashboard_address=":0")  # any free port, no clash
                self.client = Client(self.cluster)
            else:
                self.client = Client(scheduler, timeout="30s")
        elif workers > 1:
            self.pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init)

    def close(self, abort: bool = False):
        """Release the workers; ``abort`` (an error or Ctrl-C in this process): stop their solves
        now instead of letting the pool finish what it has started."""
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self.pool is not None:
            if abort:
                for proc in list(getattr(self.pool, "_processes", {}).values()):
                    proc.terminate()
            self.pool.shutdown(wait=not abort, cancel_futures=abort)

    def _path(self, key):
        return None if self.out is None else self.out / f"{key}.pkl"

    def run(self, jobs: list[tuple], recipe, solve_kw, progress=None) -> list[dict]:
        """``jobs``: (label, lv_instance, mu_p, mu_q, dv); the columns in the same order."""
        results: list = [None] * len(jobs)
        todo = []  # (job, checkpoint path, key, key without the voltages)
        for i, (label, inst, mu_p, mu_q, dv) in enumerate(jobs):
            which = (id(inst), recipe if isinstance(recipe, (str, Path)) else id(recipe),
                     tuple(sorted(solve_kw.items())))
            base = self.base_keys.get(which)
            if base is None:
                base = self.base_keys[which] = _base_key(inst, recipe, solve_kw)
                self.sent.setdefault(id(inst), (inst, None))  # holds the instance: its id is not reused
            key, pkey = _key(base, mu_p, mu_q, dv), (label, _key(base, mu_p, mu_q, None))
            if key in self.memo:  # the same grid at the same prices and voltages (a grid the MV grid does not price)
                results[i] = self.memo[key]
                self.repeated += 1
                continue
            old = self.by_price.get(pkey)  # the same prices, another voltage
            moved = None if old is None else _shifted(old, dv)
            if moved is not None:
                results[i] = self.memo[key] = moved
                self.shifted += 1
                continue
            path = self._path(key)
            if path is not None and path.exists():
                try:
                    results[i] = self.memo[key] = self.by_price[pkey] = pickle.loads(path.read_bytes())
                    self.reused += 1
                    continue
                except Exception:  # noqa: BLE001 - a damaged checkpoint is solved again
                    path.unlink(missing_ok=True)
            todo.append((i, path, key, pkey))
        t0 = time.perf_counter()
        failed: list[str] = []
        count = [0]
        slots = 1 if self.client is None and self.pool is None else max(1, self.workers)

        def take(job, get) -> None:
            """The column of ``job`` from ``get()`` (a solve or a future's result): memoised,
            checkpointed, reported; a failure is reported with the grid's name."""
            i, path, key, pkey = job
            label = jobs[i][0]
            try:
                col = get()
            except Exception as e:  # noqa: BLE001 - reported with the grid's name after the others
                failed.append(f"{label}: {type(e).__name__}: {e}")
                if progress:
                    progress(f"    {label}: FAILED ({type(e).__name__}: {e})")
                return
            count[0] += 1
            n = count[0]
            results[i] = self.memo[key] = self.by_price[pkey] = col
            self.solved += 1
            self.baseline += bool(col.get("baseline"))
            if path is not None:
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(pickle.dumps(col))
                tmp.replace(path)
            if progress:
                left = len(todo) - n - len(failed)
                eta = (time.perf_counter() - t0) / n * left
                how = "no solve needed" if col.get("baseline") else col["status"]
                progress(f"    {label}: {how}, {col['seconds']:.1f} s [{n} done, {min(slots, left)} running, "
                         f"{len(failed)} failed, {left} left of {len(todo)}, ETA {eta:.0f} s]")

        def args(i):
            _, inst, mu_p, mu_q, dv = jobs[i]
            return inst, recipe, mu_p, mu_q, dv, solve_kw, self.shortcut

        if self.client is not None and todo:
            from distributed import as_completed

            def submit(job, fresh=False):
                inst, *rest = args(job[0])
                held = self.sent.get(id(inst))
                if fresh or held is None or held[1] is None:  # each LV grid's data goes to every worker once
                    self.sent[id(inst)] = (inst, self.client.scatter(inst, broadcast=True))
                fut = self.client.submit(price_grid, self.sent[id(inst)][1], *rest, pure=False)
                futs[fut] = job
                return fut

            futs: dict = {}
            pending = as_completed([submit(job) for job in todo])
            retried: set = set()
            def given(value):
                if isinstance(value, BaseException):
                    raise value
                return value

            for fut in pending:
                job = futs[fut]
                try:
                    value = fut.result()
                except Exception as e:  # noqa: BLE001 - take() reports it, unless a worker was lost
                    if type(e).__name__ in DASK_LOST and job[0] not in retried:  # once more, elsewhere
                        retried.add(job[0])
                        if progress:
                            progress(f"    {jobs[job[0]][0]}: {type(e).__name__} (a worker was lost): submitted again")
                        pending.add(submit(job, fresh=True))
                        continue
                    value = e
                take(job, lambda value=value: given(value))
        elif self.pool is not None and len(todo) > 1:
            from concurrent.futures import as_completed

            futs = {self.pool.submit(price_grid, *args(job[0])): job for job in todo}
            for fut in as_completed(futs):
                take(futs[fut], fut.result)
        else:
            for job in todo:
                take(job, lambda job=job: price_grid(*args(job[0])))
        if failed:
            raise RecipeError(f"{len(failed)} of {len(todo)} LV grid solves failed (the others are checkpointed "
                              "when an output folder is given, so a rerun repeats only these): " + "; ".join(failed))
        return results


# -- the master ------------------------------------------------------------------------------------
def _master(split: RegionSplit, recipe, cols: list[list[dict]], integer: bool, prices=None):
    from .assemble import build_model
    from .blocks.lv_grids import LVColumns
    from .recipe import resolve_recipe

    rec = resolve_recipe(recipe)
    data = LVColumns(names=[g.name for g in split.lv], buses=[g.mv_bus for g in split.lv],
                     costs=[[c["cost"] for c in cs] for cs in cols],
                     p=[np.array([c["p"] for c in cs]) for cs in cols], q=[np.array([c["q"] for c in cs]) for cs in cols],
                     max_mva=[max(c["max_mva"] for c in cs) for cs in cols], integer=integer, prices=prices)
    mv = dataclasses.replace(split.mv, sections={**split.mv.sections, "lv_grids": data})
    rec = dataclasses.replace(rec, blocks=[*rec.blocks, "lv_grids"], name=f"{rec.name}+lv_grids")
    return build_model(mv, rec, index=_index(mv))


@dataclass
class RegionResult:
    """The region's plan: ``objective_eur`` (the MV plan with one plan per LV grid), ``bound_eur``
    (lower bound on the region's optimum), ``gap`` (relative), ``mv`` (the MV grid's
    :class:`flexplan.Results`, its ``lv_grids`` cost the LV plans'), ``grids`` (per LV grid: its
    chosen plan's cost, builds, investment, import peak, columns tried), ``iterations`` (per
    iteration: master LP, bound, columns added, seconds), ``lv_plans`` (grid -> chosen column)."""

    objective_eur: float
    bound_eur: float
    gap: float
    status: str
    mv: object
    grids: pd.DataFrame
    iterations: pd.DataFrame
    lv_plans: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)
    voltage_moved_pu: float = 0.0
    pricing: dict = field(default_factory=dict)  # solved, read from checkpoints, repeated, shifted


def _duals(pm, session, n_grids, n_ops):
    """(μ^P, μ^Q) per grid and op and σ per grid: the duals of the linking and convexity rows."""
    dual = session.constraint_dual
    blk = pm.model.lv_grids
    mu_p = np.array([[dual(blk.link_p[g, t]) for t in range(n_ops)] for g in range(n_grids)])
    mu_q = np.array([[dual(blk.link_q[g, t]) for t in range(n_ops)] for g in range(n_grids)])
    sigma = np.array([dual(blk.convexity[g]) for g in range(n_grids)])
    return mu_p, mu_q, sigma


def _supply_dv(pm, split: RegionSplit) -> np.ndarray:
    """Per LV grid and op, its MV bus's squared voltage in the solved master less v₀ (pu²)."""
    net_blk = pm.blocks["network"][1]
    slack_v = net_blk._meta["slack_v"]
    v0 = float(split.region.network.slack["vm_pu"].iloc[0]) ** 2
    n_ops = pm.index.n_ops
    out = np.zeros((len(split.lv), n_ops))
    for g, grid in enumerate(split.lv):
        j = grid.mv_bus
        out[g] = [slack_v[j] - v0 if j in slack_v else (net_blk.v[j, t].value or v0) - v0 for t in range(n_ops)]
    return out


def plan_region(instance, recipe="flex_vs_reinforce", *, lv_kv_max: float = LV_KV_MAX,
                lv_supply_vm_pu: float | None = None, max_iterations: int = 30, tol: float = 1e-5,
                voltage_tol_pu: float = 1e-4, max_voltage_rounds: int = 5, mip_gap: float = 1e-4, workers: int = 1,
                scheduler: str | None = None, out: str | Path | None = None, progress=None,
                **highs_options) -> RegionResult:
    """Plan a region (an MV grid with its LV grids) by Dantzig–Wolfe decomposition (module
    docstring).  ``tol``: stop a round when the master LP is within this relative distance of the
    lower bound, or no LV grid offers a column that lowers it by more; ``voltage_tol_pu``: stop
    the voltage rounds when no LV grid's supply voltage moved by more (pu);
    ``workers`` > 1: pricing solves on a process pool, ``scheduler``: on Dask (``"local"`` for a
    LocalCluster of ``workers`` processes, or a scheduler address); ``out``: the checkpoint
    folder."""
    from . import solve
    from .solve import HighsSession, SolveOptions

    t_start = time.perf_counter()
    split = split_region(instance, lv_kv_max, lv_supply_vm_pu)
    say = progress or (lambda _msg: None)
    say(f"region {split.region.name}: MV grid of {split.mv.network.n_buses} buses, {len(split.lv)} LV grids "
        f"({sum(g.instance.network.n_buses - 1 for g in split.lv)} buses)")
    solve_kw = dict(mip_gap=mip_gap, **highs_options)
    runner = _Runner(workers, scheduler, out)
    history = []
    n_ops = None
    dv = None  # per grid and op: squared supply voltage less v0 (None: v0)
    mu = None  # the last prices: (mu_p, mu_q) per grid
    try:
        for rnd in range(1, max_voltage_rounds + 1):
            label = "every LV grid alone" if mu is None else "at the last prices"
            say(f"  voltage round {rnd}: LV grids supplied at " +
                ("the slack's voltage" if dv is None else "the MV plan's voltages") + f", first columns {label}")
            jobs = [(g.name, g.instance, None if mu is None else mu[0][i], None if mu is None else mu[1][i],
                     None if dv is None else dv[i]) for i, g in enumerate(split.lv)]
            cols = [[c] for c in runner.run(jobs, recipe, solve_kw, progress)]
            n_ops = len(cols[0][0]["p"])
            lower = -np.inf
            for it in range(1, max_iterations + 1):
                t0 = time.perf_counter()
                pm = _master(split, recipe, cols, integer=False)
                session = HighsSession(pm.model, SolveOptions(mip_gap=mip_gap, extra=dict(highs_options)))
                session.relax_integers()
                outcome = session.run()
                if outcome.status != "optimal":
                    raise RecipeError(f"region master LP (round {rnd}, iteration {it}): {outcome.status} "
                                      f"({outcome.highs_status})")
                z = float(outcome.objective)
                mu_p, mu_q, sigma = _duals(pm, session, len(split.lv), n_ops)
                mu = (mu_p, mu_q)
                new = runner.run([(g.name, g.instance, mu_p[i], mu_q[i], None if dv is None else dv[i])
                                  for i, g in enumerate(split.lv)], recipe, solve_kw, progress)
                rc = np.array([c["objective"] - sigma[i] for i, c in enumerate(new)])
                rc_bound = np.array([c["dual_bound"] - sigma[i] for i, c in enumerate(new)])
                lower = max(lower, z + float(np.minimum(rc_bound, 0.0).sum()))
                added = 0
                for i, c in enumerate(new):
                    if rc[i] < -tol * max(1.0, abs(z)) / len(split.lv):
                        cols[i].append(c)
                        added += 1
                gap = (z - lower) / max(1.0, abs(z))
                history.append(dict(round=rnd, iteration=it, master_lp_eur=z, lower_bound_eur=lower, gap=gap,
                                    columns_added=added, most_negative_reduced_cost_eur=float(rc.min()),
                                    seconds=time.perf_counter() - t0))
                say(f"  round {rnd} iteration {it}: master LP {z:,.2f} EUR, bound {lower:,.2f} EUR "
                    f"(gap {100 * gap:.4f} %), {added} column(s) added, {time.perf_counter() - t0:.1f} s")
                if added == 0 or gap <= tol:
                    break
            # Lagrangian bound at the last prices, with the MV grid's integer decisions: the MV grid
            # alone with its LV imports free and priced, plus every LV grid's priced bound
            lag = solve(_master(split, recipe, cols, integer=True, prices=(mu_p, mu_q)), mip_gap=mip_gap,
                        **highs_options)
            if lag.has_solution:
                mv_bound = lag.extra.get("dual_bound_eur")
                mv_bound = lag.objective_eur * (1 - (lag.mip_gap or 0.0)) if mv_bound is None else mv_bound
                lagrangian = float(mv_bound) + float(sum(c["dual_bound"] for c in new))
                lower = max(lower, lagrangian)
                say(f"  round {rnd}: Lagrangian bound with the MV grid's integer decisions {lagrangian:,.2f} EUR")
                history[-1]["lagrangian_bound_eur"] = lagrangian
            pm = _master(split, recipe, cols, integer=True)
            say(f"  round {rnd}: one plan per LV grid and the MV grid's decisions (MIP)")
            mv_res = solve(pm, mip_gap=mip_gap, **highs_options)
            if not mv_res.has_solution:
                raise RecipeError(f"region master: no plan ({mv_res.status}, HiGHS: {mv_res.highs_status})")
            new_dv = _supply_dv(pm, split)
            v0 = float(split.region.network.slack["vm_pu"].iloc[0]) ** 2
            old = np.zeros_like(new_dv) if dv is None else dv
            moved = float(np.max(np.abs(np.sqrt(v0 + new_dv) - np.sqrt(v0 + old)))) if new_dv.size else 0.0
            say(f"  round {rnd}: {mv_res.objective_eur:,.2f} EUR; the LV grids' supply voltages moved by up to "
                f"{moved:.5f} pu")
            if moved <= voltage_tol_pu:
                break
            dv = new_dv
    except BaseException:
        runner.close(abort=True)
        raise
    runner.close()
    blk = pm.model.lv_grids
    rows, plans = [], {}
    for g, grid in enumerate(split.lv):
        k = max(range(len(cols[g])), key=lambda k: blk.lam[g, k].value or 0.0)
        c = cols[g][k]
        plans[grid.name] = c
        rows.append(dict(grid=grid.name, mv_bus=grid.mv_bus_name, buses=grid.instance.network.n_buses - 1,
                         evs=sum(float(f.evs.max()) * len(f.buses) for f in grid.instance.ev_fleets),
                         cost_eur=c["cost"], investment_eur=c["costs"].get("investment", 0.0),
                         builds="; ".join(f"{b.year} {b.asset}" for b in c["builds"].itertuples()),
                         reinforced=bool(len(c["builds"])), import_peak_mw=float(c["p"].max()),
                         supply_v_min_pu=float(np.sqrt(v0 + c["dv"]).min()), columns=len(cols[g]), chosen_column=k))
    obj = float(mv_res.objective_eur)
    lower = min(lower, obj) if np.isfinite(lower) else lower
    if moved > voltage_tol_pu:
        say(f"  warning: after {max_voltage_rounds} voltage rounds the LV grids' supply voltages still moved by "
            f"{moved:.5f} pu: raise max_voltage_rounds")
    return RegionResult(objective_eur=obj, bound_eur=float(lower), gap=(obj - lower) / max(1.0, abs(obj)),
                        status=mv_res.status, mv=mv_res, grids=pd.DataFrame(rows), iterations=pd.DataFrame(history),
                        lv_plans=plans, timings_s=dict(total=time.perf_counter() - t_start),
                        voltage_moved_pu=moved,
                        pricing=dict(solved=runner.solved - runner.baseline, no_solve_needed=runner.baseline,
                                     checkpoints=runner.reused, repeated=runner.repeated, shifted=runner.shifted))


def plan_monolithic(instance, recipe="flex_vs_reinforce", mip_gap: float = 1e-4, progress=None, **highs_options):
    """The region as one model (the reference the decomposition is checked against; with a
    scenario tree, its extensive form)."""
    from . import solve
    from .assemble import build_model

    return solve(build_model(instance, recipe, index=_index(instance)), mip_gap=mip_gap, progress=progress,
                 **highs_options)


# -- a region study: EV uptake, with and without flexibility ----------------------------------------
def region_study(instance, recipe="flex_vs_reinforce", ev_scales=(1.0,), reference: bool = True,
                 progress=None, **plan_kw) -> dict:
    """Plan the region at each EV uptake (every fleet's EV counts times a scale) with the recipe
    and, with ``reference``, with its flexibility removed (:func:`flexplan.value.reference_recipe`:
    the EV fleets uncontrolled).  Returns ``plans`` ((scale, "flex" | "no_flex") -> RegionResult),
    ``grids`` (one row per scale and LV grid: cost, investment and whether it is reinforced, with and
    without flexibility, and the value of flexibility there) and ``uptake`` (per scale: EVs, the
    share of LV grids reinforced with and without flexibility, the region's investment and cost)."""
    from .assemble import load_instance
    from .paths import resolve_instance_path
    from .sensitivity import apply
    from .value import reference_recipe

    inst = instance if not isinstance(instance, (str, Path)) else load_instance(resolve_instance_path(instance))
    ref = reference_recipe(recipe) if reference else None
    say = progress or (lambda _m: None)
    out_dir = plan_kw.pop("out", None)
    plans, rows, uptake = {}, [], []
    for scale in ev_scales:
        sc_inst, _ = apply(inst, recipe, "ev_fleets.scale", scale) if scale != 1.0 else (inst, recipe)
        evs = sum(float(f.evs.iloc[-1]) * len(f.buses) for f in sc_inst.ev_fleets)
        for label, rec in (("flex", recipe), ("no_flex", ref)):
            if rec is None:
                continue
            say(f"EV scale {scale:g} ({evs:,.0f} EVs in the last year), {label}:")
            plans[scale, label] = plan_region(sc_inst, rec, progress=progress, out=out_dir, **plan_kw)
        flex = plans[scale, "flex"].grids.set_index("grid")
        nof = plans[scale, "no_flex"].grids.set_index("grid") if ref is not None else None
        for g, r in flex.iterrows():
            row = dict(ev_scale=scale, grid=g, mv_bus=r["mv_bus"], evs=r["evs"], cost_eur=r["cost_eur"],
                       investment_eur=r["investment_eur"], reinforced=r["reinforced"], builds=r["builds"])
            if nof is not None:
                row.update(cost_no_flex_eur=nof.at[g, "cost_eur"], investment_no_flex_eur=nof.at[g, "investment_eur"],
                           reinforced_no_flex=nof.at[g, "reinforced"],
                           value_of_flexibility_eur=nof.at[g, "cost_eur"] - r["cost_eur"])
            rows.append(row)
        res = plans[scale, "flex"]
        u = dict(ev_scale=scale, evs=evs, lv_grids=len(flex), share_reinforced=float(flex["reinforced"].mean()),
                 region_cost_eur=res.objective_eur, region_bound_eur=res.bound_eur,
                 investment_eur=float(flex["investment_eur"].sum()) + res.mv.cost_breakdown_eur.get("investment", 0.0))
        if nof is not None:
            rr = plans[scale, "no_flex"]
            u.update(share_reinforced_no_flex=float(nof["reinforced"].mean()), region_cost_no_flex_eur=rr.objective_eur,
                     investment_no_flex_eur=float(nof["investment_eur"].sum())
                     + rr.mv.cost_breakdown_eur.get("investment", 0.0),
                     value_of_flexibility_eur=rr.objective_eur - res.objective_eur)
        uptake.append(u)
    return dict(instance=inst.name, recipe=str(getattr(recipe, "name", recipe)), plans=plans, grids=pd.DataFrame(rows),
                uptake=pd.DataFrame(uptake))


def write_study(study: dict, folder: str | Path, force: bool = False) -> Path:
    """Write a region study to ``folder`` atomically (:mod:`flexplan.outdir`): ``summary.json``,
    ``uptake.csv``, ``grids.csv``, ``iterations.csv``, ``mv/`` (the MV grid's results at the last
    scale, with flexibility), ``uptake.png`` (share of LV grids reinforced against EVs, with and
    without flexibility) and ``value_by_grid.png`` (where flexibility is worth most)."""
    from .results import _clean, atomic_folder

    with atomic_folder(folder, force=force) as (tmp, folder):
        study["uptake"].to_csv(tmp / "uptake.csv", index=False)
        study["grids"].to_csv(tmp / "grids.csv", index=False)
        its = [r.iterations.assign(ev_scale=s, plan=label) for (s, label), r in study["plans"].items()]
        pd.concat(its, ignore_index=True).to_csv(tmp / "iterations.csv", index=False)
        last = max(s for s, _ in study["plans"])
        study["plans"][last, "flex"].mv.write(tmp / "mv", plots=True)
        summary = dict(instance=study["instance"], recipe=study["recipe"], uptake=study["uptake"].to_dict("records"),
                       plans={f"{s:g}/{label}": dict(objective_eur=r.objective_eur, bound_eur=r.bound_eur, gap=r.gap,
                                                      status=r.status, voltage_moved_pu=r.voltage_moved_pu,
                                                      pricing=r.pricing, timings_s=r.timings_s)
                              for (s, label), r in study["plans"].items()})
        (tmp / "summary.json").write_text(json.dumps(_clean(summary), indent=2) + "\n")
        _plots(study, tmp)
    return folder


def _plots(study: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    up = study["uptake"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(up["evs"], 100 * up["share_reinforced"], "o-", label="with flexibility")
    if "share_reinforced_no_flex" in up:
        ax.plot(up["evs"], 100 * up["share_reinforced_no_flex"], "s--", label="EVs uncontrolled")
    ax.set_xlabel("EVs in the region (last modelled year)")
    ax.set_ylabel("LV grids reinforced (%)")
    ax.set_ylim(-5, 105)
    ax.set_title(f"{study['instance']}: LV grids needing reinforcement")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "uptake.png", dpi=120)
    plt.close(fig)
    g = study["grids"]
    if "value_of_flexibility_eur" in g and len(g):
        last = g[g["ev_scale"] == g["ev_scale"].max()].sort_values("value_of_flexibility_eur", ascending=False)
        fig, ax = plt.subplots(figsize=(7, max(3, 0.22 * len(last) + 1)))
        colors = ["tab:red" if r else "tab:blue" for r in last["reinforced_no_flex"]]
        ax.barh(last["grid"].astype(str), last["value_of_flexibility_eur"] / 1e3, color=colors)
        ax.invert_yaxis()
        ax.set_xlabel("value of flexibility (kEUR, present value)")
        ax.set_title("where flexibility is worth most (red: reinforced without it)")
        fig.tight_layout()
        fig.savefig(folder / "value_by_grid.png", dpi=120)
        plt.close(fig)


#: a SimBench grid code (e.g. 1-MVLV-rural-all-2-sw, 1-LV-rural1--2-sw)
SIMBENCH_CODE = r"^\d-[A-Za-z0-9]+-[A-Za-z0-9]+-(?:[A-Za-z0-9]+)?-\d-(?:sw|no_sw)$"


def simbench_instance(code: str, cache: str | Path = Path("out") / "simbench", progress=None) -> Path:
    """The instance folder of SimBench grid ``code``, converted once (``flexplan.convert.simbench``,
    the ``simbench`` extra, which ships the data) into ``cache/<code>`` and reused from there."""
    import re
    import shutil
    import tempfile

    if not re.match(SIMBENCH_CODE, code):
        raise InstanceError([Problem(code, "neither an instance folder, a shipped instance nor a SimBench code "
                                           "(like 1-MVLV-rural-all-2-sw)")])
    folder = Path(cache) / code
    if (folder / "instance.toml").is_file():
        return folder
    try:
        from .convert.simbench import convert
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise InstanceError([Problem(code, "converting a SimBench code needs the simbench package: "
                                           "pip install -e \".[simbench]\"")]) from e
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{code}.tmp-", dir=folder.parent))
    try:
        convert(code, code, tmp, year=False, log=progress or (lambda _m: None))
        if folder.exists():  # another run converted it meanwhile
            shutil.rmtree(tmp)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
