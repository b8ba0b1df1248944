"""Shared helpers: tiny instances written to a temporary folder."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest


def write_feeder(folder: Path, *, lines, loads, profile=None, economics=None, growth="annual_rate = 0.0",
                 limits="", reinforcement="", vn_kv=20.0, extra_network="", operation='years_per_stage = "all"'):
    """Write a CSV-network instance.

    ``lines``: list of (name, from, to, r_ohm, x_ohm, rating_mva, length_km);
    ``loads``: list of (bus, p_mw, q_mvar); the slack bus is ``b0``; buses are the names
    used in ``lines``.  ``profile``: list of (day, weight, [factors per hour]) for the class
    ``res`` (default: one day, one 24 h step, factor 1).
    """
    folder.mkdir(parents=True, exist_ok=True)
    buses = sorted({ln[1] for ln in lines} | {ln[2] for ln in lines}, key=lambda b: (len(b), b))
    (folder / "buses.csv").write_text("name,vn_kv\n" + "".join(f"{b},{vn_kv}\n" for b in buses))
    (folder / "lines.csv").write_text("name,from_bus,to_bus,r_ohm,x_ohm,rating_mva,length_km\n"
                                      + "".join(",".join(map(str, ln)) + "\n" for ln in lines))
    (folder / "loads.csv").write_text("bus,p_mw,q_mvar\n" + "".join(f"{b},{p},{q}\n" for b, p, q in loads))
    profile = profile or [("peak", 365, [1.0])]
    rows = "".join(f"{d},{h},{w},{f}\n" for d, w, fs in profile for h, f in enumerate(fs))
    (folder / "profiles.csv").write_text("day,hour,weight,res\n" + rows)
    economics = economics or "base_year = 2025\nend_year = 2034\nstages = [2025]\ndiscount_rate = 0.035"
    (folder / "instance.toml").write_text(textwrap.dedent(f"""\
        name = "{folder.name}"
        [network]
        source = "csv"
        buses = "buses.csv"
        lines = "lines.csv"
        loads = "loads.csv"
        slack_bus = "b0"
        default_class = "res"
        {extra_network}
        [profiles]
        file = "profiles.csv"
        [growth]
        {growth}
        [economics]
        {economics}
        [operation]
        {operation}
        [limits]
        {limits}
        [reinforcement]
        {reinforcement}
        """))
    return folder


@pytest.fixture
def feeder(tmp_path):
    def make(name="feeder", **kw):
        return write_feeder(tmp_path / name, **kw)
    return make


def case33_snapshot(folder: Path, extra_toml: str = "", candidates: str = "") -> Path:
    """case33bw at nominal load: one day with one step (weight 365), no growth."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profiles.csv").write_text("day,hour,weight,res\npeak,0,365,1.0\n")
    (folder / "instance.toml").write_text(textwrap.dedent(f"""\
        name = "case33_snapshot"
        [network]
        source = "pandapower"
        name = "case33bw"
        default_class = "res"
        {extra_toml}
        [profiles]
        file = "profiles.csv"
        [economics]
        base_year = 2025
        end_year = 2025
        stages = [2025]
        [limits]
        v_min_pu = 0.85
        v_max_pu = 1.1
        [reinforcement]
        {candidates}
        """))
    return folder


def simulate_uncontrolled(sessions, hours: int = 24, dt: float = 1.0, eta: float = 0.95):
    """Every session on its own, step by step: full power from arrival until the battery is
    full (the independent reference for uncontrolled charging).  Returns the kW drawn per
    step of the day over the whole sample and how many sessions charge in each step."""
    load, charging = np.zeros(hours), np.zeros(hours)
    for r in sessions.itertuples():
        e = r.energy_arrival_kwh
        for tau in range(r.length):
            p = min(r.charger_kw, max(r.battery_kwh - e, 0.0) / (eta * dt))
            load[(r.start + tau) % hours] += p
            charging[(r.start + tau) % hours] += p > 0
            e += eta * p * dt
    return load, charging


#: An evening-peaking day of 24 hourly load factors (residential-like), for EV tests.
EVENING = [0.5] * 6 + [0.7] * 10 + [0.9, 1.0, 1.0, 1.0, 0.9, 0.8, 0.6, 0.5]
#: A reinforcement catalogue of one cable (150 kEUR/km, 0.2 kA at 20 kV: 6.9 MVA), replacements generated.
CABLE = """generate = ["replace"]
[[reinforcement.line_types]]
name = "cable"
r_ohm_per_km = 0.2
x_ohm_per_km = 0.1
max_i_ka = 0.2
capex_eur_per_km = 150000
lifetime_years = 40
"""


def add_fleet(folder: Path, bus: str, evs: int, extra: str = "", name: str = "home") -> Path:
    """Append a generated home fleet of ``evs`` EVs (seed 7) at ``bus`` to an instance."""
    with open(folder / "instance.toml", "a") as fh:
        fh.write(f'\n[[ev_fleets]]\nname = "{name}"\nbus = "{bus}"\nbehaviour = "home"\nevs = {{2025 = {evs}}}\n'
                 f'seed = 7\n{extra}')
    return folder
