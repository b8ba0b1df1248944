#!/usr/bin/env python
"""Benchmark the flexplan pipeline: load -> build -> hand-off -> HiGHS solve -> extract.

Every run of every case happens in a fresh Python subprocess, so that one case's Pyomo
objects and memory never leak into the next and the child's peak resident memory
(``getrusage(RUSAGE_SELF).ru_maxrss``, read by the child right after the solve) belongs
to that case alone.  Per case the script reports the median over ``--repeat`` runs of

* ``load``    ``flexplan.load_instance`` (CSV / TOML / pandapower conversion; imports of
              flexplan and pandapower are done before and reported apart as ``import``);
* ``build``   ``PlanningModel.timings['build']`` of ``flexplan.build_model``;
* ``handoff`` Pyomo ``LinearStandardFormCompiler`` + ``highspy.passModel``
              (``Results.timings_s['handoff']``);
* ``solve``   ``Highs.run()`` (``Results.timings_s['solve']``);
* ``extract`` ``flexplan.collect`` (``Results.timings_s['extract']``);
* ``other``   the rest of the ``flexplan.solve`` call (writing the solution back into the
              Pyomo variables, HiGHS set-up): wall time of ``flexplan.solve`` minus
              handoff, solve and extract;
* ``highs_alone`` HiGHS alone on the same model: the child saves the arrays of the very
              ``Highs`` object that solved it (``Highs.getLp()``: costs, bounds, the
              column-wise matrix, integrality) to an ``.npz`` file, bit for bit, and a
              second fresh process that imports only highspy and numpy passes them to a
              new ``Highs`` and runs it with the same options (mip_rel_gap, time_limit,
              threads, random_seed 0); ``Highs.run()``.  Not MPS: its text rounds the
              last digit of some coefficients, which is enough to send the simplex down
              another path (ieee33: 32,427 simplex iterations in 90 s from flexplan's
              arrays, 15,972 in 48 s from the MPS file of the same model).  ``same_path``
              says whether both solves took the same number of simplex iterations and
              branch-and-bound nodes;
* ``peak_mb`` the child's peak RSS (MB), ``base_mb`` its RSS after the imports;
* ``ratio``   (build + handoff + extract) / solve, from the medians;
* ``overhead_vs_alone`` (build + handoff + extract) / highs_alone, from the medians.

Cases: the shipped instances (``flexplan.paths``: every ``instances/*``) under the default
recipe ``reinforce_only`` (MIP, gap 1 %, ``--time-limit``), an instance with a ``[tree]``
also as one stochastic extensive form (``solve_stochastic(..., metrics=())``); with
``--instances`` every instance under every recipe in ``models/`` that fits it; synthetic
radial feeders in the CSV format that grow the number of buses, of representative days and
of investment stages separately from a small base case, and the same feeder with a
demand scenario tree of 2-16 scenarios (deeper or wider), solved as LP relaxations
(``reinforcement.binary = false``).

    PYTHONPATH=. python benchmarks/run_benchmarks.py --smoke      # 3 small cases, ~30 s (the pytest smoke test)
    PYTHONPATH=. python benchmarks/run_benchmarks.py --quick
    PYTHONPATH=. python benchmarks/run_benchmarks.py              # full run
    PYTHONPATH=. python benchmarks/run_benchmarks.py --instances --only ieee33_ev --time-limit 120
    PYTHONPATH=. python benchmarks/run_benchmarks.py --only syn --gc pause-freeze --out benchmarks/results/gc_pause_freeze.json

Results: ``--out`` (JSON, default benchmarks/results/latest.json), a CSV and a log-log
PNG beside it.  Progress goes to stderr, the final table to stdout.  Exit code 1 when a
case failed or when HiGHS alone found another objective on an LP (> 1e-6 relative).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

LP_RECIPE = {"name": "reinforce_lp", "blocks": ["demand", "reinforcement"],
             "network": {"formulation": "lindistflow", "polygon_sides": 12},
             "reinforcement": {"binary": False}}

# synthetic base case and the three sweeps (each grows one dimension of the base)
BASE = dict(buses=25, days=1, stages=2)
FULL_SWEEPS = {"buses": [25, 50, 100, 200, 400], "days": [1, 2, 4, 8, 16], "stages": [1, 2, 4, 8]}
QUICK_SWEEPS = {"buses": [25, 50], "days": [1, 2], "stages": [1, 2]}
SMOKE_BASE = dict(buses=10, days=1, stages=1)  # --smoke: a 10-bus feeder (and its 2-scenario tree)
SMOKE_SWEEPS = {"stages": [1]}
# scenario scale-up: the base feeder (25 buses, 1 day) with a demand scenario tree,
# (stages, branches per node after the first stage): scenarios = branches ** (stages - 1)
SCEN_BASE = dict(buses=25, days=1)
FULL_SCEN = {"scen_depth": [(2, 2), (3, 2), (4, 2), (5, 2)], "scen_width": [(2, 2), (2, 4), (2, 8), (2, 16)]}
QUICK_SCEN = {"scen_depth": [(2, 2), (3, 2)], "scen_width": [(2, 2), (2, 4)]}
SMOKE_SCEN = {"scen_depth": [(2, 2)], "scen_width": [(2, 2)]}
# blocks that act on EV fleets only: a recipe with one of them does not fit an instance without fleets
FLEET_ONLY_BLOCKS = {"ageing", "connection", "contracts", "grid_code", "tariffs"}
# relative tolerance on flexplan's objective vs HiGHS alone on the saved model (LPs)
OBJ_RTOL = 1e-6
# a case whose first run has at least this many variables is not repeated
LARGE_VARS = 100_000


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# synthetic instances
# ---------------------------------------------------------------------------------------
def write_synthetic(folder: Path, buses: int, days: int, stages: int, seed: int = 1, branches: int = 0) -> Path:
    """Write a radial 20 kV feeder with ``buses`` buses (bus b0 is the slack), ``days``
    representative days of 24 h and ``stages`` five-year investment stages (only the last
    year of each stage is modelled) in the CSV instance format; return the folder.

    Topology: bus i hangs below bus i-1 with probability 0.6, otherwise below a random
    earlier bus (a trunk with laterals).  Loads 0.1-0.4 MW at pf 0.95 on every bus but the
    slack, scaled so that the feeder's base-year peak is 8 MW; line ratings are the next
    standard size above 1.05 x the downstream base-year peak, so the 3 %/yr growth overloads
    some of them within the horizon.  Two cable types give a replacement candidate (where
    stronger) and a parallel candidate for every line.

    ``branches`` >= 2 adds a scenario tree (``[tree]``, the format of
    ``flexplan.instance.tree``): the same ``branches`` at every stage after the first, equally
    likely, with demand factors spread evenly over 0.8-1.2 (the feeder has no EV fleets, so
    demand is what is uncertain); ``branches ** (stages - 1)`` scenarios."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = buses
    parent = [-1] + [i - 1 if (i == 1 or rng.random() < 0.6) else int(rng.integers(0, i - 1)) for i in range(1, n)]
    p = np.zeros(n)
    p[1:] = rng.uniform(0.1, 0.4, n - 1)
    p *= 8.0 / p.sum()
    q = p * math.tan(math.acos(0.95))
    down = p.copy()
    for i in range(n - 1, 0, -1):
        down[parent[i]] += down[i]
    sizes = [2.0, 4.0, 6.0, 8.0, 10.0]  # MVA
    length = rng.uniform(0.2, 0.8, n)
    with open(folder / "buses.csv", "w") as f:
        f.write("name,vn_kv\n")
        f.writelines(f"b{i},20.0\n" for i in range(n))
    with open(folder / "lines.csv", "w") as f:
        f.write("name,from_bus,to_bus,r_ohm,x_ohm,rating_mva,length_km\n")
        for i in range(1, n):
            need = 1.05 * down[i] * math.hypot(1, math.tan(math.acos(0.95)))
            rating = next((s for s in sizes if s >= need), sizes[-1])
            L = length[i]
            f.write(f"l{i},b{parent[i]},b{i},{0.32 * L:.5f},{0.12 * L:.5f},{rating},{L:.4f}\n")
    with open(folder / "loads.csv", "w") as f:
        f.write("bus,p_mw,q_mvar\n")
        f.writelines(f"b{i},{p[i]:.5f},{q[i]:.5f}\n" for i in range(1, n))
    h = np.arange(24)
    with open(folder / "profiles.csv", "w") as f:
        f.write("day,hour,weight,residential\n")
        w = 365.0 / days
        for d in range(days):
            scale = 1.0 - 0.35 * d / max(days - 1, 1)  # day 0 is the peak day
            shape = 0.35 + 0.25 * np.exp(-0.5 * ((h - 8) / 1.5) ** 2) + 0.65 * np.exp(-0.5 * ((h - 19) / 2.0) ** 2)
            shape = scale * shape / shape.max()
            f.writelines(f"d{d},{t},{w:.6f},{shape[t]:.4f}\n" for t in h)
    y0 = 2025
    stage_years = [y0 + 5 * k for k in range(stages)]
    (folder / "instance.toml").write_text(f'''name = "synthetic_b{buses}_d{days}_s{stages}"
description = "benchmarks/run_benchmarks.py synthetic radial feeder (seed {seed})"

[network]
source = "csv"
buses = "buses.csv"
lines = "lines.csv"
loads = "loads.csv"
slack_bus = "b0"
default_class = "residential"

[profiles]
file = "profiles.csv"

[growth]
annual_rate = 0.03

[economics]
base_year = {y0}
end_year = {y0 + 5 * stages - 1}
stages = {stage_years}
discount_rate = 0.035
investment_cost = "annuity"

[operation]
years_per_stage = "last"

[limits]
v_min_pu = 0.90
v_max_pu = 1.10
max_loading_pct = 100.0

[reinforcement]
generate = ["replace", "parallel"]

[[reinforcement.line_types]]
name = "NA2XS2Y 1x150"
r_ohm_per_km = 0.206
x_ohm_per_km = 0.116
max_i_ka = 0.319
capex_eur_per_km = 80000
lifetime_years = 40

[[reinforcement.line_types]]
name = "NA2XS2Y 1x240"
r_ohm_per_km = 0.122
x_ohm_per_km = 0.112
max_i_ka = 0.421
capex_eur_per_km = 90000
lifetime_years = 40
''' + (tree_toml(branches) if branches else ""))
    return folder


def tree_toml(branches: int) -> str:
    """A ``[tree]`` section: ``branches`` equally likely branches per stage after the first,
    demand factors evenly spread over 0.8-1.2 (what :func:`flexplan.instance.tree.uptake_tree`
    builds with ``demand_factor``)."""
    if branches < 2:
        raise ValueError("a scenario tree needs at least 2 branches")
    names = [f"x{i}" for i in range(branches)]
    probs = [1.0 / branches] * branches
    probs[-1] = 1.0 - sum(probs[:-1])  # sums to 1 to the last bit
    dem = [round(0.8 + 0.4 * i / (branches - 1), 6) for i in range(branches)]
    return (f"\n[tree]\nbranches = {json.dumps(names)}\nprobabilities = [{', '.join(repr(x) for x in probs)}]\n"
            f"demand_factor = [{', '.join(repr(x) for x in dem)}]\n")


def shipped_cases(all_recipes: bool, time_limit: float, repeat: int, instance_repeat: int,
                  skip_cigre: bool) -> list[dict]:
    """The shipped instances (``flexplan.paths.shipped_instances()``, as ``flexplan list``
    shows them) under the default recipe or, with ``all_recipes``, under every recipe of
    ``shipped_models()`` that fits them (see :func:`fitting_recipes`).  An instance with a
    ``[tree]`` is also run as one stochastic extensive form under each of its recipes.
    ``ieee33`` and ``cigre_mv`` under the default recipe (the cases of the first benchmark)
    run ``repeat`` times, every other case ``instance_repeat`` times."""
    import tomllib

    from flexplan.paths import DEFAULT_RECIPE, shipped_instances, shipped_models
    from flexplan.recipe import resolve_recipe

    recipes = {p.stem: resolve_recipe(p) for p in sorted(shipped_models().glob("*.toml"))}
    cases = []
    first_cases = ["ieee33", "cigre_mv"]  # the cases of the first benchmark come first, the rest by name
    for p in sorted(shipped_instances().glob("*/instance.toml"),
                    key=lambda q: (first_cases.index(q.parent.name) if q.parent.name in first_cases else 9, q)):
        name = p.parent.name
        if skip_cigre and name == "cigre_mv":
            continue
        data = tomllib.loads(p.read_text())
        has_fleets, has_tree = bool(data.get("ev_fleets")), "tree" in data
        names = fitting_recipes(recipes, has_fleets, DEFAULT_RECIPE) if all_recipes else [DEFAULT_RECIPE]
        for r in names:
            for stochastic in ([False, True] if has_tree else [False]):
                label = name + ("" if r == DEFAULT_RECIPE else f":{r}") + (":stochastic" if stochastic else "")
                first = r == DEFAULT_RECIPE and not stochastic and name in first_cases
                cases.append(dict(name=label, family="instance", instance=str(p.parent), recipe=r, stochastic=stochastic,
                                  mip_gap=0.01, time_limit=time_limit, repeat=repeat if first else instance_repeat))
    return cases


def fitting_recipes(recipes: dict, has_fleets: bool, default: str) -> list[str]:
    """Recipe names that fit an instance, the default first.  With EV fleets: every recipe
    with an ``ev_fleet`` block (flexplan refuses the others).  Without: the recipes that
    use no fleet-only block (``FLEET_ONLY_BLOCKS``: tariffs, connection, grid_code,
    contracts, ageing), and of those that would build the same model (the same blocks and
    options once ``ev_fleet``, which has nothing to act on, is set aside) only the first."""
    order = [default] + sorted(n for n in recipes if n != default)
    out, seen = [], set()
    for n in order:
        r = recipes.get(n)
        if r is None:
            continue
        if has_fleets:
            if "ev_fleet" in r.blocks:
                out.append(n)
            continue
        if set(r.blocks) & FLEET_ONLY_BLOCKS:
            continue
        key = json.dumps([sorted(set(r.blocks) - {"ev_fleet"}), r.formulation,
                          {k: v for k, v in r.options.items() if k != "ev_fleet"}], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(n)
    return out


def case_list(mode: str, time_limit: float, repeat: int, skip_cigre: bool, instances: bool = False,
              instance_repeat: int = 1) -> list[dict]:
    """The cases to run (``mode``: smoke, quick or full).  ``repeat`` is the most runs per
    case: a case whose first run has >= LARGE_VARS variables runs once (see main)."""
    cases = []
    ieee33 = str(REPO / "instances" / "ieee33")
    if mode == "smoke":
        cases.append(dict(name="ieee33:reinforce_lp", family="instance", instance=ieee33, recipe=LP_RECIPE,
                          stochastic=False, mip_gap=0.01, time_limit=min(time_limit, 60.0), repeat=1))
    elif mode == "quick" and not instances:
        cases.append(dict(name="ieee33", family="instance", instance=ieee33, recipe="reinforce_only", stochastic=False,
                          mip_gap=0.01, time_limit=min(time_limit, 20.0), repeat=1))
    else:
        tl = min(time_limit, 20.0) if mode == "quick" else time_limit
        cases += shipped_cases(instances, tl, 1 if mode == "quick" else repeat,
                               1 if mode == "quick" else instance_repeat, skip_cigre)
    sweeps = {"smoke": SMOKE_SWEEPS, "quick": QUICK_SWEEPS}.get(mode, FULL_SWEEPS)
    n_rep = repeat if mode == "full" else 1
    seen = {}
    base = SMOKE_BASE if mode == "smoke" else BASE
    for dim, values in sweeps.items():
        for val in values:
            size = {**base, dim: val}
            key = (size["buses"], size["days"], size["stages"])
            name = f"syn_b{key[0]}_d{key[1]}_s{key[2]}"
            if key in seen:  # the base case sits in every sweep: run it once, tag it with all
                seen[key]["sweep"].append(dim)
                continue
            seen[key] = dict(name=name, family="synthetic", synthetic=size, sweep=[dim], recipe=LP_RECIPE,
                             stochastic=False, mip_gap=0.01, time_limit=time_limit, repeat=n_rep, light=mode == "smoke")
            cases.append(seen[key])
    scen = {"smoke": SMOKE_SCEN, "quick": QUICK_SCEN}.get(mode, FULL_SCEN)
    seen = {}
    for dim, values in scen.items():
        for stages, branches in values:
            if (stages, branches) in seen:
                seen[(stages, branches)]["sweep"].append(dim)
                continue
            size = dict(SCEN_BASE, buses=base["buses"], stages=stages, branches=branches)
            seen[(stages, branches)] = dict(
                name=f"scen{branches ** (stages - 1)}_s{stages}x{branches}" + (f"_b{base['buses']}" if mode == "smoke" else ""),
                family="scenarios", synthetic=size,
                sweep=[dim], recipe=LP_RECIPE, stochastic=True, mip_gap=0.01, time_limit=time_limit, repeat=n_rep,
                light=mode == "smoke")
            cases.append(seen[(stages, branches)])
    return cases


# ---------------------------------------------------------------------------------------
# one run, in a child process
# ---------------------------------------------------------------------------------------
class CaptureHighs:
    """While active, every ``highspy.Highs`` that flexplan creates is a subclass that
    remembers the latest instance (``.last``), so that the object that solved the model
    can be saved afterwards: flexplan's own solve path runs unchanged."""

    def __enter__(self):
        import highspy

        self._module, self._orig, self.last = highspy, highspy.Highs, None
        outer = self

        class Highs(self._orig):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                outer.last = self

        highspy.Highs = Highs
        return self

    def __exit__(self, *exc):
        self._module.Highs = self._orig
        return False


def worker(spec_path: str, out_path: str) -> None:
    import resource

    spec = json.loads(Path(spec_path).read_text())
    t0 = time.perf_counter()
    import scipy.sparse  # noqa: F401  (Pyomo's standard-form compiler imports it at the first hand-off)

    import flexplan as fp
    if spec.get("import_pandapower", True):
        import pandapower.networks  # noqa: F401  (pandapower's import is not load time)
    t_import = time.perf_counter() - t0
    base_mb = _rss_mb()

    t = time.perf_counter()
    inst = fp.load_instance(spec["instance"])
    t_load = time.perf_counter() - t
    opts = dict(time_limit=spec["time_limit"], mip_gap=spec["mip_gap"], threads=spec.get("threads", 0))
    pm = None
    if spec.get("stochastic"):
        # one extensive form over the instance's tree; build, hand-off, solve and extract as in
        # the deterministic case, 'other' = the rest of solve_stochastic (tree index, tables)
        from flexplan.index import tree_index
        from flexplan.stochastic import solve_stochastic

        t = time.perf_counter()
        with CaptureHighs() as cap:
            res = solve_stochastic(inst, spec["recipe"], metrics=(), **opts)
        t_call = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        ts = res.timings_s
        t_build_call = None
        other = t_call - ts["build"] - ts["handoff"] - ts["solve"] - ts["extract"]
        ix = tree_index(inst, inst.tree)
        n_ops, nodes, scenarios = int(ix.n_ops), len(ix.node_names), len(inst.tree.scenarios())
    else:
        t = time.perf_counter()
        gc_mode = spec.get("gc_mode", "on")
        if gc_mode == "on":
            pm = fp.build_model(inst, spec["recipe"])
        else:  # experiment: Python's cyclic GC paused while the model is built (flexplan does not do this)
            import gc

            from pyomo.common.gc_manager import PauseGC

            with PauseGC():
                pm = fp.build_model(inst, spec["recipe"])
                if gc_mode == "pause-freeze":  # the model's objects go to the permanent generation
                    gc.freeze()
        t_build_call = time.perf_counter() - t
        t = time.perf_counter()
        with CaptureHighs() as cap:
            res = fp.solve(pm, **opts)
        t_solve_call = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        ts = res.timings_s
        other = t_solve_call - ts["handoff"] - ts["solve"] - ts["extract"]
        n_ops, nodes, scenarios = int(pm.index.n_ops), len(pm.index.node_names), 1
    out = dict(import_s=t_import, load_s=t_load, build_s=ts["build"], build_call_s=t_build_call,
               handoff_s=ts["handoff"], solve_s=ts["solve"], extract_s=ts["extract"], other_s=other,
               peak_mb=peak_mb, base_mb=base_mb,
               status=res.status, objective_eur=res.objective_eur, mip_gap=res.mip_gap, size=res.size,
               ops=n_ops, buses=int(inst.network.n_buses), branches=int(inst.network.n_branches),
               candidates=int(len(inst.candidates)), days=len(inst.profiles.days), nodes=nodes, scenarios=scenarios)
    h = cap.last
    if h is not None:  # the path HiGHS took, to compare with HiGHS alone's
        info = h.getInfo()
        out.update(simplex_iterations=int(info.simplex_iteration_count), mip_nodes=int(info.mip_node_count))
    if spec.get("model_file"):  # the model exactly as HiGHS got it, for HiGHS alone (after the measurements above)
        t = time.perf_counter()
        out.update(write_model(h, pm, res.size, spec["model_file"]))
        out["model_write_s"] = time.perf_counter() - t
    Path(out_path).write_text(json.dumps(out))


LP_ARRAYS = ("col_cost_", "col_lower_", "col_upper_", "row_lower_", "row_upper_")


def write_model(h, pm, size: dict, path: str) -> dict:
    """Save the model of ``h`` (the Highs object that solved it) to ``path`` as the arrays
    of its ``HighsLp`` (``numpy.savez``: every double bit for bit).  Should flexplan ever
    create its Highs object another way, so that none was captured, the model is compiled
    again with ``flexplan.solve.to_highs`` (deterministic cases only)."""
    import highspy
    import numpy as np

    source = "captured"
    if h is None:
        if pm is None:
            raise RuntimeError("no Highs object was captured during the stochastic solve")
        from flexplan.solve import pass_model, to_highs

        lp = to_highs(pm.model)[0]
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        pass_model(h, lp)
        source = "recompiled"
    if (h.getNumCol(), h.getNumRow()) != (size["variables"], size["constraints"]):
        raise RuntimeError(f"the captured HiGHS model has {h.getNumCol()} columns and {h.getNumRow()} rows, "
                           f"flexplan reported {size['variables']} and {size['constraints']}")
    lp = h.getLp()
    a = lp.a_matrix_
    if a.format_ != highspy.MatrixFormat.kColwise:
        raise RuntimeError(f"the captured HiGHS matrix is {a.format_}, expected column-wise")
    arrays = {k: np.asarray(getattr(lp, k), dtype=np.float64) for k in LP_ARRAYS}
    arrays.update(start=np.asarray(a.start_, dtype=np.int64), index=np.asarray(a.index_, dtype=np.int64),
                  value=np.asarray(a.value_, dtype=np.float64),
                  integer=np.asarray([t == highspy.HighsVarType.kInteger for t in lp.integrality_], dtype=bool),
                  offset=np.float64(lp.offset_), maximize=lp.sense_ == highspy.ObjSense.kMaximize)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return dict(model_source=source, model_mb=os.path.getsize(path) / 1e6)


def read_model(path: str):
    """The ``HighsLp`` saved by :func:`write_model`."""
    import highspy
    import numpy as np

    z = np.load(path)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(z["col_cost_"]), len(z["row_lower_"])
    for k in LP_ARRAYS:
        setattr(lp, k, z[k])
    lp.offset_ = float(z["offset"])
    lp.sense_ = highspy.ObjSense.kMaximize if bool(z["maximize"]) else highspy.ObjSense.kMinimize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = z["start"], z["index"], z["value"]
    if z["integer"].any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if f else highspy.HighsVarType.kContinuous
                           for f in z["integer"]]
    return lp


def highs_alone_worker(spec_path: str, out_path: str) -> None:
    """HiGHS alone: pass the saved arrays to a new Highs and solve it with flexplan's
    options.  Only highspy and numpy are imported (this module itself imports the standard
    library only)."""
    import resource

    spec = json.loads(Path(spec_path).read_text())
    t0 = time.perf_counter()
    import highspy

    t_import = time.perf_counter() - t0
    h = highspy.Highs()
    # the options of flexplan.solve.solve_model, in the same order
    h.setOptionValue("output_flag", False)
    h.setOptionValue("random_seed", 0)
    if spec["time_limit"] is not None:
        h.setOptionValue("time_limit", float(spec["time_limit"]))
    h.setOptionValue("mip_rel_gap", float(spec["mip_gap"]))
    if spec.get("threads"):
        h.setOptionValue("threads", int(spec["threads"]))
    t = time.perf_counter()
    if h.passModel(read_model(spec["model_file"])) == highspy.HighsStatus.kError:
        raise RuntimeError(f"HiGHS refused the model saved in {spec['model_file']}")
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    h.run()
    t_run = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    gap = float(info.mip_gap) if math.isfinite(info.mip_gap) else None  # an LP has none (the parent knows)
    out = dict(highs_alone_import_s=t_import, highs_alone_read_s=t_read, highs_alone_s=t_run,
               highs_alone_runtime_s=h.getRunTime(), highs_alone_status=h.modelStatusToString(h.getModelStatus()),
               highs_alone_objective_eur=float(info.objective_function_value) if has_solution else None,
               highs_alone_mip_gap=gap, highs_alone_vars=h.getNumCol(), highs_alone_cons=h.getNumRow(),
               highs_alone_peak_mb=peak_mb, highs_alone_simplex_iterations=int(info.simplex_iteration_count),
               highs_alone_mip_nodes=int(info.mip_node_count))
    Path(out_path).write_text(json.dumps(out))


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _child(args: list[str], wall_limit: float, what: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve())] + args, env=env, capture_output=True,
                          text=True, timeout=wall_limit)
    if proc.returncode != 0 or not Path(args[-1]).exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def run_once(case: dict, instance: str, threads: int, wall_limit: float, gc_mode: str = "on",
             alone: bool = True) -> dict:
    """One flexplan run of ``case`` in a child process and, with ``alone``, HiGHS alone on
    the model file that child wrote, in another."""
    with tempfile.TemporaryDirectory(prefix="flexplan-bench-") as tmp:
        model_file = str(Path(tmp) / "model.npz") if alone else None
        spec = {"instance": instance, "recipe": case["recipe"], "time_limit": case["time_limit"],
                "mip_gap": case["mip_gap"], "threads": threads, "gc_mode": gc_mode,
                "stochastic": case.get("stochastic", False), "model_file": model_file,
                # --smoke leaves pandapower out of a synthetic (CSV) case, which does not need it
                "import_pandapower": not case.get("light")}
        sp, op = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        sp.write_text(json.dumps(spec))
        t = time.perf_counter()
        _child(["--_worker", str(sp), str(op)], wall_limit, f"{case['name']}: worker")
        wall = time.perf_counter() - t
        out = json.loads(op.read_text())
        out["wall_s"] = wall
        if alone:
            ap = Path(tmp) / "alone.json"
            t = time.perf_counter()
            _child(["--_highs_alone", str(sp), str(ap)], wall_limit, f"{case['name']}: HiGHS alone")
            out.update(json.loads(ap.read_text()))
            out["highs_alone_wall_s"] = time.perf_counter() - t
            if (out["highs_alone_vars"], out["highs_alone_cons"]) != (out["size"]["variables"],
                                                                       out["size"]["constraints"]):
                raise RuntimeError(f"{case['name']}: the saved model has {out['highs_alone_vars']} columns and "
                                   f"{out['highs_alone_cons']} rows, flexplan's model {out['size']}")
    out.update(objective_check(out))
    return out


def objective_check(r: dict) -> dict:
    """flexplan's objective against HiGHS alone's: the relative difference and, for an LP
    solved to optimality by both, 'ok' (within OBJ_RTOL) or 'MISMATCH'; 'mip' for a MIP
    (branch and bound may stop at another point within the gap), 'n/a' otherwise."""
    a, f = r.get("highs_alone_objective_eur"), r.get("objective_eur")
    if a is None or f is None:
        return dict(objective_rel_diff=None, objective_check="n/a")
    rel = abs(a - f) / max(abs(f), 1e-9)
    if r["size"]["binaries"]:
        check = "mip"
    elif r["status"] == "optimal" and r.get("highs_alone_status") == "Optimal":
        check = "ok" if rel <= OBJ_RTOL else "MISMATCH"
    else:
        check = "n/a"
    return dict(objective_rel_diff=rel, objective_check=check)


# ---------------------------------------------------------------------------------------
# aggregation, output
# ---------------------------------------------------------------------------------------
TIME_KEYS = ["import_s", "load_s", "build_s", "handoff_s", "solve_s", "extract_s", "other_s", "wall_s"]
ALONE_KEYS = ["highs_alone_s", "highs_alone_read_s", "highs_alone_runtime_s", "highs_alone_peak_mb", "model_write_s",
              "model_mb"]
CHECK_ORDER = ["MISMATCH", "n/a", "mip", "ok"]  # the worst over the runs is reported


def _median(runs: list[dict], key: str):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(vals), 4) if vals else None


def same_path(runs: list[dict]):
    """Whether HiGHS alone took the very path flexplan's HiGHS took in every run (same
    simplex iterations and branch-and-bound nodes): True, False, or None when not known."""
    pairs = [(r.get("simplex_iterations"), r.get("mip_nodes"), r.get("highs_alone_simplex_iterations"),
              r.get("highs_alone_mip_nodes")) for r in runs]
    if not pairs or any(x is None for p in pairs for x in p):
        return None
    return all(p[:2] == p[2:] for p in pairs)


def summarise(case: dict, runs: list[dict]) -> dict:
    med = {k: statistics.median(r[k] for r in runs) for k in TIME_KEYS + ["peak_mb", "base_mb"]}
    first = runs[0]
    solve = med["solve_s"]
    around = med["build_s"] + med["handoff_s"] + med["extract_s"]
    ratio = around / solve if solve > 0 else float("nan")
    alone = {k: _median(runs, k) for k in ALONE_KEYS}
    ovh = around / alone["highs_alone_s"] if alone["highs_alone_s"] else None
    diffs = [r["objective_rel_diff"] for r in runs if r.get("objective_rel_diff") is not None]
    checks = {r.get("objective_check", "n/a") for r in runs}
    recipe = case["recipe"] if isinstance(case["recipe"], str) else case["recipe"]["name"]
    row = dict(case=case["name"], family=case["family"], kind="mip" if first["size"]["binaries"] else "lp",
               recipe=recipe, stochastic=bool(case.get("stochastic")),
               sweep="+".join(case.get("sweep", [])) or "-",
               runs=len(runs), buses=first["buses"], branches=first["branches"], candidates=first["candidates"],
               days=first["days"], nodes=first["nodes"], scenarios=first["scenarios"], ops=first["ops"],
               **first["size"], **{k: round(v, 4) for k, v in med.items()}, ratio=round(ratio, 4),
               **alone, overhead_vs_alone=None if ovh is None else round(ovh, 4),
               status=",".join(sorted({r["status"] for r in runs})),
               mip_gap=first["mip_gap"], objective_eur=first["objective_eur"],
               highs_alone_status=",".join(sorted({str(r.get("highs_alone_status")) for r in runs})),
               highs_alone_objective_eur=first.get("highs_alone_objective_eur"),
               highs_alone_mip_gap=first.get("highs_alone_mip_gap") if first["size"]["binaries"] else None,
               objective_rel_diff=max(diffs) if diffs else None,
               objective_check=next(c for c in CHECK_ORDER + sorted(checks) if c in checks),
               same_path=same_path(runs), model_source=first.get("model_source"), time_limit_s=case["time_limit"])
    row["min_solve_s"] = round(min(r["solve_s"] for r in runs), 4)
    row["max_solve_s"] = round(max(r["solve_s"] for r in runs), 4)
    return row


COLS = [("case", "case", "{}"), ("variables", "vars", "{:,}"), ("constraints", "cons", "{:,}"),
        ("binaries", "bin", "{}"), ("nonzeros", "nnz", "{:,}"), ("load_s", "load", "{:.2f}"),
        ("build_s", "build", "{:.2f}"), ("handoff_s", "handoff", "{:.2f}"), ("solve_s", "solve", "{:.2f}"),
        ("highs_alone_s", "alone", "{:.2f}"), ("extract_s", "extract", "{:.2f}"), ("peak_mb", "peak MB", "{:.0f}"),
        ("ratio", "ratio", "{:.2f}"), ("overhead_vs_alone", "ovh/alone", "{:.2f}"),
        ("objective_rel_diff", "obj diff", "{:.0e}"), ("runs", "n", "{}"), ("status", "status", "{}")]


def table(rows: list[dict], markdown: bool = False) -> str:
    cells = [[fmt.format(r[k]) if r.get(k) is not None else "-" for k, _, fmt in COLS] for r in rows]
    heads = [h for _, h, _ in COLS]
    if markdown:
        out = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" if i == 0 or h == "status" else "---:"
                                                            for i, h in enumerate(heads)) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(out)
    w = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    line = lambda c: "  ".join(s.ljust(w[i]) if i in (0, len(w) - 1) else s.rjust(w[i]) for i, s in enumerate(c))
    return "\n".join([line(heads), line(["-" * x for x in w])] + [line(c) for c in cells])


def fit_exponent(xs, ys):
    """Least-squares slope and intercept of log y = a + b log x (None with < 2 points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2:
        return None, None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None, None
    b = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return b, my - b * mx


FIT_KEYS = ("build_s", "handoff_s", "solve_s", "highs_alone_s", "extract_s")


def fits(rows: list[dict]) -> dict:
    """Exponents b of t ~ variables^b: over the synthetic sweeps (all, and each sweep) and
    over the scenario sweeps (``*_scenarios``: all, and each)."""
    rnd = lambda v, n=3: None if v is None else round(v, n)
    syn = [r for r in rows if r["family"] == "synthetic"]
    scen = [r for r in rows if r["family"] == "scenarios"]
    out = {}
    for key in FIT_KEYS:
        b, a = fit_exponent([r["variables"] for r in syn], [r.get(key) for r in syn])
        out[key] = dict(exponent=rnd(b), log_intercept=rnd(a, 4), points=len(syn))
        for dim in ("buses", "days", "stages"):
            sub = [r for r in syn if dim in r["sweep"].split("+")]
            b, _ = fit_exponent([r["variables"] for r in sub], [r.get(key) for r in sub])
            out[key][f"exponent_{dim}_sweep"] = rnd(b)
        b, a = fit_exponent([r["variables"] for r in scen], [r.get(key) for r in scen])
        out[key].update(exponent_scenarios=rnd(b), log_intercept_scenarios=rnd(a, 4), points_scenarios=len(scen))
        for dim in ("scen_depth", "scen_width"):
            sub = [r for r in scen if dim in r["sweep"].split("+")]
            b, _ = fit_exponent([r["variables"] for r in sub], [r.get(key) for r in sub])
            out[key][f"exponent_{dim}_sweep"] = rnd(b)
    return out


STYLES = {"build_s": ("build", "tab:blue", "o"), "handoff_s": ("hand-off", "tab:green", "^"),
          "solve_s": ("solve (HiGHS in flexplan)", "tab:red", "s"), "highs_alone_s": ("HiGHS alone", "tab:purple", "D")}


def _panel(ax, fitted: list[dict], others: list[dict], fit: dict, suffix: str, what: str, title: str) -> None:
    for key, (label, color, marker) in STYLES.items():
        xs = [r["variables"] for r in fitted if r.get(key)]
        ys = [r[key] for r in fitted if r.get(key)]
        b = fit.get(key, {}).get(f"exponent{suffix}")
        a = fit.get(key, {}).get(f"log_intercept{suffix}")
        if xs:
            ax.scatter(xs, ys, color=color, marker=marker, zorder=3,
                       label=f"{label}, {what}" + (f": t ~ n^{b:.2f}" if b is not None else ""))
        if b is not None and xs:
            lo, hi = min(xs), max(xs)
            grid = [lo * (hi / lo) ** (i / 40) for i in range(41)]
            ax.plot(grid, [math.exp(a) * g ** b for g in grid], color=color, lw=1, alpha=0.7)
        pts = [(r["variables"], r[key]) for r in others if r.get(key)]
        if pts:
            ax.scatter(*zip(*pts), facecolors="none", edgecolors=color, marker=marker, s=90, lw=1.5, zorder=3,
                       label=f"{label}, instances (not fitted)")
    for r in others:
        ax.annotate(r["case"] + (" (time limit)" if "time_limit" in r["status"] else ""),
                    (r["variables"], r["solve_s"]), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("variables")
    ax.set_ylabel("time (s), median")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")


def plot(rows: list[dict], fit: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    syn = [r for r in rows if r["family"] == "synthetic"]
    inst = [r for r in rows if r["family"] == "instance"]
    scen = [r for r in rows if r["family"] == "scenarios"]
    panels = 2 if scen else 1
    fig, axes = plt.subplots(1, panels, figsize=(7.5 * panels, 5.5), squeeze=False)
    _panel(axes[0][0], syn, inst, fit, "", "LP sweeps", "flexplan: build, hand-off and solve time vs model size")
    if scen:
        n = sorted({r["scenarios"] for r in scen})
        _panel(axes[0][1], scen, [], fit, "_scenarios", "scenario sweeps",
               f"stochastic extensive form (LP): {n[0]}-{n[-1]} scenarios" if len(n) > 1 else
               f"stochastic extensive form (LP): {n[0]} scenarios")
        for r in scen:
            axes[0][1].annotate(f"{r['scenarios']} sc., {r['nodes']} nodes", (r["variables"], r["solve_s"]),
                                textcoords="offset points", xytext=(6, -10), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


#: the modelling-overhead target of the benchmark issue: (build + hand-off + extract) <= 0.25 x HiGHS
RATIO_TARGET = 0.25


def plot_ratio(rows: list[dict], large: list[dict], path: Path) -> None:
    """Overhead ratio (build + hand-off + extract) / HiGHS solve against model size, log-log:
    every case of this run, and the large cases of ``large_cases.py`` (``large``: its rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    groups = [("synthetic", "lp", "synthetic LPs (buses, days, stages)", "tab:blue", "o"),
              ("scenarios", "lp", "stochastic LPs (scenario sweeps)", "tab:green", "^"),
              ("instance", "lp", "shipped instances, LP", "tab:orange", "D"),
              ("instance", "mip", "shipped instances, MIP", "tab:red", "s")]
    for family, kind, label, color, marker in groups:
        pts = [(r["variables"], r["ratio"]) for r in rows if r["family"] == family and r["kind"] == kind
               and r.get("ratio") and r["ratio"] > 0]
        if pts:
            ax.scatter(*zip(*pts), color=color, marker=marker, label=label, zorder=3)
    for case, label, color in (("lp", "SimBench MV x 4 stages x 12 days, LP", "black"),
                               ("mip", "same, MIP (TL: time limit, ratio an upper bound)", "tab:purple")):
        pts = sorted((r for r in large if r.get("case") == case and r.get("ratio")), key=lambda r: r["ratio"])
        if pts:
            ax.scatter([r["variables"] for r in pts], [r["ratio"] for r in pts], color=color, marker="*", s=160,
                       label=label, zorder=4)
            for i, r in enumerate(pts):
                tl = ", TL" if r.get("status") == "time_limit" else ""
                ax.annotate(f"x{r['scale']:g}{tl}", (r["variables"], r["ratio"]), textcoords="offset points",
                            xytext=(-9, -11 if i % 2 == 0 else 5), fontsize=7, ha="right")
    ax.axhline(RATIO_TARGET, color="k", ls="--", lw=1, label=f"target {RATIO_TARGET:g} on the largest LP")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("variables")
    ax.set_ylabel("(build + hand-off + extract) / HiGHS solve")
    ax.set_title("modelling overhead against the solver's own time", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_csv(rows: list[dict], path: Path) -> None:
    import csv

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def machine() -> dict:
    import highspy
    import pyomo.version

    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return dict(python=platform.python_version(), pyomo=pyomo.version.version, highs=highspy.Highs().version(),
                cpu=cpu, cores=os.cpu_count(), platform=platform.platform())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true",
                    help="three small cases, each run once (ieee33 as LP, one synthetic LP, a 2-scenario tree): "
                         "the pytest smoke test, about 30 s")
    ap.add_argument("--quick", action="store_true", help="a small subset (about 2 minutes), for a check")
    ap.add_argument("--instances", action="store_true",
                    help="every shipped instance under every recipe that fits it (and, for an instance with a "
                         "[tree], stochastic under each); opt-in: some of these MIPs take minutes")
    ap.add_argument("--repeat", type=int, default=3, help="runs per small case (large cases run once); default 3")
    ap.add_argument("--instance-repeat", type=int, default=1,
                    help="runs per shipped-instance case other than ieee33 and cigre_mv under the default recipe "
                         "(which run --repeat times); default 1")
    ap.add_argument("--time-limit", type=float, default=300.0, help="HiGHS time limit per solve (s); default 300")
    ap.add_argument("--threads", type=int, default=0, help="HiGHS threads (default 0: HiGHS decides)")
    ap.add_argument("--no-alone", action="store_true", help="skip HiGHS alone on the saved model (halves the solve time)")
    ap.add_argument("--gc", choices=["on", "pause", "pause-freeze"], default="on",
                    help="experiment: 'pause' suspends Python's cyclic garbage collector during build_model, "
                         "'pause-freeze' also moves the built model into the permanent generation (gc.freeze); "
                         "default 'on' (flexplan as it is)")
    ap.add_argument("--only", default=None,
                    help="run only cases whose name contains this text (several: separated by commas)")
    ap.add_argument("--skip-cigre", action="store_true", help="leave out cigre_mv (a long case)")
    ap.add_argument("--large", action="store_true", help="afterwards also run large_cases.py (SimBench MV x 4 stages "
                    "x 12 days: LP, MIP and day screening at load x2.5 and x1; ~30 min; results/large.json)")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"),
                    help="JSON results file; a .csv and a .png are written beside it")
    ap.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--_highs_alone", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        worker(*args._worker)
        return 0
    if args._highs_alone:
        highs_alone_worker(*args._highs_alone)
        return 0

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    cases = case_list(mode, args.time_limit, max(1, args.repeat), args.skip_cigre, args.instances,
                      max(1, args.instance_repeat))
    if args.only:
        parts = [p for p in args.only.split(",") if p]
        cases = [c for c in cases if any(p in c["name"] for p in parts)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="flexplan-bench-instances-") as tmp:
        for i, case in enumerate(cases, 1):
            if "synthetic" in case:
                s = case["synthetic"]
                instance = str(write_synthetic(Path(tmp) / case["name"], s["buses"], s["days"], s["stages"],
                                               branches=s.get("branches", 0)))
            else:
                instance = case["instance"]
            runs = []
            for k in range(case["repeat"]):
                log(f"case {i}/{len(cases)} {case['name']} run {k + 1}/{case['repeat']} ...")
                try:
                    r = run_once(case, instance, args.threads, wall_limit=3 * case["time_limit"] + 600,
                                 gc_mode=args.gc, alone=not args.no_alone)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    log(f"  FAILED: {e}")
                    failures.append(dict(case=case["name"], error=str(e)))
                    break
                runs.append(r)
                last = k + 1 == case["repeat"] or r["size"]["variables"] >= LARGE_VARS
                alone = "" if r.get("highs_alone_s") is None else \
                    (f" | HiGHS alone {r['highs_alone_s']:.2f} s ({r['highs_alone_status']}), objective "
                     f"rel. diff {r['objective_rel_diff']:.1e} [{r['objective_check']}]"
                     if r.get("objective_rel_diff") is not None else
                     f" | HiGHS alone {r['highs_alone_s']:.2f} s ({r['highs_alone_status']})")
                log(f"  {r['size']['variables']:,} vars, {r['size']['constraints']:,} cons: load {r['load_s']:.2f} "
                    f"build {r['build_s']:.2f} handoff {r['handoff_s']:.2f} solve {r['solve_s']:.2f} "
                    f"extract {r['extract_s']:.2f} other {r['other_s']:.2f} s, peak {r['peak_mb']:.0f} MB, "
                    f"{r['status']}" + (f" gap {r['mip_gap']:.4f}" if r["mip_gap"] else "") + alone)
                if last:  # large cases (>= LARGE_VARS variables) run once
                    break
            if runs:
                rows.append(summarise(case, runs))
    fit = fits(rows)
    mismatches = [r["case"] for r in rows if r["objective_check"] == "MISMATCH"]
    result = dict(command=" ".join([Path(sys.executable).name] + sys.argv), mode=mode, quick=args.quick,
                  smoke=args.smoke, instances=args.instances, highs_alone=not args.no_alone, gc_mode=args.gc,
                  created=time.strftime("%Y-%m-%d %H:%M:%S"), total_wall_s=round(time.perf_counter() - t_all, 1),
                  machine=machine(), lp_recipe=LP_RECIPE, base=SMOKE_BASE if mode == "smoke" else BASE,
                  sweeps={"smoke": SMOKE_SWEEPS, "quick": QUICK_SWEEPS}.get(mode, FULL_SWEEPS),
                  scenario_base=dict(SCEN_BASE, buses=SMOKE_BASE["buses"]) if mode == "smoke" else SCEN_BASE,
                  scenario_sweeps={"smoke": SMOKE_SCEN, "quick": QUICK_SCEN}.get(mode, FULL_SCEN),
                  objective_rtol=OBJ_RTOL, fits=fit, cases=rows, failures=failures, objective_mismatches=mismatches)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if rows:
        write_csv(rows, out.with_suffix(".csv"))
        plot(rows, fit, out.with_suffix(".png"))
        plot_ratio(rows, [], out.with_name(out.stem + "_ratio.png"))
    print(table(rows))
    print()
    for key in FIT_KEYS:
        f = fit[key]
        if f["exponent"] is None and f["exponent_scenarios"] is None:
            print(f"fitted exponent, {key[:-2]}: none ({f['points']} synthetic and {f['points_scenarios']} "
                  "scenario sweep points in this run, 2 needed)")
            continue
        print(f"fitted exponent t ~ variables^b, {key[:-2]}: synthetic sweeps b = {f['exponent']} "
              f"(buses {f['exponent_buses_sweep']}, days {f['exponent_days_sweep']}, "
              f"stages {f['exponent_stages_sweep']}; {f['points']} points); scenario sweeps b = "
              f"{f['exponent_scenarios']} (depth {f['exponent_scen_depth_sweep']}, width "
              f"{f['exponent_scen_width_sweep']}; {f['points_scenarios']} points)")
    print(f"\nwrote {out}, {out.with_suffix('.csv')}, {out.with_suffix('.png')} in {result['total_wall_s']} s")
    if failures:
        print(f"{len(failures)} case(s) failed: " + ", ".join(f["case"] for f in failures))
    if mismatches:
        print(f"HiGHS alone found another objective (> {OBJ_RTOL:g} relative) on the LP case(s): "
              + ", ".join(mismatches))
    rc = 1 if failures or mismatches else 0
    if args.large:
        sys.path.insert(0, str(HERE))
        import large_cases

        large_out = HERE / "results" / "large.json"
        rc = max(rc, large_cases.main(["--time-limit", str(args.time_limit), "--label", "latest",
                                       "--out", str(large_out)]))
        if rows:
            large = [r for r in json.loads(large_out.read_text()) if r.get("label") == "latest"]
            plot_ratio(rows, large, out.with_name(out.stem + "_ratio.png"))
            print(f"wrote {out.with_name(out.stem + '_ratio.png')} (with the large cases)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
