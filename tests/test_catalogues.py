"""The reinforcement catalogues of the shipped instances: no candidate type is had for
free.  A type that is at least as strong as another of the same voltage and costs no more
makes the weaker one pointless and the optimiser's choice between them a coin toss (the
"2 x 0.63 MVA" transformer once cost what one 630 kVA unit costs)."""
import itertools
import tomllib

import pytest

from flexplan.paths import shipped_instances

pytestmark = pytest.mark.unit

INSTANCES = sorted(p.parent.name for p in shipped_instances().glob("*/instance.toml"))


def _types(name):
    cfg = tomllib.loads((shipped_instances() / name / "instance.toml").read_text()).get("reinforcement", {})
    lines = [(t["name"], (t.get("vn_kv_min"), t.get("vn_kv_max")), t["max_i_ka"], t["capex_eur_per_km"])
             for t in cfg.get("line_types", [])]
    trafos = [(t["name"], t.get("vn_kv"), t["sn_mva"], t["capex_eur"]) for t in cfg.get("transformer_types", [])]
    return lines, trafos


def test_every_instance_is_checked():
    assert {"ieee33", "cigre_lv", "sb_lv_rural", "sb_mv_rural"} <= set(INSTANCES)


def _check(name, kinds):
    for kind in kinds:
        for a, b in itertools.permutations(kind, 2):
            if a[1] == b[1] and b[2] > a[2]:
                assert b[3] > a[3], f"{name}: '{b[0]}' ({b[2]}) is stronger than '{a[0]}' ({a[2]}) for {b[3]} <= {a[3]}"


@pytest.mark.parametrize("name", INSTANCES)
def test_a_stronger_type_costs_more(name):
    lines, trafos = _types(name)
    assert lines or trafos, f"{name}: no catalogue read"
    _check(name, (lines, trafos))


def test_the_check_catches_a_free_upgrade():
    """The check above can fail: a catalogue with a stronger type at the same price."""
    fake = [("0.63 MVA", 0.4, 0.63, 10000), ("2 x 0.63 MVA", 0.4, 1.26, 10000)]
    with pytest.raises(AssertionError, match="'2 x 0.63 MVA' .* is stronger"):
        _check("fake", ([], fake))
    _check("fake", ([], [fake[0], ("2 x 0.63 MVA", 0.4, 1.26, 20000)]))
