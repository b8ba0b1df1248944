"""Command line: ``flexplan solve | frameworks | sweep | breakeven | value-curve | phases | check-ac | diagnose | report | list | demo``.

Exit codes (scripts can rely on them):

* 0 — solved: optimal, or a feasible plan within the requested MIP gap;
* 2 — bad input or usage (instance, recipe or option): the message names what to fix;
* 3 — the solver found no feasible plan (infeasible, unbounded, error); status written;
* 4 — stopped at a limit (time, iterations, memory, objective bound) with a feasible plan:
  results are written with that status and the gap;
* 130 — interrupted (Ctrl-C or SIGTERM): a solve stopped by the first Ctrl-C or SIGTERM writes
  its results with status "interrupted" (the incumbent and gap if there is one) before
  exiting; a second one aborts at once; outside a solve either stops the run at once, and
  whatever was being written is removed, never left half-written;
* 1 — an unexpected internal error (a bug: please report it with the traceback).

Out of memory while building or handing over the model is reported in one line (exit 3).

Progress and timing lines go to stderr; the result folder's path goes to stdout.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXIT_OK, EXIT_BUG, EXIT_INPUT, EXIT_NO_SOLUTION, EXIT_LIMIT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


def _number(text: str, what: str, low: float, strict: bool) -> float:
    """A finite number > ``low`` (``strict``) or >= ``low`` from the command line; else an
    argparse error (exit 2) naming what was expected and what was given."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got '{text}'") from None
    if not math.isfinite(v) or (v <= low if strict else v < low):
        raise argparse.ArgumentTypeError(f"must be {what}, got '{text}'")
    return v


def _whole(text: str, what: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got '{text}'") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got '{text}'")
    return v


def _seconds(text: str) -> float:
    return _number(text, "a finite number of seconds > 0", 0.0, strict=True)


def _gap(text: str) -> float:
    return _number(text, "a finite relative gap >= 0 (e.g. 0.01)", 0.0, strict=False)


def _finite(text: str) -> float:
    return _number(text, "a finite number", -math.inf, strict=False)


def _positive(text: str) -> float:
    return _number(text, "a finite number > 0", 0.0, strict=True)


def _threads(text: str) -> int:
    return _whole(text, "a whole number >= 0 (0: HiGHS decides)", 0)


def _count0(text: str) -> int:
    return _whole(text, "a whole number >= 0", 0)


def _count1(text: str) -> int:
    return _whole(text, "a whole number >= 1", 1)


def _result_folder(path: str) -> Path:
    """A folder written by ``flexplan solve`` (it holds summary.json), else a
    :class:`FlexplanError` (exit 2) saying what ``path`` is."""
    import json

    from .errors import FlexplanError

    folder = Path(path)
    if not folder.exists():
        raise FlexplanError(f"{folder}: not found (expected a result folder written by 'flexplan solve')")
    if not folder.is_dir():
        raise FlexplanError(f"{folder}: is a file, not a result folder written by 'flexplan solve'")
    summary = folder / "summary.json"
    if not summary.is_file():
        raise FlexplanError(f"{folder}: not a flexplan result folder (no summary.json); give a folder written by "
                            "'flexplan solve'")
    try:
        json.loads(summary.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise FlexplanError(f"{summary}: not a readable result summary ({type(e).__name__}); solve again") from None
    return folder


def _out_file(path: str | None, what: str) -> Path | None:
    """An ``--out`` that names a file: an existing folder there is a :class:`FlexplanError` (exit 2)."""
    from .errors import OutputError

    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        suffix = ".json" if what == "JSON" else ".csv"
        raise OutputError(f"--out {p} is a folder; give the {what} file to write, e.g. {p / ('out' + suffix)}")
    return p


#: errors of the file system that are the user's to fix (permissions, read-only, full disk, ...)
_DISK_ERRNOS = {"EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "EFBIG", "ENOTDIR", "EISDIR", "ENAMETOOLONG", "ELOOP"}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def _sigterm_interrupts():
    """Make SIGTERM outside a solve stop the run like Ctrl-C (KeyboardInterrupt: temporary
    files are removed on the way out); returns the previous handler (None: not installed)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        return None
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return previous if previous is not None else signal.SIG_DFL


def _log(msg: str) -> None:
    print(f"[flexplan] {msg}", file=sys.stderr, flush=True)


def _run(instance: str, recipe: str, out: str | None, time_limit, mip_gap, threads, verbose, plots=True,
         reference=True, screen=False, prices=True, force=False, ac: str = "ensure", ac_max_iter: int = 5,
         network: str | None = None) -> int:
    import flexplan as fp
    from .outdir import check_output_folder, default_output
    from .paths import resolve_instance_path
    from .value import reference_recipe, value_of_flexibility

    t0 = time.perf_counter()
    path = resolve_instance_path(instance)
    _log(f"loading instance {path}")
    inst = fp.load_instance(path)
    load_s = time.perf_counter() - t0
    _log(f"  {inst.network.n_buses} buses, {inst.network.n_branches} branches, {len(inst.candidates)} candidates, "
         f"{len(inst.profiles.days)} days x {inst.profiles.hours} steps, stages {list(inst.economics.stages)} "
         f"({load_s:.1f} s)")
    recipe = fp.resolve_recipe(recipe)
    if network is None and recipe.formulation == "lindistflow" and ac != "off" and not screen:
        network = "branchflow"  # the default plan holds in AC: planned with the losses
        _log("  planning with the losses (branchflow) instead of the recipe's lossless LinDistFlow; "
             "'--network lindistflow' for the lossless model")
    if network is not None and network != recipe.formulation:
        from .recipe import with_formulation

        recipe = with_formulation(recipe, network)
    if recipe.formulation == "lindistflow":
        _log("  note: LinDistFlow is lossless, so its plans are optimistic (voltages too high, flows too low): "
             + ("the plan is checked in AC only" if ac == "check" else "the plan is NOT checked in AC"
                if ac == "off" else "each plan is replayed in AC and solved again with its AC losses as loads "
                "until one holds"))
    # the mode fp.solve gets: only the network formulations with an AC counterpart are replayed
    ac_mode = ac if ac != "off" and recipe.formulation in ("branchflow", "lindistflow") and not screen else None
    out_dir = Path(out) if out else default_output(inst.name, recipe.name)
    check_output_folder(out_dir, force=force)  # before the solve, not after it
    if screen:
        from .screening import solve_screened

        _log(f"solving '{recipe.name}' by day screening (restricted days, then every day with the plan fixed)")
        res = solve_screened(inst, recipe, mip_gap=mip_gap, time_limit=time_limit, threads=threads, progress=_log)
        rec = fp.resolve_recipe(recipe)
    else:
        _log(f"building model '{recipe.name}' ({recipe.formulation})")
        try:
            pm = fp.build_model(inst, recipe)
        except MemoryError:
            raise _OutOfMemory("building the model") from None
        pm.timings["load"] = load_s
        _log(f"  built in {pm.timings['build']:.1f} s")
        res = fp.solve(pm, time_limit=time_limit, mip_gap=mip_gap, threads=threads, verbose=verbose, progress=_log,
                       prices=prices, ac=ac_mode, ac_max_iter=ac_max_iter)
        rec = pm.recipe
    t = res.timings_s
    _log(f"  status {res.status} (HiGHS: {res.highs_status}); hand-off {t['handoff']:.1f} s, solve {t['solve']:.1f} s")
    if res.has_solution:
        gap = "" if res.mip_gap is None else f", gap {100 * res.mip_gap:.2f} %"
        _log(f"  objective {res.objective_eur:,.0f} EUR{gap}; {len(res.builds)} build(s)")
        for b in res.builds.itertuples():
            _log(f"    {b.year} {b.asset}: {b.kind} with {b.type} ({b.capex_eur:,.0f} EUR)")
        v = res.violations
        _log(f"  violations: voltage {v['max_voltage_deviation_pu']:.4f} pu, overload {v['max_overload_pct']:.2f} %, "
             f"unserved {v['unserved_mwh']:.3f} MWh")
    if "ac_check" not in res.extra:
        why = ("--ac off" if ac == "off" else "day screening" if screen else
               f"the '{rec.formulation}' formulation has no AC power flow to compare with"
               if rec.formulation not in ("branchflow", "lindistflow") else f"no plan to check ({res.status})")
        res.extra["ac_check"] = dict(checked=False, formulation=rec.formulation, reason=why)
    else:
        a = res.extra["ac_check"]
        _log(f"  AC: {a['message']}" + (f"; lower bound {a['lower_bound_eur']:,.0f} EUR (gap "
                                         f"{100 * a['gap_to_lower_bound']:.2f} %)"
                                         if a.get("lower_bound_eur") is not None and a.get("gap_to_lower_bound")
                                         is not None else ""))
    interrupted = res.status == "interrupted"
    ref_recipe = reference_recipe(rec) if reference and inst.ev_fleets and res.has_solution \
        and not interrupted else None
    if ref_recipe is not None:
        _log("solving the reference: the same recipe with uncontrolled EVs (skip with --no-reference)")
        ref_pm = fp.build_model(inst, ref_recipe)
        ref = fp.solve(ref_pm, time_limit=time_limit, mip_gap=mip_gap, threads=threads, verbose=verbose,
                       progress=_log, ac=ac_mode, ac_max_iter=ac_max_iter)
        if ref.status == "interrupted":
            interrupted = True
            res.extra["value_of_flexibility"] = dict(value_eur=None, note="reference solve interrupted")
            _log("  reference interrupted: no value of flexibility")
            return _write_and_exit(res, out_dir, plots, interrupted=True, force=force)
        vof = value_of_flexibility(res, ref)
        res.extra["value_of_flexibility"] = vof
        res.timings_s["reference"] = sum(ref.timings_s.get(k, 0.0) for k in ("build", "handoff", "solve", "extract"))
        if vof["value_eur"] is not None:
            _log(f"  reference {ref.status}: {ref.objective_eur:,.0f} EUR, {len(ref.builds)} build(s); value of "
                 f"flexibility {vof['value_eur']:,.0f} EUR (bounds {vof['value_lower_eur']:,.0f} .. "
                 f"{vof['value_upper_eur']:,.0f} from the MIP gaps)")
        else:
            _log(f"  reference {ref.status}: no value of flexibility")
        del ref_pm
    return _write_and_exit(res, out_dir, plots, force=force)


class _OutOfMemory(Exception):
    """MemoryError in a named stage of the run (reported in one line by :func:`main`)."""


def _write_and_exit(res, out_dir: Path, plots: bool, interrupted: bool = False, force: bool = False) -> int:
    """Write the results; the exit code from the status (module docstring)."""
    folder = res.write(out_dir, plots=plots, force=force)
    if interrupted or res.status == "interrupted":
        gap = f", gap {100 * res.mip_gap:.2f} %" if res.mip_gap is not None else ""
        best = f"best plan {res.objective_eur:,.0f} EUR{gap}" if res.has_solution else "no plan found yet"
        _log(f"interrupted: {best}; results (status {res.status}) written to {folder}")
        print(folder)
        return EXIT_INTERRUPTED
    _log(f"results written to {folder}")
    print(folder)
    ac = res.extra.get("ac_check") or {}
    if ac.get("checked") and not ac.get("ac_feasible"):
        _log(f"the plan does not hold in AC ({ac.get('message')}): exit {EXIT_LIMIT}")
        return EXIT_LIMIT
    if res.status == "optimal":
        return EXIT_OK
    return EXIT_LIMIT if res.has_solution else EXIT_NO_SOLUTION


def _run_stochastic(instance: str, recipe: str, out: str | None, time_limit, mip_gap, threads, verbose, metrics,
                    plots=True, force=False) -> int:
    import flexplan as fp
    from .outdir import check_output_folder, default_output
    from .paths import resolve_instance_path
    from .stochastic import solve_stochastic

    path = resolve_instance_path(instance)
    _log(f"loading instance {path}")
    inst = fp.load_instance(path)
    if inst.tree is None:
        _log(f"error: instance '{inst.name}' has no scenario tree: add [tree] to {path / 'instance.toml'} "
             "(see flexplan/instance/tree.py)")
        return EXIT_INPUT
    tree = inst.tree
    out_dir = Path(out) if out else default_output(inst.name, fp.resolve_recipe(recipe).name, suffix="-stochastic")
    check_output_folder(out_dir, force=force)  # before the solve, not after it
    _log(f"  scenario tree: {len(tree.nodes)} nodes, {len(tree.leaves)} scenarios over stages "
         f"{list(inst.economics.stages)}; metrics: {', '.join(metrics) or 'none'}")
    res = solve_stochastic(inst, recipe, metrics=metrics, time_limit=time_limit, mip_gap=mip_gap, threads=threads,
                           verbose=verbose, progress=_log)
    st = res.extra.get("stochastic", {})
    if res.has_solution:
        _log(f"  expected cost {res.objective_eur:,.0f} EUR; first stage: "
             f"{', '.join(st.get('first_stage_builds', [])) or 'nothing built'}")
        for key, label in (("vss_eur", "value of the stochastic solution"), ("evpi_eur", "EVPI"),
                           ("option_value_of_flexibility_eur", "option value of flexibility")):
            if st.get(key) is not None:
                _log(f"  {label}: {st[key]:,.0f} EUR")
    return _write_and_exit(res, out_dir, plots, interrupted=_interrupted_solves(), force=force)


def _interrupted_solves() -> bool:
    """Whether a solve of this process was stopped by Ctrl-C."""
    from .solve import interrupt_count

    return interrupt_count() > 0


def _one_line(text: str, width: int = 90) -> str:
    """The first sentence of a description on one line, cut at ``width`` characters."""
    flat = " ".join(text.split())
    first = flat.split(". ")[0].rstrip(".")
    return first if len(first) <= width else first[: width - 1].rstrip() + "…"


def _value(text: str):
    try:
        return int(text) if text.strip().lstrip("-").isdigit() else float(text)
    except ValueError:
        return {"true": True, "false": False}.get(text.strip().lower(), text.strip())


def cmd_sweep(args) -> int:
    import flexplan as fp
    from .outdir import default_output
    from .paths import resolve_instance_path
    from .recipe import resolve_recipe
    from .sensitivity import sweep

    grid = {}
    for p in args.param:
        path, sep, values = p.partition("=")
        if not sep or not values:
            _log(f"error: --param '{p}' must be PATH=V1,V2,...")
            return EXIT_INPUT
        grid[path.strip()] = [_value(v) for v in values.split(",")]
    inst = fp.load_instance(resolve_instance_path(args.instance))
    recipe = resolve_recipe(args.model)
    out = Path(args.out) if args.out else default_output(inst.name, recipe.name, suffix="-sweep.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    _log(f"sweep of {', '.join(grid)} ({args.design}) on {inst.name} under {recipe.name}, "
         + (f"on the Dask cluster at {args.scheduler}" if args.scheduler else f"{args.workers} worker(s)"))
    df = sweep(inst, recipe, grid, design=args.design, workers=args.workers, out=out, progress=_log,
               scheduler=args.scheduler,
               warm=args.warm, mip_gap=args.mip_gap, time_limit=args.time_limit)
    from .report import write_sweep_report

    html_path = write_sweep_report(out, title=f"{inst.name} under {recipe.name}")
    _log(f"{len(df)} runs, {(df['status'] == 'error').sum()} failed; table {out}, report {html_path}")
    print(out)
    return EXIT_OK if (df["status"] != "error").all() else EXIT_LIMIT


def cmd_region(args) -> int:
    import flexplan as fp
    from .outdir import check_output_folder, default_output
    from .paths import resolve_instance_path
    from .recipe import resolve_recipe
    from .region import region_study, write_study

    scales = [float(v) for v in args.ev_scale.split(",") if v.strip()]
    if not scales or any(not (v >= 0) for v in scales):
        _log(f"error: --ev-scale '{args.ev_scale}' must be comma-separated non-negative numbers")
        return EXIT_INPUT
    path = resolve_instance_path(args.instance)
    if not path.exists():
        from .region import simbench_instance

        _log(f"{args.instance}: a SimBench code; converting it (once) into out/simbench/")
        path = simbench_instance(args.instance, progress=_log)
    inst = fp.load_instance(path)
    recipe = resolve_recipe(args.model)
    out = Path(args.out) if args.out else default_output(inst.name, recipe.name, suffix="-region")
    check_output_folder(out, force=args.force)  # before any solve
    ckpt = out.with_name(out.name + ".columns")
    _log(f"region {inst.name} under {recipe.name}: EV scales {', '.join(f'{v:g}' for v in scales)}, "
         + ("with and without flexibility, " if not args.no_reference else "")
         + (f"LV grids solved on the Dask cluster at {args.scheduler}" if args.scheduler not in ("local", "none") else
            f"LV grids solved on {args.workers} {'Dask ' if args.scheduler == 'local' else ''}worker(s)")
         + f"; checkpoints in {ckpt}")
    scheduler = None if args.scheduler == "none" else args.scheduler
    if scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            _log("note: the Dask 'distributed' package is missing (pip install -e \".[dask]\"); solving the LV grids "
                 "on a local process pool instead")
            scheduler = None
    study = region_study(inst, recipe, ev_scales=scales, reference=not args.no_reference, progress=_log,
                         workers=args.workers, scheduler=scheduler, out=ckpt, mip_gap=args.mip_gap,
                         max_iterations=args.max_iterations, lv_kv_max=args.lv_kv_max,
                         **({"time_limit": args.time_limit} if args.time_limit else {}))
    folder = write_study(study, out, force=args.force)
    for r in study["uptake"].itertuples():
        line = (f"EV scale {r.ev_scale:g} ({r.evs:,.0f} EVs): {100 * r.share_reinforced:.0f} % of {r.lv_grids} LV grids "
                f"reinforced, region {r.region_cost_eur:,.0f} EUR")
        if hasattr(r, "value_of_flexibility_eur"):
            line += (f"; without flexibility {100 * r.share_reinforced_no_flex:.0f} % reinforced, "
                     f"{r.region_cost_no_flex_eur:,.0f} EUR: flexibility is worth {r.value_of_flexibility_eur:,.0f} EUR")
        _log(line)
    print(folder)
    return EXIT_OK


def cmd_value_curve(args) -> int:
    import flexplan as fp
    from .outdir import default_output
    from .paths import resolve_instance_path
    from .recipe import resolve_recipe
    from .sensitivity import value_curve

    try:
        scales = [float(x) for x in args.scales.split(",")]
    except ValueError:
        _log(f"error: --scales '{args.scales}' must be numbers separated by commas")
        return EXIT_INPUT
    inst = fp.load_instance(resolve_instance_path(args.instance))
    recipe = resolve_recipe(args.model)
    out = Path(args.out) if args.out else default_output(inst.name, recipe.name, suffix="-value-curve.csv")
    _log(f"value of flexibility on {inst.name} under {recipe.name} for EV counts x {scales}")
    df = value_curve(inst, recipe, scales, out=out, progress=_log, mip_gap=args.mip_gap, time_limit=args.time_limit)
    print(out)
    return EXIT_OK if df["value_eur"].notna().all() else EXIT_LIMIT


def cmd_phases(args) -> int:
    import json

    import flexplan as fp
    from .outdir import default_output
    from .paths import resolve_instance_path
    from .recipe import resolve_recipe
    from .results import atomic_path, write_text_atomic
    from .threephase import phase_planning, phase_planning_plot

    inst = fp.load_instance(resolve_instance_path(args.instance))
    recipe = resolve_recipe(args.model)
    balancing = {"cost_eur_per_move": args.move_cost}
    if args.loads:
        balancing["loads"] = [x.strip() for x in args.loads.split(",") if x.strip()]
    if args.fleets:
        balancing["fleets"] = [x.strip() for x in args.fleets.split(",") if x.strip()]
    out = Path(args.out) if args.out else default_output(inst.name, recipe.name, suffix="-phases.csv")
    _log(f"phase planning on {inst.name} under {recipe.name}: balanced, three-phase, three-phase with phase "
         f"balancing ({balancing})")
    got = phase_planning(inst, recipe, balancing=balancing, progress=_log, mip_gap=args.mip_gap,
                         time_limit=args.time_limit)
    table, summary = got["table"], got["summary"]
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    phase_planning_plot(table, summary, out.with_suffix(".png"), title=f"{inst.name} under {recipe.name}")
    write_text_atomic(out.with_suffix(".json"), json.dumps(summary, indent=2, default=float) + "\n")
    _log(table.to_string(index=False))
    _log(f"the balanced model under-builds by {summary['under_build_eur']:,.2f} EUR (its plan pays "
         f"{summary['balanced_plan_penalty_eur']:,.2f} EUR of penalties in three phases); phase balancing is worth "
         f"{summary['value_of_phase_balancing_eur']:,.2f} EUR")
    print(out)
    return EXIT_OK


def cmd_breakeven(args) -> int:
    import flexplan as fp
    from .outdir import default_output
    from .paths import resolve_instance_path
    from .sensitivity import breakeven

    inst = fp.load_instance(resolve_instance_path(args.instance))
    _log(f"break-even of {args.param} on {inst.name} under {args.model} in [{args.lo}, {args.hi}]")
    got = breakeven(inst, args.model, args.param, args.lo, args.hi, args.tol, progress=_log, mip_gap=args.mip_gap,
                    time_limit=args.time_limit)
    _log(f"break-even {got['breakeven']:.4g} (between {got['lower']:.4g} and {got['upper']:.4g})")
    import json

    import pandas as pd

    from .report import write_sweep_report
    from .sensitivity import breakeven_plot

    from .results import atomic_path, write_text_atomic

    out = Path(args.out) if args.out else default_output(inst.name, Path(str(args.model)).stem,
                                                         suffix="-breakeven.csv")
    # every file goes to a temporary name beside it and is renamed when complete; the
    # result (.json) comes last, after the table, the curve and the report it summarises
    with atomic_path(out) as tmp:
        pd.DataFrame(got["points"]).sort_values("value").to_csv(tmp, index=False)
    breakeven_plot(got, out.with_name(out.stem + "-breakeven.png"))
    html_path = write_sweep_report(out, breakeven=got, title=f"break-even on {inst.name} under {args.model}")
    write_text_atomic(out.with_suffix(".json"), json.dumps(got, indent=2, default=float) + "\n")
    _log(f"  points {out}, report {html_path}")
    print(f"{got['breakeven']:.6g}")
    return EXIT_OK


def cmd_check_ac(args) -> int:
    from .acpf import check_ac

    import json

    from .results import write_text_atomic

    _log(f"replaying {args.outdir} through pandapower's AC power flow")
    df, out = check_ac(args.outdir, write=False, progress=_log)
    # additions to an existing result folder: both files complete under temporary names
    # first, then renamed; the summary (.json) last, so it never describes an older table
    folder = Path(args.outdir)
    write_text_atomic(folder / "ac_check.csv", df.to_csv(index=False, float_format="%.6f"))
    write_text_atomic(folder / "ac_check.json", json.dumps(out, indent=2) + "\n")
    _log(f"  {out['converged']}/{out['ops']} power flows converged in {out['seconds']} s; AC voltage "
         f"{out['v_min_ac_pu']:.4f}..{out['v_max_ac_pu']:.4f} pu, loading up to {out['max_loading_ac_pct']:.1f} %, "
         f"LinDistFlow - AC up to {out['max_ldf_minus_ac_pu']:.4f} pu")
    _log(f"  ops under / over voltage / overloaded in AC: {out['ops_undervoltage']} / {out['ops_overvoltage']} / "
         f"{out['ops_overloaded']}: the plan is {'AC-feasible' if out['ac_feasible'] else 'NOT AC-feasible'}")
    print(Path(args.outdir) / "ac_check.json")
    if args.correct and not out["ac_feasible"]:
        return _ac_correct(args)
    return EXIT_OK if out["ac_feasible"] else EXIT_LIMIT


def _ac_correct(args) -> int:
    import json

    from .acpf import ac_corrected_plan
    from .recipe import resolve_recipe

    summary = json.loads((Path(args.outdir) / "summary.json").read_text())
    if summary.get("stochastic"):
        _log("error: --correct re-plans deterministic runs only (this is a stochastic plan)")
        return EXIT_INPUT
    source = summary.get("recipe_source")
    recipe = source if source and source != "<dict>" and Path(source).exists() else summary["model"]
    try:
        recipe = resolve_recipe(recipe)
    except Exception as e:  # noqa: BLE001 - reported as bad input below
        _log(f"error: cannot find the run's recipe ({recipe}) to re-plan: {e}")
        return EXIT_INPUT
    out = Path(args.outdir).with_name(Path(args.outdir).name + "-ac")
    _log(f"re-planning with the losses (branchflow) and correcting where AC still breaks a limit, at most "
         f"{args.max_iter} times; the plan goes to {out}")
    res, rep = ac_corrected_plan(summary["instance_path"], recipe, out, max_iter=args.max_iter, progress=_log,
                                 mip_gap=summary.get("mip_gap") or 0.01)
    _log(f"  {rep['message']}" + (f"; {rep['cost_eur']:,.0f} EUR, lower bound {rep['lower_bound_eur']:,.0f} EUR"
                                  if rep.get("cost_eur") is not None and rep.get("lower_bound_eur") is not None
                                  else ""))
    print(out)
    return EXIT_OK if rep["ac_feasible"] else EXIT_LIMIT


def cmd_frameworks(args) -> int:
    import flexplan as fp
    from .frameworks import compare_frameworks
    from .paths import resolve_instance_path

    inst = fp.load_instance(resolve_instance_path(args.instance))
    if not inst.ev_fleets:
        _log(f"error: instance '{inst.name}' has no EV fleets: the frameworks differ only in how EVs charge")
        return EXIT_INPUT
    from .outdir import default_output
    from .results import atomic_folder

    # the whole comparison (table, figure, one result folder per framework) is written to a
    # temporary folder beside the target and moved into place when complete
    with atomic_folder(Path(args.out) if args.out else default_output(inst.name, suffix="-frameworks"),
                       force=args.force) as (tmp, out):
        df = compare_frameworks(inst, tmp, progress=_log, ageing=args.ageing, mip_gap=args.mip_gap,
                                time_limit=args.time_limit, regulation=args.regulation, stacking=args.stacking)
    cols = ["framework", "status", "total_system_cost_eur", "dso_investment_eur", "dso_flexibility_payments_eur",
            "ev_owner_energy_cost_eur", "peak_mw", "min_voltage_pu"]
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:,.3f}"), file=sys.stderr)
    who = ["framework", "dso_profit_capex_eur", "dso_profit_totex_eur", "owner_net_eur_per_ev_year",
           "owner_net_p10_eur_per_ev_year", "owner_net_p90_eur_per_ev_year", "owner_price_p10_eur_per_mwh",
           "owner_price_p90_eur_per_mwh"]
    if args.regulation:
        who += ["regulated_builds", "fit_and_forget_eur", "fit_and_forget_mva"]
    _log("who pays and who gains (DSO: regulated profit, EUR; owners: net cost per EV and year, EUR):")
    print(df[who].to_string(index=False, float_format=lambda v: f"{v:,.1f}"), file=sys.stderr)
    if "stacking" in df.attrs:
        _log("the aggregator (market cost and value, EUR; lost: against its optimum without the DSO's network):")
        print(df.attrs["stacking"].to_string(index=False, float_format=lambda v: f"{v:,.1f}"), file=sys.stderr)
    _log(f"results written to {out}")
    print(out)
    if (df["status"] == "optimal").all():
        return EXIT_OK
    return EXIT_LIMIT if df["total_system_cost_eur"].notna().all() else EXIT_NO_SOLUTION


def cmd_diagnose(args) -> int:
    import json

    import flexplan as fp
    from .diagnose import diagnose_model
    from .paths import resolve_instance_path
    from .results import write_text_atomic

    inst = fp.load_instance(resolve_instance_path(args.instance))
    _log(f"diagnosing {inst.name} under {args.model}")
    pm = fp.build_model(inst, args.model)
    d = diagnose_model(pm, time_limit=args.time_limit, progress=_log, irreducible=args.irreducible)
    print(d.text(limit=args.show))
    if args.out:
        write_text_atomic(Path(args.out), json.dumps(d.to_dict(), indent=2, default=str) + "\n")
        _log(f"diagnosis written to {args.out}")
    if d.method == "feasible":
        return EXIT_OK
    return EXIT_NO_SOLUTION if d.culprits else EXIT_LIMIT


def cmd_list(_args) -> int:
    from .blocks import BLOCKS, FORMULATIONS, _load_all
    from .paths import shipped_instances, shipped_models
    from .recipe import resolve_recipe

    _load_all()
    instances = sorted(shipped_instances().glob("*/instance.toml"))
    recipes = sorted(shipped_models().glob("*.toml"))
    w = max([len(p.parent.name) for p in instances] + [len(p.stem) for p in recipes]) + 1
    print("instances:")
    for p in instances:
        print(f"  {p.parent.name:<{w}} {_one_line(tomllib.loads(p.read_text()).get('description', ''))}")
    print("recipes (models):")
    for p in recipes:
        print(f"  {p.stem:<{w}} {_one_line(resolve_recipe(p).description)}")
    print("blocks:       " + ", ".join(sorted(BLOCKS)))
    print("formulations: " + ", ".join(sorted(FORMULATIONS)))
    from .channels import CHANNELS

    print("channels (block -> block):")
    for name, ch in sorted(CHANNELS.items()):
        writers = sorted(b for b, spec in BLOCKS.items() if name in spec.writes())
        readers = sorted(b for b, spec in {**BLOCKS, **FORMULATIONS}.items() if name in spec.reads())
        print(f"  {name:<{w}} {', '.join(writers) or '-'} -> {', '.join(readers) or '-'}: {ch.doc}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    from .errors import FlexplanError, InstanceError, RecipeError, SolverError
    from .paths import DEFAULT_INSTANCE, DEFAULT_RECIPE

    parser = argparse.ArgumentParser(prog="flexplan", description="Multi-year distribution grid planning with EV "
                                     "flexibility (Pyomo + HiGHS).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve", help="solve an instance and write the results")
    p.add_argument("instance", help="instance folder (or the name of a shipped instance)")
    p.add_argument("--model", default=DEFAULT_RECIPE, help="recipe: a TOML file or a shipped name "
                   f"(default {DEFAULT_RECIPE})")
    p.add_argument("--out", help="output folder (default out/INSTANCE-MODEL); an existing one is replaced only if "
                   "it is empty or a flexplan result")
    p.add_argument("--force", action="store_true", help="replace --out even if it is a folder of other files")
    p.add_argument("--time-limit", type=_seconds, default=None, help="HiGHS time limit in seconds")
    p.add_argument("--mip-gap", type=_gap, default=0.01, help="relative MIP gap (default 0.01)")
    p.add_argument("--threads", type=_threads, default=0, help="HiGHS threads (default: HiGHS decides)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-prices", action="store_true", help="skip the nodal prices (DLMPs from the duals of the LP "
                   "with the plan's integer decisions fixed: one more LP solve)")
    p.add_argument("--no-reference", action="store_true", help="with flexible EV fleets: do not also solve the "
                   "reference with uncontrolled EVs (no value of flexibility in the summary)")
    p.add_argument("--stochastic", action="store_true", help="solve the instance's scenario tree ([tree]) as one "
                   "extensive form: expected cost, decisions per node, per-scenario costs")
    p.add_argument("--metrics", default="vss,evpi,option", help="with --stochastic: which of vss, evpi, option "
                   "(value of the stochastic solution, expected value of perfect information, option value of "
                   "flexibility) to compute; each needs extra solves (default all; 'none' for none)")
    p.add_argument("--screen-days", action="store_true", help="day screening: solve on the peak day, check the "
                   "plan on every day, add the days where it pays penalties, until the bound gap is within "
                   "--mip-gap (exact to that gap; much faster on many representative days; see flexplan.screening)")
    p.add_argument("--ac", choices=["ensure", "check", "off"], default="ensure",
                   help="ensure (default): replay the plan in pandapower's AC power flow and solve again, corrected "
                        "where it fails, until a plan holds (exit 4 if none does); check: replay and report only; "
                        "off: neither (and the recipe's own formulation)")
    p.add_argument("--ac-max-iter", type=_count0, default=5, help="corrections to try with --ac ensure (default 5)")
    p.add_argument("--network", default=None, help="network formulation instead of the recipe's: branchflow (losses "
                   "inside the optimisation; the default where the recipe says lindistflow, unless --ac off or "
                   "--screen-days), lindistflow (lossless, optimistic: with --ac ensure its plans are corrected with "
                   "their AC losses), copperplate")
    p.add_argument("-v", "--verbose", action="store_true", help="show the HiGHS log")
    fw = sub.add_parser("frameworks", help="solve reinforce-only and the four flexibility frameworks on an instance "
                        "and write frameworks.csv, frameworks.png, stakeholders.png and owners.csv")
    fw.add_argument("instance", help="instance folder (or the name of a shipped instance) with EV fleets")
    fw.add_argument("--out", help="output folder (default out/INSTANCE-frameworks)")
    fw.add_argument("--force", action="store_true", help="replace --out even if it is a folder of other files")
    fw.add_argument("--time-limit", type=_seconds, default=900.0, help="HiGHS time limit per solve (s, default 900: "
                    "a framework cut at the limit is reported with its status and gap)")
    fw.add_argument("--mip-gap", type=_gap, default=0.01, help="relative MIP gap (default 0.01)")
    fw.add_argument("--ageing", action="store_true", help="add the battery ageing block to every framework")
    fw.add_argument("--regulation", choices=("capex", "totex"), help="also solve every framework for the profit of a "
                    "DSO remunerated under this regime (a second solve each) and report the plan it would pick and "
                    "its gap to the social optimum (fit_and_forget_eur, _mva)")
    fw.add_argument("--stacking", action="store_true", help="also the aggregator's view: the fleets at day-ahead prices "
                    "with frequency reserve (recipe aggregator_stacking), with and without the DSO's network and under "
                    "a connection agreement; writes stacking.csv (four more solves)")
    ac = sub.add_parser("check-ac", help="replay a solved plan through pandapower's AC power flow, every hour")
    ac.add_argument("outdir", help="a result folder written by 'flexplan solve'")
    ac.add_argument("--correct", action="store_true", help="if the plan fails in AC: re-plan with the losses (branchflow, "
                    "least cost) and correct the buses and hours where AC still fails, until it holds in AC (written "
                    "to OUTDIR-ac) or says why it cannot")
    ac.add_argument("--max-iter", type=_count0, default=5, help="corrections to try with --correct (default 5)")
    sw = sub.add_parser("sweep", help="solve an instance over parameter values; one tidy CSV row per run")
    sw.add_argument("instance")
    sw.add_argument("--model", default=DEFAULT_RECIPE, help=f"recipe (default {DEFAULT_RECIPE})")
    sw.add_argument("--param", action="append", required=True, metavar="PATH=V1,V2,...",
                    help="a dotted parameter and its values, e.g. ev_fleet.flex_price_eur_per_mwh=100,300 "
                         "(repeat for more parameters)")
    sw.add_argument("--design", choices=["oat", "factorial"], default="oat",
                    help="one at a time (default) or every combination")
    sw.add_argument("--workers", type=_count1, default=1, help="local processes (default 1)")
    sw.add_argument("--scheduler", default=None, metavar="ADDRESS", help="run the points on a Dask distributed "
                    "cluster (e.g. tcp://10.0.0.5:8786; needs the dask extra) instead of locally")
    sw.add_argument("--warm", action="store_true", help="one cost parameter: re-solve one kept HiGHS model instead "
                    "of building every point")
    sw.add_argument("--out", help="CSV table (default out/INSTANCE-MODEL-sweep.csv); an existing one is resumed if "
                    "it was written for the same instance, recipe and solver options (else refused)")
    sw.add_argument("--time-limit", type=_seconds, default=None)
    sw.add_argument("--mip-gap", type=_gap, default=0.01)
    rg = sub.add_parser("region", help="plan an MV grid with its LV grids (split at the MV/LV transformers, "
                        "coordinated by Dantzig-Wolfe decomposition) over EV uptake, with and without flexibility")
    rg.add_argument("instance")
    rg.add_argument("--model", default="flex_vs_reinforce", help="recipe (default flex_vs_reinforce)")
    rg.add_argument("--ev-scale", default="1", metavar="S1,S2,...", help="EV uptake: every fleet's EV counts times "
                    "each scale (default 1)")
    rg.add_argument("--no-reference", action="store_true", help="skip the plans without flexibility (EVs "
                    "uncontrolled), and with them the value of flexibility")
    rg.add_argument("--workers", type=_count1, default=min(2, os.cpu_count() or 1),
                    help="processes solving LV grids in parallel (default: 2, or the cores if fewer)")
    rg.add_argument("--scheduler", default="local", metavar="ADDRESS", help="where the LV grids are solved: 'local' "
                    "(default) a Dask LocalCluster of --workers processes, a Dask scheduler's address "
                    "(tcp://host:8786) for a real cluster, or 'none' for a local process pool without Dask")
    rg.add_argument("--out", help="result folder (default out/INSTANCE-MODEL-region); every LV grid's solve is "
                    "checkpointed in OUT.columns, so a rerun resumes")
    rg.add_argument("--mip-gap", type=_gap, default=0.001, help="relative MIP gap of every solve (default 0.001)")
    rg.add_argument("--time-limit", type=_seconds, default=None, help="time limit of every solve (s)")
    rg.add_argument("--max-iterations", type=_count1, default=30, help="decomposition iterations per voltage round "
                    "(default 30)")
    rg.add_argument("--lv-kv-max", type=_finite, default=1.0, help="buses at or below this voltage (kV) are LV "
                    "(default 1.0)")
    rg.add_argument("--force", action="store_true", help="replace an --out folder that is not a flexplan result")
    be = sub.add_parser("breakeven", help="the flexibility price above which reinforcing is cheaper")
    be.add_argument("instance")
    be.add_argument("--model", default="flex_vs_reinforce", help="a recipe with a flexible EV fleet")
    be.add_argument("--param", default="ev_fleet.flex_price_eur_per_mwh")
    be.add_argument("--lo", type=_finite, default=0.0)
    be.add_argument("--hi", type=_finite, default=5000.0)
    be.add_argument("--tol", type=_positive, default=0.01, help="relative tolerance of the bisection (default 0.01)")
    be.add_argument("--out", help="CSV of the prices tried (default out/INSTANCE-MODEL-breakeven.csv); the result "
                    "(.json), the curve (-breakeven.png) and the report (.html) beside it")
    be.add_argument("--time-limit", type=_seconds, default=None)
    be.add_argument("--mip-gap", type=_gap, default=0.01)
    vc = sub.add_parser("value-curve", help="the value of flexibility against EV uptake")
    vc.add_argument("instance")
    vc.add_argument("--model", default="flex_vs_reinforce", help="a recipe with a flexible EV fleet")
    vc.add_argument("--scales", default="0.5,1,1.5,2", help="factors on every fleet's EV counts (default 0.5,1,1.5,2)")
    vc.add_argument("--out", help="CSV table (default out/INSTANCE-MODEL-value-curve.csv); a PNG beside it")
    vc.add_argument("--time-limit", type=_seconds, default=None)
    vc.add_argument("--mip-gap", type=_gap, default=0.01)
    ph = sub.add_parser("phases", help="plan an LV feeder balanced, in three phases, and in three phases with phase "
                        "balancing: what a balanced model under-builds and what phase balancing is worth")
    ph.add_argument("instance", help="an instance with phase data (single-phase loads or fleets, zero-sequence "
                    "impedances) and reinforcement candidates")
    ph.add_argument("--model", default="reinforce_only", help="a recipe with reinforcement (default reinforce_only)")
    ph.add_argument("--loads", help="loads that may change phase (comma-separated; default: every single-phase load "
                    "unless --fleets is given)")
    ph.add_argument("--fleets", help="single-phase EV fleets (uncontrolled, smart or V2G) whose chargers may change phase")
    ph.add_argument("--move-cost", type=_finite, default=250.0, help="EUR per reconnection (default 250)")
    ph.add_argument("--out", help="CSV table (default out/INSTANCE-MODEL-phases.csv); .json summary and .png beside it")
    ph.add_argument("--time-limit", type=_seconds, default=None)
    ph.add_argument("--mip-gap", type=_gap, default=1e-4)
    dg = sub.add_parser("diagnose", help="name the constraints (family, bus/line, year, day, hour) that make an "
                        "instance infeasible or unbounded under a recipe")
    dg.add_argument("instance")
    dg.add_argument("--model", default=DEFAULT_RECIPE, help=f"recipe (default {DEFAULT_RECIPE})")
    dg.add_argument("--time-limit", type=_seconds, default=300.0, help="HiGHS time limit per solve (s, default 300)")
    dg.add_argument("--irreducible", action="store_true", help="reduce HiGHS's infeasible subset to an irreducible "
                    "one (minimal, much slower on large models)")
    dg.add_argument("--show", type=_count0, default=40, help="culprits to print (default 40)")
    dg.add_argument("--out", help="also write the diagnosis as JSON here")
    rp = sub.add_parser("report", help="(re)write report.html of a result folder (e.g. after check-ac)")
    rp.add_argument("outdir")
    sub.add_parser("list", help="list shipped instances, recipes, blocks and formulations")
    d = sub.add_parser("demo", help=f"solve the default instance ({DEFAULT_INSTANCE}, {DEFAULT_RECIPE}) and write "
                       "the report")
    d.add_argument("--out", default=None, help=f"output folder (default out/{DEFAULT_INSTANCE}-{DEFAULT_RECIPE})")
    d.add_argument("--force", action="store_true", help="replace --out even if it is a folder of other files")
    d.add_argument("--time-limit", type=_seconds, default=600.0, help="HiGHS time limit in seconds (default 600)")
    for name, sp in sub.choices.items():
        if name in ("solve", "frameworks", "sweep", "breakeven", "value-curve", "phases", "diagnose"):
            sp.add_argument("--allow-outside-paths", action="store_true", help="let instance.toml name data files "
                            "outside the instance folder (refused by default)")
    args = parser.parse_args(argv)
    from .instance.tables import ALLOW_OUTSIDE_PATHS

    outside_token = ALLOW_OUTSIDE_PATHS.set(bool(getattr(args, "allow_outside_paths", False)))
    from .solve import interrupt_policy

    # one solve (and its reference) or one stochastic run: Ctrl-C writes what was found;
    # commands that loop over many solves stop at the first Ctrl-C with what they wrote so far
    previous_policy = interrupt_policy("skip_after" if args.command in ("solve", "demo") else "raise")
    previous_term = _sigterm_interrupts()
    try:
        if args.command == "list":
            return cmd_list(args)
        if args.command in ("report", "check-ac"):
            _result_folder(args.outdir)
        files = {"sweep": "CSV table", "value-curve": "CSV table", "breakeven": "CSV table", "phases": "CSV table",
                 "diagnose": "JSON"}
        if args.command in files:
            _out_file(args.out, files[args.command])  # before any solve
        if args.command == "report":
            from .report import write_html_report

            print(write_html_report(args.outdir))
            return EXIT_OK
        if args.command == "value-curve":
            return cmd_value_curve(args)
        if args.command == "phases":
            return cmd_phases(args)
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "region":
            return cmd_region(args)
        if args.command == "breakeven":
            return cmd_breakeven(args)
        if args.command == "check-ac":
            return cmd_check_ac(args)
        if args.command == "frameworks":
            return cmd_frameworks(args)
        if args.command == "diagnose":
            return cmd_diagnose(args)
        if args.command == "demo":
            return _run(DEFAULT_INSTANCE, DEFAULT_RECIPE, args.out, args.time_limit, 0.01, 0, False, force=args.force)
        if args.stochastic:
            from .stochastic import METRICS

            metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip() and m.strip() != "none")
            bad = [m for m in metrics if m not in METRICS]
            if bad:
                _log(f"error: --metrics: unknown {', '.join(bad)}; choose from {', '.join(METRICS)} or none")
                return EXIT_INPUT
            if args.screen_days:
                _log("error: --screen-days works on a deterministic instance (not with --stochastic)")
                return EXIT_INPUT
            return _run_stochastic(args.instance, args.model, args.out, args.time_limit, args.mip_gap, args.threads,
                                   args.verbose, metrics, plots=not args.no_plots, force=args.force)
        return _run(args.instance, args.model, args.out, args.time_limit, args.mip_gap, args.threads, args.verbose,
                    plots=not args.no_plots, reference=not args.no_reference, screen=args.screen_days,
                    prices=not args.no_prices, force=args.force, ac=args.ac, ac_max_iter=args.ac_max_iter,
                    network=args.network)
    except (InstanceError, RecipeError) as e:
        _log(f"error: {e}")
        return EXIT_INPUT
    except SolverError as e:
        _log(f"solver error: {e}")
        return EXIT_NO_SOLUTION
    except FlexplanError as e:
        _log(f"error: {e}")
        return EXIT_INPUT
    except OSError as e:
        import errno

        if errno.errorcode.get(e.errno) not in _DISK_ERRNOS:
            raise
        where = f" {e.filename}" if e.filename else ""
        _log(f"error: cannot write or read{where}: {e.strerror or e} (check the permissions and the free space, or "
             "choose another --out); nothing half-written was left")
        return EXIT_INPUT
    except (_OutOfMemory, MemoryError) as e:
        stage = str(e) if isinstance(e, _OutOfMemory) else "the run"
        _log(f"error: out of memory while {stage}: reduce the representative days, stages or EV cohorts "
             "(ev_fleet.max_cohorts), or use a machine with more memory")
        return EXIT_NO_SOLUTION
    except KeyboardInterrupt:
        from .solve import aborted, solver_running

        hard = solver_running() or aborted()
        _log("interrupted (Ctrl-C or SIGTERM): stopped; files written before the interrupt are complete"
             if not hard
             else "aborted (second Ctrl-C or SIGTERM): HiGHS stopped hard; files written before are complete")
        if hard:  # do not wait for the abandoned HiGHS thread, nor let the interpreter's exit meet it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    finally:
        interrupt_policy(previous_policy)
        if previous_term is not None:
            import signal

            signal.signal(signal.SIGTERM, previous_term)
        ALLOW_OUTSIDE_PATHS.reset(outside_token)


def script() -> None:
    """The ``flexplan`` script: :func:`main`, then exit with its code.  A Ctrl-C that
    arrives after the run's work is done (a second press racing the end of an interrupted
    solve) cannot change what was written: it is caught here and the run ends with exit 130
    instead of dying by the signal, and SIGINT is ignored from then until the process exits."""
    import signal

    try:
        code = main()
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    script()
