"""Block registry and the block contract (docs/blocks.md).

A block is one module that registers a :class:`BlockSpec`: a function ``add(b, inst, ix, hub,
cfg)`` that fills one Pyomo sub-block, its typed ``config`` dataclass, and its declarations:

* ``requires`` / ``uses`` / ``provides`` / ``offers``: the :mod:`~flexplan.channels` it reads
  (must be there / read if there) and writes (always / only when some block reads it).  The
  assembler orders the blocks of a recipe from these (:func:`order_blocks`);
* ``extract(b, inst, ix) -> dict``: its part of the results (``tables``, ``summary``);
* traits: ``day_separable`` (each representative day's rows are independent, so day
  screening may drop days), ``reference`` (the options that remove its flexibility, for the
  value-of-flexibility reference), ``uncertain`` (quantities a scenario tree may scale per
  node: ``[tree] factors = {name = [...]}``, read with ``ix.op_factor(name)``), ``section`` (a parser for its own table of
  ``instance.toml``, whose result the block finds in ``inst.sections[name]``), and for a
  network formulation ``prices(b, inst, ix, duals)``: its nodal and line prices from the
  dual values of its rows (:mod:`flexplan.prices`).

Blocks are discovered from flexplan's own modules and from the entry-point group
``flexplan.blocks`` (a third-party package lists its block modules there; importing a
module registers its blocks), or registered at run time with :func:`register_block`.
Network formulations are registered the same way under :data:`FORMULATIONS`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from ..channels import CHANNELS
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
    uses: tuple[str, ...] = ()
    offers: tuple[str, ...] = ()
    day_separable: bool = False
    reference: Callable[[dict], dict | None] | None = None
    section: Callable[..., Any] | None = None
    prices: Callable[..., dict] | None = None  # network formulations: duals -> nodal prices (flexplan.prices)
    violations: Callable[..., Any] | None = None  # network formulations: (b, pm) -> the soft-limit violations table
    locate: Callable[..., tuple] | None = None  # network formulations: (b, family, first index, inst) -> (element type, name)
    uncertain: tuple[str, ...] = ()  # quantities a scenario tree may scale per node ([tree] factors)

    def reads(self) -> tuple[str, ...]:
        return self.requires + self.uses

    def writes(self) -> tuple[str, ...]:
        return self.provides + self.offers


BLOCKS: dict[str, BlockSpec] = {}
FORMULATIONS: dict[str, BlockSpec] = {}
ENTRY_POINT_GROUP = "flexplan.blocks"


def _check_channels(spec: BlockSpec) -> None:
    unknown = [c for c in spec.reads() + spec.writes() if c not in CHANNELS]
    if unknown:
        raise ValueError(f"block '{spec.name}' declares unknown channel(s) {', '.join(unknown)}; declare them with "
                         f"flexplan.channels.register_channel (known: {', '.join(sorted(CHANNELS))})")
    if not dataclasses.is_dataclass(spec.config):
        raise ValueError(f"block '{spec.name}': config must be a dataclass, got {spec.config!r}")


def register_block(spec: BlockSpec) -> BlockSpec:
    _check_channels(spec)
    BLOCKS[spec.name] = spec
    return spec


def register_formulation(spec: BlockSpec) -> BlockSpec:
    _check_channels(spec)
    FORMULATIONS[spec.name] = spec
    return spec


# -- typed configs ---------------------------------------------------------------------------
def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def type_problem(value, hint) -> str | None:
    """Why ``value`` is not of the annotated type ``hint`` (None if it is).  Numbers: an int
    is a float, a bool is neither; ``list[T]`` and ``dict[str, T]`` check their items."""
    if hint is Any or hint is object:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        problems = [type_problem(value, h) for h in typing.get_args(hint)]
        return None if any(p is None for p in problems) else f"must be {' or '.join(map(_type_name, typing.get_args(hint)))}"
    if hint is type(None):
        return None if value is None else "must be none"
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return "must be a list"
        args = typing.get_args(hint)
        if args:  # list[T] or tuple[T, ...]: every item a T
            for i, v in enumerate(value):
                p = type_problem(v, args[0])
                if p:
                    return f"item {i} ({v!r}) {p}"
        return None
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            return "must be a table"
        args = typing.get_args(hint)
        if args:
            for k, v in value.items():
                p = type_problem(k, args[0]) or type_problem(v, args[1])
                if p:
                    return f"entry {k!r} {p}"
        return None
    if isinstance(hint, type):
        return None if isinstance(value, hint) else f"must be a {hint.__name__}"
    return None


def make_config(spec: BlockSpec, options: dict[str, Any], where: str):
    """Build a block's config dataclass from recipe options, refusing unknown keys and values
    of the wrong type (by the dataclass's annotations: numbers, bools, strings, lists of
    them...) with a message naming the recipe key, then the config's own ``validate()``."""
    fields = {f.name: f for f in dataclasses.fields(spec.config)}
    unknown = [k for k in options if k not in fields]
    if unknown:
        raise RecipeError(f"{where}: unknown option(s) {', '.join(unknown)} for '{spec.name}'; "
                          f"allowed: {', '.join(fields) or '(none)'}")
    try:
        hints = typing.get_type_hints(spec.config)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: check by default value
        hints = {}
    for name, value in options.items():
        hint = hints.get(name)
        if hint is None:
            default = fields[name].default
            hint = type(default) if default not in (dataclasses.MISSING, None) else Any
            if hint is int and isinstance(value, float):
                hint = float  # an untyped default of 3 still takes 3.5 only if annotated
        problem = type_problem(value, hint)
        if problem:
            raise RecipeError(f"{where}: option '{name}' of '{spec.name}' {problem}, got {value!r}")
    cfg = spec.config(**options)
    if hasattr(cfg, "validate"):
        problem = cfg.validate()
        if problem:
            raise RecipeError(f"{where}: {problem}")
    return cfg


# -- ordering ----------------------------------------------------------------------------------
def order_blocks(names: list[str], where: str = "recipe", also_read: tuple[str, ...] = ()) -> list[str]:
    """The build order of ``names`` from their channel declarations: each provider before the
    blocks that read its channel, otherwise the recipe's order.  Refuses (naming the blocks) a
    required channel without provider, two providers of one channel, a provided channel that
    no block reads (``also_read``: channels the network formulation reads), and a cycle."""
    specs = {n: BLOCKS[n] for n in names}
    writer: dict[str, str] = {}
    for n, s in specs.items():
        for c in s.writes():
            if c in writer:
                raise RecipeError(f"{where}: blocks '{writer[c]}' and '{n}' both provide the channel '{c}' "
                                  f"({CHANNELS[c].doc}); keep one of them")
            writer[c] = n
    for n, s in specs.items():
        missing = [c for c in s.requires if c not in writer]
        if missing:
            who = sorted({b for c in missing for b, t in BLOCKS.items() if c in t.writes()})
            hint = f"add a block that provides it ({', '.join(who)})" if who else "no known block provides it"
            raise RecipeError(f"{where}: block '{n}' requires {', '.join(missing)}, which no block of this recipe "
                              f"provides (blocks: {', '.join(names)}); {hint} or remove '{n}'")
    for n, s in specs.items():
        for c in s.provides:
            if c not in also_read and not any(c in t.reads() for t in specs.values()):
                readers = sorted(b for b, t in BLOCKS.items() if c in t.reads())
                raise RecipeError(f"{where}: block '{n}' provides '{c}' ({CHANNELS[c].doc}) but no block of this "
                                  f"recipe reads it, so it would change nothing; add "
                                  f"{' or '.join(repr(r) for r in readers) or 'a block that reads it'} or remove '{n}'")
    after = {n: [] for n in names}  # provider -> readers
    indeg = {n: 0 for n in names}
    for n, s in specs.items():
        for c in s.reads():
            p = writer.get(c)
            if p is not None and p != n:
                after[p].append(n)
                indeg[n] += 1
    order, ready = [], [n for n in names if indeg[n] == 0]
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in after[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
        ready.sort(key=names.index)
    if len(order) < len(names):
        stuck = [n for n in names if n not in order]
        raise RecipeError(f"{where}: the channels of blocks {', '.join(stuck)} form a cycle (each reads what "
                          "another writes); no build order exists")
    return order


# -- discovery ---------------------------------------------------------------------------------
_loaded = [False]


def _entry_points():
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _load_all() -> None:
    """Import flexplan's block modules and those of the ``flexplan.blocks`` entry points
    (importing a module registers its blocks).  A broken third-party entry point is an
    error naming it."""
    # importing the modules registers them
    from . import ageing, connection, contracts, demand, ev_fleet, grid_code, reinforcement, tariffs  # noqa: F401
    from . import heat_pump, lv_grids, lv_supply, phase_balancing, pv, storage, wholesale  # noqa: F401
    from .network import branchflow, copperplate, lindist3flow, lindistflow  # noqa: F401

    if _loaded[0]:
        return
    _loaded[0] = True
    for ep in _entry_points():
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001 - reported with the entry point's name
            _loaded[0] = False
            raise RecipeError(f"the block package entry point '{ep.name} = {ep.value}' (group {ENTRY_POINT_GROUP}) "
                              f"failed to load: {type(e).__name__}: {e}") from e
