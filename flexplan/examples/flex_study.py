"""Is EV flexibility worth buying on this feeder, and up to which price?

    python -m flexplan.examples.flex_study                 # ieee33_ev (about 10 minutes)
    python -m flexplan.examples.flex_study FOLDER --quick  # any instance with EV fleets

Steps: assemble a recipe in Python (smart charging plus reinforcement on LinDistFlow, the
LP relaxation with ``--quick``), solve it against its reference with uncontrolled EVs,
sweep the flexibility price (table + tornado + HTML report), bisect the break-even price,
and plot the value of flexibility against EV uptake.  Everything goes to ``--out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import flexplan as fp
from flexplan.paths import resolve_instance_path
from flexplan.report import write_sweep_report
from flexplan.sensitivity import breakeven, breakeven_plot, sweep, value_curve
from flexplan.value import reference_recipe, value_of_flexibility


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("instance", nargs="?", default="ieee33_ev")
    ap.add_argument("--out", default="out/flex_study")
    ap.add_argument("--quick", action="store_true", help="LP relaxation and fewer points")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. a recipe assembled in Python: blocks in order, options per block
    recipe = {"name": "my_flex", "blocks": ["demand", "ev_fleet", "reinforcement"],
              "network": {"formulation": "lindistflow", "polygon_sides": 12},
              "ev_fleet": {"mode": "smart", "flex_price_eur_per_mwh": 200.0},
              "reinforcement": {"binary": not args.quick}}
    inst = fp.load_instance(resolve_instance_path(args.instance))

    # 2. the plan and what flexibility saves against uncontrolled charging
    plan = fp.solve(fp.build_model(inst, recipe), mip_gap=0.01)
    ref = fp.solve(fp.build_model(inst, reference_recipe(recipe)), mip_gap=0.01)
    vof = value_of_flexibility(plan, ref)
    print(f"plan {plan.objective_eur:,.0f} EUR, uncontrolled {ref.objective_eur:,.0f} EUR: "
          f"flexibility is worth {vof['value_eur']:,.0f} EUR")
    plan.write(out / "plan")

    # 3. a price sweep: one row per run, a tornado and an HTML report
    prices = [50.0, 500.0] if args.quick else [50.0, 100.0, 200.0, 400.0, 800.0]
    table = sweep(inst, recipe, {"ev_fleet.flex_price_eur_per_mwh": prices}, out=out / "sweep.csv", mip_gap=0.01)
    write_sweep_report(out / "sweep.csv", title=f"{inst.name}: flexibility price")
    print(table[["param:ev_fleet.flex_price_eur_per_mwh", "objective_eur", "investment_eur"]])

    # 4. the break-even price: above it the plan reinforces as much as without flexibility
    be = breakeven(inst, recipe, lo=1.0, hi=5000.0, rel_tol=0.05 if args.quick else 0.01, mip_gap=0.01)
    breakeven_plot(be, out / "breakeven-breakeven.png")
    print(f"break-even flexibility price {be['breakeven']:.1f} EUR/MWh (in [{be['lower']:.1f}, {be['upper']:.1f}])")

    # 5. the value of flexibility against EV uptake (CSV + PNG)
    curve = value_curve(inst, recipe, scales=(0.5, 1.0) if args.quick else (0.5, 1.0, 1.5, 2.0),
                        out=out / "value_curve.csv", mip_gap=0.01)
    print(curve[["scale", "evs_last_year", "value_eur"]])
    return dict(value_eur=vof["value_eur"], breakeven=be["breakeven"], sweep=table, curve=curve)


if __name__ == "__main__":
    main()
