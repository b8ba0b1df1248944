"""The value of flexibility: what the plan saves against the same study with uncontrolled EVs.

value = cost(recipe with EVs uncontrolled) − cost(recipe)

The reference is the same recipe (same network, reinforcement options and penalties)
with the ``ev_fleet`` block in ``uncontrolled`` mode, so the difference is due to the
flexibility alone; for ``flex_vs_reinforce`` it is the ``reinforce_only`` study.  With MIP
gaps both costs are uncertain; the bounds use each solve's incumbent and dual bound.
"""
from __future__ import annotations

import copy

from .recipe import Recipe, resolve_recipe


def reference_recipe(recipe) -> Recipe | None:
    """The recipe without flexibility (each block's ``reference`` trait: the EV fleets
    uncontrolled), or None if no block of ``recipe`` has flexibility to remove."""
    from .blocks import BLOCKS, _load_all

    _load_all()
    recipe = resolve_recipe(recipe)
    changed = {}
    for name in recipe.blocks:
        spec = BLOCKS.get(name)
        if spec is not None and spec.reference is not None:
            opts = spec.reference(dict(recipe.options.get(name, {})))
            if opts is not None:
                changed[name] = opts
    if not changed:
        return None
    ref = copy.deepcopy(recipe)
    ref.name = f"{recipe.name}[uncontrolled EVs]" if list(changed) == ["ev_fleet"] else f"{recipe.name}[no flexibility]"
    ref.options.update(changed)
    return ref


def value_of_flexibility(res, ref) -> dict:
    """Compare a solved plan with its solved reference (both :class:`~flexplan.results.Results`)."""
    out = dict(reference_model=ref.model, reference_status=ref.status, reference_objective_eur=ref.objective_eur,
               objective_eur=res.objective_eur, value_eur=None, value_lower_eur=None, value_upper_eur=None,
               reference_cost_breakdown_eur=ref.cost_breakdown_eur,
               reference_builds=[dict(asset=r.asset, type=r.type, year=int(r.year),
                                      capex_eur=round(float(r.capex_eur), 2)) for r in ref.builds.itertuples()])
    if res.has_solution and ref.has_solution:
        out["value_eur"] = ref.objective_eur - res.objective_eur

        def bound(r):
            b = r.extra.get("dual_bound_eur")
            return r.objective_eur if b is None else b

        out["value_lower_eur"] = bound(ref) - res.objective_eur
        out["value_upper_eur"] = ref.objective_eur - bound(res)
    return out
