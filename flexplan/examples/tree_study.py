"""What is waiting worth when EV uptake is uncertain?

    python -m flexplan.examples.tree_study                  # ieee33_ev (about 15 minutes)
    python -m flexplan.examples.tree_study FOLDER --quick   # any instance with EV fleets

Builds a low/high uptake tree over the instance's stages in Python (no [tree] needed in the
file), gives reinforcements a one-stage lead time, solves the stochastic plan and prints
the decisions per node, the value of the stochastic solution, the expected value of perfect
information and the option value of flexibility; the result folder has the decision tree
and the per-scenario costs.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import flexplan as fp
from flexplan.paths import resolve_instance_path
from flexplan.instance.tree import uptake_tree
from flexplan.stochastic import solve_stochastic


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("instance", nargs="?", default="ieee33_ev")
    ap.add_argument("--out", default="out/tree_study")
    ap.add_argument("--quick", action="store_true", help="LP relaxation")
    args = ap.parse_args(argv)

    inst = fp.load_instance(resolve_instance_path(args.instance))
    tree = uptake_tree(inst.economics.stages, branches=("low", "high"), probabilities=(0.5, 0.5),
                       ev_factor=(0.6, 1.4))
    inst = dataclasses.replace(inst, tree=tree)
    recipe = {"name": "lead_time", "blocks": ["demand", "ev_fleet", "reinforcement"],
              "ev_fleet": {"mode": "smart", "max_cohorts": 8},
              "reinforcement": {"binary": not args.quick, "lead_time_stages": 1}}
    res = solve_stochastic(inst, recipe, mip_gap=0.01, progress=print)
    st = res.extra["stochastic"]
    print(res.tables["decisions"][["node", "prob", "builds", "node_cost_pv_eur"]].to_string(index=False))
    print(f"expected cost {st['expected_cost_eur']:,.0f} EUR; VSS {st.get('vss_eur', 0):,.0f}; "
          f"EVPI {st.get('evpi_eur', 0):,.0f}; option value of flexibility "
          f"{st.get('option_value_of_flexibility_eur', 0):,.0f} EUR")
    folder = res.write(Path(args.out))
    print(f"decision tree and scenario costs in {folder}")
    return st


if __name__ == "__main__":
    main()
