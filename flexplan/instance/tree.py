"""Scenario trees: how uncertain the future is (docs/formulation.md §1).

A tree has one node per (investment stage, branch).  The root is the first stage; every
other node has a parent in the stage before, a probability conditional on that parent and
the uncertain data of its stage's years, as multipliers of the instance's deterministic
data:

* ``ev_factor``: EV counts of every fleet (a number) or per fleet (``{home = 1.4}``,
  fleets not named keep 1.0) — a low / medium / high uptake S-curve is the fleet's curve
  times the branch's factor;
* ``demand_factor``: every fixed load (on top of the instance's growth);
* ``price_factor``: the prices of flexibility (``ev_fleet.flex_price_eur_per_mwh`` and the
  ``contracts`` fees);
* ``factors``: any other uncertain quantity a block declares (its ``uncertain`` trait, e.g.
  ``heat_pumps``: the number of heat pumps), as ``{heat_pumps = 1.3}`` on a node or
  ``{heat_pumps = [0.8, 1.0, 1.3]}`` (one per branch) in ``[tree]``.

Two ways to write it in ``instance.toml``:

.. code-block:: toml

    [tree]                                  # the same branches at every stage after the first
    branches = ["low", "medium", "high"]
    probabilities = [0.25, 0.5, 0.25]
    ev_factor = [0.6, 1.0, 1.5]             # optional, one per branch (or a table per fleet each)
    demand_factor = [1.0, 1.0, 1.0]         # optional
    price_factor = [1.0, 1.0, 1.0]          # optional

    [[tree.nodes]]                          # or every node explicitly (the root has no parent)
    name = "n2030_high"
    parent = "n2025"
    probability = 0.25
    ev_factor = 1.5

With ``branches``, node names are ``n<first year of the stage>`` followed by the branches on
the path (``n2025``, ``n2030_high``, ``n2035_high_low``).  The
factors of a node hold for its own stage (they do not compound along the path): a branch is
the state of the world in that stage.  :func:`uptake_tree` builds the same from Python.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import InstanceError, Problem

PROB_TOL = 1e-9  # absolute tolerance on "conditional probabilities sum to 1"
#: The largest tree built: every node holds a copy of its stage's operation model, so the
#: extensive form of a tree this size is already far beyond what HiGHS solves on one machine.
MAX_TREE_NODES = 1000


def tree_size(n_branches: int, n_stages: int) -> int:
    """Nodes of a tree with ``n_branches`` children per node over ``n_stages`` stages."""
    return sum(n_branches ** k for k in range(max(n_stages, 0)))


@dataclass(frozen=True)
class TreeNode:
    """One node: ``stage`` 0 is the root; ``cond_prob`` is conditional on ``parent``;
    ``ev_factor`` maps fleet name (or ``"*"`` for every fleet) to a multiplier."""

    name: str
    parent: str | None
    stage: int
    cond_prob: float
    ev_factor: dict = field(default_factory=dict)
    demand_factor: float = 1.0
    price_factor: float = 1.0
    branch: str = ""
    factors: dict = field(default_factory=dict)  # uncertain quantity (a block's trait) -> multiplier

    def ev(self, fleet: str) -> float:
        return float(self.ev_factor.get(fleet, self.ev_factor.get("*", 1.0)))


@dataclass(frozen=True)
class ScenarioTree:
    """Nodes in breadth-first order (parents before children)."""

    nodes: tuple[TreeNode, ...]
    branching: tuple[int, ...] | None = None  # children per node at each non-leaf stage, when uniform

    @property
    def by_name(self) -> dict[str, TreeNode]:
        return {n.name: n for n in self.nodes}

    def children(self, name: str) -> list[TreeNode]:
        return [n for n in self.nodes if n.parent == name]

    @property
    def root(self) -> TreeNode:
        return self.nodes[0]

    @property
    def leaves(self) -> list[TreeNode]:
        parents = {n.parent for n in self.nodes}
        return [n for n in self.nodes if n.name not in parents]

    def path(self, leaf: str) -> list[TreeNode]:
        """Root ... leaf."""
        by = self.by_name
        out, cur = [], by[leaf]
        while cur is not None:
            out.append(cur)
            cur = by.get(cur.parent) if cur.parent else None
        return out[::-1]

    def prob(self, name: str) -> float:
        """Absolute probability: the product of the conditional ones on the path."""
        return math.prod(n.cond_prob for n in self.path(name))

    def scenarios(self) -> list[tuple[str, float]]:
        """(leaf name, probability), one per scenario."""
        return [(leaf.name, self.prob(leaf.name)) for leaf in self.leaves]

    @property
    def n_stages(self) -> int:
        return 1 + max(n.stage for n in self.nodes)

    def mpisppy_names(self) -> dict[str, str]:
        """flexplan node name -> mpi-sppy node name (``ROOT``, ``ROOT_0``, ``ROOT_0_2``):
        the k-th child (in file order) of a node gets the suffix ``_k``."""
        out = {self.root.name: "ROOT"}
        for n in self.nodes[1:]:
            k = [c.name for c in self.children(n.parent)].index(n.name)
            out[n.name] = f"{out[n.parent]}_{k}"
        return out


def single_node_tree(stages) -> ScenarioTree:
    """The deterministic chain (one branch per stage) as a tree: every factor 1."""
    nodes = tuple(TreeNode(f"n{y}", None if k == 0 else f"n{stages[k - 1]}", k, 1.0) for k, y in enumerate(stages))
    return ScenarioTree(nodes, branching=tuple(1 for _ in stages[1:]))


def uptake_tree(stages, branches=("low", "medium", "high"), probabilities=(0.25, 0.5, 0.25),
                ev_factor=(0.6, 1.0, 1.5), demand_factor=None, price_factor=None) -> ScenarioTree:
    """A tree with the same ``branches`` at every stage after the first (``stages``: the
    first year of each stage, as in ``economics.stages``).  ``ev_factor`` etc.: one value per
    branch (a number, or a dict fleet -> multiplier).  Checked like a tree read from a file."""
    return _generate(dict(branches=list(branches), probabilities=list(probabilities),
                          ev_factor=list(ev_factor) if ev_factor is not None else None,
                          demand_factor=list(demand_factor) if demand_factor is not None else None,
                          price_factor=list(price_factor) if price_factor is not None else None),
                     list(stages), "uptake_tree()", fleets=None)


def parse_tree(cfg: dict, stages, shown: str, fleets=None, factors=None) -> ScenarioTree:
    """Read ``[tree]`` of ``instance.toml`` (``shown``: the file, for messages); ``fleets``:
    the names of the instance's fleets (to check ``ev_factor`` tables); ``factors``: the
    uncertain quantities the registered blocks declare (to check ``factors`` tables; None:
    any name)."""
    stages = list(stages)
    if not isinstance(cfg, dict):
        raise InstanceError(Problem(shown, "must be a table", field="tree"))
    if "nodes" in cfg:
        extra = sorted(set(cfg) - {"nodes"})
        if extra:
            raise InstanceError(Problem(shown, f"with [[tree.nodes]] no other key is allowed (found {', '.join(extra)})",
                                        field="tree"))
        return _explicit(cfg["nodes"], stages, shown, fleets, factors)
    return _generate(cfg, stages, shown, fleets, factors)


def _factor(value, where: str, shown: str, fleets, problems: list) -> dict:
    """A number or a table fleet -> number, each finite and >= 0."""
    def ok(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if fleets is not None and k not in fleets:
                problems.append(Problem(shown, f"no fleet named '{k}' (fleets: {', '.join(fleets) or 'none'})",
                                        field=f"{where}.{k}"))
            elif not ok(v):
                problems.append(Problem(shown, f"{v!r} must be a finite number >= 0", field=f"{where}.{k}"))
            else:
                out[k] = float(v)
        return out
    if not ok(value):
        problems.append(Problem(shown, f"{value!r} must be a finite number >= 0 (or a table fleet -> number)",
                                field=where))
        return {}
    return {"*": float(value)}


def _factors(value, where: str, shown: str, known, problems: list, n: int | None = None) -> dict | list:
    """A table quantity -> number (``n`` None) or -> list of ``n`` numbers (one per branch),
    each finite and >= 0, the quantities among ``known`` (None: any)."""
    if not isinstance(value, dict):
        problems.append(Problem(shown, f"{value!r} must be a table quantity -> "
                                + ("number" if n is None else f"list of {n} numbers"), field=where))
        return {} if n is None else [{} for _ in range(n or 0)]
    out = {} if n is None else [{} for _ in range(n)]
    for k, v in value.items():
        if known is not None and k not in known:
            problems.append(Problem(shown, f"no block declares the uncertain quantity '{k}' (known: "
                                    f"{', '.join(sorted(known)) or 'none'})", field=f"{where}.{k}"))
            continue
        if n is None:
            out[k] = _scalar(v, f"{where}.{k}", shown, problems)
        elif not isinstance(v, list) or len(v) != n:
            problems.append(Problem(shown, f"must be a list of {n} values, one per branch", field=f"{where}.{k}"))
        else:
            for i, x in enumerate(v):
                out[i][k] = _scalar(x, f"{where}.{k}[{i}]", shown, problems)
    return out


def _scalar(value, where: str, shown: str, problems: list) -> float:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0):
        problems.append(Problem(shown, f"{value!r} must be a finite number >= 0", field=where))
        return 1.0
    return float(value)


def _generate(cfg: dict, stages: list, shown: str, fleets, known=None) -> ScenarioTree:
    allowed = {"branches", "probabilities", "ev_factor", "demand_factor", "price_factor", "factors"}
    problems = [Problem(shown, f"unknown key; allowed: {', '.join(sorted(allowed))} (or [[tree.nodes]])",
                        field=f"tree.{k}") for k in cfg if k not in allowed]
    branches = cfg.get("branches")
    if not (isinstance(branches, list) and branches and all(isinstance(b, str) and b for b in branches)):
        problems.append(Problem(shown, "must be a non-empty list of branch names", field="tree.branches"))
        raise InstanceError(problems)
    if len(set(branches)) != len(branches):
        problems.append(Problem(shown, f"branch names must be unique: {branches}", field="tree.branches"))
    nb = len(branches)
    lists = {}
    for key in ("probabilities", "ev_factor", "demand_factor", "price_factor"):
        val = cfg.get(key)
        if val is None:
            if key == "probabilities":
                problems.append(Problem(shown, "missing key (one probability per branch)", field="tree.probabilities"))
            continue
        if not isinstance(val, list) or len(val) != nb:
            problems.append(Problem(shown, f"must be a list of {nb} values, one per branch {branches}",
                                    field=f"tree.{key}"))
            continue
        lists[key] = val
    probs = []
    for i, p in enumerate(lists.get("probabilities", [])):
        if not (isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and 0 < p <= 1):
            problems.append(Problem(shown, f"{p!r} must be a probability in (0, 1]", field=f"tree.probabilities[{i}]"))
        else:
            probs.append(float(p))
    if len(probs) == nb and abs(sum(probs) - 1.0) > PROB_TOL:
        problems.append(Problem(shown, f"branch probabilities sum to {sum(probs):.12g}, not 1", field="tree.probabilities"))
    ev = [_factor(v, f"tree.ev_factor[{i}]", shown, fleets, problems) for i, v in enumerate(lists.get("ev_factor", []))]
    dem = [_scalar(v, f"tree.demand_factor[{i}]", shown, problems) for i, v in enumerate(lists.get("demand_factor", []))]
    pri = [_scalar(v, f"tree.price_factor[{i}]", shown, problems) for i, v in enumerate(lists.get("price_factor", []))]
    other = _factors(cfg["factors"], "tree.factors", shown, known, problems, n=nb) if "factors" in cfg else None
    if len(stages) < 2:
        problems.append(Problem(shown, f"a tree needs at least two stages (economics.stages = {stages})", field="tree"))
    n_nodes = tree_size(nb, len(stages))  # before building anything
    if n_nodes > MAX_TREE_NODES:
        problems.append(Problem(shown, f"{nb} branches over {len(stages)} stages make a tree of {n_nodes:,} nodes "
                                f"(1 + {nb} + ... + {nb}^{len(stages) - 1}); at most {MAX_TREE_NODES:,} are built: use "
                                "fewer branches or stages", field="tree.branches"))
    if problems:
        raise InstanceError(problems)
    nodes = [TreeNode(f"n{stages[0]}", None, 0, 1.0)]
    frontier = [(nodes[0], ())]
    for k in range(1, len(stages)):
        nxt = []
        for par, path in frontier:
            for i, b in enumerate(branches):
                name = f"n{stages[k]}_" + "_".join(path + (b,))
                nxt.append((TreeNode(name, par.name, k, probs[i], ev[i] if ev else {},
                                     dem[i] if dem else 1.0, pri[i] if pri else 1.0, branch=b,
                                     factors=other[i] if other else {}), path + (b,)))
        nodes += [n for n, _ in nxt]
        frontier = nxt
    return ScenarioTree(tuple(nodes), branching=tuple(nb for _ in stages[1:]))


def _explicit(rows, stages: list, shown: str, fleets, known=None) -> ScenarioTree:
    if not isinstance(rows, list) or not rows:
        raise InstanceError(Problem(shown, "must be a non-empty list of tables", field="tree.nodes"))
    if len(rows) > MAX_TREE_NODES:
        raise InstanceError(Problem(shown, f"{len(rows):,} nodes; at most {MAX_TREE_NODES:,} are built: use fewer "
                                    "branches or stages", field="tree.nodes"))
    allowed = {"name", "parent", "probability", "ev_factor", "demand_factor", "price_factor", "factors"}
    problems: list[Problem] = []
    raw = []
    for i, r in enumerate(rows):
        where = f"tree.nodes[{i}]"
        if not isinstance(r, dict):
            problems.append(Problem(shown, "must be a table", field=where))
            continue
        for k in r:
            if k not in allowed:
                problems.append(Problem(shown, f"unknown key; allowed: {', '.join(sorted(allowed))}", field=f"{where}.{k}"))
        name = r.get("name")
        if not isinstance(name, str) or not name:
            problems.append(Problem(shown, "missing or empty node name", field=f"{where}.name"))
            continue
        parent = r.get("parent")
        if parent is not None and not isinstance(parent, str):
            problems.append(Problem(shown, f"{parent!r} must be a node name", field=f"{where}.parent"))
            parent = None
        p = r.get("probability", 1.0 if parent is None else None)
        if p is None:
            problems.append(Problem(shown, "missing key (probability conditional on the parent)",
                                    field=f"{where}.probability"))
            p = 0.0
        elif not (isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and 0 < p <= 1):
            problems.append(Problem(shown, f"{p!r} must be a probability in (0, 1]", field=f"{where}.probability"))
            p = 0.0
        ev = _factor(r.get("ev_factor", 1.0), f"{where}.ev_factor", shown, fleets, problems)
        dem = _scalar(r.get("demand_factor", 1.0), f"{where}.demand_factor", shown, problems)
        pri = _scalar(r.get("price_factor", 1.0), f"{where}.price_factor", shown, problems)
        other = _factors(r["factors"], f"{where}.factors", shown, known, problems) if "factors" in r else {}
        raw.append((i, name, parent, float(p), ev, dem, pri, other))
    names = [x[1] for x in raw]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        problems.append(Problem(shown, f"node names must be unique; repeated: {', '.join(dup)}", field="tree.nodes"))
    roots = [x for x in raw if x[2] is None]
    if len(roots) != 1:
        problems.append(Problem(shown, f"exactly one node (the root) must have no parent; found {len(roots)}"
                                f"{': ' + ', '.join(x[1] for x in roots) if roots else ''}", field="tree.nodes"))
    for i, name, parent, p, *_ in raw:
        if parent is None and p != 1.0:
            problems.append(Problem(shown, f"the root's probability must be 1, got {p}", field=f"tree.nodes[{i}].probability"))
    known = set(names)
    for i, name, parent, *_ in raw:
        if parent is not None and parent not in known:
            problems.append(Problem(shown, f"parent '{parent}' is not a node of the tree", field=f"tree.nodes[{i}].parent"))
    if problems:
        raise InstanceError(problems)
    # stages by depth; order breadth-first (parents before children, file order among siblings)
    by = {x[1]: x for x in raw}
    depth: dict[str, int] = {}
    for name in names:
        seen, cur, d = set(), name, 0
        while by[cur][2] is not None:
            if cur in seen:
                raise InstanceError(Problem(shown, f"node '{name}' is on a cycle of parents", field="tree.nodes"))
            seen.add(cur)
            cur, d = by[cur][2], d + 1
        depth[name] = d
    parents = {x[2] for x in raw}
    for i, name, *_ in raw:
        if name not in parents and depth[name] != len(stages) - 1:
            problems.append(Problem(shown, f"leaf '{name}' is at stage {depth[name] + 1} of {len(stages)}: every path "
                                    f"must run through all stages {stages}", field=f"tree.nodes[{i}]"))
        if depth[name] >= len(stages):
            problems.append(Problem(shown, f"node '{name}' is at stage {depth[name] + 1}, beyond the {len(stages)} "
                                    f"stages {stages}", field=f"tree.nodes[{i}]"))
    for par in sorted(parents - {None}):
        s = sum(x[3] for x in raw if x[2] == par)
        if abs(s - 1.0) > PROB_TOL:
            problems.append(Problem(shown, f"the probabilities of the children of '{par}' sum to {s:.12g}, not 1",
                                    field="tree.nodes.probability"))
    if problems:
        raise InstanceError(problems)
    order = sorted(raw, key=lambda x: (depth[x[1]], x[0]))
    nodes = tuple(TreeNode(name, parent, depth[name], p, ev, dem, pri, branch=name, factors=other)
                  for _, name, parent, p, ev, dem, pri, other in order)
    counts = {}
    for n in nodes:
        if n.parent is not None:
            counts.setdefault(depth[n.parent], set()).add(sum(1 for c in nodes if c.parent == n.parent))
    uniform = all(len(v) == 1 for v in counts.values())
    branching = tuple(next(iter(counts[k])) for k in sorted(counts)) if uniform else None
    return ScenarioTree(nodes, branching=branching)
