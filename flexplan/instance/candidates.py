"""Reinforcement candidates from the catalogue (docs/formulation.md §3).

``[reinforcement]`` in instance.toml:

* ``line_types``: list of tables ``name, r_ohm_per_km, x_ohm_per_km, max_i_ka,
  capex_eur_per_km, lifetime_years`` and optional ``vn_kv_min``, ``vn_kv_max`` (which
  lines the type fits, kV; default: all), ``fixed_capex_eur`` (per project, EUR) and
  ``r0_ohm_per_km``, ``x0_ohm_per_km`` (zero sequence, needed by the three-phase
  formulation; a transformer type's zero sequence is taken equal to its positive
  sequence, as for the Dyn units of distribution substations, whose zero-sequence
  impedance seen from the LV side is close to the short-circuit impedance);
* ``transformer_types``: ``name, sn_mva, vk_percent, vkr_percent, capex_eur,
  lifetime_years`` and optional ``vn_kv`` (the low-voltage side it fits; default: all);
  a transformer type also upgrades the virtual ``substation`` import limit (impedance 0);
* ``generate``: which candidates to make for every line: ``["replace", "parallel"]``
  (default).  A replacement is generated only by a type stronger than the line;
* ``assets``: branch names that may be reinforced (default: every branch);
* ``candidates``: optional CSV ``asset, kind, type`` listing candidates explicitly
  (then nothing is generated).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..errors import InstanceError, Problem
from .model import Network
from .tables import check_section, data_path, duplicates, read_csv

LINE_TYPE_KEYS = {"name": "str", "r_ohm_per_km": "float+", "x_ohm_per_km": "float+", "max_i_ka": "float++",
                  "capex_eur_per_km": "float+", "fixed_capex_eur": "float+", "lifetime_years": "int",
                  "vn_kv_min": "float+", "vn_kv_max": "float+", "r0_ohm_per_km": "float+", "x0_ohm_per_km": "float+"}
TRAFO_TYPE_KEYS = {"name": "str", "sn_mva": "float++", "vk_percent": "float++", "vkr_percent": "float+",
                   "capex_eur": "float+", "lifetime_years": "int", "vn_kv": "float++"}
REINF_KEYS = {"line_types": "list", "transformer_types": "list", "generate": "list", "assets": "list|str",
              "candidates": "str"}
LIFETIME = (1, 200, "years")
LINE_TYPE_BOUNDS = {"r_ohm_per_km": (0.0, 1e3, "ohm/km"), "x_ohm_per_km": (0.0, 1e3, "ohm/km"),
                    "max_i_ka": (1e-4, 100.0, "kA (was it given in A?)"), "capex_eur_per_km": (0.0, 1e9, "EUR/km"),
                    "fixed_capex_eur": (0.0, 1e10, "EUR"), "lifetime_years": LIFETIME,
                    "vn_kv_min": (0.0, 1000.0, "kV"), "vn_kv_max": (0.0, 1000.0, "kV"),
                    "r0_ohm_per_km": (0.0, 1e3, "ohm/km"), "x0_ohm_per_km": (0.0, 1e3, "ohm/km")}
TRAFO_TYPE_BOUNDS = {"sn_mva": (1e-4, 1e5, "MVA"), "vk_percent": (0.1, 100.0, "%"), "vkr_percent": (0.0, 100.0, "%"),
                     "capex_eur": (0.0, 1e10, "EUR"), "lifetime_years": LIFETIME, "vn_kv": (0.1, 1000.0, "kV")}
COLUMNS = ["id", "asset", "branch", "kind", "type", "r_pu", "x_pu", "rating_mva", "capex_eur", "lifetime_years",
           "r0_pu", "x0_pu"]


def build_candidates(cfg: dict, net: Network, folder: Path, shown: str) -> pd.DataFrame:
    """Candidates of ``[reinforcement]`` (``cfg``) for ``net``; every problem in one error."""
    problems = check_section(cfg, shown, "reinforcement.", REINF_KEYS)
    if problems:  # the checks below need the right types
        raise InstanceError(problems)
    line_types, trafo_types = {}, {}
    for i, t in enumerate(cfg.get("line_types", [])):
        pre = f"reinforcement.line_types[{i}]."
        if not isinstance(t, dict):
            problems.append(Problem(shown, "must be a table", field=pre[:-1]))
            continue
        problems += check_section(t, shown, pre, LINE_TYPE_KEYS,
                                  required=("name", "r_ohm_per_km", "x_ohm_per_km", "max_i_ka", "capex_eur_per_km",
                                            "lifetime_years"), bounds=LINE_TYPE_BOUNDS)
        _add_type(line_types, t, i, shown, pre, problems)
        if t.get("r_ohm_per_km", 1) == 0 and t.get("x_ohm_per_km", 1) == 0:
            problems.append(Problem(shown, "r_ohm_per_km and x_ohm_per_km are both 0: a line of this type would "
                                    "have no impedance (a free short circuit)", field=pre + "r_ohm_per_km"))
    for i, t in enumerate(cfg.get("transformer_types", [])):
        pre = f"reinforcement.transformer_types[{i}]."
        if not isinstance(t, dict):
            problems.append(Problem(shown, "must be a table", field=pre[:-1]))
            continue
        problems += check_section(t, shown, pre, TRAFO_TYPE_KEYS,
                                  required=("name", "sn_mva", "vk_percent", "vkr_percent", "capex_eur", "lifetime_years"),
                                  bounds=TRAFO_TYPE_BOUNDS)
        _add_type(trafo_types, t, i, shown, pre, problems)
    generate = cfg.get("generate", ["replace", "parallel"])
    bad = [g for g in generate if not isinstance(g, str) or g not in ("replace", "parallel")]
    if bad:
        problems.append(Problem(shown, f"{bad} not in: replace, parallel", field="reinforcement.generate"))
    branches = net.branches
    by_name = {n: k for k, n in enumerate(branches["name"])}
    assets = cfg.get("assets", "all")
    if assets != "all":
        if isinstance(assets, str):
            problems.append(Problem(shown, "must be 'all' or a list of branch names", field="reinforcement.assets"))
        else:
            problems += [Problem(shown, f"unknown branch {a!r}", field="reinforcement.assets")
                         for a in assets if not isinstance(a, str) or a not in by_name]
    if problems:
        raise InstanceError(problems)
    allowed = set(by_name) if assets == "all" else set(assets)

    rows = []

    def no_length(br) -> Problem:
        """A line without a length cannot take a line type: impedance and cost scale with it."""
        file, sep, row = str(br.source).rpartition(" line ")
        at = (dict(file=file, row=int(row)) if sep and row.isdigit() and file.endswith(".csv")
              else dict(file=str(br.source), row=None))
        return Problem(at["file"], f"line '{br['name']}' has no length (length_km missing or 0): a candidate of a "
                       "line type would have zero impedance and cost; give its length_km, or leave it out of "
                       "reinforcement.assets", row=at["row"], field="length_km")

    def line_cand(k: int, kind: str, tname: str):
        br, t = branches.iloc[k], line_types[tname]
        zb = br.vn_kv ** 2 / net.s_base_mva
        L = br.length_km
        rows.append(dict(asset=br["name"], branch=k, kind=kind, type=tname, r_pu=t["r_ohm_per_km"] * L / zb,
                         x_pu=t["x_ohm_per_km"] * L / zb, rating_mva=math.sqrt(3) * br.vn_kv * t["max_i_ka"],
                         capex_eur=t["capex_eur_per_km"] * L + t.get("fixed_capex_eur", 0.0),
                         lifetime_years=t["lifetime_years"], r0_pu=t.get("r0_ohm_per_km", math.nan) * L / zb,
                         x0_pu=t.get("x0_ohm_per_km", math.nan) * L / zb))

    def trafo_cand(k: int, tname: str):
        br, t = branches.iloc[k], trafo_types[tname]
        if br.kind == "substation":
            r = x = 0.0
        else:
            z = t["vk_percent"] / 100 * net.s_base_mva / t["sn_mva"]
            r = t["vkr_percent"] / 100 * net.s_base_mva / t["sn_mva"]
            x = math.sqrt(max(z * z - r * r, 0.0))
        rows.append(dict(asset=br["name"], branch=k, kind="replace", type=tname, r_pu=r, x_pu=x,
                         rating_mva=t["sn_mva"], capex_eur=t["capex_eur"], lifetime_years=t["lifetime_years"],
                         r0_pu=r, x0_pu=x))

    def line_fits(br, t):
        return t.get("vn_kv_min", 0.0) <= br.vn_kv <= t.get("vn_kv_max", math.inf)

    if "candidates" in cfg:
        path = data_path(folder, cfg["candidates"], shown, "reinforcement.candidates")
        df = read_csv(path, str(path), {"asset": "str", "kind": "str", "type": "str"})
        problems += duplicates(list(zip(df["asset"], df["kind"], df["type"])), str(path), "asset",
                               "candidate (asset, kind, type)")
        for i, c in df.iterrows():
            line = i + 2
            if c.asset not in by_name:
                problems.append(Problem(str(path), f"unknown branch '{c.asset}'", row=line, field="asset"))
                continue
            k = by_name[c.asset]
            is_line = branches.at[k, "kind"] == "line"
            types = line_types if is_line else trafo_types
            if c.kind not in (("replace", "parallel") if is_line else ("replace",)):
                problems.append(Problem(str(path), f"kind '{c.kind}' is not possible for a {branches.at[k, 'kind']}",
                                        row=line, field="kind"))
            elif c.type not in types:
                problems.append(Problem(str(path), f"unknown {'line' if is_line else 'transformer'} type '{c.type}'",
                                        row=line, field="type"))
            elif is_line and not branches.at[k, "length_km"] > 0:
                p = no_length(branches.iloc[k])
                problems.append(Problem(str(path), f"line '{c.asset}' has no length (length_km missing or 0 in "
                                        f"{p.file}{f', row {p.row}' if p.row else ''}): a candidate of a line type "
                                        "would have zero impedance and cost; give its length_km", row=line,
                                        field="asset"))
            elif is_line:
                line_cand(k, c.kind, c.type)
            else:
                trafo_cand(k, c.type)
        if problems:
            raise InstanceError(problems)
    else:
        for k, br in branches.iterrows():
            if br["name"] not in allowed:
                continue
            if br.kind == "line":
                fitting = [tname for tname, t in line_types.items() if line_fits(br, t)]
                if fitting and not br.length_km > 0:
                    problems.append(no_length(br))
                    continue
                for tname, t in line_types.items():
                    if not line_fits(br, t):
                        continue
                    rating = math.sqrt(3) * br.vn_kv * t["max_i_ka"]
                    if "replace" in generate and rating > br.rating_mva * (1 + 1e-9):
                        line_cand(k, "replace", tname)
                    if "parallel" in generate:
                        line_cand(k, "parallel", tname)
            else:
                for tname, t in trafo_types.items():
                    fits = br.kind == "substation" or "vn_kv" not in t or abs(t["vn_kv"] - br.vn_kv) < 1e-6
                    if fits and t["sn_mva"] > br.rating_mva * (1 + 1e-9):
                        trafo_cand(k, tname)
    if problems:
        raise InstanceError(problems)
    out = pd.DataFrame(rows, columns=COLUMNS[1:])
    out.insert(0, "id", [f"{a}:{kd}:{t}" for a, kd, t in zip(out["asset"], out["kind"], out["type"])])
    if out["id"].duplicated().any():
        raise InstanceError(Problem(shown, f"candidate '{out['id'][out['id'].duplicated()].iloc[0]}' listed twice",
                                    field="reinforcement.candidates"))
    return out.reset_index(drop=True)


def _add_type(types: dict, t: dict, i: int, shown: str, pre: str, problems: list) -> None:
    """Register catalogue entry ``t`` under its name (a missing or non-text name was
    reported by the key check); a name used twice is a problem."""
    name = t.get("name")
    if not isinstance(name, str):
        name = f"#{i}"
    elif name in types:
        problems.append(Problem(shown, f"type name '{name}' is used twice", field=pre + "name"))
    types[name] = t
