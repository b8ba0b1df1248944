"""Load ``instances/NAME/instance.toml`` (+ CSV files) into a validated :class:`Instance`.

The format is documented in README.md ("Instance format"); every problem found is
reported with the file, the line and the field, and all problems of one file together.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InstanceError, Problem
from . import network_io
from .candidates import build_candidates
from .fleets import load_fleets
from .model import Economics, Instance, Limits, Network, Penalties, Profiles, SectionContext
from .tables import ALLOW_OUTSIDE_PATHS, between, check_section, data_path, duplicates, read_csv, read_text
from .tree import parse_tree

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_KEYS = {"name": "str", "description": "str", "network": "table", "profiles": "table", "growth": "table",
            "economics": "table", "operation": "table", "limits": "table", "penalties": "table",
            "reinforcement": "table", "ev_fleets": "list", "tree": "table"}
NETWORK_KEYS = {"source": "str", "name": "str", "file": "str", "buses": "str", "lines": "str",
                "transformers": "str", "slack_bus": "str", "slack_vm_pu": "float++", "s_base_mva": "float++",
                "line_patch": "str", "loads": "str", "default_class": "str", "substation_mva": "float++"}
ECON_KEYS = {"base_year": "int", "end_year": "int", "stages": "list", "discount_rate": "float+",
             "investment_cost": "str"}
LIMIT_KEYS = {"v_min_pu": "float++", "v_max_pu": "float++", "max_loading_pct": "float++"}
PENALTY_KEYS = {"voll_eur_per_mwh": "float+", "overload_eur_per_mvah": "float+", "voltage_eur_per_pu2h": "float+"}
#: Plausible ranges (lowest, highest, unit): beyond them a value is a typo or in the wrong unit.
YEARS = (1900, 2200, "(a calendar year)")
NETWORK_BOUNDS = {"slack_vm_pu": (0.8, 1.2, "pu"), "s_base_mva": (1e-3, 1e4, "MVA"),
                  "substation_mva": (1e-3, 1e5, "MVA")}
ECON_BOUNDS = {"base_year": YEARS, "end_year": YEARS}
LIMIT_BOUNDS = {"v_min_pu": (0.5, 1.5, "pu"), "v_max_pu": (0.5, 1.5, "pu"),
                "max_loading_pct": (1.0, 1000.0, "% of the rating")}
PENALTY_BOUNDS = {k: (0.0, 1e12, "EUR per unit") for k in PENALTY_KEYS}
GROWTH_BOUNDS = {"annual_rate": (-0.5, 1.0, "per year (a fraction: 0.02 for 2 %/yr)")}
BUS_BOUNDS = {"vn_kv": (0.1, 1000.0, "kV (was it given in V?)")}
MAX_RATING_MVA = 1e5  # highest plausible branch rating (MVA)
LINE_BOUNDS = {"r_ohm": (0.0, 1e4, "ohm"), "x_ohm": (0.0, 1e4, "ohm"), "length_km": (0.0, 1000.0, "km (was it given in m?)")}
TRAFO_BOUNDS = {"sn_mva": (1e-4, 1e5, "MVA"), "vk_percent": (0.1, 100.0, "%"), "vkr_percent": (0.0, 100.0, "%")}
LOAD_BOUNDS = {"p_mw": (-1e4, 1e4, "MW (was it given in kW?)"), "q_mvar": (-1e4, 1e4, "Mvar (was it given in kvar?)")}
PATCH_BOUNDS = {"max_i_ka": (1e-4, 100.0, "kA (was it given in A?)"), "r_ohm_per_km": (0.0, 1e3, "ohm/km"),
                "x_ohm_per_km": (0.0, 1e3, "ohm/km"), "length_km": (1e-6, 1000.0, "km (was it given in m?)")}
FACTOR_MAX = 100.0  # highest plausible load or growth multiplier (dimensionless)


def load_instance(path: str | Path, allow_outside_paths: bool | None = None) -> Instance:
    """Load and validate an instance folder (or its ``instance.toml``).

    The data files instance.toml names must lie inside its folder unless
    ``allow_outside_paths`` (default: the command line's ``--allow-outside-paths``, else no)."""
    if allow_outside_paths is None:
        return _load_instance(Path(path))
    token = ALLOW_OUTSIDE_PATHS.set(bool(allow_outside_paths))
    try:
        return _load_instance(Path(path))
    finally:
        ALLOW_OUTSIDE_PATHS.reset(token)


def _load_instance(path: Path) -> Instance:
    toml_path = path / "instance.toml" if path.is_dir() else path
    folder = toml_path.parent
    shown = str(toml_path)
    if not toml_path.exists():
        raise InstanceError(Problem(shown, "instance file not found (expected a folder with instance.toml)"))
    try:
        data = tomllib.loads(read_text(toml_path, shown, "TOML"))
    except tomllib.TOMLDecodeError as e:
        raise InstanceError(Problem(shown, f"not valid TOML: {e}")) from e

    owners = _section_owners()
    problems = check_section(data, shown, "", {**TOP_KEYS, **{n: "list|table" for n in owners}},
                             required=("network", "profiles", "economics"))
    if problems:
        raise InstanceError(problems)

    def f(name: str, field: str) -> tuple[Path, str]:
        p = data_path(folder, name, shown, field)
        return p, str(p)

    net_cfg = data["network"]
    problems += check_section(net_cfg, shown, "network.", NETWORK_KEYS, required=("source",), bounds=NETWORK_BOUNDS)
    econ_cfg = data["economics"]
    problems += check_section(econ_cfg, shown, "economics.", ECON_KEYS, required=("base_year", "end_year", "stages"),
                              bounds=ECON_BOUNDS)
    limits_cfg = data.get("limits", {})
    problems += check_section(limits_cfg, shown, "limits.", LIMIT_KEYS, bounds=LIMIT_BOUNDS)
    pen_cfg = data.get("penalties", {})
    problems += check_section(pen_cfg, shown, "penalties.", PENALTY_KEYS, bounds=PENALTY_BOUNDS)
    problems += check_section(data.get("operation", {}), shown, "operation.", {"years_per_stage": "str"})
    problems += check_section(data.get("growth", {}), shown, "growth.", {"annual_rate": "float", "file": "str"},
                              bounds=GROWTH_BOUNDS)
    problems += check_section(data["profiles"], shown, "profiles.", {"file": "str"}, required=("file",))
    if problems:
        raise InstanceError(problems)

    economics = _economics(econ_cfg, shown)
    limits = Limits(**limits_cfg)
    if not limits.v_min_pu < limits.v_max_pu:
        raise InstanceError(Problem(shown, f"v_min_pu {limits.v_min_pu} must be below v_max_pu {limits.v_max_pu}",
                                    field="limits.v_min_pu"))
    penalties = Penalties(**pen_cfg)
    yps = data.get("operation", {}).get("years_per_stage", "all")
    if yps not in ("all", "last"):
        raise InstanceError(Problem(shown, f"'{yps}' is not one of: all, last", field="operation.years_per_stage"))

    network = _network(net_cfg, folder, shown)
    profiles = _profiles(*f(data["profiles"]["file"], "profiles.file"))
    classes = set(profiles.factors)
    default_class = net_cfg.get("default_class")
    loads = network.loads
    if default_class is not None:
        loads = loads.assign(load_class=[c if c else default_class for c in loads["load_class"]])
    missing = sorted(set(loads["load_class"]) - classes)
    if missing:
        # blame the first line of loads.csv that names the class, else network.default_class
        problems = []
        for m in missing:
            rows = [i for i, c in enumerate(network.loads["load_class"]) if c == m]
            msg = (f"load class '{m}' has no column in {data['profiles']['file']} (columns: {', '.join(sorted(classes))})"
                   if m else "no load class: set network.default_class or give the loads file a 'class' column")
            if "loads" in net_cfg and rows:  # no class at all: the 'class' column is missing (header, line 1)
                problems.append(Problem(str(folder / net_cfg["loads"]), msg, row=rows[0] + 2 if m else 1, field="class"))
            else:
                problems.append(Problem(shown, msg, field="network.default_class"))
        raise InstanceError(problems)
    network = Network(buses=network.buses, branches=network.branches, loads=loads, slack=network.slack,
                      s_base_mva=network.s_base_mva, source=network.source)
    growth = _growth(data.get("growth", {}), folder, shown, economics, sorted(classes))
    candidates = build_candidates(data.get("reinforcement", {}), network, folder, shown)
    fleets = load_fleets(data.get("ev_fleets", []), folder, shown, network, profiles, economics.years)
    tree = (parse_tree(data["tree"], economics.stages, shown, fleets=[fl.name for fl in fleets],
                       factors=_uncertain_quantities())
            if "tree" in data else None)
    ctx = SectionContext(folder=folder, shown=shown, network=network, profiles=profiles, economics=economics)
    sections = {n: owners[n](data[n], ctx) for n in owners if n in data}
    return Instance(name=data.get("name", folder.name), path=folder, network=network, profiles=profiles,
                    growth=growth, economics=economics, limits=limits, penalties=penalties,
                    candidates=candidates, years_per_stage=yps, description=data.get("description", ""),
                    ev_fleets=fleets, tree=tree, sections=sections)


def _uncertain_quantities() -> set:
    """The quantities the registered blocks let a scenario tree scale (their ``uncertain`` trait)."""
    from ..blocks import BLOCKS, _load_all

    _load_all()
    return {q for s in BLOCKS.values() for q in s.uncertain}


def _section_owners() -> dict:
    """Block name -> parser of its own table of instance.toml (``BlockSpec.section``)."""
    from ..blocks import BLOCKS, _load_all

    _load_all()
    return {n: s.section for n, s in BLOCKS.items() if s.section is not None and n not in TOP_KEYS}


def _economics(cfg: dict, shown: str) -> Economics:
    problems = []
    y0, H = cfg["base_year"], cfg["end_year"]
    stages = cfg["stages"]
    if H < y0:
        problems.append(Problem(shown, f"end_year {H} is before base_year {y0}", field="economics.end_year"))
    if not stages or not all(isinstance(s, int) and not isinstance(s, bool) for s in stages):
        problems.append(Problem(shown, "stages must be a non-empty list of years", field="economics.stages"))
    elif stages[0] != y0 or any(b <= a for a, b in zip(stages, stages[1:])) or stages[-1] > H:
        problems.append(Problem(shown, f"stages {stages} must start at base_year {y0}, increase strictly and end "
                                f"no later than end_year {H}", field="economics.stages"))
    method = cfg.get("investment_cost", "annuity")
    if method not in ("annuity", "lump_sum"):
        problems.append(Problem(shown, f"'{method}' is not one of: annuity, lump_sum", field="economics.investment_cost"))
    if cfg.get("discount_rate", 0.035) > 1:
        problems.append(Problem(shown, "discount_rate is a fraction per year (0.035 for 3.5 %)",
                                field="economics.discount_rate"))
    if problems:
        raise InstanceError(problems)
    return Economics(base_year=y0, end_year=H, stages=tuple(stages), discount_rate=float(cfg.get("discount_rate", 0.035)),
                     investment_cost=method)


def _network(cfg: dict, folder: Path, shown: str) -> Network:
    source = cfg["source"]
    s_base = float(cfg.get("s_base_mva", 1.0))
    if source in ("pandapower", "json"):
        if source == "pandapower":
            if "name" not in cfg:
                raise InstanceError(Problem(shown, "missing key (a pandapower network name, e.g. case33bw)",
                                            field="network.name"))
            net = network_io.pandapower_builtin(cfg["name"], shown)
            label = f"pandapower:{cfg['name']}"
        else:
            if "file" not in cfg:
                raise InstanceError(Problem(shown, "missing key (a pandapower JSON file)", field="network.file"))
            net = network_io.pandapower_json(data_path(folder, cfg["file"], shown, "network.file"), shown)
            label = str(folder / cfg["file"])
        if "line_patch" in cfg:
            _patch_lines(net, data_path(folder, cfg["line_patch"], shown, "network.line_patch"))
        network = network_io.from_pandapower(net, label, s_base)
    elif source == "csv":
        network = _csv_network(cfg, folder, shown, s_base)
    else:
        raise InstanceError(Problem(shown, f"'{source}' is not one of: pandapower, json, csv", field="network.source"))
    if "loads" in cfg and source != "csv":  # a CSV network reads its loads before the radiality check
        network = _replace_loads(network, data_path(folder, cfg["loads"], shown, "network.loads"))
    bad = network.branches[~(network.branches["rating_mva"] > 0)]
    if len(bad):
        raise InstanceError([Problem(network.source, f"rating {r.rating_mva} MVA must be > 0", field=f"{r.name}")
                             for r in bad.itertuples()])
    if "substation_mva" in cfg:
        network = network_io.add_substation_limit(network, cfg["substation_mva"])
    return network


def _patch_lines(net, path: Path) -> None:
    """Overwrite line data of a pandapower network from a CSV (column ``line`` = index)."""
    shown = str(path)
    df = read_csv(path, shown, {"line": "int"}, {"max_i_ka": "float++", "r_ohm_per_km": "float+",
                                                  "x_ohm_per_km": "float+", "length_km": "float++",
                                                  "in_service": "bool"}, bounds=PATCH_BOUNDS,
                  unique={"line": "line index"})
    problems = [Problem(shown, f"line {ln} is not in the network", row=i + 2, field="line")
                for i, ln in enumerate(df["line"]) if ln not in net.line.index]
    if problems:
        raise InstanceError(problems)
    for col in df.columns:
        if col != "line":
            net.line.loc[df["line"].to_numpy(), col] = df[col].to_numpy()


def _csv_network(cfg: dict, folder: Path, shown: str, s_base: float) -> Network:
    for key in ("buses", "lines", "slack_bus"):
        if key not in cfg:
            raise InstanceError(Problem(shown, "missing key (required when network.source = 'csv')", field=f"network.{key}"))
    bpath = data_path(folder, cfg["buses"], shown, "network.buses")
    buses = read_csv(bpath, str(bpath), {"name": "str", "vn_kv": "float++"}, bounds=BUS_BOUNDS,
                     unique={"name": "bus name"})
    index = {n: i for i, n in enumerate(buses["name"])}
    vn = buses["vn_kv"].to_numpy()
    rows, problems = [], []
    lpath = data_path(folder, cfg["lines"], shown, "network.lines")
    lines = read_csv(lpath, str(lpath), {"name": "str", "from_bus": "str", "to_bus": "str", "r_ohm": "float+",
                                         "x_ohm": "float+", "rating_mva": "float"},
                     {"length_km": "float+", "r0_ohm": "float+", "x0_ohm": "float+"}, bounds=LINE_BOUNDS,
                     unique={"name": "line name"})
    for i, ln in lines.iterrows():
        for fld in ("from_bus", "to_bus"):
            if ln[fld] not in index:
                problems.append(Problem(str(lpath), f"unknown bus '{ln[fld]}' (not in {cfg['buses']})", row=i + 2, field=fld))
        if ln["rating_mva"] <= 0:
            problems.append(Problem(str(lpath), f"rating {ln['rating_mva']} must be > 0", row=i + 2, field="rating_mva"))
        elif ln["rating_mva"] > MAX_RATING_MVA:
            problems.append(Problem(str(lpath), between(0, MAX_RATING_MVA, "MVA", ln["rating_mva"]), row=i + 2,
                                    field="rating_mva"))
        if ln["r_ohm"] == 0 and ln["x_ohm"] == 0:
            problems.append(Problem(str(lpath), "zero impedance line (r_ohm = x_ohm = 0); merge the buses instead",
                                    row=i + 2, field="r_ohm"))
        if ln["from_bus"] in index and ln["to_bus"] in index:
            a, b = index[ln["from_bus"]], index[ln["to_bus"]]
            if vn[a] != vn[b]:
                problems.append(Problem(str(lpath), f"line joins buses of {vn[a]} kV and {vn[b]} kV", row=i + 2,
                                        field="to_bus"))
            zb = vn[a] ** 2 / s_base
            rows.append(dict(name=ln["name"], kind="line", a=a, b=b, r_pu=ln["r_ohm"] / zb, x_pu=ln["x_ohm"] / zb,
                             rating_mva=ln["rating_mva"], length_km=float(ln.get("length_km", 0.0) or 0.0),
                             vn_kv=vn[a], virtual=False, source=f"{lpath} line {i + 2}",
                             r0_pu=float(ln.get("r0_ohm", math.nan)) / zb, x0_pu=float(ln.get("x0_ohm", math.nan)) / zb))
    if "transformers" in cfg:
        tpath = data_path(folder, cfg["transformers"], shown, "network.transformers")
        tr = read_csv(tpath, str(tpath), {"name": "str", "hv_bus": "str", "lv_bus": "str", "sn_mva": "float++",
                                          "vk_percent": "float++", "vkr_percent": "float+"},
                      {"vk0_percent": "float++", "vkr0_percent": "float+"}, bounds=TRAFO_BOUNDS,
                      unique={"name": "transformer name"})
        problems += [Problem(str(tpath), f"'{n}' is also the name of a line in {cfg['lines']}", row=i + 2,
                             field="name") for i, n in enumerate(tr["name"]) if n in set(lines["name"])]
        for i, t in tr.iterrows():
            for fld in ("hv_bus", "lv_bus"):
                if t[fld] not in index:
                    problems.append(Problem(str(tpath), f"unknown bus '{t[fld]}'", row=i + 2, field=fld))
            if t["vkr_percent"] > t["vk_percent"]:
                problems.append(Problem(str(tpath), "vkr_percent exceeds vk_percent", row=i + 2, field="vkr_percent"))
            if t["hv_bus"] in index and t["lv_bus"] in index:
                z = t["vk_percent"] / 100 * s_base / t["sn_mva"]
                r = t["vkr_percent"] / 100 * s_base / t["sn_mva"]
                z0 = float(t.get("vk0_percent", math.nan)) / 100 * s_base / t["sn_mva"]
                r0 = float(t.get("vkr0_percent", math.nan)) / 100 * s_base / t["sn_mva"]
                rows.append(dict(name=t["name"], kind="transformer", a=index[t["hv_bus"]], b=index[t["lv_bus"]],
                                 r_pu=r, x_pu=math.sqrt(max(z * z - r * r, 0)), rating_mva=t["sn_mva"], length_km=0.0,
                                 vn_kv=vn[index[t["lv_bus"]]], virtual=False, source=f"{tpath} line {i + 2}",
                                 r0_pu=r0, x0_pu=math.sqrt(max(z0 * z0 - r0 * r0, 0)) if z0 == z0 else math.nan))
    if cfg["slack_bus"] not in index:
        problems.append(Problem(shown, f"unknown bus '{cfg['slack_bus']}'", field="network.slack_bus"))
    if problems:
        raise InstanceError(problems)
    slack = pd.DataFrame([dict(bus=index[cfg["slack_bus"]], vm_pu=float(cfg.get("slack_vm_pu", 1.0)))])
    # loads go into the radiality check, so that a load on a disconnected bus is reported as such
    loads = (_read_loads(data_path(folder, cfg["loads"], shown, "network.loads"), index) if "loads" in cfg
             else pd.DataFrame(columns=["bus", "p_mw", "q_mvar", "load_class", "name"]))
    return network_io.orient_radial(buses.assign(pp_index=-1), pd.DataFrame(rows), loads, slack, str(lpath), s_base)


def _read_loads(path: Path, index: dict[str, int]) -> pd.DataFrame:
    """Loads CSV ``bus, p_mw, q_mvar[, class, name, phase]``; row i is line i + 2 of the file.
    ``phase``: ``a``, ``b``, ``c`` (a single-phase load) or ``abc`` (balanced, the default)."""
    shown = str(path)
    df = read_csv(path, shown, {"bus": "str", "p_mw": "float", "q_mvar": "float"},
                  {"class": "str", "name": "str", "phase": "str"}, bounds=LOAD_BOUNDS, unique={"name": "load name"})
    problems = [Problem(shown, f"unknown bus '{b}' (not in the network's buses)", row=i + 2, field="bus")
                for i, b in enumerate(df["bus"]) if b not in index]
    if "phase" in df:
        problems += [Problem(shown, f"phase '{ph}' is not one of a, b, c, abc", row=i + 2, field="phase")
                     for i, ph in enumerate(df["phase"]) if str(ph) not in ("a", "b", "c", "abc")]
    if problems:
        raise InstanceError(problems)
    return pd.DataFrame({"bus": [index[b] for b in df["bus"]], "p_mw": df["p_mw"], "q_mvar": df["q_mvar"],
                         "load_class": df["class"] if "class" in df else "",
                         "name": df["name"] if "name" in df else [f"load_{i}" for i in range(len(df))],
                         "phase": df["phase"] if "phase" in df else "abc"})


def _replace_loads(network: Network, path: Path) -> Network:
    loads = _read_loads(path, {n: i for i, n in enumerate(network.buses["name"])})
    return Network(buses=network.buses, branches=network.branches, loads=loads, slack=network.slack,
                   s_base_mva=network.s_base_mva, source=network.source)


def _profiles(path: Path, shown: str) -> Profiles:
    """``day, hour, weight, <class>...``: one row per (day, hour); hours 0..H-1 of every day
    in order; weight (days/year) the same on every row of a day; class columns >= 0."""
    df = read_csv(path, shown, {"day": "str", "hour": "int", "weight": "float++"}, allow_extra=True,
                  bounds={"hour": (0, 24 * 60, "(step of the day, from 0)"), "weight": (1e-6, 366.0, "days")})
    classes = [c for c in df.columns if c not in ("day", "hour", "weight")]
    problems = []
    if not classes:
        raise InstanceError(Problem(shown, "no load-class column (e.g. 'residential') besides day, hour, weight", row=1))
    for c in classes:
        vals, probs = _num(df[c], shown, c)
        problems += probs
        df[c] = vals
    problems += duplicates(list(zip(df["day"], df["hour"])), shown, "hour", "(day, hour)")
    if problems:
        raise InstanceError(problems)
    # every check below is linear in the rows: the rows of each day come from one stable
    # sort of the day codes, not from one scan of the column per day (quadratic)
    codes, uniques = pd.factorize(df["day"].to_numpy())
    days = [str(d) for d in uniques]
    counts = np.bincount(codes, minlength=len(days))
    hours = int(counts[0])
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)))
    hour_col, weight_col = df["hour"].to_numpy(), df["weight"].to_numpy(dtype=float)
    for k, d in enumerate(days):
        rows = order[starts[k]:starts[k + 1]]
        if len(rows) != hours:
            problems.append(Problem(shown, f"day '{d}' has {len(rows)} rows but day '{days[0]}' has {hours}: every "
                                    "day needs the same number of hours", row=int(rows[-1]) + 2, field="hour"))
            continue
        if rows[-1] - rows[0] != hours - 1:
            problems.append(Problem(shown, f"the rows of day '{d}' are not contiguous", row=int(rows[0]) + 2, field="day"))
        h = hour_col[rows]
        if not np.array_equal(h, np.arange(hours)):
            bad = int(np.argmax(h != np.arange(hours)))
            problems.append(Problem(shown, f"hour {h[bad]} out of sequence: hours of a day must run 0..{hours - 1}",
                                    row=int(rows[bad]) + 2, field="hour"))
        w = weight_col[rows]
        if not np.all(w == w[0]):
            bad = int(np.argmax(w != w[0]))
            problems.append(Problem(shown, f"weight {w[bad]} differs from {w[0]} on the same day", row=int(rows[bad]) + 2,
                                    field="weight"))
    if problems:
        raise InstanceError(problems)
    if 24 % hours != 0:
        raise InstanceError(Problem(shown, f"{hours} steps per day do not divide 24 h", field="hour"))
    weights = weight_col[order[starts[:-1]]]
    total = weights.sum()
    if not 364.0 <= total <= 366.0:
        raise InstanceError(Problem(shown, f"day weights sum to {total:g} days; they must cover a year (365)",
                                    field="weight"))
    factors = {c: df[c].to_numpy(dtype=float).reshape(len(days), hours) for c in classes}
    return Profiles(days=tuple(days), weights=weights, hours=hours, dt_h=24.0 / hours, factors=factors)


def _num(col, shown, name, highest: float = FACTOR_MAX):
    """A column of multipliers (dimensionless): each finite, >= 0 and <= ``highest``."""
    vals, probs = [], []
    for i, raw in enumerate(col):
        try:
            v = float(raw)
            if not math.isfinite(v) or v < 0:
                raise ValueError
        except ValueError:
            probs.append(Problem(shown, f"'{raw}' is not a finite number >= 0", row=i + 2, field=name))
            v = math.nan
        else:
            if v > highest:
                probs.append(Problem(shown, f"must be between 0 and {highest:g} (a multiplier; got {v:g})",
                                     row=i + 2, field=name))
        vals.append(v)
    return vals, probs


def _growth(cfg: dict, folder: Path, shown: str, econ: Economics, classes: list[str]) -> pd.DataFrame:
    """Load multiplier per year and class, 1 in the base year unless the file says otherwise."""
    years = econ.years
    if "file" in cfg and "annual_rate" in cfg:
        raise InstanceError(Problem(shown, "give either growth.file or growth.annual_rate, not both", field="growth"))
    if "file" in cfg:
        path = data_path(folder, cfg["file"], shown, "growth.file")
        df = read_csv(path, str(path), {"year": "int"}, allow_extra=True, bounds={"year": YEARS})
        cols = [c for c in df.columns if c != "year"]
        problems = []
        for c in cols:
            vals, probs = _num(df[c], str(path), c)
            df[c] = vals
            problems += probs
        if "factor" in cols and len(cols) == 1:
            df = df.assign(**{c: df["factor"] for c in classes}).drop(columns=["factor"])
        else:
            missing = [c for c in classes if c not in cols]
            if missing:
                problems.append(Problem(str(path), f"no column for load class(es) {', '.join(missing)} (or a single "
                                        "'factor' column for all)", row=1))
        absent = [y for y in years if y not in set(df["year"])]
        if absent:
            problems.append(Problem(str(path), f"year(s) {', '.join(map(str, absent[:5]))} of the horizon "
                                    f"{years[0]}-{years[-1]} are missing", field="year"))
        problems += duplicates(df["year"], str(path), "year", "year")
        if problems:
            raise InstanceError(problems)
        return df.set_index("year").loc[years, classes].astype(float)
    rate = float(cfg.get("annual_rate", 0.0))
    if rate <= -1:
        raise InstanceError(Problem(shown, "annual_rate must be > -1", field="growth.annual_rate"))
    g = np.array([(1 + rate) ** (y - econ.base_year) for y in years])
    return pd.DataFrame({c: g for c in classes}, index=pd.Index(years, name="year"))
