"""Block registry.  A block is a plain function ``add(b, inst, ix, hub, cfg)`` that fills one
Pyomo sub-block and talks to the rest only through the :class:`~flexplan.hub.Hub`.

Each block declares what it ``requires`` and what it ``provides`` (capability names);
the assembler refuses a recipe whose blocks need something no other block provides.
Network formulations are registered the same way under ``FORMULATIONS`` and must
provide ``network``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import RecipeError


@dataclass(frozen=True)
class BlockSpec:
    name: str
    add: Callable[..., None]
    config: type
    requires: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    extract: Callable[..., dict] | None = None
    doc: str = ""


BLOCKS: dict[str, BlockSpec] = {}
FORMULATIONS: dict[str, BlockSpec] = {}


def register_block(spec: BlockSpec) -> BlockSpec:
    BLOCKS[spec.name] = spec
    return spec


def register_formulation(spec: BlockSpec) -> BlockSpec:
    if "network" not in spec.provides:
        raise ValueError(f"network formulation {spec.name} must provide 'network'")
    FORMULATIONS[spec.name] = spec
    return spec


def make_config(spec: BlockSpec, options: dict[str, Any], where: str):
    """Build a block's config dataclass from recipe options, refusing unknown keys or
    values of the wrong type with a message naming the recipe key."""
    fields = {f.name: f for f in dataclasses.fields(spec.config)}
    unknown = [k for k in options if k not in fields]
    if unknown:
        raise RecipeError(f"{where}: unknown option(s) {', '.join(unknown)} for '{spec.name}'; "
                          f"allowed: {', '.join(fields) or '(none)'}")
    cfg = spec.config(**options)
    for name, f in fields.items():
        default = f.default if f.default is not dataclasses.MISSING else None
        value = getattr(cfg, name)
        if default is not None and not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
            raise RecipeError(f"{where}: option '{name}' of '{spec.name}' must be a {type(default).__name__}, "
                              f"got {value!r}")
    if hasattr(cfg, "validate"):
        problem = cfg.validate()
        if problem:
            raise RecipeError(f"{where}: {problem}")
    return cfg


def _load_all() -> None:
    # importing the modules registers them
    from . import ageing, connection, contracts, demand, ev_fleet, grid_code, reinforcement, tariffs  # noqa: F401
    from .network import copperplate, lindistflow  # noqa: F401

