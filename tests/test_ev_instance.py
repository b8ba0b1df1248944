"""[[ev_fleets]] in instance.toml: valid fleets load, bad ones name the file, row and key."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import write_feeder
from flexplan import InstanceError, load_instance
from flexplan.ev.fleet import evs_per_year

pytestmark = pytest.mark.unit

LINES = [("l1", "b0", "b1", 0.5, 0.4, 5.0, 1.0), ("l2", "b1", "b2", 0.5, 0.4, 5.0, 1.0)]
DAY = [("day", 365, [1.0] * 24)]
ECON = "base_year = 2025\nend_year = 2030\nstages = [2025, 2028]"
GOOD = 'name = "home"\nbuses = ["b1", "b2"]\nbehaviour = "home"\nevs = {2025 = 10, 2030 = 60}\n'
SESSIONS = """\
ev,arrival_h,departure_h,energy_arrival_kwh,energy_required_kwh,battery_kwh,charger_kw,v2g
a,18,7,20,50,50,7.4,1
b,19,8,30,45,50,3.7,0
c,8,17,10,30,60,11,0
"""


def feeder_with(tmp_path, fleets: str, files: dict | None = None):
    f = write_feeder(tmp_path / "f", lines=LINES, loads=[("b1", 0.2, 0.05), ("b2", 0.2, 0.05)], profile=DAY,
                     economics=ECON)
    for name, text in (files or {}).items():
        (f / name).write_text(text)
    with open(f / "instance.toml", "a") as fh:
        fh.write(fleets)
    return f


def problems(tmp_path, fleets, files=None):
    with pytest.raises(InstanceError) as e:
        load_instance(feeder_with(tmp_path, fleets, files))
    return e.value.problems


def test_generated_fleet_loads_with_counts_per_year(tmp_path):
    inst = load_instance(feeder_with(tmp_path, "[[ev_fleets]]\n" + GOOD + "v2g_share = 0.5\nseed = 3\n"))
    (fl,) = inst.ev_fleets
    assert fl.buses == (1, 2) and fl.behaviour == "home"
    assert list(fl.evs.index) == list(range(2025, 2031))
    assert fl.evs[2025] == 10 and fl.evs[2030] == 60 and fl.evs[2027] == pytest.approx(30)  # linear between
    assert fl.v2g_share == pytest.approx(0.5, abs=0.1)
    assert fl.source == "generator:home seed=3"
    again = load_instance(tmp_path / "f").ev_fleets[0]
    assert again.sessions.equals(fl.sessions)  # same seed, same sessions


def test_uptake_curve_is_logistic():
    n = evs_per_year({"final": 100, "midpoint": 2030, "rate": 0.5}, [2020, 2030, 2040])
    assert n[1] == pytest.approx(50)
    assert n[0] == pytest.approx(100 / (1 + np.exp(5)))
    assert n[2] == pytest.approx(100 / (1 + np.exp(-5)))


def test_session_file_fleet(tmp_path):
    spec = '[[ev_fleets]]\nname = "mine"\nbus = "b2"\nsessions = "s.csv"\nev_days = 6\nevs = {2025 = 4}\n'
    inst = load_instance(feeder_with(tmp_path, spec, {"s.csv": SESSIONS}))
    fl = inst.ev_fleets[0]
    assert fl.ev_days == 6 and len(fl.sessions) == 3 and fl.sessions["v2g"].tolist() == [True, False, False]
    assert fl.evs[2030] == 4  # held flat after the last year given


@pytest.mark.parametrize("fleet,field,message", [
    ('name = "x"\nbus = "b9"\nbehaviour = "home"\nevs = {2025 = 1}\n', "ev_fleets[x].bus", "unknown bus 'b9'"),
    ('name = "x"\nbus = "b1"\nbehaviour = "home"\n', "ev_fleets[x].evs", "exactly one of 'evs'"),
    ('name = "x"\nbus = "b1"\nbehaviour = "home"\nevs = {2025 = 1}\nuptake = {final = 5, midpoint = 2030, '
     'rate = 0.3}\n', "ev_fleets[x].evs", "exactly one of 'evs'"),
    ('name = "x"\nbus = "b1"\nbehaviour = "garage"\nevs = {2025 = 1}\n', "ev_fleets[x].behaviour",
     "'garage' is not one of: home, workplace, public"),
    ('name = "x"\nbus = "b1"\nbehaviour = "home"\nevs = {2025 = -3}\n', "ev_fleets[x].evs.2025", "not a count"),
    ('name = "x"\nbus = "b1"\nbehaviour = "home"\nevs = {soon = 3}\n', "ev_fleets[x].evs.soon", "not a year"),
    ('name = "x"\nbus = "b1"\nbehaviour = "home"\nevs = {2025 = 1}\nv2g_share = 1.5\n', "ev_fleets[x].v2g_share",
     "share, 0..1"),
    ('name = "x"\nbus = "b1"\nbehaviour = "home"\nevs = {2025 = 1}\nbattery_kwh = [40, 60]\n'
     'battery_probs = [0.5, 0.6]\n', "ev_fleets[x].battery_probs", "sum to 1"),
    ('name = "x"\nbus = "b1"\nbehaviour = "home"\nevs = {2025 = 1}\nsoc_min = 0.9\nsoc_max = 0.8\n',
     "ev_fleets[x].soc_min", "soc_min"),
    ('name = "x"\nbus = "b1"\nbehaviour = "home"\nevs = {2025 = 1}\ncolour = "red"\n', "ev_fleets[x].colour",
     "unknown key"),
    ('name = "x"\nbus = "b1"\nsessions = "s.csv"\nevs = {2025 = 1}\nv2g_share = 0.2\n', "ev_fleets[x].v2g_share",
     "generator option"),
    ('name = "x"\nbus = "b1"\nuptake = {final = 5, midpoint = 2030}\nbehaviour = "home"\n',
     "ev_fleets[x].uptake.rate", "missing key"),
])
def test_bad_fleet_named(tmp_path, fleet, field, message):
    probs = problems(tmp_path, "[[ev_fleets]]\n" + fleet, {"s.csv": SESSIONS})
    hit = [p for p in probs if p.field == field]
    assert hit and message in hit[0].message, [str(p) for p in probs]
    assert hit[0].file.endswith("instance.toml")


def test_duplicate_fleet_name(tmp_path):
    probs = problems(tmp_path, "[[ev_fleets]]\n" + GOOD + "\n[[ev_fleets]]\n" + GOOD)
    assert any("used twice" in p.message and p.field == "ev_fleets[home].name" for p in probs)


@pytest.mark.parametrize("row,field,value,reported,message", [
    (3, "departure_h", "19.5", "departure_h", "less than one"),
    (2, "energy_required_kwh", "80", "energy_required_kwh", "exceeds the usable capacity"),
    (4, "charger_kw", "abc", "charger_kw", "not a number"),
    (4, "v2g", "maybe", "v2g", "not true/false"),
    (3, "charger_kw", "1.0", "energy_required_kwh", "cannot be reached"),  # 13 h x 0.95 kW < 15 kWh
])
def test_bad_session_row_named(tmp_path, row, field, value, reported, message):
    lines = SESSIONS.splitlines()
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(field)] = value
    lines[row - 1] = ",".join(cells)
    spec = '[[ev_fleets]]\nname = "mine"\nbus = "b2"\nsessions = "s.csv"\nevs = {2025 = 4}\n'
    probs = problems(tmp_path, spec, {"s.csv": "\n".join(lines) + "\n"})
    hit = [p for p in probs if p.row == row and p.field == reported]
    assert hit and message in hit[0].message and hit[0].file.endswith("s.csv"), [str(p) for p in probs]


def test_clip_sessions_lowers_unreachable_requirements(tmp_path):
    text = SESSIONS.replace("b,19,8,30,45,50,3.7,0", "b,19,21,30,45,50,3.7,0")  # 2 h at 3.7 kW
    spec = '[[ev_fleets]]\nname = "mine"\nbus = "b2"\nsessions = "s.csv"\nevs = {2025 = 4}\nclip_sessions = true\n'
    fl = load_instance(feeder_with(tmp_path, spec, {"s.csv": text})).ev_fleets[0]
    assert fl.clipped == 1
    assert fl.sessions.loc[1, "energy_required_kwh"] == pytest.approx(30 + 0.95 * 3.7 * 2)
