"""Day screening (flexplan.screening): the plan found on the stressed days, proven on all
days, must be the plan the full MIP finds, at the same cost."""
import pytest
from conftest import CABLE, add_fleet

import flexplan as fp
from flexplan.errors import RecipeError
from flexplan.screening import peak_day, solve_screened, with_days

pytestmark = pytest.mark.component



def two_laterals(feeder, name="laterals"):
    """A trunk and two laterals of 1 MVA.  Day 'evening' loads the residential lateral to
    1.3 MW, day 'noon' the commercial one; each day overloads only its own lateral, so the
    peak day alone misses half of the plan."""
    folder = feeder(name, lines=[("trunk", "b0", "b1", 0.01, 0.01, 10.0, 1.0),
                                 ("res_line", "b1", "b2", 0.1, 0.05, 1.0, 1.0),
                                 ("com_line", "b1", "b3", 0.1, 0.05, 1.0, 1.0)],
                    loads=[("b2", 1.3, 0.0), ("b3", 1.2, 0.0)], reinforcement=CABLE,
                    limits="v_min_pu = 0.5\nv_max_pu = 1.5")
    (folder / "loads.csv").write_text("bus,p_mw,q_mvar,class\nb2,1.3,0.0,res\nb3,1.2,0.0,com\n")
    rows = ["day,hour,weight,res,com"]
    for day, w, res, com in (("evening", 200, [0.4, 1.0], [0.3, 0.5]), ("noon", 100, [0.5, 0.6], [1.0, 0.4]),
                             ("night", 65, [0.3, 0.3], [0.2, 0.2])):
        rows += [f"{day},{h},{w},{res[h]},{com[h]}" for h in range(2)]
    (folder / "profiles.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_peak_day_is_the_highest_feeder_load(feeder):
    inst = fp.load_instance(two_laterals(feeder))
    # hour 1 of 'evening': 1.3 + 0.6 = 1.9 MW; 'noon' hour 0: 0.65 + 1.2 = 1.85 MW
    assert peak_day(inst) == "evening"
    sub = with_days(inst, ["noon"])
    assert sub.profiles.days == ("noon",)
    assert sub.profiles.weights.tolist() == [100.0]


def test_screening_adds_the_missed_day_and_matches_the_full_mip(feeder):
    inst = fp.load_instance(two_laterals(feeder))
    full = fp.solve(fp.build_model(inst, "reinforce_only"), mip_gap=0.0)
    scr = solve_screened(inst, "reinforce_only", mip_gap=1e-7)
    rounds = scr.extra["screening"]["rounds"]
    assert [r["days"] for r in rounds] == [["evening"], ["evening", "noon"]]
    assert rounds[0]["days_with_penalties_left_out"] == ["noon"]
    assert scr.extra["screening"]["converged"] is True
    assert sorted(scr.builds["asset"]) == sorted(full.builds["asset"]) == ["com_line", "res_line"]
    assert scr.objective_eur == pytest.approx(full.objective_eur, rel=1e-7)
    # the returned result is the plan on all three days
    assert set(scr.line_loading["day"]) == {"evening", "noon", "night"}
    assert scr.violations["max_overload_pct"] == 0.0


def test_screening_refuses_recipes_that_can_earn_money_on_a_day(feeder):
    inst = fp.load_instance(two_laterals(feeder, "refuse"))
    recipe = {"name": "with_tariffs", "blocks": ["demand", "reinforcement", "tariffs"]}
    with pytest.raises(RecipeError, match="tariffs"):
        solve_screened(inst, recipe)


def test_cli_screen_days(feeder, tmp_path):
    from flexplan.cli import main

    folder = two_laterals(feeder, "cli")
    out = tmp_path / "out"
    assert main(["solve", str(folder), "--screen-days", "--no-plots", "--mip-gap", "1e-6", "--out", str(out)]) == 0
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["screening"]["converged"] is True
    assert len(summary["screening"]["rounds"]) == 2
    assert main(["solve", str(folder), "--screen-days", "--stochastic"]) == 2


def test_screening_adds_days_that_cost_without_penalties(feeder):
    """Smart charging pays for flexibility on every congested day without any penalty: the
    peak day's bound is short of the plan's cost on all days, so the other day is added."""
    folder = feeder("flex_every_day", lines=[("l1", "b0", "b1", 0.1, 0.05, 1.0, 1.0)], loads=[("b1", 1.2, 0.0)],
                    profile=[("a", 200, [0.75] * 24), ("b", 165, [0.74] * 24)],
                    reinforcement=CABLE.replace("150000", "5000000"), limits="v_min_pu = 0.5\nv_max_pu = 1.5")
    inst = fp.load_instance(add_fleet(folder, "b1", 200))
    full = fp.solve(fp.build_model(inst, "flex_vs_reinforce"), mip_gap=0.0)
    assert full.cost_breakdown_eur["ev_flexibility"] > 0 and len(full.builds) == 0
    scr = solve_screened(inst, "flex_vs_reinforce", mip_gap=1e-6)
    rounds = scr.extra["screening"]["rounds"]
    assert [r["days"] for r in rounds] == [["a"], ["a", "b"]]
    assert rounds[0]["days_with_penalties_left_out"] == [] and rounds[0]["gap"] > 0.1
    assert scr.extra["screening"]["converged"] is True
    assert scr.objective_eur == pytest.approx(full.objective_eur, rel=1e-6)
