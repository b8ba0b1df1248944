"""Fuzzing the instance loaders: a broken input is an InstanceError, never a crash.

Valid instances (a CSV feeder; the feeder with a generated EV fleet and a scenario tree;
the feeder with a session-file fleet and a candidates file; the feeder fed through a
transformers file, with a growth file and a charging-profile fleet) are written once; every
example copies one to a temporary folder, breaks one file (a cell, a column, rows, a
trailing comma, an unclosed quote, a blank line, the bytes, a FIFO, a file over the size
limit, a link out of the folder, a TOML value or key, a path out of the folder) and loads it.  :func:`flexplan.load_instance` must return an
instance or raise :class:`flexplan.errors.FlexplanError`; any other exception fails the
test (and hypothesis shrinks it to the smallest breaking input).

The default run tries ``DEFAULT_EXAMPLES`` cases (derandomized: the same cases in every
run); ``pytest -m slow`` tries ``SLOW_EXAMPLES``.  The counts are printed and asserted.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexplan.errors import FlexplanError, InstanceError
from flexplan.instance import load_instance
from flexplan.instance.tables import MAX_FILE_BYTES

from conftest import CABLE, EVENING, add_fleet, write_feeder

DEFAULT_EXAMPLES = 1000
SLOW_EXAMPLES = 20000

LINES = [("l1", "b0", "b1", 0.5, 0.4, 5, 1.0), ("l2", "b1", "b2", 0.5, 0.4, 5, 1.0),
         ("l3", "b1", "b3", 0.5, 0.4, 5, 1.0)]
LOADS = [("b2", 0.3, 0.05), ("b3", 0.2, 0.04)]
ECON = "base_year = 2025\nend_year = 2030\nstages = [2025, 2028]\ndiscount_rate = 0.035"
TREE = '\n[tree]\nbranches = ["low", "high"]\nprobabilities = [0.5, 0.5]\nev_factor = [0.6, 1.4]\n'
SESSIONS = ("ev,arrival_h,departure_h,energy_arrival_kwh,energy_required_kwh,battery_kwh,charger_kw,v2g\n"
            "e1,18,7,10,40,50,7.4,1\ne2,19,8,20,45,50,3.7,0\ne3,8,17,15,30,40,11,0\n")
CANDIDATES = "asset,kind,type\nl1,replace,cable\nl2,parallel,cable\n"
#: Cell values that have broken parsers before: text, special floats, signs, huge and tiny numbers.
NASTY = ["nan", "NaN", "inf", "-inf", "-1", "", " ", "0", "-0", "1e308", "1e-308", "9" * 40, "abc", '"', "'",
         "1,2", "true", "None", "\\x00", "é", "\t", "24", "25", "-24", "0.5e", "0x10", "1_000"]
TRAFOS = "name,hv_bus,lv_bus,sn_mva,vk_percent,vkr_percent\nT1,b0,b1,2.0,6.0,1.0\n"
GROWTH = "year," + "factor\n" + "".join(f"{y},{1 + 0.02 * (y - 2025):.2f}\n" for y in range(2025, 2031))
EV_PROFILE = "p_kw\n" + "0\n" * 72 + "7\n" * 12 + "0\n" * 12
TEMPLATES = ("feeder", "ev_tree", "sessions", "files")
OUTCOMES: Counter = Counter()
OPS: Counter = Counter()
#: breakages that never load: the file is no regular file of the folder, or over the size limit
REFUSED = {"bytes fifo", "bytes huge", "bytes link_out", "bytes link_dangling", "bytes directory"}
#: the breakages of the hardening (each must occur in the default run)
NEW_OPS = REFUSED | {"csv trailing_comma", "csv quote", "csv blank_line"}


# --------------------------------------------------------------------------- valid instances
def _feeder(folder: Path) -> Path:
    return write_feeder(folder, lines=LINES, loads=LOADS, profile=[("d", 365, EVENING)], economics=ECON,
                        reinforcement=CABLE)


def _build(kind: str, folder: Path) -> Path:
    """Write the valid template ``kind`` into ``folder``."""
    f = _feeder(folder)
    if kind == "ev_tree":
        add_fleet(f, "b2", 10, extra="sample_evs = 20\nsample_days = 3\nv2g_share = 0.2\n")
        with open(f / "instance.toml", "a") as fh:
            fh.write(TREE)
    elif kind == "files":  # a transformer instead of l1, a growth file, a charging-profile fleet
        lines = (f / "lines.csv").read_text().splitlines()
        (f / "lines.csv").write_text("\n".join(ln for ln in lines if not ln.startswith("l1,")) + "\n")
        (f / "trafos.csv").write_text(TRAFOS)
        (f / "growth.csv").write_text(GROWTH)
        (f / "p.csv").write_text(EV_PROFILE)
        text = (f / "instance.toml").read_text()
        text = text.replace('slack_bus = "b0"', 'slack_bus = "b0"\ntransformers = "trafos.csv"')
        text = text.replace("annual_rate = 0.0", 'file = "growth.csv"')
        (f / "instance.toml").write_text(text + '\n[[ev_fleets]]\nname = "prof"\nbus = "b2"\nprofile = "p.csv"\n'
                                         'profile_charger_kw = 11\nevs = {2025 = 3, 2030 = 6}\n')
    elif kind == "sessions":
        (f / "s.csv").write_text(SESSIONS)
        (f / "candidates.csv").write_text(CANDIDATES)
        text = (f / "instance.toml").read_text().replace('generate = ["replace"]',
                                                         'candidates = "candidates.csv"')
        (f / "instance.toml").write_text(text + '\n[[ev_fleets]]\nname = "depot"\nbuses = ["b2", "b3"]\n'
                                         'sessions = "s.csv"\nev_days = 3\nevs = {2025 = 4, 2030 = 12}\n')
    return f


_CACHE: dict[str, Path] = {}


def template(kind: str) -> Path:
    """The folder of a valid template (written once per test session)."""
    if kind not in _CACHE:
        root = Path(tempfile.mkdtemp(prefix="flexplan_fuzz_"))
        _CACHE[kind] = _build(kind, root / kind)
    return _CACHE[kind]


# --------------------------------------------------------------------------- TOML writing
def _key(k) -> str:
    return json.dumps(str(k))


def toml_value(v) -> str:
    """Any tomllib value as TOML text (tables inline)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_dumps(data: dict) -> str:
    return "".join(f"{_key(k)} = {toml_value(v)}\n" for k, v in data.items())


def _paths(node, prefix=()):
    """Every (path) to a value in a TOML document (keys and list indices)."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        yield prefix + (k,)
        if isinstance(v, (dict, list)):
            yield from _paths(v, prefix + (k,))


def _get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


def _set(doc, path, value):
    _get(doc, path[:-1])[path[-1]] = value


# --------------------------------------------------------------------------- mutations
#: data-file paths out of the instance folder (refused unread: never echoed)
OUTSIDE = ["/etc/passwd", "../secret.csv", "../../x.csv", "/dev/zero", "sub/../../y.csv"]
SCALARS = st.one_of(st.text(max_size=12), st.integers(min_value=-10 ** 20, max_value=10 ** 20),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.sampled_from(NASTY))
TOML_VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                        st.dictionaries(st.sampled_from(["a", "2025", "name", "final"]), SCALARS, max_size=2))
CELLS = st.one_of(st.sampled_from(NASTY), st.text(max_size=10), st.integers().map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr))


def mutate_toml(path: Path, data) -> str:
    doc = tomllib.loads(path.read_text())
    op = data.draw(st.sampled_from(["value", "delete", "add", "path"]), label="toml op")
    if op == "path":  # a data file named out of the instance folder
        files = sorted((p for p in _paths(doc) if str(_get(doc, p)).endswith(".csv")), key=str)
        target = data.draw(st.sampled_from(files), label="file key")
        _set(doc, target, data.draw(st.sampled_from(OUTSIDE), label="outside path"))
        path.write_text(toml_dumps(doc))
        return f"toml path {target}"
    target = data.draw(st.sampled_from(sorted(_paths(doc), key=str)), label="toml path")
    parent = doc
    for k in target[:-1]:
        parent = parent[k]
    last = target[-1]
    if op == "value":
        parent[last] = data.draw(TOML_VALUES, label="new value")
    elif op == "delete":
        if isinstance(parent, list):
            parent.pop(last)
        else:
            del parent[last]
    else:
        node = parent[last] if isinstance(parent[last], dict) else parent if isinstance(parent, dict) else doc
        node[data.draw(st.sampled_from(["colour", "zz", "2031"]), label="new key")] = data.draw(TOML_VALUES)
    path.write_text(toml_dumps(doc))
    return f"toml {op} {target}"


def mutate_csv(path: Path, data) -> str:
    rows = path.read_text().splitlines()
    op = data.draw(st.sampled_from(["cell", "cell", "cell", "drop_col", "drop_row", "dup_row", "shuffle",
                                    "header_only", "trailing_comma", "quote", "blank_line"]), label="csv op")
    cells = [r.split(",") for r in rows]
    if op == "cell":
        r = data.draw(st.integers(0, len(cells) - 1), label="row")
        c = data.draw(st.integers(0, max(len(cells[r]) - 1, 0)), label="col")
        cells[r][c] = data.draw(CELLS, label="cell")
    elif op == "drop_col":
        c = data.draw(st.integers(0, len(cells[0]) - 1), label="col")
        cells = [[x for j, x in enumerate(r) if j != c] for r in cells]
    elif op in ("drop_row", "dup_row"):
        r = data.draw(st.integers(1, max(len(cells) - 1, 1)), label="row")
        if r < len(cells):
            cells.insert(r, list(cells[r])) if op == "dup_row" else cells.pop(r)
    elif op == "shuffle":
        body = data.draw(st.permutations(cells[1:]), label="order")
        cells = cells[:1] + list(body)
    elif op == "trailing_comma":
        r = data.draw(st.integers(0, len(cells) - 1), label="row")
        cells[r] = cells[r] + [""]
    elif op == "quote":  # an opening quote, closed or not
        r = data.draw(st.integers(0, len(cells) - 1), label="row")
        c = data.draw(st.integers(0, max(len(cells[r]) - 1, 0)), label="col")
        cells[r][c] = '"' + cells[r][c] + data.draw(st.sampled_from(["", '"', '"x', "\n"]), label="close")
    elif op == "blank_line":
        cells.insert(data.draw(st.integers(0, len(cells)), label="at"), [])
    else:
        cells = cells[:1]
    path.write_text("\n".join(",".join(r) for r in cells) + "\n")
    return f"csv {op}"


def mutate_bytes(path: Path, data) -> str:
    op = data.draw(st.sampled_from(["truncate", "garbage", "empty", "directory", "splice", "fifo", "huge",
                                    "link_out", "link_dangling"]), label="bytes op")
    raw = path.read_bytes()
    if op in ("fifo", "link_out", "link_dangling"):  # a FIFO must be refused, not block
        path.unlink()
        if op == "fifo":
            os.mkfifo(path)
        else:
            outside = path.parent.parent / f"outside-{path.name}"
            outside.write_bytes(raw)
            os.symlink(outside if op == "link_out" else path.parent / "nowhere", path)
        return f"bytes {op}"
    if op == "huge":  # sparse: over the size limit without using memory or disk
        with open(path, "ab") as fh:
            fh.truncate(MAX_FILE_BYTES + 1)
        return "bytes huge"
    if op == "truncate":
        path.write_bytes(raw[:data.draw(st.integers(0, len(raw)), label="cut")])
    elif op == "garbage":
        path.write_bytes(data.draw(st.binary(max_size=200), label="bytes"))
    elif op == "empty":
        path.write_bytes(b"")
    elif op == "directory":
        path.unlink()
        path.mkdir()
    else:
        at = data.draw(st.integers(0, len(raw)), label="at")
        path.write_bytes(raw[:at] + data.draw(st.binary(min_size=1, max_size=20), label="bytes") + raw[at:])
    return f"bytes {op}"


def break_and_load(data) -> None:
    """One case: copy a template, break one file, load; only FlexplanError may escape."""
    kind = data.draw(st.sampled_from(TEMPLATES), label="template")
    with tempfile.TemporaryDirectory(prefix="flexplan_case_") as tmp:
        folder = Path(tmp) / kind
        shutil.copytree(template(kind), folder)
        files = sorted(p.name for p in folder.iterdir())
        name = data.draw(st.sampled_from(files), label="file")
        how = data.draw(st.sampled_from(["text", "text", "bytes"]), label="how")
        path = folder / name
        if how == "bytes":
            op = mutate_bytes(path, data)
        elif name.endswith(".toml"):
            op = mutate_toml(path, data)
        else:
            op = mutate_csv(path, data)
        op = "toml path" if op.startswith("toml path") else op
        OPS[op] += 1
        try:
            load_instance(folder)
            # (instance.toml itself may be a link: its folder is where the link is)
            assert op not in REFUSED and op != "toml path" or (op, name) == ("bytes link_out", "instance.toml"), \
                f"{op} on {name} loaded"
            OUTCOMES["loaded"] += 1
        except InstanceError as e:
            assert e.problems, "an InstanceError without problems"
            OUTCOMES["InstanceError"] += 1
        except FlexplanError:
            OUTCOMES["other FlexplanError"] += 1
    OUTCOMES["cases"] += 1


def _fuzzer(n: int):
    @settings(derandomize=True, max_examples=n, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(st.data())
    def run(data):
        break_and_load(data)
    return run


def _run_and_report(n: int, capsys) -> None:
    OUTCOMES.clear()
    OPS.clear()
    t0 = time.perf_counter()
    _fuzzer(n)()
    took = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\nfuzzed loaders: {OUTCOMES['cases']} cases in {took:.1f} s: {dict(OUTCOMES)}; new breakages: "
              + ", ".join(f"{op} {OPS[op]}" for op in sorted(NEW_OPS | {"toml path"})))
    # hypothesis runs n examples (plus a few replays); every case ends in a load or an error
    assert OUTCOMES["cases"] >= n
    assert OUTCOMES["cases"] == OUTCOMES["loaded"] + OUTCOMES["InstanceError"] + OUTCOMES["other FlexplanError"]
    assert OUTCOMES["loaded"] > 0 and OUTCOMES["InstanceError"] > 0
    missing = sorted(op for op in NEW_OPS | {"toml path"} if not OPS[op])
    assert not missing, f"breakages never tried: {missing} (tried: {dict(OPS)})"


# --------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("kind", TEMPLATES)
def test_templates_are_valid(kind):
    inst = load_instance(template(kind))
    assert inst.network.n_buses == 4
    assert (len(inst.ev_fleets) == 1) == (kind != "feeder")
    assert (inst.tree is not None) == (kind == "ev_tree")
    if kind == "files":
        assert list(inst.network.branches["kind"]).count("transformer") == 1
        assert inst.growth.loc[2030].iloc[0] == pytest.approx(1.1)


def test_toml_writer_round_trips():
    doc = tomllib.loads((template("ev_tree") / "instance.toml").read_text())
    doc["x"] = [1.5, math.inf, "a\"b", {"k": [True]}]
    assert tomllib.loads(toml_dumps(doc)) == doc


def test_fuzz_loaders(capsys):
    _run_and_report(DEFAULT_EXAMPLES, capsys)


@pytest.mark.slow
def test_fuzz_loaders_many(capsys):
    _run_and_report(SLOW_EXAMPLES, capsys)
