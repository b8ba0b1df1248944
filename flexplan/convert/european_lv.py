"""The IEEE European LV test feeder -> the shipped three-phase instance ``instances/european_lv``.

    python -m flexplan.convert.european_lv                      # (re)write instances/european_lv
    python -m flexplan.convert.european_lv --out DIR

The feeder is pandapower's ``ieee_european_lv_asymmetric`` (the IEEE PES test case: one 11/0.416 kV
800 kVA Dyn transformer, 906 LV buses, 55 single-phase houses; loads of the on-peak minute 566).
It is converted by the runtime loader's rules (:func:`flexplan.instance.network_io.pandapower_radial`:
zero-sequence data kept, each house a load on its phase), then **series chains are merged**:
a bus that is not the slack, carries no load and feeds exactly one line is removed, and its two
lines become one (impedances and zero-sequence impedances added, the smaller rating, the lengths
added).  For the lossless linear models (LinDistFlow, LinDist3Flow) this is exact at every kept
bus (``tests/test_threephase.py`` checks it); it takes the feeder from 906 to the buses that carry
a house or branch, so that a multi-year plan with EV fleets stays small.

Instance data (written into ``instance.toml`` as comments too): the houses' on-peak loads as
their peak, shaped by the residential class of ``instances/cigre_lv`` (the mean of SimBench's
H0 household profiles, peak 1, five representative days); limits ±10 % (EN 50160); one home-charging
EV fleet per phase at the houses of that phase (each house's charger on the house's phase,
single-phase: the documented phase assignment), 0.2 EVs per house in 2025, 0.6 in 2030, 1.0 in
2035 (an assumed uptake).  No reinforcement candidates: the IEEE test case comes with no cable or
transformer catalogue (``instances/sb_lv_semiurb_3ph`` has one).
"""
from __future__ import annotations

import argparse
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def merge_series(network):
    """``network`` (a radial :class:`~flexplan.instance.model.Network`) with series chains of
    lines merged: a non-slack bus without load that feeds exactly one line, itself fed by a line,
    is removed and the two lines become one (impedances, zero-sequence impedances and lengths
    added, the smaller rating).  Each chain is followed from its top.  Returns (network, the
    removed buses' names)."""
    from ..instance.model import Network

    br = network.branches.reset_index(drop=True)
    loads = set(int(b) for b in network.loads["bus"])
    slack = set(int(b) for b in network.slack["bus"])
    out_of: dict[int, list[int]] = {}
    for k, f in enumerate(br["from_bus"]):
        out_of.setdefault(int(f), []).append(k)
    removable = {m for m, ks in out_of.items() if len(ks) == 1 and m not in loads and m not in slack
                 and br.at[ks[0], "kind"] == "line"}
    rows, removed = [], []
    cols = [c for c in ("r_pu", "x_pu", "r0_pu", "x0_pu", "length_km") if c in br]
    for k in range(len(br)):
        if int(br.at[k, "from_bus"]) in removable and br.at[k, "kind"] == "line":
            # fed by a line into a removable bus: this branch is absorbed by the one above
            feeder = br.index[br["to_bus"] == br.at[k, "from_bus"]]
            if len(feeder) and br.at[feeder[0], "kind"] == "line":
                continue
        row = br.loc[k].copy()
        while row["kind"] == "line" and int(row["to_bus"]) in removable:
            nxt = br.loc[out_of[int(row["to_bus"])][0]]
            removed.append(int(row["to_bus"]))
            for c in cols:
                row[c] = row[c] + nxt[c]
            row["rating_mva"] = min(row["rating_mva"], nxt["rating_mva"])
            row["to_bus"] = nxt["to_bus"]
        rows.append(row)
    br2 = pd.DataFrame(rows).reset_index(drop=True)
    gone = set(removed)
    keep = [b for b in range(network.n_buses) if b not in gone]
    remap = {b: i for i, b in enumerate(keep)}
    br2["from_bus"] = br2["from_bus"].map(remap).astype(int)
    br2["to_bus"] = br2["to_bus"].map(remap).astype(int)
    out = Network(buses=network.buses.iloc[keep].reset_index(drop=True), branches=br2,
                  loads=network.loads.assign(bus=network.loads["bus"].map(remap).astype(int)),
                  slack=network.slack.assign(bus=network.slack["bus"].map(remap).astype(int)),
                  s_base_mva=network.s_base_mva, source=network.source)
    return out, [str(network.buses["name"].iloc[m]) for m in removed]


def write_instance(out: Path) -> Path:
    import pandapower.networks as pn

    from ..instance.network_io import pandapower_radial

    net = pn.ieee_european_lv_asymmetric("on_peak_566")
    radial = pandapower_radial(net, "pandapower:ieee_european_lv_asymmetric")
    network, removed = merge_series(radial.network)
    sb = network.s_base_mva
    out.mkdir(parents=True, exist_ok=True)
    names = network.buses["name"].astype(str).tolist()
    pd.DataFrame({"name": names, "vn_kv": network.buses["vn_kv"]}).to_csv(out / "buses.csv", index=False)
    br = network.branches
    zb = br["vn_kv"].to_numpy(float) ** 2 / sb
    lines = br[br["kind"] == "line"]
    lz = zb[lines.index]
    pd.DataFrame({"name": lines["name"], "from_bus": [names[i] for i in lines["from_bus"]],
                  "to_bus": [names[i] for i in lines["to_bus"]], "r_ohm": lines["r_pu"] * lz,
                  "x_ohm": lines["x_pu"] * lz, "rating_mva": lines["rating_mva"],
                  "length_km": lines["length_km"], "r0_ohm": lines["r0_pu"] * lz, "x0_ohm": lines["x0_pu"] * lz}
                 ).to_csv(out / "lines.csv", index=False, float_format="%.10g")
    tr = net.trafo.iloc[0]
    hv = names[int(network.slack["bus"].iloc[0])]
    lv = names[int(br.loc[br["kind"] == "transformer", "to_bus"].iloc[0])]
    pd.DataFrame([dict(name=str(tr["name"]), hv_bus=hv, lv_bus=lv, sn_mva=float(tr.sn_mva),
                       vk_percent=float(tr.vk_percent), vkr_percent=float(tr.vkr_percent),
                       vk0_percent=float(tr.vk0_percent), vkr0_percent=float(tr.vkr0_percent))]
                 ).to_csv(out / "trafos.csv", index=False)
    ld = network.loads
    pd.DataFrame({"bus": [names[i] for i in ld["bus"]], "p_mw": ld["p_mw"], "q_mvar": ld["q_mvar"],
                  "class": "residential", "name": ld["name"], "phase": ld["phase"]}
                 ).to_csv(out / "loads.csv", index=False, float_format="%.10g")
    prof = pd.read_csv(ROOT / "instances" / "cigre_lv" / "profiles.csv")[["day", "hour", "weight", "residential"]]
    prof.to_csv(out / "profiles.csv", index=False)
    fleets = ""
    for ph in "abc":
        at = sorted({names[i] for i, p in zip(ld["bus"], ld["phase"]) if p == ph}, key=lambda n: (len(n), n))
        fleets += textwrap.dedent(f"""
            [[ev_fleets]]
            name = "home_{ph}"
            buses = [{", ".join(f'"{b}"' for b in at)}]
            behaviour = "home"
            evs = {{2025 = 0.2, 2030 = 0.6, 2035 = 1.0}}   # EVs per house (assumed uptake)
            phase = "{ph}"                 # each house's charger on the house's phase
            seed = 11
            """)
    doc = __doc__.split("Instance data")[0].strip().splitlines()[4:]
    (out / "instance.toml").write_text(textwrap.dedent(f'''\
        name = "european_lv"
        description = """IEEE European LV test feeder (pandapower ieee_european_lv_asymmetric; 55 single-phase
        houses behind an 11/0.416 kV Dyn transformer) with series chains merged ({len(removed)} of
        {radial.network.n_buses} buses removed, exact for the linear models) and one home-charging EV fleet
        per phase. Written by flexplan/convert/european_lv.py."""

        [network]
        source = "csv"
        buses = "buses.csv"
        lines = "lines.csv"                 # with r0_ohm, x0_ohm: the zero sequence (three-phase model)
        transformers = "trafos.csv"         # with vk0_percent, vkr0_percent
        loads = "loads.csv"                 # one row per house, on its phase
        slack_bus = "{hv}"
        slack_vm_pu = {float(net.ext_grid.vm_pu.iloc[0])}
        default_class = "residential"

        [profiles]
        file = "profiles.csv"
        # residential: the mean of SimBench H0-A, H0-B, H0-C, H0-G, H0-L, peak 1 (as instances/cigre_lv),
        # applied to each house's on-peak load (minute 566 of the IEEE test case)

        [growth]
        annual_rate = 0.0

        [economics]
        base_year = 2025
        end_year = 2039
        stages = [2025, 2030, 2035]
        discount_rate = 0.035             # 1/yr, HM Treasury Green Book social rate

        [operation]
        years_per_stage = "last"

        [limits]
        v_min_pu = 0.9                    # EN 50160: +-10 % of 230 V
        v_max_pu = 1.1
        ''') + fleets)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "instances" / "european_lv"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    if (out / "instance.toml").exists():  # a previous conversion: rewritten from scratch
        shutil.rmtree(out)
    print(write_instance(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
