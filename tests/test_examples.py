"""The example studies run end to end (on a small feeder, --quick) and their numbers agree
with the API calls they demonstrate."""
import pytest

from conftest import CABLE, EVENING, add_fleet, write_feeder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    f = write_feeder(tmp_path_factory.mktemp("ex") / "f", lines=[("l1", "b0", "b1", 0.2, 0.1, 0.45, 1.0)],
                     loads=[("b1", 0.3, 0.05)], profile=[("day", 365, EVENING)], reinforcement=CABLE,
                     economics="base_year = 2025\nend_year = 2034\nstages = [2025, 2030]\ndiscount_rate = 0.035")
    return add_fleet(f, "b1", 200)


def test_flex_study(small, tmp_path):
    from flexplan.examples import flex_study

    got = flex_study.main([str(small), "--quick", "--out", str(tmp_path / "o")])
    assert got["value_eur"] >= -1e-6 and 1.0 <= got["breakeven"] <= 5000.0
    assert len(got["sweep"]) == 3 and (got["sweep"]["status"] != "error").all()
    for name in ("sweep.csv", "sweep.png", "sweep.html", "breakeven-breakeven.png", "value_curve.csv",
                 "plan/report.html"):
        assert (tmp_path / "o" / name).exists(), name


def test_tree_study(small, tmp_path):
    from flexplan.examples import tree_study

    st = tree_study.main([str(small), "--quick", "--out", str(tmp_path / "t")])
    assert st["scenarios"] == 2 and st["vss_eur"] >= -1e-6 and st["evpi_eur"] >= -1e-6
    assert (tmp_path / "t" / "decision_tree.png").exists()
