"""flexplan as an mpi-sppy model module: the same scenario tree, decomposed over MPI.

Install the extra (``pip install -e ".[mpi]"``: mpi-sppy, mpi4py and the ``mpich`` wheel,
which ships ``libmpi`` and ``mpiexec``), then::

    # extensive form, one rank (must be one: the EF is a single model)
    python -m mpisppy.generic_cylinders --module-name flexplan.mpisppy_model \\
        --instance ieee33_ev_tree --model flex_lead_time_relaxed --EF --EF-solver-name highs

    # progressive hedging with a Lagrangian (outer) and an xhat-shuffle (inner) bound, 3 ranks
    MPIR_CVAR_ASYNC_PROGRESS=1 mpiexec -n 3 python -m mpi4py -m mpisppy.generic_cylinders \\
        --module-name flexplan.mpisppy_model --instance ieee33_ev_tree \\
        --model flex_lead_time_relaxed --solver-name highs --default-rho 1 --rho-factor 1 \\
        --max-iterations 100 --rel-gap 0.01 --lagrangian --xhatshuffle \\
        --stage2-ef-solver-name highs --intra-hub-conv-thresh -1 \\
        --linearize-proximal-terms --proximal-linearization-tolerance 1e-6

(closes to 0.89 % in 22 iterations on 2 cores: README, "Stochastic planning", which also
says why each option is there).  ``MPIR_CVAR_ASYNC_PROGRESS=1`` gives each MPICH rank a
progress thread, so that a cylinder reading a busy rank's window does not wait for that
rank's next MPI call; ``--stage2-ef-solver-name`` (added by :func:`inparser_adder`) makes
the inner bound fix only the root's decisions and solve each second-stage subtree as an
extensive form.

A MIP recipe (binary builds) needs other bound cylinders::

    # progressive hedging with a subgradient (outer) and an xhat-xbar (inner) bound, 3 ranks
    MPIR_CVAR_ASYNC_PROGRESS=1 MPIR_CVAR_ENABLE_HEAVY_YIELD=1 MPIR_CVAR_CH4_PROGRESS_THROTTLE=1 \\
    MPIR_CVAR_CH4_PROGRESS_THROTTLE_NO_PROGRESS_COUNT=1 \\
    mpiexec -n 3 python -m mpi4py -m mpisppy.generic_cylinders \\
        --module-name flexplan.mpisppy_model --instance ieee33_ev_tree --model flex_lead_time \\
        --solver-name highs --default-rho 1 --rho-factor 1 --max-iterations 100 --rel-gap 0.01 \\
        --subgradient --subgradient-rho-multiplier 0.5 --xhatxbar --intra-hub-conv-thresh -1 \\
        --linearize-binary-proximal-terms --linearize-proximal-terms \\
        --proximal-linearization-tolerance 1e-6 --solver-options mip_rel_gap=0.005 \\
        --subgradient-solver-options mip_rel_gap=0.001

(on ieee33_ev_tree it closes to the extensive form's optimum: README, *Stochastic planning*).  The scenarios agree on the root's builds
from iteration 0, so PH's multipliers W stay 0 there, and a Lagrangian bound on PH's W
(``--lagrangian``) cannot pass 1.07 % below the optimum on ieee33_ev_tree (it stalled at
1.52 %); the subgradient cylinder moves its own multipliers from its own scenario solutions,
which price the root once one scenario builds there alone.  ``--xhatxbar`` tries PH's
rounded average, four LPs per iteration, where xhat-shuffle's stage-2 extensive forms are
MIPs and its shuffles repeat the same plan once PH agrees.  The bound is the sum of the
subproblems' dual bounds, so the subgradient's ``mip_rel_gap`` is what it loses; give the
gaps as ``mip_rel_gap`` in ``--solver-options`` and ``--<cylinder>-solver-options``:
mpi-sppy drops its own ``mipgap`` (``--lagrangian-iterk-mipgap`` and the like) wherever
``mip_rel_gap`` is also set.  The MPICH variables make the progress threads sleep when they
yield and poll (measured on 2 cores: two computing ranks got 30 instead of 13.5 of 40
core-seconds beside an idle third).  :func:`kw_creator` adds HiGHS options for the MIP
subproblems and :func:`hub_and_spoke_dict_callback` makes waiting spokes sleep.

``--branching-factors`` and ``--num-scens`` are taken from the instance's ``[tree]`` (which
must branch uniformly, the form mpi-sppy's generic driver knows).  PH needs the solver name
``highs`` (Pyomo's HiGHS interface).  HiGHS solves no MIQP, so with binary investments the
proximal terms must be linearised (``--linearize-binary-proximal-terms``, exact for binaries,
and ``--linearize-proximal-terms`` for continuous decisions such as contracted MW).
``--intra-hub-conv-thresh -1`` keeps PH iterating once the decisions agree, so that the
multipliers, and the Lagrangian bound with them, keep improving until ``--rel-gap`` is met.
The rho of each decision is set from its cost (:func:`_rho_setter`, ``--rho-factor``);
``--default-rho`` is still required by mpi-sppy but only used for variables without cost.

Each scenario is the chain of tree nodes from the root to one leaf, built by the same blocks
as the in-process extensive form (:func:`flexplan.stochastic.solve_stochastic`) with every
node at probability 1, so its objective is the scenario's cost; its probability goes to
mpi-sppy as ``_mpisppy_probability``.  The non-anticipative variables of a node are what
the blocks declared decided there (``Hub.decide``: investments, contracted capacity); the
operation of a node is coupled to no later node, so its per-scenario copies reach the same
cost.  On a cluster, run the ``mpiexec`` line through the scheduler (e.g. ``srun -n 3``
under Slurm) with flexplan installed on every node; the instance is loaded by every rank.
"""
from __future__ import annotations

import os
import time
from functools import lru_cache

import pyomo.environ as pyo

from .assemble import build_model
from .blocks.arrays import as_pyomo
from .blocks.rows import materialize_rows
from .index import tree_index
from .instance import load_instance
from .paths import resolve_instance_path


_RHO_FACTOR = [0.1]  # set from --rho-factor by kw_creator


@lru_cache(maxsize=4)
def _instance(name: str):
    inst = load_instance(resolve_instance_path(name))
    if inst.tree is None:
        raise ValueError(f"instance '{name}' has no scenario tree ([tree] in instance.toml)")
    return inst


def leaf_order(tree) -> list[str]:
    """Leaves in mpi-sppy's order (scenario k is the k-th leaf of ``ROOT_i_j...`` sorted by
    its branch indices)."""
    names = tree.mpisppy_names()
    return sorted((n.name for n in tree.leaves), key=lambda leaf: [int(x) for x in names[leaf].split("_")[1:]])


def scenario_creator(scenario_name: str, instance: str = "ieee33_ev_tree", model: str = "flex_vs_reinforce",
                     **_ignored):
    """The Pyomo model of scenario ``scen<k>``: the root-to-leaf chain of the k-th leaf."""
    from mpisppy import scenario_tree

    inst = _instance(instance)
    tree = inst.tree
    leaves = leaf_order(tree)
    k = int(scenario_name.removeprefix("scen"))
    leaf = leaves[k]
    path = tree.path(leaf)
    pm = build_model(inst, model, index=tree_index(inst, tree, nodes=path, unit_probability=True))
    m = pm.model
    materialize_rows(m)  # mpi-sppy hands the model to Pyomo's solvers: every row a Pyomo constraint
    m.name = f"{scenario_name} ({leaf})"  # mpi-sppy names the scenario by it in its messages
    per_node = {n.name: [] for n in path}
    for term in pm.hub.costs:
        if not isinstance(term.expr, (int, float)) or term.expr:
            per_node[term.node].append(pm.cost_weight(term) * as_pyomo(term.expr))
    m.node_cost = pyo.Expression([n.name for n in path], rule=lambda _, n: sum(per_node[n]) if per_node[n] else 0.0)
    names = tree.mpisppy_names()
    nodes = []
    for stage, n in enumerate(path[:-1], start=1):  # the leaf has no non-anticipative variables
        nonant = pm.hub.decisions.get(n.name, [])
        if not nonant:
            raise ValueError(f"node '{n.name}' of recipe '{pm.recipe.name}' decides nothing (no reinforcement or "
                             "contract variables): mpi-sppy needs at least one non-anticipative variable per node")
        nodes.append(scenario_tree.ScenarioNode(name=names[n.name], cond_prob=n.cond_prob, stage=stage,
                                                cost_expression=m.node_cost[n.name], nonant_list=nonant,
                                                scen_model=m, parent_name=names[n.parent] if n.parent else None))
    m._mpisppy_node_list = nodes
    m._mpisppy_probability = tree.prob(leaf)
    m._flexplan = dict(leaf=leaf, path=[n.name for n in path])
    return m


def _rho_setter(scenario, **_kwargs):
    """PH penalty per non-anticipative variable: ``--rho-factor`` (default 0.1) times its
    cost coefficient in its node's cost (EUR per unit: a build's present-value capex, a
    contracted MW's fees) — rho proportional to cost, after Watson & Woodruff (2011,
    "Progressive hedging innovations for a class of stochastic mixed-integer resource
    allocation problems", Comput. Manag. Sci. 8); at least 1.  Plain ``--default-rho 1`` leaves
    the bounds crawling on costs of 10^4-10^6 EUR per decision; a factor of 1 lets the binaries
    agree after two iterations, before the multipliers W (and with them the Lagrangian bound)
    have moved far enough: on the three-stage test tree factor 1 stalls at a 5.5 % gap, 0.3 at
    1.4 % after 60 iterations, 0.1 closes to 0.8 % in 21 (tests/test_mpisppy.py)."""
    from pyomo.repn import generate_standard_repn

    out = []
    for node in scenario._mpisppy_node_list:
        repn = generate_standard_repn(node.cost_expression.expr, compute_values=True, quadratic=False)
        coef = {id(v): abs(float(c)) for v, c in zip(repn.linear_vars, repn.linear_coefs)}
        for v in node.nonant_vardata_list:
            out.append((id(v), max(_RHO_FACTOR[0] * coef.get(id(v), 0.0), 1.0)))
    return out


def scenario_names_creator(num_scens, start=None):
    start = start or 0
    return [f"scen{k}" for k in range(start, start + num_scens)]


def inparser_adder(cfg) -> None:
    cfg.add_to_config("instance", description="flexplan instance (a shipped name or a folder) with a [tree]",
                      domain=str, default="ieee33_ev_tree")
    cfg.add_to_config("model", description="flexplan recipe (shipped name or .toml path)", domain=str,
                      default="flex_vs_reinforce")
    cfg.add_to_config("rho_factor", description="PH rho = this x each decision's cost coefficient (default 0.1)",
                      domain=float, default=0.1)
    if "branching_factors" not in cfg:
        cfg.add_branching_factors()
    cfg.add_stage2_ef_solver_name_arg()  # --stage2-ef-solver-name: xhatshuffle tries only the root decision
    if "num_scens" not in cfg:
        cfg.num_scens_optional()


def _subproblem_solver_options(cfg) -> None:
    """Add HiGHS's options of :data:`flexplan.frameworks.FRAMEWORK_HIGHS` (root reduced-cost
    heuristic, RINS and RENS off) to ``--solver-options``, which mpi-sppy hands to the hub's and
    every spoke's subproblem solves; an option the command line names keeps its value.  The
    scenario subproblems of a MIP recipe are MIPs of ~25,000 rows after presolve whose root
    heuristics find nothing the branching does not: the four iteration-0 solves of
    ``ieee33_ev_tree`` under ``flex_lead_time`` took 69 s instead of 155 s (one after the other,
    ``mip_rel_gap=0.005``), to the same solutions.  An LP recipe does not notice."""
    if cfg.get("solver_name") not in ("highs", "appsi_highs"):
        return
    from mpisppy.utils.sputils import option_string_to_dict

    from .frameworks import FRAMEWORK_HIGHS

    given = option_string_to_dict(cfg.get("solver_options"))
    merged = {**{k: str(v).lower() if isinstance(v, bool) else v for k, v in FRAMEWORK_HIGHS.items()}, **given}
    cfg.quick_assign("solver_options", str, " ".join(k if v is None else f"{k}={v}" for k, v in merged.items()))


def kw_creator(cfg) -> dict:
    """Scenario-creator arguments; fills ``branching_factors`` and ``num_scens`` from the
    instance's tree (and checks them when given), and adds flexplan's HiGHS options to
    ``--solver-options`` (:func:`_subproblem_solver_options`)."""
    inst = _instance(cfg.instance)
    tree = inst.tree
    if tree.branching is None:
        raise ValueError(f"instance '{cfg.instance}': the tree does not branch uniformly; mpi-sppy's generic "
                         "driver needs the same number of children for every node of a stage")
    bf = list(tree.branching)
    if cfg.get("branching_factors") not in (None, bf):
        raise ValueError(f"--branching-factors {cfg.branching_factors} does not match the instance's tree {bf}")
    if len(bf) > 1:  # two stages: mpi-sppy needs no branching factors (and no node names)
        cfg.quick_assign("branching_factors", list, bf)
    n = len(tree.leaves)
    if cfg.get("num_scens") not in (None, n):
        raise ValueError(f"--num-scens {cfg.num_scens} does not match the instance's {n} scenarios")
    cfg.quick_assign("num_scens", int, n)
    if not cfg.rho_factor > 0:
        raise ValueError(f"--rho-factor must be > 0, got {cfg.rho_factor}")
    _RHO_FACTOR[0] = float(cfg.rho_factor)
    _subproblem_solver_options(cfg)
    return dict(instance=cfg.instance, model=cfg.model)


#: Seconds a spoke waiting for the hub's next W or nonants sleeps before it looks again.
IDLE_POLL_S = 0.2


def _idle_polite(cls):
    """``cls``, an mpi-sppy spoke class, that sleeps :data:`IDLE_POLL_S` after each look at
    the hub that found nothing new.  mpi-sppy's spokes poll the hub in a loop without pause, so
    a spoke with nothing to do (an xhat spoke that has tried the hub's latest nonants, a
    Lagrangian spoke that has bounded the latest W) keeps a core busy, and with MPICH's progress
    threads also part of the polled rank's; where the cylinders share cores, that is taken from
    the solves of the hub and the other spokes.  On 2 cores (the MIP command of the module
    docstring) the xhat-xbar spoke, with nothing to do while the hub solved iteration 0, used
    53 s of CPU in its first 2 minutes."""
    class Spoke(cls):
        def _update_nonant_len_buffer(self) -> bool:
            new = super()._update_nonant_len_buffer()
            if not new:
                time.sleep(IDLE_POLL_S)
            return new

    Spoke.__name__ = Spoke.__qualname__ = cls.__name__  # mpi-sppy names the cylinders by their class
    return Spoke


def hub_and_spoke_dict_callback(hub_dict, list_of_spoke_dict, cfg) -> None:
    """mpi-sppy's hook before the wheel spins: the spokes that wait for the hub's W or
    nonants sleep between fruitless looks (:func:`_idle_polite`)."""
    for spoke in list_of_spoke_dict:
        if hasattr(spoke["spoke_class"], "_update_nonant_len_buffer"):
            spoke["spoke_class"] = _idle_polite(spoke["spoke_class"])


def scenario_denouement(rank, scenario_name, scenario) -> None:
    if os.environ.get("FLEXPLAN_MPISPPY_VERBOSE"):
        print(f"[rank {rank}] {scenario_name} = {scenario._flexplan['leaf']}: "
              f"cost {pyo.value(scenario.objective):,.2f} EUR")
