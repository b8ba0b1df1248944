"""Session -> cohort envelopes, against a step-by-step simulation of every session."""
import numpy as np
import pandas as pd
import pytest

from conftest import simulate_uncontrolled
from flexplan.errors import InstanceError
from flexplan.ev import build_envelopes, validate_sessions

pytestmark = pytest.mark.component


def random_sessions(n, seed=1):
    rng = np.random.default_rng(seed)
    B = rng.choice([25.0, 50.0, 75.0], n, p=[0.2, 0.6, 0.2])
    p = rng.choice([3.7, 7.4, 11.0], n)
    arr = rng.uniform(15, 22, n).round(2)
    dep = rng.uniform(5, 9, n).round(2)
    e0 = (rng.uniform(0.2, 0.6, n) * B).round(3)
    plugged = np.floor(dep + 24) - np.ceil(arr)
    need = np.minimum(0.9 * B, e0 + 0.95 * p * plugged)
    ereq = (e0 + rng.uniform(0, 1, n) * (need - e0)).round(3)
    return pd.DataFrame({"ev": np.arange(n), "arrival_h": arr, "departure_h": dep, "energy_arrival_kwh": e0,
                         "energy_required_kwh": ereq, "battery_kwh": B, "charger_kw": p})


def test_baseline_equals_step_by_step_simulation():
    s, _ = validate_sessions(random_sessions(300), "s.csv", 24, 1.0)
    env = build_envelopes(s, n_ev_days=300, hours=24, dt_h=1.0)
    ref = simulate_uncontrolled(s)[0] / 300 / 1000  # kW total -> MW per EV
    assert np.allclose(env.baseline_profile_mw(), ref, atol=1e-12)
    assert env.n_sessions == 300 and sum(c.sessions for c in env.cohorts) == 300


def test_envelope_bounds_are_consistent():
    s, _ = validate_sessions(random_sessions(300, seed=2).assign(v2g=lambda d: d.index % 2 == 0), "s.csv", 24, 1.0)
    for v2g in (False, True):
        for kw in ({}, {"max_cohorts": 6}, {"per_session": True}):
            env = build_envelopes(s, n_ev_days=300, hours=24, dt_h=1.0, v2g=v2g, **kw)
            for c in env.cohorts:
                assert np.all(c.e_min_mwh <= c.e_max_mwh + 1e-12)
                assert np.all(c.dep_min_mwh <= c.dep_max_mwh + 1e-12)
                assert c.e_min_mwh[0] == pytest.approx(c.arrivals_mwh[0])
                assert c.e_max_mwh[0] == pytest.approx(c.arrivals_mwh[0])
                # uncontrolled charging delivers exactly the energy of leaving at E^max
                delivered = env.eta_charge * c.baseline_mw.sum() * env.dt_h
                assert delivered == pytest.approx(c.dep_max_mwh.sum() - c.arrivals_mwh.sum(), abs=1e-12)
                assert np.all(c.baseline_mw <= c.p_max_mw + 1e-15)
                if not v2g:
                    assert not c.p_dis_max_mw.any()
            # every session's requirement is in the departure bounds
            req = (s["energy_required_kwh"].sum()) * 1e-3 / 300
            assert sum(c.dep_min_mwh.sum() for c in env.cohorts) == pytest.approx(req)
            assert sum(c.sessions for c in env.cohorts) == 300


def test_per_ev_scaling_and_cohort_merge():
    s, _ = validate_sessions(random_sessions(200, seed=3), "s.csv", 24, 1.0)
    one = build_envelopes(s, n_ev_days=200, hours=24, dt_h=1.0)
    two = build_envelopes(pd.concat([s, s]), n_ev_days=400, hours=24, dt_h=1.0)
    assert np.allclose(one.baseline_profile_mw(), two.baseline_profile_mw())
    assert one.n_cohorts == two.n_cohorts
    few = build_envelopes(s, n_ev_days=200, hours=24, dt_h=1.0, split_by_charger=False, max_cohorts=5)
    assert few.n_cohorts == 5 and sum(c.sessions for c in few.cohorts) == 200
    # merging changes neither the uncontrolled load nor the energy
    assert np.allclose(few.baseline_profile_mw(), one.baseline_profile_mw())
    assert few.energy_required_mwh == pytest.approx(one.energy_required_mwh)
    exact = build_envelopes(s, n_ev_days=200, hours=24, dt_h=1.0, per_session=True)
    assert exact.n_cohorts == 200
    assert few.n_variables_per_day < one.n_variables_per_day < exact.n_variables_per_day


@pytest.mark.parametrize("field,value,message", [
    ("departure_h", 19.5, "less than one"),
    ("energy_required_kwh", 80.0, "exceeds the usable capacity"),
    ("charger_kw", -3.7, "must be > 0"),
    ("arrival_h", 25.0, "not an hour"),
])
def test_invalid_sessions_named(field, value, message):
    s = random_sessions(5)
    s.loc[3, "arrival_h"] = 19.0
    s.loc[3, field] = value
    with pytest.raises(InstanceError) as e:
        validate_sessions(s, "sessions.csv", 24, 1.0)
    p = [q for q in e.value.problems if q.row == 5]
    assert p and p[0].field == field and message in p[0].message and p[0].file == "sessions.csv"


def test_unreachable_requirement_error_or_clip():
    s = random_sessions(4)
    s.loc[0, ["arrival_h", "departure_h", "energy_arrival_kwh", "energy_required_kwh", "battery_kwh", "charger_kw"]] = \
        [18.0, 20.0, 10.0, 40.0, 50.0, 3.7]
    with pytest.raises(InstanceError, match="cannot be reached"):
        validate_sessions(s, "sessions.csv", 24, 1.0)
    out, clipped = validate_sessions(s, "sessions.csv", 24, 1.0, clip=True)
    assert clipped == 1
    assert out.loc[0, "energy_required_kwh"] == pytest.approx(10.0 + 0.95 * 3.7 * 2)
