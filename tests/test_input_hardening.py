"""Bad-input categories of the loaders' hardening, one case each: the InstanceError names
the file, the row (header = line 1) and the field, with the allowed range in the message.

Each case starts from the valid fixture of ``test_instance_errors.py`` (a 4-bus feeder at
11 kV, 2 days x 4 steps), breaks one thing and checks the single problem reported.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from flexplan import InstanceError, load_instance

from test_instance_errors import BUSES, LINE_TYPE, LINES, LOADS, PROFILES, make_instance

pytestmark = pytest.mark.unit

FLEET = {"name": "home", "bus": "B", "behaviour": "home", "evs": {"2025": 5, "2030": 10}, "seed": 3,
         "sample_evs": 50, "sample_days": 7}
SESSIONS = ("ev,arrival_h,departure_h,energy_arrival_kwh,energy_required_kwh,battery_kwh,charger_kw\n"
            "e1,18,7,10,40,50,7\ne2,19,8,20,45,50,3.7\n")
SESSION_FLEET = {"name": "home", "bus": "B", "sessions": "s.csv", "evs": {"2025": 5}}


def fleet(**changes) -> dict:
    """The TOML change that adds one generated fleet with ``changes`` applied."""
    return {"ev_fleets": [{**FLEET, **changes}]}


def _write_bytes(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def _make_dir(name: str):
    def post(folder: Path):
        (folder / name).unlink()
        (folder / name).mkdir()
    return post


# (id, files, toml, post, file, row, field, message fragment)
CASES = [
    ("unit_vn_kv_in_volt", {"buses.csv": BUSES.replace("B,11", "B,11000")}, None, None,
     "buses.csv", 4, "vn_kv", "must be between 0.1 and 1000 kV (was it given in V?) (got 11000)"),
    ("unit_length_in_metre", {"lines.csv": LINES.replace("L3,A,C,0.5,0.4,5,1.0", "L3,A,C,0.5,0.4,5,1500")}, None,
     None, "lines.csv", 4, "length_km", "between 0 and 1000 km (was it given in m?) (got 1500)"),
    ("unit_rating_huge", {"lines.csv": LINES.replace("L1,S,A,0.5,0.4,5,", "L1,S,A,0.5,0.4,5e6,")}, None, None,
     "lines.csv", 2, "rating_mva", "between 0 and 100000 MVA (got 5e+06)"),
    ("unit_load_in_kw", {"loads.csv": LOADS.replace("C,0.3,", "C,30000,")}, None, None,
     "loads.csv", 3, "p_mw", "MW (was it given in kW?) (got 30000)"),
    ("profile_factor_huge", {"profiles.csv": PROFILES.replace("winter,2,182,1.0", "winter,2,182,1000")}, None, None,
     "profiles.csv", 4, "residential", "between 0 and 100 (a multiplier; got 1000)"),
    ("duplicate_line_name", {"lines.csv": LINES.replace("L3,A,C", "L2,A,C")}, None, None,
     "lines.csv", 4, "name", "line name 'L2' is used twice (first on row 3)"),
    ("duplicate_load_name", {"loads.csv": LOADS.replace("ld_C", "ld_B")}, None, None,
     "loads.csv", 3, "name", "load name 'ld_B' is used twice (first on row 2)"),
    ("duplicate_day_hour", {"profiles.csv": PROFILES.replace("summer,1,183,0.5,0.7", "summer,0,183,0.5,0.7")},
     None, None, "profiles.csv", 7, "hour", "('summer', 0) is used twice (first on row 6)"),
    ("duplicate_candidate", {"candidates.csv": "asset,kind,type\nL2,parallel,cable240\nL2,parallel,cable240\n"},
     {"reinforcement.candidates": "candidates.csv"}, None,
     "candidates.csv", 3, "asset", "('L2', 'parallel', 'cable240') is used twice (first on row 2)"),
    ("duplicate_column", {"buses.csv": BUSES.replace("name,vn_kv", "name,vn_kv,name").replace(",11\n", ",11,x\n")},
     None, None, "buses.csv", 1, "name", "'name' appear more than once"),
    ("empty_file", {"buses.csv": ""}, None, None, "buses.csv", None, None, "the file is empty"),
    ("header_only", {"lines.csv": LINES.splitlines()[0] + "\n"}, None, None,
     "lines.csv", 1, None, "only a header line, no data rows"),
    ("binary_garbage", None, None, _write_bytes("lines.csv", b"name,\x00\xff\xfe garbage"),
     "lines.csv", 1, None, "binary data (a NUL byte on line 1), not a CSV text file"),
    ("wrong_encoding", None, None, _write_bytes("buses.csv", BUSES.replace("C,11", "Ä,11").encode("latin-1")),
     "buses.csv", 5, None, "not UTF-8 text (byte 0xc4 on line 5)"),
    ("csv_path_is_directory", None, None, _make_dir("loads.csv"), "loads.csv", None, None,
     "is a directory, not a CSV file"),
    ("toml_binary", None, None, _write_bytes("instance.toml", b"name = \x00\x01"),
     "instance.toml", 1, None, "binary data"),
    ("toml_path_is_directory", None, None, _make_dir("instance.toml"), "instance.toml", None, None,
     "is a directory, not a TOML file"),
    ("toml_year_out_of_range", None, {"economics.end_year": 20300}, None,
     "instance.toml", None, "economics.end_year", "between 1900 and 2200 (a calendar year) (got 20300)"),
    ("toml_slack_voltage", None, {"network.slack_vm_pu": 11.0}, None,
     "instance.toml", None, "network.slack_vm_pu", "between 0.8 and 1.2 pu (got 11)"),
    ("toml_line_type_in_amps", None, {"reinforcement.line_types": [{**LINE_TYPE, "max_i_ka": 400}]}, None,
     "instance.toml", None, "reinforcement.line_types[0].max_i_ka", "kA (was it given in A?) (got 400)"),
    ("toml_wrong_type_in_fleet", None, fleet(v2g_share="lots"), None,
     "instance.toml", None, "ev_fleets[home].v2g_share", "'lots' is not of kind float+"),
    ("fleet_negative_seed", None, fleet(seed=-1), None,
     "instance.toml", None, "ev_fleets[home].seed", "between 0 and"),
    ("fleet_sample_too_large", None, fleet(sample_days=100000), None,
     "instance.toml", None, "ev_fleets[home].sample_days", "between 1 and 366 days (got 100000)"),
    ("fleet_battery_in_wh", None, fleet(battery_kwh=[50000], battery_probs=[1.0]), None,
     "instance.toml", None, "ev_fleets[home].battery_kwh", "between 1 and 1000 kWh"),
    ("fleet_count_year", None, fleet(evs={"20300": 5}), None,
     "instance.toml", None, "ev_fleets[home].evs.20300", "is not a year (1900..2200)"),
    ("fleet_battery_too_small_for_a_day", None, fleet(mean_daily_km=200.0, battery_kwh=[25], battery_probs=[1.0]),
     None, "instance.toml", None, "ev_fleets[home].mean_daily_km",
     "needs 32.5 kWh, more than the smallest battery charges (25 kWh x target_soc = 25.0 kWh)"),
    ("fleet_charger_too_weak_for_a_day", None,
     fleet(behaviour="public", mean_daily_km=150.0, battery_kwh=[100], battery_probs=[1.0]), None,
     "instance.toml", None, "ev_fleets[home].mean_daily_km", "more than the smallest charger (11 kW) delivers"),
    ("session_charger_in_watt", {"s.csv": SESSIONS.replace(",7\n", ",7400\n")}, {"ev_fleets": [SESSION_FLEET]}, None,
     "s.csv", 2, "charger_kw", "kW (was it given in W?) (got 7400)"),
    ("session_repeated", {"s.csv": SESSIONS + "e1,18,7,10,40,50,7\n"}, {"ev_fleets": [SESSION_FLEET]}, None,
     "s.csv", 4, "ev", "repeats row 2 exactly"),
]


@pytest.mark.parametrize("files,toml,post,file,row,field,fragment", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_reported_where_it_is(tmp_path, files, toml, post, file, row, field, fragment):
    folder = make_instance(tmp_path, files=files, toml=toml)
    if post:
        post(folder)
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    problems = info.value.problems
    assert len(problems) == 1, str(info.value)
    p = problems[0]
    assert (p.file, p.row, p.field) == (str(folder / file), row, field), str(p)
    assert fragment in p.message, str(p)


def test_several_problems_of_one_file_in_one_error(tmp_path):
    text = (LINES.replace("L1,S,A,0.5", "L1,S,A,abc")         # not a number (row 2)
            .replace("L2,A,B,0.5,0.4,5,1.0", "L2,A,B,0.5,0.4,5,2000")  # km given in m (row 3)
            .replace("L3,A,C,0.5,0.4", "L2,A,C,0.5,-0.4"))  # duplicate name and negative x (row 4)
    folder = make_instance(tmp_path, files={"lines.csv": text})
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    found = {(p.row, p.field): p.message for p in info.value.problems}
    assert all(p.file == str(folder / "lines.csv") for p in info.value.problems)
    assert "'abc' is not a number" in found[(2, "r_ohm")]
    assert "(got 2000)" in found[(3, "length_km")]
    assert "negative" in found[(4, "x_ohm")]
    assert "'L2' is used twice" in found[(4, "name")]
    assert len(found) == 4 and "(4 problems)" in str(info.value)


# --------------------------------------------------------------------------- paths outside the instance folder
SECRET = "root:x:0:0:SECRET-PASSWORD-HASH:/root:/bin/bash\n"


@pytest.mark.parametrize("key,how", [("profiles.file", "absolute"), ("profiles.file", "dotdot"),
                                     ("network.lines", "dotdot"), ("growth.file", "absolute"),
                                     ("profiles.file", "symlink")])
def test_data_files_outside_the_instance_folder_are_refused(tmp_path, key, how):
    import os

    secret = tmp_path / "secret.csv"
    secret.write_text(SECRET)
    folder = make_instance(tmp_path / "inst")
    name = {"absolute": str(secret), "dotdot": "../secret.csv", "symlink": "link.csv"}[how]
    if how == "symlink":
        os.symlink(secret, folder / "link.csv")
    toml = {key: name} if key != "growth.file" else {"growth": {"file": name}}
    folder = make_instance(tmp_path / "inst", toml=toml)
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    (p,) = info.value.problems
    assert (p.file, p.row, p.field) == (str(folder / "instance.toml"), None, key), str(p)
    assert "is outside the instance folder" in p.message and "--allow-outside-paths" in p.message
    assert "SECRET" not in str(info.value)


def test_outside_paths_load_when_allowed(tmp_path):
    (tmp_path / "shared.csv").write_text(PROFILES)
    folder = make_instance(tmp_path / "inst", toml={"profiles.file": "../shared.csv"})
    with pytest.raises(InstanceError, match="outside the instance folder"):
        load_instance(folder)
    inst = load_instance(folder, allow_outside_paths=True)
    assert inst.profiles.days == ("winter", "summer") and inst.profiles.hours == 4
    from flexplan.cli import main

    assert main(["diagnose", str(folder), "--allow-outside-paths", "--time-limit", "60"]) == 0
    assert main(["diagnose", str(folder), "--time-limit", "60"]) == 2  # the flag does not stick


def test_messages_quote_little_of_a_file(tmp_path):
    """A file that is no CSV of the expected kind: the error quotes at most a few short bits."""
    long_header = "x" * 5000 + "," + ",".join(f"col{i}" for i in range(200)) + "\n"
    for files, fragment in (({"buses.csv": long_header + "a,b\n"}, "missing column(s) name, vn_kv"),
                            ({"lines.csv": LINES.replace("L1,S,A,0.5", "L1,S,A," + "9z" * 3000)}, "is not a number")):
        folder = make_instance(tmp_path / fragment[:7], files=files)
        with pytest.raises(InstanceError) as info:
            load_instance(folder)
        assert len(str(info.value)) < 1000, str(info.value)[:300]
        assert fragment in str(info.value)


# --------------------------------------------------------------------------- unbounded reads
def test_a_fifo_as_profile_file_is_refused_without_blocking(tmp_path):
    import os

    folder = make_instance(tmp_path, files={"profiles.csv": None})
    os.mkfifo(folder / "profiles.csv")  # nobody writes: opening it for reading would block
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    (p,) = info.value.problems
    assert p.file == str(folder / "profiles.csv")
    assert "is a FIFO (named pipe), not a CSV file" in p.message


def test_a_device_as_profile_file_is_refused(tmp_path):
    folder = make_instance(tmp_path, toml={"profiles.file": "/dev/zero"})
    with pytest.raises(InstanceError) as info:
        load_instance(folder, allow_outside_paths=True)
    (p,) = info.value.problems
    assert p.file == "/dev/zero" and "is a device, not a CSV file" in p.message


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    folder = make_instance(tmp_path)
    with open(folder / "profiles.csv", "ab") as fh:
        fh.truncate(3 * 2**20)  # 3 MB (sparse: the loader must not read it)
    monkeypatch.setenv("FLEXPLAN_MAX_FILE_MB", "2")
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    (p,) = info.value.problems
    assert p.file == str(folder / "profiles.csv")
    assert "is too big (3.0 MB, more than the limit of 2 MB for a CSV file)" in p.message
    assert "FLEXPLAN_MAX_FILE_MB" in p.message
    monkeypatch.delenv("FLEXPLAN_MAX_FILE_MB")
    with pytest.raises(InstanceError, match="binary data"):  # under the default limit: read (NUL bytes)
        load_instance(folder)


def test_profile_loading_is_linear_in_the_days(tmp_path):
    """The checks of a profile file do not scan every row once per day: counted, not timed
    (pandas' element-wise comparison of the day column was called once per day)."""
    from unittest import mock

    import pandas as pd

    days = 400
    rows = "".join(f"d{d},{h},{365 / days},0.5\n" for d in range(days) for h in range(2))
    folder = make_instance(tmp_path, files={"profiles.csv": "day,hour,weight,residential\n" + rows,
                                            "loads.csv": LOADS.replace("commercial", "residential")})
    calls = []
    real = pd.Series.__eq__

    def counting(self, other):
        calls.append(1)
        return real(self, other)

    with mock.patch.object(pd.Series, "__eq__", counting):
        inst = load_instance(folder)
    assert len(inst.profiles.days) == days and inst.profiles.hours == 2
    assert inst.profiles.weights.sum() == pytest.approx(365)
    assert len(calls) < 10, f"{len(calls)} column comparisons for {days} days"


# --------------------------------------------------------------------------- scenario tree size
def test_a_huge_tree_is_refused_before_it_is_built(tmp_path, monkeypatch):
    from flexplan.instance import tree as tree_mod

    built = []
    real = tree_mod.TreeNode
    monkeypatch.setattr(tree_mod, "TreeNode", lambda *a, **k: built.append(1) or real(*a, **k))
    branches = [f"b{i}" for i in range(12)]
    folder = make_instance(tmp_path, toml={
        "economics.end_year": 2050, "economics.stages": [2025, 2030, 2035, 2040, 2045, 2050],
        "tree": {"branches": branches, "probabilities": [1 / 12] * 12}})
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    (p,) = info.value.problems
    assert (p.file, p.field) == (str(folder / "instance.toml"), "tree.branches")
    assert "12 branches over 6 stages make a tree of 271,453 nodes" in p.message and "at most 1,000" in p.message
    assert built == []
    with pytest.raises(InstanceError, match="make a tree of 271,453 nodes"):
        tree_mod.uptake_tree([2025, 2030, 2035, 2040, 2045, 2050], branches, [1 / 12] * 12, [1.0] * 12)
    assert built == []
    ok = tree_mod.uptake_tree([2025, 2030, 2035], ("lo", "hi"), (0.5, 0.5), (0.5, 1.5))
    assert len(ok.nodes) == tree_mod.tree_size(2, 3) == 7 and len(built) == 7


# --------------------------------------------------------------------------- candidates without impedance
NO_LENGTH = LINES.replace(",length_km", "").replace(",1.0\n", "\n")


def test_a_listed_candidate_for_a_line_without_length_is_refused(tmp_path):
    folder = make_instance(tmp_path, files={"lines.csv": NO_LENGTH,
                                            "candidates.csv": "asset,kind,type\nL2,replace,cable240\n"},
                           toml={"reinforcement.candidates": "candidates.csv"})
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    (p,) = info.value.problems
    assert (p.file, p.row, p.field) == (str(folder / "candidates.csv"), 2, "asset"), str(p)
    assert f"line 'L2' has no length (length_km missing or 0 in {folder / 'lines.csv'}, row 3)" in p.message
    assert "zero impedance" in p.message


def test_generated_candidates_for_lines_without_length_are_refused(tmp_path):
    folder = make_instance(tmp_path, files={"lines.csv": NO_LENGTH})
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    assert [(p.file, p.row, p.field) for p in info.value.problems] == [
        (str(folder / "lines.csv"), r, "length_km") for r in (2, 3, 4)]
    assert "line 'L1' has no length" in info.value.problems[0].message
    # without line types (or leaving the lines out of the assets) it loads: nothing to generate
    inst = load_instance(make_instance(tmp_path / "b", files={"lines.csv": NO_LENGTH},
                                       toml={"reinforcement.line_types": []}))
    assert len(inst.candidates) == 0


def test_a_line_type_without_impedance_is_refused(tmp_path):
    folder = make_instance(tmp_path, toml={"reinforcement.line_types": [
        {**LINE_TYPE, "r_ohm_per_km": 0.0, "x_ohm_per_km": 0.0}]})
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    (p,) = info.value.problems
    assert (p.file, p.field) == (str(folder / "instance.toml"), "reinforcement.line_types[0].r_ohm_per_km")
    assert "no impedance" in p.message


# --------------------------------------------------------------------------- blame the right file and line
TRAFOS = "name,hv_bus,lv_bus,sn_mva,vk_percent,vkr_percent\nT1,{hv},{lv},1.0,6.0,1.0\n"


@pytest.mark.parametrize("hv,lv,field,fragment", [
    ("S", "A", "transformer", "network is not radial: transformer(s) 'T1' (line 2 of the file) close a loop"),
    ("A", "A", "lv_bus", "transformer 'T1' connects bus 'A' to itself")])
def test_transformer_loops_are_blamed_on_the_transformers_file(tmp_path, hv, lv, field, fragment):
    folder = make_instance(tmp_path, files={"trafos.csv": TRAFOS.format(hv=hv, lv=lv)},
                           toml={"network.transformers": "trafos.csv"})
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    (p,) = info.value.problems
    assert (p.file, p.row, p.field) == (str(folder / "trafos.csv"), 2, field), str(p)
    assert fragment in p.message


@pytest.mark.parametrize("text,rows,fragment", [
    (LINES.replace("L2,A,B,0.5,0.4,5,1.0", "L2,A,B,0.5,0.4,5,1.0,"), [3], "8 fields but the header has 7 (a trailing "
                                                                       "comma?)"),
    (LINES.replace(",1.0\n", ",1.0,\n"), [2, 3, 4], "(a trailing comma?)"),  # pandas: silently shifted columns
    ("\n" + LINES.replace("L3,A,C,0.5", "L3,A,C,0.5,9"), [5], "8 fields but the header has 7\n"),
    (LINES.replace("L2,A,B", 'L2,"A,B'), [3], 'a quote (") opened on line 3 is never closed'),
    (LINES + '\nL4,A,"C', [6], 'a quote (") opened on line 6 is never closed'),
])
def test_malformed_records_are_reported_with_the_line_of_the_file(tmp_path, text, rows, fragment):
    folder = make_instance(tmp_path, files={"lines.csv": text})
    with pytest.raises(InstanceError) as info:
        load_instance(folder)
    problems = info.value.problems
    assert [(p.file, p.row) for p in problems] == [(str(folder / "lines.csv"), r) for r in rows], str(info.value)
    assert fragment.rstrip("\n") in problems[0].message
