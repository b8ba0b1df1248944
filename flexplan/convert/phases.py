"""A balanced LV instance -> the same feeder in three phases, by a documented phase assignment.

    python -m flexplan.convert.phases instances/sb_lv_semiurb --out instances/sb_lv_semiurb_3ph
    python -m flexplan.convert.phases SRC --out DIR --seed 7 --home-evs none

SimBench and pandapower give an LV grid's positive sequence only, and every load as a balanced
three-phase load.  The three-phase formulation (``lindist3flow``, docs/formulation.md §2.12)
needs each line's zero sequence and each load's and charger's phase.  This converter adds them
to a CSV instance (``network.source = "csv"``) by these rules, written into the new
``instance.toml`` too:

1. **Cables' zero sequence**: r0 = ρ_r r1 and x0 = ρ_x x1, with ρ the length-weighted mean
   ratio of the four-core cables of the IEEE European LV test feeder (pandapower's
   ``ieee_european_lv_asymmetric``, line types ``4c_*``: ρ_r ≈ 3.43, ρ_x ≈ 1.16; computed here
   from pandapower's data).  SimBench's cables (NAYY 4x150SE, 4x240SE) are four-core cables of
   the same kind.  The same ratios give the line types of ``[reinforcement]`` their
   ``r0_ohm_per_km`` / ``x0_ohm_per_km``.
2. **Transformers**: vk0 = vk and vkr0 = vkr (a Dyn transformer: the LV side sees its leakage
   impedance in the zero sequence, the delta blocks the HV side), where not given.
3. **Households** (load class ``H0*``) are single-phase, dealt a, b, c in turn in a seeded
   random order of the households (``--seed``): each phase gets a third of the houses (±1),
   not of their power, as the houses of the IEEE European LV feeder.  **Other loads**
   (commercial ``G*``, agricultural ``L*``, heat pumps) are three-phase and balanced: VDE-AR-N
   4100 (German LV connection rules) limits a customer's unbalance to 4.6 kVA, so that larger
   devices are connected in three phases [check the clause].
4. **Chargers**: a charger of at most 4.6 kW (SimBench's 3.7 kW ``*_3.7`` chargers: 16 A on one
   phase) is single-phase, on the phase of a household at its bus (the first in loads.csv), or
   the next phase of the deal where the bus has none; a fleet whose chargers land on several
   phases is split into one fleet per phase (``<name>_a`` ...), each bus keeping its EV counts.
   Larger chargers (11, 22, 50 kW) are three-phase and balanced (``phase = "abc"``).
5. **Home EVs** (``--home-evs``, default ``2025=0.1,2035=0.5,2044=1``; ``none`` to leave out):
   SimBench scenario 2 has a charger at a few buses only; to plan a feeder where EVs arrive at
   homes, each household gets a home-charging EV with a 3.7 kW single-phase charger on the
   household's phase at the given uptake (EVs per household, an assumption), as one fleet per
   phase and number of households of that phase at a bus (``home_a``, ``home_a_x2`` ...).

The other files are copied unchanged.  The result is written to a new folder beside ``--out``
and renamed into place, so that a failure leaves nothing half-written; an existing ``--out`` is
replaced only if it was written by this converter (its ``instance.toml`` starts with
:data:`HEADER`), otherwise refused.
"""
from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .simbench import _toml_str

HEADER = "# written by flexplan.convert.phases"
#: the largest single-phase charger, kW (taken at unity power factor from VDE-AR-N 4100's 4.6 kVA
#: limit on a customer's unbalance [check the clause])
SINGLE_PHASE_MAX_KW = 4.6
#: EVs per household, by year (an assumed uptake, as instances/european_lv)
HOME_EVS = {2025: 0.1, 2035: 0.5, 2044: 1.0}
#: the home chargers' power, kW (16 A x 230 V, the usual single-phase wallbox)
HOME_CHARGER_KW = 3.7
HOUSEHOLD_PREFIX = "H0"
PHASES = "abc"


class ConversionError(ValueError):
    """The source instance cannot be converted (names the file and what is missing)."""


def cable_zero_sequence_ratios() -> tuple[float, float]:
    """(r0/r1, x0/x1) of the IEEE European LV test feeder's four-core cables (pandapower's
    ``ieee_european_lv_asymmetric``, line types ``4c_*``), weighted by length."""
    import pandapower.networks as pn

    line = pn.ieee_european_lv_asymmetric("off_peak_1").line
    four = line[line["std_type"].astype(str).str.startswith("4c_")]
    w = four["length_km"].to_numpy(float)
    rr = four["r0_ohm_per_km"].to_numpy(float) / four["r_ohm_per_km"].to_numpy(float)
    xx = four["x0_ohm_per_km"].to_numpy(float) / four["x_ohm_per_km"].to_numpy(float)
    return float(w @ rr / w.sum()), float(w @ xx / w.sum())


def charger_kw(spec: dict) -> float | None:
    """A fleet's charger power (kW): from its SimBench profile's name (``HLS_A_3.7`` -> 3.7),
    ``profile_charger_kw``, or the largest of ``charger_kw``; None where not stated."""
    if "simbench_profile" in spec:
        return float(str(spec["simbench_profile"]).rsplit("_", 1)[-1])
    if "profile_charger_kw" in spec:
        return float(spec["profile_charger_kw"])
    if "charger_kw" in spec:
        return float(max(spec["charger_kw"]))
    return None


def deal_phases(loads: pd.DataFrame, seed: int) -> pd.Series:
    """Each load's phase: households (class ``H0*``) a, b, c in turn in a seeded random order,
    the others ``abc``."""
    house = loads["class"].astype(str).str.startswith(HOUSEHOLD_PREFIX).to_numpy()
    phase = np.array(["abc"] * len(loads), dtype=object)
    idx = np.flatnonzero(house)
    order = np.random.default_rng(seed).permutation(len(idx))
    for i, pos in enumerate(order):
        phase[idx[pos]] = PHASES[i % 3]
    return pd.Series(phase, index=loads.index, name="phase")


def _fmt_value(v) -> str:
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_fmt_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return repr(v)


def _fleet_toml(spec: dict, comment: str) -> str:
    lines = ["", "[[ev_fleets]]", f"# {comment}"]
    for k, v in spec.items():
        lines.append(f"{k} = {_fmt_value(v)}")
    return "\n".join(lines) + "\n"


def convert(src: Path, out: Path, seed: int = 7, home_evs: dict | None = None, name: str | None = None) -> dict:
    """Write the three-phase variant of the instance folder ``src`` into ``out`` (see the module
    docstring).  Returns a summary (ratios, households per phase, fleets written)."""
    src, out = Path(src), Path(out)
    home_evs = HOME_EVS if home_evs is None else home_evs
    toml_path = src / "instance.toml"
    if not toml_path.is_file():
        raise ConversionError(f"{toml_path}: no such file (give an instance folder)")
    text = toml_path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConversionError(f"{toml_path}: not valid TOML ({e})") from None
    netw = data.get("network", {})
    if netw.get("source") != "csv":
        raise ConversionError(f"{toml_path}: network.source must be \"csv\" (got {netw.get('source')!r})")
    for key in ("lines", "transformers", "loads"):
        if key not in netw:
            raise ConversionError(f"{toml_path}: network.{key} is missing")
    name = name or f"{data.get('name', src.name)}_3ph"
    rho_r, rho_x = cable_zero_sequence_ratios()

    if not (isinstance(seed, int) and seed >= 0):
        raise ConversionError(f"seed must be a whole number >= 0, got {seed!r}")

    def table(key):
        path = src / str(netw[key])
        try:
            return pd.read_csv(path)
        except FileNotFoundError:
            raise ConversionError(f"{path}: no such file (network.{key} in {toml_path})") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise ConversionError(f"{path}: not a readable CSV ({e})") from None

    lines, trafos, loads = table("lines"), table("transformers"), table("loads")
    for df, file, cols in ((lines, netw["lines"], ("r_ohm", "x_ohm")), (trafos, netw["transformers"],
                           ("vk_percent", "vkr_percent")), (loads, netw["loads"], ("bus", "p_mw", "class"))):
        miss = [c for c in cols if c not in df]
        if miss:
            raise ConversionError(f"{src / file}: column(s) {', '.join(miss)} missing")
    if "phase" in loads:
        raise ConversionError(f"{src / netw['loads']}: already has phases (column 'phase')")
    if "r0_ohm" not in lines:
        lines["r0_ohm"] = lines["r_ohm"] * rho_r
        lines["x0_ohm"] = lines["x_ohm"] * rho_x
    if "vk0_percent" not in trafos:
        trafos["vk0_percent"] = trafos["vk_percent"]
        trafos["vkr0_percent"] = trafos["vkr_percent"]
    loads["phase"] = deal_phases(loads, seed)

    # a bus's phase for a single-phase charger: its first household's; else the deal goes on
    house_phase = {}
    for bus, ph in zip(loads["bus"].astype(str), loads["phase"]):
        if ph != "abc":
            house_phase.setdefault(bus, ph)
    n_house = int((loads["phase"] != "abc").sum())
    next_phase = [n_house % 3]

    def phase_of(bus: str) -> str:
        if bus not in house_phase:
            house_phase[bus] = PHASES[next_phase[0] % 3]
            next_phase[0] += 1
        return house_phase[bus]

    fleets_out, notes = [], []
    for spec in data.get("ev_fleets", []):
        spec = dict(spec)
        buses = [spec.pop("bus")] if "bus" in spec else list(spec.pop("buses", []))
        kw = charger_kw(spec)
        if "phase" in spec:
            fleets_out.append((dict(name=spec.pop("name"), buses=buses, **spec), "phase as given in the source"))
            continue
        if kw is not None and kw <= SINGLE_PHASE_MAX_KW:
            by_phase = defaultdict(list)
            for bus in buses:
                by_phase[phase_of(str(bus))].append(bus)
            base = spec.pop("name")
            for ph in sorted(by_phase):
                nm = base if len(by_phase) == 1 else f"{base}_{ph}"
                fleets_out.append((dict(name=nm, buses=by_phase[ph], **spec, phase=ph),
                                   f"{kw:g} kW chargers: single-phase, on the phase of the bus's household"))
        else:
            why = f"{kw:g} kW chargers: three-phase" if kw is not None else "charger power not stated: three-phase"
            fleets_out.append((dict(name=spec.pop("name"), buses=buses, **spec, phase="abc"), why))
    if home_evs:
        houses = loads[loads["phase"] != "abc"]
        count = houses.groupby([houses["bus"].astype(str), houses["phase"]]).size()
        for ph in PHASES:
            for n in sorted(set(count[count.index.get_level_values(1) == ph])):
                at = [b for (b, p), c in count.items() if p == ph and c == n]
                fleets_out.append((dict(name=f"home_{ph}" + (f"_x{n}" if n > 1 else ""), buses=at, behaviour="home",
                                        evs={int(y): round(float(v) * n, 6) for y, v in home_evs.items()},
                                        charger_kw=[HOME_CHARGER_KW], charger_probs=[1.0], phase=ph, seed=seed),
                                   f"home EVs of the households on phase {ph}" + (f", {n} per bus" if n > 1 else "")
                                   + f" ({HOME_CHARGER_KW:g} kW single-phase; EVs per bus = per household x {n})"))
    names = [f["name"] for f, _ in fleets_out]
    if len(set(names)) != len(names):
        raise ConversionError(f"{toml_path}: fleet names would repeat after the split: {names}")

    new_text = _instance_text(text, data, name, src, rho_r, rho_x, seed, home_evs, fleets_out)
    tomllib.loads(new_text)  # what is written must parse

    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        toml = out / "instance.toml"
        if out.is_symlink() or not out.is_dir() or not toml.is_file() or not toml.read_text().startswith(HEADER):
            raise ConversionError(f"{out} exists and was not written by this converter: not replaced "
                                  "(give a new folder, or delete it yourself)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        skip = {netw["lines"], netw["transformers"], netw["loads"], "instance.toml"}
        for f in sorted(src.iterdir()):
            if f.is_file() and f.name not in skip:
                shutil.copy2(f, tmp / f.name)
        lines.to_csv(tmp / netw["lines"], index=False, float_format="%.10g")
        trafos.to_csv(tmp / netw["transformers"], index=False, float_format="%.10g")
        loads.to_csv(tmp / netw["loads"], index=False, float_format="%.10g")
        (tmp / "instance.toml").write_text(new_text)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    per_phase = {ph: int((loads["phase"] == ph).sum()) for ph in PHASES}
    return dict(out=str(out), ratios=(rho_r, rho_x), households=per_phase, fleets=names)


def _instance_text(text, data, name, src, rho_r, rho_x, seed, home_evs, fleets_out) -> str:
    """The source's instance.toml with the three-phase data: new name and description, zero
    sequence on the line types, the fleets replaced."""
    body = text.split("\n[[ev_fleets]]")[0].rstrip() + "\n"
    body = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', body, count=1)
    desc = (f"{data.get('name', src.name)} in three phases (flexplan/convert/phases.py, seed {seed}): cables' zero "
            f"sequence r0 = {rho_r:.3f} r1, x0 = {rho_x:.3f} x1 (the IEEE European LV feeder's four-core cables); "
            "households single-phase, dealt a, b, c in a seeded order; other loads balanced; chargers up to "
            f"{SINGLE_PHASE_MAX_KW:g} kW single-phase on their household's phase, larger ones balanced"
            + (f"; home EVs at {_fmt_value({int(k): v for k, v in home_evs.items()})} per household, "
               f"{HOME_CHARGER_KW:g} kW single-phase" if home_evs else "")
            + ". Source: " + str(data.get("description", "")).replace('"', "'").replace("\n", " "))
    body = re.sub(r'(?m)^description = (""".*?"""|".*?")$', lambda m: f"description = {_fmt_value(desc)}", body,
                  count=1, flags=re.S)
    # the line types' zero sequence, after each x_ohm_per_km of [[reinforcement.line_types]]
    out, section, lt = [], None, iter(data.get("reinforcement", {}).get("line_types", []))
    for line in body.splitlines():
        out.append(line)
        s = line.strip()
        if s.startswith("["):
            section = s
            cur = next(lt) if s == "[[reinforcement.line_types]]" else None
        elif section == "[[reinforcement.line_types]]" and s.startswith("x_ohm_per_km") and cur is not None \
                and "r0_ohm_per_km" not in cur:
            out.append(f"r0_ohm_per_km = {cur['r_ohm_per_km'] * rho_r:.6g}    # {rho_r:.3f} r1 (the IEEE European "
                       "LV feeder's four-core cables)")
            out.append(f"x0_ohm_per_km = {cur['x_ohm_per_km'] * rho_x:.6g}    # {rho_x:.3f} x1")
    head = [HEADER + f" from {src.name} (seed {seed}); rewrite with: python -m flexplan.convert.phases",
            "# Three-phase data (rules in flexplan/convert/phases.py):",
            f"#   lines.csv r0_ohm, x0_ohm = {rho_r:.4f} r_ohm, {rho_x:.4f} x_ohm: length-weighted mean ratios of the",
            "#     four-core cables (4c_*) of the IEEE European LV test feeder (pandapower ieee_european_lv_asymmetric)",
            "#   trafos.csv vk0_percent = vk_percent, vkr0_percent = vkr_percent (Dyn: the LV side sees the leakage",
            "#     impedance in the zero sequence)",
            "#   loads.csv phase: households (class H0*) single-phase, dealt a, b, c in turn in a seeded random order;",
            "#     other loads balanced (abc): VDE-AR-N 4100 limits a customer's unbalance to 4.6 kVA [check clause]",
            f"#   EV fleets: chargers <= {SINGLE_PHASE_MAX_KW:g} kW single-phase on the phase of their bus's first household",
            "#     (a fleet over several phases is split per phase); larger chargers three-phase (phase = \"abc\")"]
    fleets = "".join(_fleet_toml(f, why) for f, why in fleets_out)
    return "\n".join(head) + "\n" + "\n".join(out).rstrip() + "\n" + fleets


def _uptake(s: str) -> dict | None:
    if s.strip().lower() == "none":
        return {}
    try:
        return {int(k): float(v) for k, v in (kv.split("=") for kv in s.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--home-evs: expected YEAR=EVS,YEAR=EVS or none, got {s!r}") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flexplan.convert.phases", description=__doc__.splitlines()[0])
    ap.add_argument("src", help="a balanced CSV instance folder (e.g. instances/sb_lv_semiurb)")
    ap.add_argument("--out", required=True, help="the new instance folder")
    ap.add_argument("--seed", type=int, default=7, help="the seed of the households' phase deal (default 7)")
    ap.add_argument("--home-evs", type=_uptake, default=None,
                    help="EVs per household by year, e.g. 2025=0.1,2035=0.5,2044=1 (default), or none")
    ap.add_argument("--name", help="the instance's name (default: the source's + _3ph)")
    args = ap.parse_args(argv)
    try:
        s = convert(Path(args.src), Path(args.out), seed=args.seed, home_evs=args.home_evs, name=args.name)
    except ConversionError as e:
        print(f"error: {e}")
        return 2
    print(f"wrote {s['out']}: r0/r1 {s['ratios'][0]:.4f}, x0/x1 {s['ratios'][1]:.4f}; households per phase "
          f"{s['households']}; fleets {', '.join(s['fleets'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
