"""Charging power profiles (SimBench, metered chargers) -> sessions."""
from __future__ import annotations

import numpy as np
import pytest

import flexplan as fp
from conftest import write_feeder
from flexplan import InstanceError
from flexplan.ev.generator import generate_sessions
from flexplan.ev.profiles import sessions_from_profile, simbench_ev_profile

pytestmark = pytest.mark.component


def test_round_trip_from_simulated_charging():
    """Sessions -> a 15-minute profile of uncontrolled charging (full power until full,
    simulated here) -> sessions again: same arrivals and the same energies."""
    s, _ = generate_sessions("home", 40, 30, seed=2)
    one = s[s["ev"] == 7].sort_values("day")
    p_kw = one["charger_kw"].iloc[0]
    dt = 0.25
    power = np.zeros(int(32 * 24 / dt))
    for r in one.itertuples():
        t = int(round((r.day * 24 + r.arrival_h) / dt))
        need = r.energy_required_kwh - r.energy_arrival_kwh
        while need > 1e-9:
            p = min(p_kw, need / (0.95 * dt))
            power[t] += p
            need -= 0.95 * p * dt
            t += 1
    back, stats = sessions_from_profile(power, dt, p_kw, departure="end_of_charging", battery_kwh=75.0)
    assert stats["runs"] == len(one) == len(back)
    assert np.allclose(back["arrival_h"].to_numpy(), one["arrival_h"].to_numpy())
    charged = back["energy_required_kwh"] - back["energy_arrival_kwh"]
    assert np.allclose(charged.to_numpy(), (one["energy_required_kwh"] - one["energy_arrival_kwh"]).to_numpy())
    assert stats["ev_days"] == 32


def test_simbench_home_charger_profile():
    factor, step, kw = simbench_ev_profile("HLS_A_11.0")
    assert step == 0.25 and kw == 11.0 and len(factor) == 366 * 96
    s, stats = sessions_from_profile(factor * kw, step, kw, departure="home")
    # the energy of the year is in the sessions, but for the sub-threshold noise (< 1 % of
    # the charger's power outside charging runs)
    charged = (s["energy_required_kwh"] - s["energy_arrival_kwh"]).sum()
    total = 0.95 * np.clip(factor, 0, None).sum() * kw * step
    noise = 0.95 * factor[(factor > 0) & (factor <= 0.01)].sum() * kw * step
    assert total - noise - 1e-9 <= charged <= total + 1e-9
    assert charged == pytest.approx(total, rel=0.002)
    print(f"HLS_A_11.0: {len(s)} sessions in 366 days ({len(s) / 366:.2f}/day), "
          f"{(s['energy_required_kwh'] - s['energy_arrival_kwh']).mean():.1f} kWh each")
    assert 0.3 < len(s) / 366 < 1.5
    assert (s["departure_h"] <= 12).mean() > 0.8  # home: most leave in the morning


def test_simbench_aggregate_profile_refused():
    with pytest.raises(ValueError, match="aggregate many chargers"):
        simbench_ev_profile("APLS_0.5202")
    with pytest.raises(KeyError, match="available: APLS_A_11.0"):
        simbench_ev_profile("HLS_Z_7.0")


def test_instance_with_simbench_fleet_solves(tmp_path):
    f = write_feeder(tmp_path / "sb", lines=[("l1", "b0", "b1", 0.5, 0.4, 5.0, 1.0)], loads=[("b1", 0.05, 0.0)],
                     profile=[("day", 365, [1.0] * 24)], economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    with open(f / "instance.toml", "a") as fh:
        fh.write('\n[[ev_fleets]]\nname = "sb_home"\nbus = "b1"\nsimbench_profile = "HLS_A_11.0"\nevs = {2025 = 30}\n')
    inst = fp.load_instance(f)
    fleet = inst.ev_fleets[0]
    assert fleet.ev_days == 366 and fleet.source.startswith("simbench:HLS_A_11.0")
    res = fp.solve(fp.build_model(inst, {"name": "s", "blocks": ["demand", "ev_fleet"],
                                         "ev_fleet": {"flex_price_eur_per_mwh": 1.0}}))
    ev = res.tables["ev_flexibility"]
    assert res.status == "optimal"
    # 30 EVs at the profile's mean daily energy, taken from the grid
    daily_kwh = 0.95 * np.clip(simbench_ev_profile("HLS_A_11.0")[0], 0, None).sum() * 11.0 * 0.25 / 366
    assert ev["charge_mw"].sum() * 1000 * 0.95 == pytest.approx(30 * daily_kwh, rel=0.02)


def test_bad_profile_fleets_named(tmp_path):
    f = write_feeder(tmp_path / "bad", lines=[("l1", "b0", "b1", 0.5, 0.4, 5.0, 1.0)], loads=[("b1", 0.05, 0.0)],
                     profile=[("day", 365, [1.0] * 24)], economics="base_year = 2025\nend_year = 2025\nstages = [2025]")
    (f / "p.csv").write_text("p_kw\n" + "0\n" * 90 + "12\n" + "0\n" * 5)
    with open(f / "instance.toml", "a") as fh:
        fh.write('\n[[ev_fleets]]\nname = "a"\nbus = "b1"\nprofile = "p.csv"\nevs = {2025 = 1}\n'
                 '\n[[ev_fleets]]\nname = "b"\nbus = "b1"\nprofile = "p.csv"\nprofile_charger_kw = 11\n'
                 'evs = {2025 = 1}\n'
                 '\n[[ev_fleets]]\nname = "c"\nbus = "b1"\nsimbench_profile = "HLS_A_11.0"\nsample_evs = 3\n'
                 'evs = {2025 = 1}\n')
    with pytest.raises(InstanceError) as e:
        fp.load_instance(f)
    got = {(p.field, p.message.split(":")[0]) for p in e.value.problems}
    assert ("ev_fleets[a].profile_charger_kw", "missing key") in got
    assert ("ev_fleets[c].sample_evs", "is a generator option; a fleet with 'simbench_profile' takes its sessions "
            "from it") in got
    msgs = [str(p) for p in e.value.problems if p.field == "p_kw"]
    assert msgs and "p.csv, row 92, field 'p_kw': 12 kW exceeds the charger's 11 kW" in msgs[0]
