"""Errors in instance data name the file, the line (header = line 1) and the field.

Every test writes a tiny CSV-network instance into ``tmp_path`` (see :func:`make_instance`),
breaks exactly one thing in it and checks the :class:`InstanceError` that
:func:`flexplan.load_instance` raises: the file, the row, the field and the message.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from flexplan import InstanceError, load_instance
from flexplan.errors import Problem

pytestmark = pytest.mark.unit

# --------------------------------------------------------------------------- the fixture
# A 4-bus feeder S - A - {B, C} at 11 kV, two loads of two classes, 2 days x 4 steps.
BUSES = """\
name,vn_kv
S,11
A,11
B,11
C,11
"""
LINES = """\
name,from_bus,to_bus,r_ohm,x_ohm,rating_mva,length_km
L1,S,A,0.5,0.4,5,1.0
L2,A,B,0.5,0.4,5,1.0
L3,A,C,0.5,0.4,5,1.0
"""
LOADS = """\
bus,p_mw,q_mvar,class,name
B,0.5,0.1,residential,ld_B
C,0.3,0.05,commercial,ld_C
"""
PROFILES = """\
day,hour,weight,residential,commercial
winter,0,182,0.5,0.3
winter,1,182,0.6,0.8
winter,2,182,1.0,0.9
winter,3,182,0.8,0.4
summer,0,183,0.4,0.3
summer,1,183,0.5,0.7
summer,2,183,0.8,0.8
summer,3,183,0.6,0.3
"""
FILES = {"buses.csv": BUSES, "lines.csv": LINES, "loads.csv": LOADS, "profiles.csv": PROFILES}

LINE_TYPE = {"name": "cable240", "r_ohm_per_km": 0.125, "x_ohm_per_km": 0.1, "max_i_ka": 0.4,
             "capex_eur_per_km": 150000, "lifetime_years": 40}


def base_config() -> dict:
    return {
        "name": "tiny",
        "network": {"source": "csv", "buses": "buses.csv", "lines": "lines.csv", "loads": "loads.csv",
                    "slack_bus": "S"},
        "profiles": {"file": "profiles.csv"},
        "growth": {"annual_rate": 0.02},
        "economics": {"base_year": 2025, "end_year": 2030, "stages": [2025, 2028], "discount_rate": 0.035},
        "limits": {"v_min_pu": 0.9, "v_max_pu": 1.1},
        "reinforcement": {"generate": ["replace", "parallel"], "line_types": [dict(LINE_TYPE)]},
    }


DELETE = object()


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(v)


def toml_dumps(cfg: dict, prefix: str = "") -> str:
    """Just enough TOML: scalars, lists of scalars, tables and arrays of tables."""
    out = []
    tables = []
    for k, v in cfg.items():
        if isinstance(v, dict):
            tables.append((f"[{prefix}{k}]", v, f"{prefix}{k}."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables += [(f"[[{prefix}{k}]]", x, f"{prefix}{k}.") for x in v]
        else:
            out.append(f"{k} = {_toml_value(v)}")
    text = "\n".join(out) + "\n"
    for head, table, pre in tables:
        text += f"\n{head}\n" + toml_dumps(table, pre)
    return text


def make_instance(root: Path, files: dict | None = None, toml: dict | None = None) -> Path:
    """Write the valid fixture instance to ``root`` and return the folder.

    ``files``: file name -> new text (``None`` deletes the file); ``toml``: dotted key
    (``"economics.base_year"``) -> new value (``DELETE`` removes the key).
    """
    root.mkdir(parents=True, exist_ok=True)
    texts = {**FILES, **(files or {})}
    for name, text in texts.items():
        if text is not None:
            (root / name).write_text(text)
    cfg = base_config()
    for dotted, value in (toml or {}).items():
        *parents, last = dotted.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    (root / "instance.toml").write_text(toml_dumps(cfg))
    return root


def load_error(folder: Path) -> InstanceError:
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    err = info.value
    assert err.problems and all(isinstance(p, Problem) for p in err.problems)
    return err


def only(err: InstanceError) -> Problem:
    """The single problem of ``err`` (fails when there are more or none)."""
    assert len(err.problems) == 1, str(err)
    return err.problems[0]


def check(p: Problem, file: Path, row: int | None, field: str | None, *words: str) -> None:
    assert p.file == str(file), str(p)
    assert p.row == row, str(p)
    assert p.field == field, str(p)
    for w in words:
        assert w.lower() in p.message.lower(), f"{w!r} not in: {p}"


def find(err: InstanceError, file: Path, row: int | None, field: str | None) -> Problem:
    """The problem at (file, row, field); fails, listing all problems, when there is none."""
    hits = [p for p in err.problems if p.file == str(file) and p.row == row and p.field == field]
    assert hits, f"no problem at {file}, row {row}, field {field!r} in:\n{err}"
    return hits[0]


# --------------------------------------------------------------------------- the fixture is valid
def test_valid_fixture_loads(tmp_path):
    inst = load_instance(make_instance(tmp_path))
    net = inst.network
    assert net.n_buses == 4
    assert net.n_branches == 3
    assert list(net.branches["name"]) == ["L1", "L2", "L3"]
    assert len(net.loads) == 2
    assert sorted(net.loads["load_class"]) == ["commercial", "residential"]
    assert inst.profiles.days == ("winter", "summer") and inst.profiles.hours == 4
    assert inst.profiles.weights.sum() == pytest.approx(365)
    assert list(inst.growth.index) == list(range(2025, 2031))
    # 3 lines x (replace: 7.6 MVA > 5 MVA, parallel)
    assert len(inst.candidates) == 6
    assert set(inst.candidates["kind"]) == {"replace", "parallel"}


def test_str_names_file_line_and_field(tmp_path):
    folder = make_instance(tmp_path, files={"lines.csv": LINES.replace("L2,A,B,0.5", "L2,A,B,abc")})
    err = load_error(folder)
    text = str(err)
    assert f"{folder / 'lines.csv'}, row 3, field 'r_ohm': 'abc' is not a number" in text


# --------------------------------------------------------------------------- instance.toml
def test_missing_instance_toml(tmp_path):
    folder = make_instance(tmp_path)
    (folder / "instance.toml").unlink()
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, None, "not found")


def test_invalid_toml(tmp_path):
    folder = make_instance(tmp_path)
    (folder / "instance.toml").write_text('name = "tiny"\n[economics]\nbase_year = = 2025\n')
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, None, "not valid TOML", "line 3")


def test_unknown_top_level_key(tmp_path):
    folder = make_instance(tmp_path, toml={"colour": "blue"})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "colour", "unknown key", "economics")


def test_missing_required_key(tmp_path):
    folder = make_instance(tmp_path, toml={"economics.base_year": DELETE})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "economics.base_year", "missing key")


def test_wrong_type_of_key(tmp_path):
    folder = make_instance(tmp_path, toml={"economics.end_year": "2030"})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "economics.end_year", "'2030'", "int")


# --------------------------------------------------------------------------- CSV tables
def test_missing_csv_file(tmp_path):
    folder = make_instance(tmp_path, files={"lines.csv": None})
    p = only(load_error(folder))
    check(p, folder / "lines.csv", None, None, "file not found")


def test_missing_column(tmp_path):
    text = "\n".join(",".join(c for i, c in enumerate(row.split(",")) if i != 4) for row in LINES.splitlines())
    folder = make_instance(tmp_path, files={"lines.csv": text + "\n"})
    p = only(load_error(folder))
    check(p, folder / "lines.csv", 1, "x_ohm", "missing column", "x_ohm")


def test_unknown_column(tmp_path):
    folder = make_instance(tmp_path, files={"buses.csv": BUSES.replace("name,vn_kv", "name,vn_kv,zone")
                                            .replace("11\n", "11,z\n")})
    p = only(load_error(folder))
    check(p, folder / "buses.csv", 1, "zone", "unknown column")


def test_non_numeric_value(tmp_path):
    folder = make_instance(tmp_path, files={"loads.csv": LOADS.replace("C,0.3,0.05", "C,0.3,lots")})
    p = only(load_error(folder))
    check(p, folder / "loads.csv", 3, "q_mvar", "'lots' is not a number")


def test_negative_rating(tmp_path):
    folder = make_instance(tmp_path, files={"lines.csv": LINES.replace("L3,A,C,0.5,0.4,5", "L3,A,C,0.5,0.4,-5")})
    p = only(load_error(folder))
    check(p, folder / "lines.csv", 4, "rating_mva", "-5", "must be > 0")


def test_negative_resistance(tmp_path):
    folder = make_instance(tmp_path, files={"lines.csv": LINES.replace("L1,S,A,0.5", "L1,S,A,-0.5")})
    p = only(load_error(folder))
    check(p, folder / "lines.csv", 2, "r_ohm", "-0.5", "negative")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_nan_or_inf_value(tmp_path, bad):
    folder = make_instance(tmp_path, files={"buses.csv": BUSES.replace("B,11", f"B,{bad}")})
    p = only(load_error(folder))
    check(p, folder / "buses.csv", 4, "vn_kv", bad, "not a finite number")


def test_nan_in_profile(tmp_path):
    folder = make_instance(tmp_path, files={"profiles.csv": PROFILES.replace("summer,2,183,0.8", "summer,2,183,nan")})
    p = only(load_error(folder))
    check(p, folder / "profiles.csv", 8, "residential", "'nan'", "finite number >= 0")


def test_several_problems_in_one_file_reported_together(tmp_path):
    text = LINES.replace("L1,S,A,0.5", "L1,S,A,abc").replace("L3,A,C,0.5,0.4", "L3,A,C,0.5,-0.4")
    folder = make_instance(tmp_path, files={"lines.csv": text})
    err = load_error(folder)
    assert len(err.problems) >= 2
    assert f"({len(err.problems)} problems)" in str(err)
    assert "'abc' is not a number" in find(err, folder / "lines.csv", 2, "r_ohm").message
    assert "negative" in find(err, folder / "lines.csv", 4, "x_ohm").message


def test_several_network_problems_reported_together(tmp_path):
    text = LINES.replace("L2,A,B", "L2,A,X").replace("L3,A,C,0.5,0.4,5", "L3,Y,C,0.5,0.4,0")
    folder = make_instance(tmp_path, files={"lines.csv": text})
    err = load_error(folder)
    assert len(err.problems) == 3, str(err)
    assert "'X'" in find(err, folder / "lines.csv", 3, "to_bus").message
    assert "'Y'" in find(err, folder / "lines.csv", 4, "from_bus").message
    assert "must be > 0" in find(err, folder / "lines.csv", 4, "rating_mva").message


# --------------------------------------------------------------------------- network
def test_unknown_bus_in_lines(tmp_path):
    folder = make_instance(tmp_path, files={"lines.csv": LINES.replace("L2,A,B", "L2,A,Q")})
    p = only(load_error(folder))
    check(p, folder / "lines.csv", 3, "to_bus", "unknown bus 'Q'", "buses.csv")


def test_unknown_bus_in_loads(tmp_path):
    folder = make_instance(tmp_path, files={"loads.csv": LOADS.replace("C,0.3", "Z,0.3")})
    p = only(load_error(folder))
    check(p, folder / "loads.csv", 3, "bus", "unknown bus 'Z'")


def test_unknown_slack_bus(tmp_path):
    folder = make_instance(tmp_path, toml={"network.slack_bus": "nowhere"})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "network.slack_bus", "unknown bus 'nowhere'")


def test_duplicate_bus_name(tmp_path):
    folder = make_instance(tmp_path, files={"buses.csv": BUSES + "A,11\n"})
    p = only(load_error(folder))
    check(p, folder / "buses.csv", 6, "name", "'A'", "used twice")


def test_loop_names_branch_that_closes_it(tmp_path):
    # S - A - B, A - C, and L4 = B - C closes the loop A-B-C (found last by the search from S)
    folder = make_instance(tmp_path, files={"lines.csv": LINES + "L4,B,C,0.5,0.4,5,1.0\n"})
    p = only(load_error(folder))
    check(p, folder / "lines.csv", 5, "line", "not radial", "'L4'", "(line 5 of the file)", "loop")
    assert "'L2'" not in p.message and "'L3'" not in p.message and "'L1'" not in p.message


def test_disconnected_bus_with_load(tmp_path):
    # bus D exists but no line reaches it, and a load sits on it
    folder = make_instance(tmp_path, files={"buses.csv": BUSES + "D,11\n",
                                            "loads.csv": LOADS + "D,0.2,0.0,residential,ld_D\n"})
    p = only(load_error(folder))
    check(p, folder / "lines.csv", None, "bus", "'D'", "carry load", "disconnected")


def test_isolated_bus_without_load_is_dropped(tmp_path):
    inst = load_instance(make_instance(tmp_path, files={"buses.csv": BUSES + "D,11\n"}))
    assert list(inst.network.buses["name"]) == ["S", "A", "B", "C"]
    assert len(inst.network.loads) == 2



def test_isolated_bus_in_network_without_loads_file(tmp_path):
    folder = make_instance(tmp_path, files={"buses.csv": BUSES + "D,11\n"}, toml={"network.loads": DELETE})
    inst = load_instance(folder)
    assert inst.network.n_buses == 4 and len(inst.network.loads) == 0

def test_two_slack_buses_connected(tmp_path):
    pp = pytest.importorskip("pandapower")
    net = pp.create_empty_network()
    s1, m, s2 = (pp.create_bus(net, vn_kv=11.0, name=n) for n in ("S1", "M", "S2"))
    for a, b in ((s1, m), (m, s2)):
        pp.create_line_from_parameters(net, a, b, length_km=1.0, r_ohm_per_km=0.2, x_ohm_per_km=0.1,
                                       c_nf_per_km=0.0, max_i_ka=0.3)
    pp.create_ext_grid(net, s1)
    pp.create_ext_grid(net, s2)
    pp.create_load(net, m, p_mw=0.5)
    tmp_path.mkdir(exist_ok=True)
    pp.to_json(net, str(tmp_path / "net.json"))
    folder = make_instance(tmp_path, files={"loads.csv": None},
                           toml={"network": {"source": "json", "file": "net.json", "default_class": "residential"}})
    p = only(load_error(folder))
    check(p, folder / "net.json", None, "slack", "'S1'", "'S2'", "connected", "exactly one slack bus")


def test_pandapower_builtin_bad_name(tmp_path):
    folder = make_instance(tmp_path, toml={"network": {"source": "pandapower", "name": "nope",
                                                       "default_class": "residential"}})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "network.name", "unknown pandapower network 'nope'", "case33bw")


def test_unknown_network_source(tmp_path):
    folder = make_instance(tmp_path, toml={"network.source": "excel"})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "network.source", "'excel'", "csv")


# --------------------------------------------------------------------------- profiles
def test_profile_day_with_other_number_of_hours(tmp_path):
    text = PROFILES.replace("summer,3,183,0.6,0.3\n", "")
    folder = make_instance(tmp_path, files={"profiles.csv": text})
    p = only(load_error(folder))
    # summer now has 3 rows (lines 6-8); the problem points at its last row
    check(p, folder / "profiles.csv", 8, "hour", "'summer' has 3 rows", "'winter' has 4")


def test_profile_hours_out_of_sequence(tmp_path):
    text = PROFILES.replace("summer,1,183", "summer,X,183").replace("summer,2,183", "summer,1,183") \
        .replace("summer,X,183", "summer,2,183")
    folder = make_instance(tmp_path, files={"profiles.csv": text})
    p = only(load_error(folder))
    check(p, folder / "profiles.csv", 7, "hour", "hour 2 out of sequence", "0..3")


def test_profile_weight_not_constant_within_day(tmp_path):
    folder = make_instance(tmp_path, files={"profiles.csv": PROFILES.replace("winter,2,182", "winter,2,180")})
    p = only(load_error(folder))
    check(p, folder / "profiles.csv", 4, "weight", "180", "differs from 182")


def test_profile_weights_do_not_cover_a_year(tmp_path):
    folder = make_instance(tmp_path, files={"profiles.csv": PROFILES.replace(",183,", ",100,")})
    p = only(load_error(folder))
    check(p, folder / "profiles.csv", None, "weight", "sum to 282", "365")


def test_load_class_without_profile_column(tmp_path):
    # 'industrial' on lines 4 and 5: the first line that names it is reported
    folder = make_instance(tmp_path, files={"loads.csv": LOADS + "B,0.1,0.0,industrial,ld_B2\n"
                                                         "C,0.1,0.0,industrial,ld_C2\n"})
    p = only(load_error(folder))
    check(p, folder / "loads.csv", 4, "class", "'industrial'", "profiles.csv", "commercial, residential")


def test_default_class_without_profile_column(tmp_path):
    # loads.csv has no class column: the class comes from network.default_class, which is wrong
    text = "bus,p_mw,q_mvar\nB,0.5,0.1\nC,0.3,0.05\n"
    folder = make_instance(tmp_path, files={"loads.csv": text}, toml={"network.default_class": "industrial"})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "network.default_class", "'industrial'", "profiles.csv")



def test_no_load_class_at_all(tmp_path):
    # no class column and no network.default_class: the missing column is the problem
    folder = make_instance(tmp_path, files={"loads.csv": "bus,p_mw,q_mvar\nB,0.5,0.1\n"})
    p = only(load_error(folder))
    check(p, folder / "loads.csv", 1, "class", "no load class", "default_class")

# --------------------------------------------------------------------------- growth
def test_growth_file_missing_a_year(tmp_path):
    years = [y for y in range(2025, 2031) if y != 2027]
    text = "year,factor\n" + "".join(f"{y},{1 + 0.02 * (y - 2025):.2f}\n" for y in years)
    folder = make_instance(tmp_path, files={"growth.csv": text}, toml={"growth": {"file": "growth.csv"}})
    p = only(load_error(folder))
    check(p, folder / "growth.csv", None, "year", "2027", "missing", "2025-2030")


def test_growth_file_valid(tmp_path):
    text = "year,factor\n" + "".join(f"{y},{1 + 0.02 * (y - 2025):.2f}\n" for y in range(2025, 2031))
    inst = load_instance(make_instance(tmp_path, files={"growth.csv": text}, toml={"growth": {"file": "growth.csv"}}))
    assert inst.growth.loc[2030, "commercial"] == pytest.approx(1.10)


# --------------------------------------------------------------------------- economics, limits
def test_stages_not_starting_at_base_year(tmp_path):
    folder = make_instance(tmp_path, toml={"economics.stages": [2026, 2028]})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "economics.stages", "[2026, 2028]", "start at base_year 2025")


def test_end_year_before_base_year(tmp_path):
    folder = make_instance(tmp_path, toml={"economics.end_year": 2020, "economics.stages": [2025]})
    err = load_error(folder)
    p = find(err, folder / "instance.toml", None, "economics.end_year")
    assert "end_year 2020 is before base_year 2025" in p.message


def test_discount_rate_in_percent(tmp_path):
    folder = make_instance(tmp_path, toml={"economics.discount_rate": 3.5})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "economics.discount_rate", "fraction", "0.035")


def test_v_min_not_below_v_max(tmp_path):
    folder = make_instance(tmp_path, toml={"limits.v_min_pu": 1.1, "limits.v_max_pu": 1.05})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "limits.v_min_pu", "1.1", "below v_max_pu 1.05")


# --------------------------------------------------------------------------- reinforcement
def test_unknown_key_in_line_type(tmp_path):
    folder = make_instance(tmp_path, toml={"reinforcement.line_types": [{**LINE_TYPE, "colour": "red"}]})
    p = only(load_error(folder))
    check(p, folder / "instance.toml", None, "reinforcement.line_types[0].colour", "unknown key", "max_i_ka")


def test_candidates_csv_valid(tmp_path):
    text = "asset,kind,type\nL2,parallel,cable240\n"
    inst = load_instance(make_instance(tmp_path, files={"candidates.csv": text},
                                       toml={"reinforcement.candidates": "candidates.csv"}))
    assert list(inst.candidates["id"]) == ["L2:parallel:cable240"]


def test_candidates_csv_unknown_branch(tmp_path):
    text = "asset,kind,type\nL2,parallel,cable240\nL9,replace,cable240\n"
    folder = make_instance(tmp_path, files={"candidates.csv": text}, toml={"reinforcement.candidates": "candidates.csv"})
    p = only(load_error(folder))
    check(p, folder / "candidates.csv", 3, "asset", "unknown branch 'L9'")


def test_candidates_csv_unknown_type(tmp_path):
    text = "asset,kind,type\nL2,parallel,cable240\nL3,replace,cable999\n"
    folder = make_instance(tmp_path, files={"candidates.csv": text}, toml={"reinforcement.candidates": "candidates.csv"})
    p = only(load_error(folder))
    check(p, folder / "candidates.csv", 3, "type", "unknown line type 'cable999'")
