"""Sensitivity analysis: parameter sweeps and the break-even flexibility price.

A parameter is a dotted path: ``<block>.<option>`` for a recipe block's option (e.g.
``ev_fleet.flex_price_eur_per_mwh``, ``ageing.replacement_eur_per_kwh``,
``demand.scale``), or an instance field: ``economics.discount_rate``,
``limits.v_min_pu`` / ``v_max_pu`` / ``max_loading_pct``, ``penalties.<field>``,
``candidates.capex_scale`` (all reinforcement capex times the value) and ``ev_fleets.scale``
(every fleet's EV counts times the value).

* :func:`sweep`: one-at-a-time (each parameter over its values, the others at the base) or
  full factorial; every run is a row of one tidy table (inputs, status, objective, cost per
  category, builds, flexibility used, error if it failed), written after every run so that
  a sweep can resume from its table; runs go to a local process pool with ``workers`` > 1.
* :func:`breakeven`: bisection on the flexibility price for the price above which the plan
  builds what it builds without flexibility (the reference with uncontrolled EVs), to a
  stated relative tolerance.
* :func:`value_curve`: the value of flexibility against EV uptake.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

from .errors import RecipeError
from .results import atomic_path

INSTANCE_FIELDS = {"economics": ("discount_rate",), "limits": ("v_min_pu", "v_max_pu", "max_loading_pct"),
                   "penalties": ("voll_eur_per_mwh", "overload_eur_per_mvah", "voltage_eur_per_pu2h"),
                   "candidates": ("capex_scale",), "ev_fleets": ("scale",)}


def apply(instance, recipe, path: str, value):
    """The instance and recipe with ``path`` set to ``value`` (copies; the inputs are kept)."""
    from .recipe import resolve_recipe

    recipe = copy.deepcopy(resolve_recipe(recipe))
    head, _, field = path.partition(".")
    if not field:
        raise RecipeError(f"parameter '{path}': expected <block>.<option> or <section>.<field>")
    if head in INSTANCE_FIELDS:
        if field not in INSTANCE_FIELDS[head]:
            raise RecipeError(f"parameter '{path}': {head} fields that can be swept: {', '.join(INSTANCE_FIELDS[head])}")
        if head == "candidates":
            c = instance.candidates.copy()
            c["capex_eur"] = c["capex_eur"] * float(value)
            return dataclasses.replace(instance, candidates=c), recipe
        if head == "ev_fleets":
            fleets = tuple(dataclasses.replace(f, evs=f.evs * float(value)) for f in instance.ev_fleets)
            return dataclasses.replace(instance, ev_fleets=fleets), recipe
        section = getattr(instance, head)
        return dataclasses.replace(instance, **{head: dataclasses.replace(section, **{field: value})}), recipe
    if head in recipe.blocks or head == "network":
        recipe.options.setdefault(head, {})[field] = value
        return instance, recipe
    raise RecipeError(f"parameter '{path}': '{head}' is neither a block of recipe '{recipe.name}' "
                      f"({', '.join(recipe.blocks)}) nor one of {', '.join(INSTANCE_FIELDS)}")


def run_one(instance, recipe, params: dict, solve_kw: dict) -> dict:
    """Solve one point; a failure is a row with its error, not an exception."""
    import flexplan as fp

    row = {f"param:{k}": v for k, v in params.items()}
    t0 = time.perf_counter()
    try:
        inst, rec = instance, recipe
        for k, v in params.items():
            inst, rec = apply(inst, rec, k, v)
        res = fp.solve(fp.build_model(inst, rec), **solve_kw)
        row.update(status=res.status, objective_eur=res.objective_eur, mip_gap=res.mip_gap,
                   builds="; ".join(f"{b.year} {b.asset}" for b in res.builds.itertuples()),
                   investment_eur=res.cost_breakdown_eur.get("investment", 0.0), error="")
        row.update({f"cost:{k}": v for k, v in res.cost_breakdown_eur.items()})
        fleets = (res.extra.get("ev") or {}).get("fleets", [])
        if fleets:  # flexibility used in the last modelled year, all fleets (MWh/yr)
            last = max(y["year"] for f in fleets for y in f["years"])
            row["flex_down_mwh_last_year"] = sum(y["flex_down_mwh_per_year"] for f in fleets for y in f["years"]
                                                 if y["year"] == last)
        fp.release_memory()
    except Exception as e:  # noqa: BLE001 - a failed run is recorded and the sweep goes on
        row.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=3))
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _norm(value) -> str:
    """A parameter value as resume compares it: numbers by value (``1``, ``1.0`` and the
    ``1.0`` pandas reads back from a float column are one point), booleans and text as such."""
    import numbers

    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return str(bool(value)).lower()
    if isinstance(value, numbers.Number):
        return f"{float(value):.15g}"
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        return f"{float(text):.15g}"
    except ValueError:
        return text


def run_key(instance, recipe, solve_kw: dict, warm: bool = False) -> str:
    """What a sweep's rows depend on besides their parameters: the instance (its data, as
    loaded), the recipe (blocks, formulation, options), the solver options and the warm
    mode, as a short hash.  Resume reuses only rows with the same key."""
    import hashlib
    import json

    from .recipe import resolve_recipe

    rec = resolve_recipe(recipe)
    h = hashlib.sha256()
    _fingerprint(instance, h)
    h.update(json.dumps(dict(name=rec.name, blocks=rec.blocks, formulation=rec.formulation, options=rec.options,
                             solve={k: solve_kw[k] for k in sorted(solve_kw)}, warm=bool(warm)),
                        sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _fingerprint(obj, h) -> None:
    """Feed the data of ``obj`` into the hash ``h``: dataclasses by their fields (not the
    ``_private`` caches), tables and arrays by their values, containers element by element."""
    import numpy as np

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__name__.encode())
        for f in dataclasses.fields(obj):
            if not f.name.startswith("_"):
                h.update(f.name.encode())
                _fingerprint(getattr(obj, f.name), h)
    elif isinstance(obj, (pd.DataFrame, pd.Series)):
        h.update(repr((list(obj.columns) if isinstance(obj, pd.DataFrame) else [obj.name], obj.shape)).encode())
        h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(repr((obj.dtype.str, obj.shape)).encode())
        h.update(np.ascontiguousarray(obj).tobytes() if obj.dtype != object else repr(obj.tolist()).encode())
    elif isinstance(obj, dict):
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _fingerprint(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}".encode())
        for v in obj:
            _fingerprint(v, h)
    else:
        h.update(repr(obj).encode())


def _points(grid: dict[str, list], design: str) -> list[dict]:
    if design == "factorial":
        keys = list(grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]
    if design == "oat":  # the base case first, then each parameter alone
        return [{}] + [{k: v} for k, values in grid.items() for v in values]
    raise ValueError(f"design must be 'oat' or 'factorial', got '{design}'")


def sweep(instance, recipe, grid: dict[str, list], design: str = "oat", workers: int = 1,
          out: str | Path | None = None, progress=None, warm: bool = False, scheduler: str | None = None,
          **solve_kw) -> pd.DataFrame:
    """Run every point of the design; with ``out`` (a CSV path) the table is rewritten after
    each run and points already in it (same parameters, no error) are not run again.
    ``workers`` > 1: a local process pool; ``scheduler``: the address of a Dask distributed
    scheduler (``tcp://host:8786``, the ``dask`` extra) whose workers run the points instead
    (the instance is sent to them once; each worker needs flexplan installed).
    ``warm``: a one-parameter sweep over a cost (a price or a fee) re-solves one kept HiGHS
    model (:class:`WarmCostSweep`) instead of building every point; the rows then hold the
    objective and status only (``mode`` = warm)."""
    import flexplan as fp

    from .errors import OutputError

    inst = instance if isinstance(instance, fp.Instance) else fp.load_instance(instance)
    points = _points(grid, design)
    this_run = run_key(inst, recipe, solve_kw, warm=warm)
    done = pd.DataFrame()
    if out is not None and Path(out).exists():
        done = pd.read_csv(out, dtype={"run_key": str})  # a key of digits stays text
    if not done.empty:
        keys = sorted(set(done["run_key"].astype(str))) if "run_key" in done else []
        if keys != [this_run]:
            found = f"run key(s) {', '.join(keys)}" if keys else "no run key (an older table)"
            raise OutputError(f"{out}: holds runs of another instance, recipe or solver options ({found}; this sweep "
                              f"is {this_run}): resuming would mix them; choose another --out, or delete the table "
                              "to start afresh")
    rows = [] if done.empty else done.to_dict("records")

    def key(p):
        return tuple(sorted((k, _norm(v)) for k, v in p.items()))

    def row_key(r):
        return key({c[6:]: r[c] for c in r if c.startswith("param:") and pd.notna(r[c])})

    finished = {row_key(r) for r in rows if r.get("status") != "error"}
    todo = [p for p in points if key(p) not in finished]
    again = {key(p) for p in todo}
    rows = [r for r in rows if not (r.get("status") == "error" and row_key(r) in again)]  # replaced, not piled up
    t0 = time.perf_counter()

    def record(row, n):
        row["run_key"] = this_run
        rows.append(row)
        if out is not None:
            with atomic_path(out) as tmp:
                pd.DataFrame(rows).to_csv(tmp, index=False)
        if progress:
            left = (time.perf_counter() - t0) / n * (len(todo) - n)
            progress(f"  {n}/{len(todo)} runs, ETA {left:.0f} s: {row.get('status')} "
                     f"{row.get('objective_eur') or ''} {row.get('error') or ''}".rstrip())

    warm_points = [p for p in todo if p] if warm and len(grid) == 1 else []
    if warm and len(grid) != 1:
        raise RecipeError("a warm sweep varies one parameter (a cost) at a time")
    if len(warm_points) >= 2:
        (param,) = grid
        values = [p[param] for p in warm_points]
        ws = WarmCostSweep(inst, recipe, param, values[0], values[1], **solve_kw)
        if progress:
            progress(f"  warm model built ({ws.setup_s:.1f} s for two builds); re-solving {len(values)} values")
        todo = [p for p in todo if not p]
        for n, v in enumerate(values, 1):
            record(ws.solve(v), n)
    if scheduler is not None and todo:
        for n, row in enumerate(_on_dask(scheduler, inst, recipe, todo, solve_kw), 1):
            record(row, n)
    elif workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_one, inst, recipe, p, solve_kw) for p in todo]
            for n, fut in enumerate(as_completed(futures), 1):
                record(fut.result(), n)
    else:
        for n, p in enumerate(todo, 1):
            record(run_one(inst, recipe, p, solve_kw), n)
    df = pd.DataFrame(rows)
    pcols = sorted(c for c in df.columns if c.startswith("param:"))
    df = df.sort_values(pcols, na_position="first").reset_index(drop=True) if pcols else df
    if out is not None and design == "oat":
        tornado(df, Path(out).with_suffix(".png"))
    return df


def _on_dask(scheduler: str, inst, recipe, points: list, solve_kw: dict):
    """Rows of :func:`run_one` for ``points`` from a Dask distributed cluster, as they finish."""
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RecipeError("a Dask scheduler was given but the 'distributed' package is missing: "
                          "pip install -e \".[dask]\"") from e
    with Client(scheduler, timeout="30s") as client:
        shared = client.scatter(inst, broadcast=True)
        futures = [client.submit(run_one, shared, recipe, p, solve_kw, pure=False) for p in points]
        for fut in dask_completed(futures):
            yield fut.result()


def tornado(df: pd.DataFrame, path: Path) -> Path | None:
    """One bar per parameter from the lowest to the highest objective over its values, around
    the base case (the run with no parameter changed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pcols = [c for c in df.columns if c.startswith("param:")]
    ok = df[df["status"] != "error"]
    base = ok[ok[pcols].isna().all(axis=1)]["objective_eur"] if pcols else pd.Series(dtype=float)
    if base.empty or not pcols:
        return None
    base = float(base.iloc[0])
    bars = []
    for c in pcols:
        sub = ok[ok[c].notna()]
        if len(sub):
            lo, hi = sub.loc[sub["objective_eur"].idxmin()], sub.loc[sub["objective_eur"].idxmax()]
            bars.append((c[6:], float(lo["objective_eur"]), float(hi["objective_eur"]), lo[c], hi[c]))
    bars.sort(key=lambda b: b[2] - b[1])
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(bars) + 1.6))
    for i, (name, lo, hi, vlo, vhi) in enumerate(bars):
        ax.barh(i, (hi - lo) / 1e3, left=lo / 1e3, color="C0")
        ax.text(lo / 1e3, i, f"{vlo:g} ", ha="right", va="center", fontsize=8)
        ax.text(hi / 1e3, i, f" {vhi:g}", ha="left", va="center", fontsize=8)
    ax.axvline(base / 1e3, color="k", lw=1)
    ax.set_yticks(range(len(bars)), [b[0] for b in bars])
    ax.set_xlabel("expected present cost (kEUR); line: base case")
    ax.set_title("sensitivity, one parameter at a time")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    _savefig_atomic(fig, path)
    plt.close(fig)
    return path


def breakeven(instance, recipe="flex_vs_reinforce", param: str = "ev_fleet.flex_price_eur_per_mwh",
              lo: float = 0.0, hi: float = 5000.0, rel_tol: float = 0.01, progress=None, **solve_kw) -> dict:
    """The price above which reinforcing is cheaper than buying flexibility: the smallest value
    of ``param`` at which the plan invests as much as the reference with uncontrolled EVs,
    by bisection to ``rel_tol`` (relative to the bracket's upper end)."""
    import flexplan as fp

    from .value import reference_recipe

    inst = instance if isinstance(instance, fp.Instance) else fp.load_instance(instance)
    ref_recipe = reference_recipe(recipe)
    if ref_recipe is None:
        raise RecipeError(f"recipe '{recipe}' has no flexible EV fleet: nothing to break even against")
    ref = fp.solve(fp.build_model(inst, ref_recipe), **solve_kw)
    ref_inv = ref.cost_breakdown_eur.get("investment", 0.0)

    points = []

    def reinforces(value):
        r = run_one(inst, recipe, {param: value}, solve_kw)
        if r["status"] == "error":
            raise RuntimeError(f"{param}={value}: {r['error']}")
        ok = r["investment_eur"] >= ref_inv - 1e-6 * max(1.0, ref_inv)
        points.append(dict(value=value, objective_eur=r["objective_eur"], investment_eur=r["investment_eur"],
                           reinforces_as_reference=ok, status=r["status"]))
        return ok, r

    hi_reinforces, _ = reinforces(hi)
    if not hi_reinforces:
        raise RecipeError(f"even at {param} = {hi} the plan still buys flexibility: raise the upper bound")
    lo_reinforces, _ = reinforces(lo)
    if lo_reinforces:
        return dict(param=param, breakeven=lo, lower=lo, upper=lo, note="the plan reinforces at the lower bound",
                    reference_investment_eur=ref_inv, reference_objective_eur=ref.objective_eur, steps=0,
                    points=points)
    steps = 0
    while hi - lo > rel_tol * hi:
        mid = (lo + hi) / 2
        ok, _ = reinforces(mid)
        lo, hi = (lo, mid) if ok else (mid, hi)
        steps += 1
        if progress:
            progress(f"  step {steps}: break-even in [{lo:.4g}, {hi:.4g}]")
    return dict(param=param, breakeven=(lo + hi) / 2, lower=lo, upper=hi, rel_tol=rel_tol,
                reference_investment_eur=ref_inv, reference_objective_eur=ref.objective_eur, steps=steps,
                points=points)


def breakeven_plot(result: dict, path: Path) -> Path:
    """Every price the bisection tried: the plan's investment and total cost against the
    reference (EVs uncontrolled), with the break-even bracket shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = pd.DataFrame(result["points"]).sort_values("value")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(pts["value"], pts["objective_eur"] / 1e3, "o-", label="total cost of the plan")
    ax.plot(pts["value"], pts["investment_eur"] / 1e3, "s--", label="investment in the plan")
    ax.axhline(result["reference_investment_eur"] / 1e3, color="k", lw=0.9, ls=":",
               label="investment without flexibility (reference)")
    if result.get("reference_objective_eur") is not None:
        ax.axhline(result["reference_objective_eur"] / 1e3, color="C3", lw=0.9, ls=":",
                   label="total cost without flexibility")
    ax.axvspan(result["lower"], max(result["upper"], result["lower"] + 1e-9), color="C2", alpha=0.25,
               label=f"break-even {result['breakeven']:.4g} (bracket)")
    ax.set_xscale("symlog", linthresh=max(1.0, float(pts["value"].abs().min() or 1.0)))
    ax.set_xlabel(result["param"])
    ax.set_ylabel("present cost (kEUR)")
    ax.set_title("Break-even: above it the plan reinforces as much as without flexibility")
    return _save_axes(fig, ax, path)


def value_curve(instance, recipe="flex_vs_reinforce", scales=(0.5, 1.0, 1.5, 2.0), out: str | Path | None = None,
                progress=None, **solve_kw) -> pd.DataFrame:
    """The value of flexibility against EV uptake: for each factor on every fleet's EV counts
    (``ev_fleets.scale``), solve the recipe and its reference with uncontrolled EVs; with
    ``out`` (a CSV path) write the table and a plot beside it."""
    import flexplan as fp

    from .value import reference_recipe, value_of_flexibility

    inst = instance if isinstance(instance, fp.Instance) else fp.load_instance(instance)
    ref_recipe = reference_recipe(recipe)
    if ref_recipe is None:
        raise RecipeError(f"recipe '{recipe}' has no flexible EV fleet: nothing to value")
    rows = []
    for k in scales:
        scaled, rec = apply(inst, recipe, "ev_fleets.scale", k)
        res = fp.solve(fp.build_model(scaled, rec), **solve_kw)
        ref = fp.solve(fp.build_model(scaled, ref_recipe), **solve_kw)
        v = value_of_flexibility(res, ref)
        evs = sum(float(f.evs.iloc[-1]) * len(f.buses) for f in scaled.ev_fleets)
        rows.append(dict(scale=k, evs_last_year=evs, status=res.status, reference_status=ref.status,
                         cost_eur=res.objective_eur, reference_cost_eur=ref.objective_eur, value_eur=v["value_eur"],
                         value_lower_eur=v["value_lower_eur"], value_upper_eur=v["value_upper_eur"],
                         builds="; ".join(f"{b.year} {b.asset}" for b in res.builds.itertuples()),
                         reference_builds="; ".join(f"{b['year']} {b['asset']}" for b in v["reference_builds"])))
        if progress:
            progress(f"  EVs x {k}: value of flexibility {v['value_eur']:,.0f} EUR" if v["value_eur"] is not None
                     else f"  EVs x {k}: no value ({res.status} / {ref.status})")
        fp.release_memory()
    df = pd.DataFrame(rows)
    if out is not None:
        out = Path(out)
        with atomic_path(out) as tmp:
            df.to_csv(tmp, index=False)
        _plot_value_curve(df, out.with_suffix(".png"), inst.name)
    return df


def _plot_value_curve(df: pd.DataFrame, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(df["evs_last_year"], df["value_eur"] / 1e3, "o-", color="C0", label="value of flexibility")
    ax.fill_between(df["evs_last_year"], df["value_lower_eur"] / 1e3, df["value_upper_eur"] / 1e3, color="C0",
                    alpha=0.2, label="bounds from the MIP gaps")
    ax.set_xlabel("EVs on the feeder in the last year")
    ax.set_ylabel("kEUR (present value)")
    ax.set_title(f"{title}: what flexibility saves against uncontrolled charging")
    return _save_axes(fig, ax, path)


def _savefig_atomic(fig, path: Path) -> None:
    """Save ``fig`` at 110 dpi to a temporary file beside ``path``, then rename it into place
    (a failed save leaves ``path`` as it was)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")


def _save_axes(fig, ax, path: Path) -> Path:
    """Legend, grid, tight layout; save at 110 dpi and close."""
    import matplotlib.pyplot as plt

    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _savefig_atomic(fig, path)
    plt.close(fig)
    return path


class WarmCostSweep:
    """Re-solve one built model for new values of a parameter that only moves objective
    coefficients (a price or a cost): the model is built and handed to HiGHS twice, at
    ``v_a`` and ``v_b``; if the two differ only in the objective (same columns, matrix, bounds
    and integrality) the cost vector is c(v) = c_a + (v − v_a) / (v_b − v_a) (c_b − c_a) —
    exact for costs linear in the parameter, which the prices and fees of the blocks are —
    and every further value is a ``changeColsCost`` and a warm ``run`` of the kept HiGHS
    model.  A parameter that changes anything else is refused (:class:`RecipeError`)."""

    def __init__(self, instance, recipe, param: str, v_a: float, v_b: float, **solve_kw):
        import numpy as np

        import flexplan as fp
        from .solve import to_highs

        if v_a == v_b:
            raise ValueError("v_a and v_b must differ")
        self.param, self.v_a, self.v_b = param, float(v_a), float(v_b)
        lps = []
        t0 = time.perf_counter()
        for v in (v_a, v_b):
            inst, rec = apply(instance, recipe, param, v)
            pm = fp.build_model(inst, rec)
            lp, repn, n_int, _ = to_highs(pm.model)
            lps.append((lp, repn.names()))
        self.setup_s = time.perf_counter() - t0
        (a, names_a), (b, names_b) = lps
        same = (names_a == names_b and a.num_row_ == b.num_row_
                and np.array_equal(a.a_matrix_.start_, b.a_matrix_.start_)
                and np.array_equal(a.a_matrix_.index_, b.a_matrix_.index_)
                and np.array_equal(a.a_matrix_.value_, b.a_matrix_.value_)
                and np.array_equal(a.row_lower_, b.row_lower_) and np.array_equal(a.row_upper_, b.row_upper_)
                and np.array_equal(a.col_lower_, b.col_lower_) and np.array_equal(a.col_upper_, b.col_upper_))
        if not same:
            raise RecipeError(f"parameter '{param}' changes more than the objective between {v_a} and {v_b}: "
                              "it cannot be re-solved warm; use a cold sweep")
        self.c_a = np.asarray(a.col_cost_, dtype=float)
        self.c_b = np.asarray(b.col_cost_, dtype=float)
        self.o_a, self.o_b = float(a.offset_), float(b.offset_)
        from .solve import HighsSession, SolveOptions

        opts = SolveOptions(mip_gap=solve_kw["mip_gap"] if solve_kw.get("mip_gap") is not None else 1e-4,
                            time_limit=solve_kw.get("time_limit"))
        # one HiGHS session (options, status mapping, Ctrl-C) kept for every value of the sweep
        self.session = HighsSession(lp=a, form=None, options=opts)
        self.n = len(self.c_a)

    def solve(self, v: float) -> dict:
        import numpy as np

        t = (float(v) - self.v_a) / (self.v_b - self.v_a)
        c = self.c_a + t * (self.c_b - self.c_a)
        t0 = time.perf_counter()
        self.session.set_costs(c, self.o_a + t * (self.o_b - self.o_a))
        out = self.session.run(write_back=False)
        return {f"param:{self.param}": v, "status": out.status, "objective_eur": out.objective,
                "seconds": round(time.perf_counter() - t0, 3), "mode": "warm"}
