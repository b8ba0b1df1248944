"""Build time of the EV fleet block: flat in the number of EVs, linear in cohorts x time.

    PYTHONPATH=. python benchmarks/ev_fleet_build.py [--repeat 3] [--out benchmarks/results/ev_fleet.json]

On ``instances/ieee33_ev`` (14 fleet buses, 4 stages x 3 days x 24 h), the fleets' EV counts
are scaled so that the feeder has 1 000 ... 100 000 EVs in the last year, and the block is
built alone (Pyomo ``Block`` + Hub, no network) in smart mode; then, at 10 000 EVs, the
number of cohorts is varied; then the generator's sample size (EV-days simulated to shape
the envelopes, which is not the fleet size).  Each point is the median of ``--repeat``
builds in this process with the cyclic garbage collector paused, as in ``build_model``, after
a first build that makes (and caches) the envelopes, and without the battery-state
expressions that only the ageing, contracts and tariff blocks read (as under
``flex_vs_reinforce``).
Finally the aggregation gap: how far the cohort aggregate's optimal peak and cost fall below
the exact model with one cohort per session, by number of cohorts.
Writes JSON, CSV and a PNG beside ``--out``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def log(msg):
    print(f"[ev-bench] {msg}", file=sys.stderr, flush=True)


def scaled(inst, total_last_year: float):
    """The instance with every fleet's counts scaled so that the feeder has
    ``total_last_year`` EVs in the last year."""
    now = sum(float(f.evs.iloc[-1]) * len(f.buses) for f in inst.ev_fleets)
    k = total_last_year / now
    fleets = tuple(dataclasses.replace(f, evs=f.evs * k) for f in inst.ev_fleets)
    return dataclasses.replace(inst, ev_fleets=fleets)


def build_block(inst, ix, **cfg) -> tuple[float, dict]:
    from flexplan.assemble import cyclic_gc_paused
    from flexplan.blocks.ev_fleet import EVFleetConfig, add_ev_fleet
    from flexplan.hub import Hub

    with cyclic_gc_paused():
        t0 = time.perf_counter()
        b = pyo.Block(concrete=True)
        hub = Hub(inst.network.n_buses, ix.n_ops)
        hub.required = set()  # as under flex_vs_reinforce: no block prices the batteries' use
        add_ev_fleet(b, inst, ix, hub, EVFleetConfig(**cfg))
        dt = time.perf_counter() - t0
    nvar = sum(len(c) for c in b.component_objects(pyo.Var, descend_into=True))
    ncon = sum(len(c) for c in b.component_objects(pyo.Constraint, descend_into=True))
    cohorts = sum(e.n_cohorts for e in b._flex["envs"])
    steps = sum(e.n_variables_per_day for e in b._flex["envs"])
    return dt, dict(variables=nvar, constraints=ncon, cohorts=cohorts, cohort_steps_per_day=steps)


def median_build(inst, ix, repeat, **cfg):
    times, size = [], None
    for _ in range(repeat):
        t, size = build_block(inst, ix, **cfg)
        times.append(t)
    return statistics.median(times), size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "ev_fleet.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from flexplan.index import deterministic_index
    from flexplan.instance import load_instance

    t0 = time.perf_counter()
    base = load_instance(ROOT / "instances" / "ieee33_ev")
    load_s = time.perf_counter() - t0
    ix = deterministic_index(base)
    # envelopes are built once per fleet and setting, then cached: time that apart
    t0 = time.perf_counter()
    build_block(base, ix)
    envelope_s = time.perf_counter() - t0
    log(f"first build, including the envelopes of both fleets: {envelope_s:.3f} s")
    rows = []
    for n in (1_000, 3_000, 10_000, 30_000, 100_000):
        inst = scaled(base, n)
        t, size = median_build(inst, ix, args.repeat)
        rows.append(dict(sweep="evs", evs=n, max_cohorts=16, sample_evs=500, build_s=t, **size))
        log(f"{n:>7} EVs: build {t:.3f} s, {size}")
    inst = scaled(base, 10_000)
    for k in (2, 4, 8, 16, 32, 64):
        t, size = median_build(inst, ix, args.repeat, max_cohorts=k)
        rows.append(dict(sweep="cohorts", evs=10_000, max_cohorts=k, sample_evs=500, build_s=t, **size))
        log(f"max_cohorts {k:>3}: build {t:.3f} s, {size}")
    from flexplan.ev.generator import generate_sessions

    gen = []
    for sample in (100, 300, 1000, 3000, 10000):
        ts = []
        for _ in range(args.repeat):
            t1 = time.perf_counter()
            generate_sessions("home", sample, 14, seed=1)
            ts.append(time.perf_counter() - t1)
        gen.append(dict(sample_evs=sample, sample_days=14, generate_s=statistics.median(ts)))
        log(f"generator, sample of {sample} EVs x 14 days: {gen[-1]['generate_s']:.3f} s")
    gaps = aggregation_gaps(base)
    df = pd.DataFrame(rows)
    ev = df[df.sweep == "evs"]
    ratio = float(ev.build_s.max() / ev.build_s.min())
    co = df[df.sweep == "cohorts"]
    slope = float(np.polyfit(np.log(co.cohort_steps_per_day), np.log(co.build_s), 1)[0])
    summary = dict(instance="ieee33_ev", load_s=load_s, first_build_with_envelopes_s=envelope_s,
                   evs_build_ratio_max_over_min=ratio,
                   build_exponent_in_cohort_steps=slope, same_size_for_all_ev_counts=bool(
                       ev[["variables", "constraints"]].nunique().max() == 1))
    log(f"build time over 1k..100k EVs: max/min {ratio:.2f}; exponent in cohort-steps {slope:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(summary=summary, rows=rows, generator=gen, aggregation=gaps), indent=2) + "\n")
    df.to_csv(out.with_suffix(".csv"), index=False)
    plot(df, pd.DataFrame(gen), out.with_suffix(".png"))
    print(df.to_string(index=False))
    print(pd.DataFrame(gaps).to_string(index=False))
    print(json.dumps(summary, indent=2))
    return 0


PRICE = np.array([30, 25, 20, 20, 25, 40, 60, 80, 70, 60, 50, 40, 40, 45, 50, 60, 90, 120, 110, 90, 70, 50, 40, 35.0])


def aggregation_gaps(inst, n_evs=500, days=3, seed=4):
    """How far the cohort aggregate's optimum is below the exact per-EV model's: a home
    fleet of ``n_evs`` EVs x ``days`` generated days (half V2G-capable) at one bus, one
    day of 24 h; objectives: the fleet's peak (MW) and its charging cost at a test price
    (EUR/day at PRICE, EUR/MWh, cheap nights).  ``gap`` = exact − aggregate in those units
    (>= 0: the aggregate is a relaxation).  Returns one row per cohort setting."""
    from flexplan.assemble import cyclic_gc_paused
    from flexplan.blocks.ev_fleet import EVFleetConfig, add_ev_fleet
    from flexplan.ev import validate_sessions
    from flexplan.ev.fleet import EVFleet
    from flexplan.ev.generator import GeneratorOptions, generate_sessions
    from flexplan.hub import Hub
    from flexplan.index import deterministic_index
    from flexplan.instance.model import Economics, Profiles
    from flexplan.solve import solve_model

    s, st = generate_sessions("home", n_evs, days, seed=seed, options=GeneratorOptions(v2g_share=0.5))
    s, _ = validate_sessions(s, "generated", 24, 1.0)
    fleet = EVFleet(name="home", buses=(1,), bus_names=("1",), behaviour="home",
                    evs=pd.Series({2025: float(n_evs)}), sessions=s, ev_days=st["ev_days"])
    one_day = Profiles(days=("d",), weights=np.array([365.0]), hours=24, dt_h=1.0,
                       factors={k: v[:1] for k, v in inst.profiles.factors.items()})
    small = dataclasses.replace(inst, ev_fleets=(fleet,), profiles=one_day, years_per_stage="all",
                                economics=Economics(base_year=2025, end_year=2025, stages=(2025,)),
                                growth=inst.growth.loc[[2025]])
    ix = deterministic_index(small)

    def optimum(objective, mode, **cfg):
        m = pyo.ConcreteModel()
        m.ev = pyo.Block()
        hub = Hub(small.network.n_buses, ix.n_ops)
        with cyclic_gc_paused():
            add_ev_fleet(m.ev, small, ix, hub, EVFleetConfig(mode=mode, flex_price_eur_per_mwh=0.0, **cfg))
        load = [-sum(hub.p_terms.get((1, t), [])) for t in range(ix.n_ops)]
        if objective == "cost":
            m.obj = pyo.Objective(expr=sum(float(PRICE[t]) * load[t] for t in range(24)))
        else:
            m.z = pyo.Var()
            m.c = pyo.Constraint(range(24), rule=lambda _, t: m.z >= load[t])
            m.obj = pyo.Objective(expr=m.z)
        out = solve_model(m)
        return out.objective, m.ev._flex["envs"][0].n_cohorts, len(m.ev.p_ch)

    rows = []
    settings = [("1", dict(max_cohorts=1)), ("4", dict(max_cohorts=4)), ("16 (default)", dict(max_cohorts=16)),
                ("64", dict(max_cohorts=64)), ("one per window", dict(max_cohorts=0))]
    for mode in ("smart", "v2g"):
        for objective in ("peak", "cost"):
            exact, n_exact, _ = optimum(objective, mode, per_session=True)
            for label, cfg in settings:
                val, n, nvar = optimum(objective, mode, **cfg)
                rows.append(dict(mode=mode, objective=objective, cohorts=label, n_cohorts=n, sessions=n_exact,
                                 exact=exact, aggregate=val, gap=exact - val,
                                 gap_pct=100 * (exact - val) / abs(exact), p_ch_vars=nvar))
                log(f"aggregation {mode} {objective} cohorts {label}: gap {rows[-1]['gap_pct']:.3f} %")
    return rows


def plot(df, gen, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ev = df[df.sweep == "evs"]
    ax[0].plot(ev.evs, ev.build_s, "o-")
    ax[0].set_xscale("log")
    ax[0].set_ylim(0, ev.build_s.max() * 1.3)
    ax[0].set_xlabel("EVs on the feeder (last year)")
    ax[0].set_ylabel("block build time (s)")
    ax[0].set_title("flat in the number of EVs")
    co = df[df.sweep == "cohorts"]
    ax[1].loglog(co.cohort_steps_per_day, co.build_s, "o-")
    for r in co.itertuples():
        ax[1].annotate(f"{r.max_cohorts}", (r.cohort_steps_per_day, r.build_s), fontsize=7)
    ax[1].set_xlabel("cohort-steps per fleet-day (labels: max_cohorts)")
    ax[1].set_ylabel("block build time (s)")
    ax[1].set_title("linear in cohorts x time")
    ax[2].loglog(gen.sample_evs * gen.sample_days, gen.generate_s, "o-")
    ax[2].set_xlabel("generated EV-days (sample, not fleet)")
    ax[2].set_ylabel("generator time (s)")
    ax[2].set_title("session generator")
    for a in ax:
        a.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
