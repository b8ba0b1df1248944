"""The reinforcement candidates of the shipped instances, as the loader builds them from
their catalogues: no candidate is had for free.  A candidate for an asset that is stronger
than another of the same kind for that asset and costs no more (at the same lifetime) makes
the weaker one pointless and the optimiser's choice between them a coin toss (the
"2 x 0.63 MVA" transformer once cost what one 630 kVA unit costs)."""
import itertools

import pandas as pd
import pytest

import flexplan as fp
from flexplan.paths import shipped_instances

pytestmark = pytest.mark.component

INSTANCES = sorted(p.parent.name for p in shipped_instances().glob("*/instance.toml"))
#: european_lv has no candidates on purpose: the IEEE test case comes with no cable or transformer catalogue
WITHOUT_CANDIDATES = {"european_lv"}


def _check(name: str, cands: pd.DataFrame) -> None:
    for (asset, kind), group in cands.groupby(["asset", "kind"]):
        for a, b in itertools.permutations(group.itertuples(), 2):
            if b.rating_mva > a.rating_mva and b.lifetime_years == a.lifetime_years:
                assert b.capex_eur > a.capex_eur, (
                    f"{name}, {asset} ({kind}): '{b.type}' ({b.rating_mva:g} MVA) is stronger than '{a.type}' "
                    f"({a.rating_mva:g} MVA) for {b.capex_eur:g} <= {a.capex_eur:g} EUR")


def test_every_instance_is_checked():
    assert {"ieee33", "cigre_lv", "sb_lv_rural", "sb_mv_rural"} <= set(INSTANCES)
    for name in WITHOUT_CANDIDATES:  # and those left out really have none
        assert not len(fp.load_instance(shipped_instances() / name).candidates)


@pytest.mark.parametrize("name", [n for n in INSTANCES if n not in WITHOUT_CANDIDATES])
def test_a_stronger_candidate_costs_more(name):
    cands = fp.load_instance(shipped_instances() / name).candidates
    assert len(cands), f"{name}: no candidates"
    _check(name, cands)


def test_the_check_catches_a_free_upgrade():
    """The check above can fail: a stronger type at the same price, for the same asset."""
    row = dict(asset="T1", kind="replace", lifetime_years=40)
    free = pd.DataFrame([dict(row, type="0.63 MVA", rating_mva=0.63, capex_eur=10000.0),
                         dict(row, type="2 x 0.63 MVA", rating_mva=1.26, capex_eur=10000.0)])
    with pytest.raises(AssertionError, match="'2 x 0.63 MVA' .* is stronger"):
        _check("fake", free)
    _check("fake", free.assign(capex_eur=[10000.0, 20000.0]))
    _check("fake", free.assign(asset=["T1", "T2"]))  # different assets are not compared
