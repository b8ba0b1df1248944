"""The block contract's channels: recipe order does not change the model, impossible recipes
are refused naming the blocks, undeclared couplings fail, configs are checked by type."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest

import flexplan as fp
from conftest import CABLE, EVENING, add_fleet, write_feeder
from flexplan.assemble import check_recipe
from flexplan.blocks import BLOCKS, BlockSpec, make_config, register_block
from flexplan.errors import RecipeError
from flexplan.paths import shipped_models

pytestmark = pytest.mark.unit

#: the recipes solved on the one-line EV feeder below; lv_three_phase needs phase data and no
#: reinforcement candidates (tests/test_threephase.py solves it in both block orders)
SHIPPED = sorted(p.stem for p in shipped_models().glob("*.toml") if p.stem != "lv_three_phase")


def _providers_first(order):
    pos = {n: i for i, n in enumerate(order)}
    for n in order:
        for c in BLOCKS[n].reads():
            for m in order:
                if m != n and c in BLOCKS[m].writes():
                    assert pos[m] < pos[n], f"{m} provides {c} to {n} but is built after it in {order}"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_permutation_of_a_shipped_recipe_builds_providers_first(name):
    rec = fp.resolve_recipe(name)
    for perm in itertools.permutations(rec.blocks):
        rec.blocks = list(perm)
        order = check_recipe(rec)  # every permutation accepted ...
        assert sorted(order) == sorted(perm)
        _providers_first(order)  # ... and built providers first


@pytest.fixture(scope="module")
def ev_feeder(tmp_path_factory):
    """b0 - b1: evening load and 150 home EVs on a line rated below their uncontrolled peak,
    with a cable to build: every framework recipe solves in a second."""
    f = write_feeder(tmp_path_factory.mktemp("channels") / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)],
                     loads=[("b1", 0.3, 0.05)], profile=[("day", 365, EVENING)],
                     economics="base_year = 2025\nend_year = 2029\nstages = [2025]", reinforcement=CABLE)
    return fp.load_instance(add_fleet(f, "b1", 150))


@pytest.mark.integration
@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "reinforce_copperplate"])
def test_reversed_recipe_solves_to_the_same_objective(ev_feeder, name):
    rec = fp.resolve_recipe(name)
    res = []
    for blocks in (list(rec.blocks), list(reversed(rec.blocks))):
        rec.blocks = blocks
        r = fp.solve(fp.build_model(ev_feeder, rec), mip_gap=0.0)
        assert r.status == "optimal"
        res.append(r)
    assert res[1].objective_eur == pytest.approx(res[0].objective_eur, rel=1e-6)
    assert res[1].cost_breakdown_eur == pytest.approx(res[0].cost_breakdown_eur, rel=1e-6, abs=1e-6)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("name", SHIPPED)
def test_every_build_order_of_a_shipped_recipe_solves_to_the_same_objective(ev_feeder, name):
    """Every permutation of the recipe's block list, solved (one solve per distinct build order
    the channels leave: 6 to 40 per recipe): the same objective and cost breakdown."""
    rec = fp.resolve_recipe(name)
    orders = {}
    for perm in itertools.permutations(rec.blocks):
        rec.blocks = list(perm)
        orders.setdefault(tuple(check_recipe(rec)), list(perm))
    first = None
    for blocks in orders.values():
        rec.blocks = blocks
        r = fp.solve(fp.build_model(ev_feeder, rec), mip_gap=0.0)
        assert r.status == "optimal"
        if first is None:
            first = r
            continue
        assert r.objective_eur == pytest.approx(first.objective_eur, rel=1e-6), blocks
        assert r.cost_breakdown_eur == pytest.approx(first.cost_breakdown_eur, rel=1e-6, abs=1e-6), blocks


@pytest.mark.integration
def test_connection_caps_hold_whatever_the_order(ev_feeder):
    """The trap the issue measured: ``connection`` after ``ev_fleet`` dropped the caps."""
    caps = {"peak_cap_kw": 1.0, "peak_start_h": 17, "peak_hours": 4}
    loads = []
    for blocks in (["demand", "connection", "ev_fleet"], ["demand", "ev_fleet", "connection"]):
        rec = {"blocks": blocks, "ev_fleet": {"mode": "uncontrolled"}, "connection": caps}
        r = fp.solve(fp.build_model(ev_feeder, rec))
        assert r.status == "optimal"
        t = r.tables["ev_flexibility"].groupby("hour")[["baseline_mw", "scheduled_mw"]].sum()
        loads.append(t["scheduled_mw"])
        # the caps bind in 17:00-21:00: charging there is well below charging on arrival
        assert (t["scheduled_mw"].loc[17:20] < 0.5 * t["baseline_mw"].loc[17:20]).all()
    np.testing.assert_allclose(loads[0].to_numpy(), loads[1].to_numpy(), atol=1e-9)


def test_impossible_recipes_name_the_blocks():
    with pytest.raises(RecipeError, match="'connection' provides 'charging_cap'.*no block of this recipe reads it.*ev_fleet"):
        check_recipe(fp.resolve_recipe({"blocks": ["demand", "connection", "reinforcement"]}))
    with pytest.raises(RecipeError, match="'ageing' requires ev_storage.*ev_fleet"):
        check_recipe(fp.resolve_recipe({"blocks": ["demand", "ageing"]}))
    with pytest.raises(RecipeError, match="network formulation 'lindistflow' requires demand.*'demand'"):
        check_recipe(fp.resolve_recipe({"blocks": ["ev_fleet", "reinforcement"]}))


@dataclass
class _Cfg:
    pass


def _register(name, add, **kw):
    register_block(BlockSpec(name, add, _Cfg, **kw))


def test_two_providers_and_cycles_refused():
    _register("tariff_b", lambda *a: None, provides=("tariff",))
    _register("cyc_a", lambda *a: None, provides=("charger_q",), requires=("charging_cap",))
    _register("cyc_b", lambda *a: None, provides=("charging_cap",), requires=("charger_q",))
    try:
        with pytest.raises(RecipeError, match="'tariffs' and 'tariff_b' both provide the channel 'tariff'"):
            check_recipe(fp.resolve_recipe({"blocks": ["demand", "tariffs", "tariff_b", "ev_fleet"]}))
        with pytest.raises(RecipeError, match="cyc_a, cyc_b form a cycle"):
            check_recipe(fp.resolve_recipe({"blocks": ["demand", "cyc_a", "cyc_b"]}))
    finally:
        for n in ("tariff_b", "cyc_a", "cyc_b"):
            BLOCKS.pop(n)


def test_undeclared_reads_and_wrong_types_fail_at_build(ev_feeder):
    _register("sneaky", lambda b, inst, ix, hub, cfg: hub.get("tariff"))
    _register("liar", lambda b, inst, ix, hub, cfg: hub.put("charger_q", 0.3), provides=("charger_q",))
    try:
        with pytest.raises(RecipeError, match="'sneaky' reads channel 'tariff' without declaring it"):
            fp.build_model(ev_feeder, {"blocks": ["demand", "tariffs", "ev_fleet", "sneaky"]})
        with pytest.raises(RecipeError, match="'liar' puts a float on channel 'charger_q', which carries ChargerQRule"):
            fp.build_model(ev_feeder, {"blocks": ["demand", "liar", "ev_fleet"]})
    finally:
        BLOCKS.pop("sneaky")
        BLOCKS.pop("liar")


def test_unknown_channel_refused_at_registration():
    with pytest.raises(ValueError, match="unknown channel.*heat_signal"):
        register_block(BlockSpec("x", lambda *a: None, _Cfg, requires=("heat_signal",)))
    assert "x" not in BLOCKS


@dataclass
class _Typed:
    n: int = 3
    price: float = 1.0
    on: bool = True
    hours: list[int] = field(default_factory=lambda: [0])
    caps: list[float] = field(default_factory=list)
    name: str = "a"
    limit: float | None = None


@pytest.mark.parametrize("options, message", [
    ({"n": 2.5}, "'n' of 't' must be a whole number"),
    ({"n": True}, "'n' of 't' must be a whole number"),
    ({"price": "3"}, "'price' of 't' must be a number"),
    ({"price": False}, "'price' of 't' must be a number"),
    ({"on": 1}, "'on' of 't' must be true or false"),
    ({"hours": 3}, "'hours' of 't' must be a list"),
    ({"hours": [1, 2.5]}, r"'hours' of 't' item 1 \(2.5\) must be a whole number"),
    ({"caps": [1, "x"]}, r"'caps' of 't' item 1 \('x'\) must be a number"),
    ({"name": 3}, "'name' of 't' must be a string"),
    ({"limit": "none"}, "'limit' of 't' must be float or NoneType"),
])
def test_config_checked_by_its_annotations(options, message):
    spec = BlockSpec("t", lambda *a: None, _Typed)
    with pytest.raises(RecipeError, match=message):
        make_config(spec, options, "here")


def test_config_accepts_what_the_annotations_allow():
    spec = BlockSpec("t", lambda *a: None, _Typed)
    cfg = make_config(spec, {"price": 2, "caps": [1, 2.5], "limit": None, "hours": [1, 2]}, "here")
    assert (cfg.price, cfg.caps, cfg.limit, cfg.hours) == (2, [1, 2.5], None, [1, 2])
    assert make_config(spec, {"limit": 0.5}, "here").limit == 0.5


@dataclass
class _ToyCfg:
    """``price_eur_per_mw``: what the toy pays per MW of load it serves locally (EUR/MW)."""
    mw: float = 0.1
    price_eur_per_mw: float = 1000.0


def _add_toy_generator(b, inst, ix, hub, cfg):
    """A toy block from outside the package: a generator at the last bus that may inject up
    to ``mw`` in every op at a price per MW of capacity, paid once (present value)."""
    import pyomo.environ as pyo

    bus = inst.network.n_buses - 1
    b.cap = pyo.Var(bounds=(0.0, cfg.mw))
    b.p = pyo.Var(range(ix.n_ops), within=pyo.NonNegativeReals)
    b.within = pyo.Constraint(range(ix.n_ops), rule=lambda _, t: b.p[t] <= b.cap)
    for t in range(ix.n_ops):
        hub.inject(bus, t, p=b.p[t])
    hub.bound_injection(bus, cfg.mw)
    hub.cost("toy_capacity", ix.node_names[0], cfg.price_eur_per_mw * b.cap)
    hub.decide(ix.node_names[0], [b.cap])


@pytest.mark.integration
def test_a_block_from_outside_the_package_solves_in_a_recipe(ev_feeder, monkeypatch):
    """A toy block registered from this test file (as a third-party package would through the
    ``flexplan.blocks`` entry point) is built and priced: cheap local capacity replaces the
    reinforcement, to the amount the overload needs."""
    import types
    import flexplan.blocks as blocks_mod

    mod = types.ModuleType("toy_blocks")
    mod.register = lambda: register_block(BlockSpec("toy_generator", _add_toy_generator, _ToyCfg))

    class EP:
        name, value = "toy", "toy_blocks"

        def load(self):
            mod.register()

    monkeypatch.setattr(blocks_mod, "_entry_points", lambda: [EP()])
    monkeypatch.setattr(blocks_mod, "_loaded", [False])
    try:
        base = fp.solve(fp.build_model(ev_feeder, {"blocks": ["demand", "ev_fleet", "reinforcement"],
                                                   "ev_fleet": {"mode": "uncontrolled"}}), mip_gap=0.0)
        assert "toy_generator" in BLOCKS  # discovered through the entry point
        rec = {"blocks": ["demand", "ev_fleet", "reinforcement", "toy_generator"], "ev_fleet": {"mode": "uncontrolled"},
               "toy_generator": {"mw": 2.0, "price_eur_per_mw": 1.0}}
        pm = fp.build_model(ev_feeder, rec)
        res = fp.solve(pm, mip_gap=0.0)
        assert res.status == "optimal" and base.status == "optimal"
        assert not base.builds.empty and res.builds.empty  # the toy capacity replaces the cable
        cap = pm.model.toy_generator.cap.value
        # exactly the capacity that keeps the line (0.45 MVA at unit polygon) within its rating
        # at the worst hour, at 1 EUR/MW
        assert res.cost_breakdown_eur["toy_capacity"] == pytest.approx(cap, rel=1e-6)
        assert 0 < cap < 2.0
        assert res.objective_eur < base.objective_eur
    finally:
        BLOCKS.pop("toy_generator", None)


@pytest.mark.integration
def test_extra_functionality_adds_the_users_constraint(ev_feeder):
    """``extra_functionality`` (as in PyPSA): the user forbids any build; the plan then sheds or
    overloads at their penalty instead."""
    import pyomo.environ as pyo

    def no_builds(pm):
        builds = [v for vs in pm.hub.decisions.values() for v in vs]
        pm.model.user_no_builds = pyo.Constraint(expr=sum(builds) <= 0)

    rec = {"blocks": ["demand", "ev_fleet", "reinforcement"], "ev_fleet": {"mode": "uncontrolled"}}
    free = fp.solve(fp.build_model(ev_feeder, rec), mip_gap=0.0)
    pm = fp.build_model(ev_feeder, rec, extra_functionality=no_builds)
    held = fp.solve(pm, mip_gap=0.0)
    assert not free.builds.empty and held.builds.empty
    assert held.objective_eur > free.objective_eur
    assert held.cost_breakdown_eur["penalty_overload"] + held.cost_breakdown_eur["penalty_unserved"] > 0


@pytest.mark.integration
@pytest.mark.parametrize("name", SHIPPED)
def test_to_pyomo_solved_by_pyomos_highs_equals_flexplan(ev_feeder, name):
    """``pm.to_pyomo()`` holds every row: Pyomo's own HiGHS interface (not flexplan's matrix
    hand-off) finds the same optimum on every shipped recipe, and the model has as many rows
    as flexplan handed to HiGHS."""
    import pyomo.environ as pyo

    rec = fp.resolve_recipe(name)
    ours = fp.solve(fp.build_model(ev_feeder, rec), mip_gap=0.0)
    assert ours.status == "optimal"
    pm = fp.build_model(ev_feeder, rec)
    m = pm.to_pyomo()
    assert pm.to_pyomo() is m  # idempotent
    n_rows = sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True))
    solver = pyo.SolverFactory("appsi_highs")
    solver.config.mip_gap = 0.0
    out = solver.solve(m)
    assert str(out.solver.termination_condition) == "optimal"
    assert pyo.value(m.objective) == pytest.approx(ours.objective_eur, rel=1e-6)
    # compiled by Pyomo alone, the whole model has the fast path's rows, nonzeros and bounds
    from flexplan.solve import to_highs
    fast, *_ = to_highs(fp.build_model(ev_feeder, rec).model)
    whole, form, _, nnz = to_highs(m)
    assert not form.families and whole.num_row_ == fast.num_row_ == ours.size["constraints"] <= n_rows * 2
    assert (whole.num_col_, nnz) == (fast.num_col_, ours.size["nonzeros"])
    for side in ("row_lower_", "row_upper_"):
        np.testing.assert_allclose(np.sort(getattr(whole, side)), np.sort(getattr(fast, side)))


@pytest.mark.integration
def test_solving_pm_model_directly_is_refused_not_zero(ev_feeder):
    """The 0-EUR trap: handed to a Pyomo solver without ``to_pyomo()``, the model's row families
    are missing; its guard row makes the solver report it infeasible (the row's name says to
    call to_pyomo) instead of 'optimal' at a fraction of the cost.  flexplan's solve ignores it."""
    import pyomo.environ as pyo
    from flexplan.blocks.rows import GUARD

    rec = {"blocks": ["demand", "ev_fleet", "reinforcement"]}
    pm = fp.build_model(ev_feeder, rec)
    out = pyo.SolverFactory("appsi_highs").solve(pm.model, load_solutions=False)
    assert str(out.solver.termination_condition) == "infeasible"
    assert pm.model.component(GUARD) is not None
    ours = fp.solve(pm)
    assert ours.status == "optimal" and ours.objective_eur > 0
    assert pm.to_pyomo().component(GUARD) is None
