"""Recipes: which blocks and which network formulation make a study (``models/*.toml``).

```toml
name = "reinforce_only"
description = "Least-cost reinforcement, no flexibility"
blocks = ["demand", "reinforcement"]     # in build order; the network comes last
[network]
formulation = "lindistflow"              # or "copperplate"
polygon_sides = 12                       # options of the formulation
[reinforcement]                          # options of a block, by block name
binary = true
```
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RecipeError
from .paths import shipped_models

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class Recipe:
    name: str
    blocks: list[str]
    formulation: str = "lindistflow"
    options: dict[str, dict] = field(default_factory=dict)  # block name (or "network") -> options
    description: str = ""
    source: str = "<dict>"


def resolve_recipe(recipe: str | Path | Recipe | dict) -> Recipe:
    """A Recipe from an object, a dict, a path to a TOML file or a shipped recipe name."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return recipe_from_dict(recipe, "<dict>")
    p = Path(recipe)
    if not p.exists():
        cand = shipped_models() / (str(recipe) if str(recipe).endswith(".toml") else f"{recipe}.toml")
        if not cand.exists():
            names = ", ".join(sorted(q.stem for q in shipped_models().glob("*.toml")))
            raise RecipeError(f"recipe '{recipe}' not found (neither a file nor a shipped recipe: {names})")
        p = cand
    from .errors import InstanceError
    from .instance.tables import read_text

    try:
        data = tomllib.loads(read_text(p, str(p), "TOML"))  # a regular UTF-8 file of bounded size
    except InstanceError as e:  # a directory, a FIFO, binary, not UTF-8, too big
        raise RecipeError(f"recipe {e.problems[0]}") from None
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{p}: not valid TOML: {e}") from e
    return recipe_from_dict(data, str(p))


def recipe_from_dict(data: dict, source: str) -> Recipe:
    data = dict(data)
    name = data.pop("name", Path(source).stem)
    description = data.pop("description", "")
    blocks = data.pop("blocks", None)
    if not isinstance(blocks, list) or not all(isinstance(b, str) for b in blocks):
        raise RecipeError(f"{source}: 'blocks' must be a list of block names")
    network = dict(data.pop("network", {}))
    formulation = network.pop("formulation", "lindistflow")
    options = {"network": network}
    for key, value in data.items():
        if key not in blocks:
            raise RecipeError(f"{source}: section [{key}] configures a block that is not in 'blocks' {blocks}")
        if not isinstance(value, dict):
            raise RecipeError(f"{source}: [{key}] must be a table of options")
        options[key] = value
    return Recipe(name=name, blocks=blocks, formulation=formulation, options=options, description=description,
                  source=source)


def with_formulation(recipe, network: str):
    """The recipe with another network formulation; the network options that formulation has
    are kept, except LinDistFlow's polygon, which the branch-flow model refines (48 sides)."""
    import dataclasses

    from .blocks import FORMULATIONS, _load_all

    _load_all()
    if network not in FORMULATIONS:
        raise RecipeError(f"unknown network formulation '{network}'; available: {', '.join(sorted(FORMULATIONS))}")
    fields = {f.name for f in dataclasses.fields(FORMULATIONS[network].config)}
    opts = {k: v for k, v in recipe.options.get("network", {}).items() if k in fields
            and not (k == "polygon_sides" and network == "branchflow" and recipe.formulation == "lindistflow")}
    return dataclasses.replace(recipe, formulation=network, options={**recipe.options, "network": opts})
