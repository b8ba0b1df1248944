"""Discounting and investment cost conventions against hand-computed values."""
import pytest

from flexplan.economics import annuity, annuity_pv_factor, discount_factor, lump_sum_pv_factor

pytestmark = pytest.mark.unit


def test_annuity_formula():
    # C r / (1 - (1+r)^-L) for C = 1e6, r = 3.5 %, L = 40: 46 827.26 EUR/yr
    assert annuity(1e6, 0.035, 40) == pytest.approx(46827.28, abs=0.01)
    assert annuity(400.0, 0.0, 40) == pytest.approx(10.0)


@pytest.mark.parametrize("k,saving", [(1, 0.034), (3, 0.098), (5, 0.158)])
def test_deferral_saving_matches_formulation(k, saving):
    """Deferring C by k years saves C (1 - (1+r)^-k) when the whole life is inside the
    horizon (docs/formulation.md §1: 3.4 %, 9.8 %, 15.8 % at r = 3.5 %)."""
    r, L, y0 = 0.035, 40, 2025
    end = y0 + k + L + 5
    now = annuity_pv_factor(y0, end, y0, r, L)
    later = annuity_pv_factor(y0 + k, end, y0, r, L)
    assert (now - later) / now == pytest.approx(1 - (1 + r) ** -k, rel=1e-12)
    assert (now - later) / now == pytest.approx(saving, abs=5e-4)


@pytest.mark.parametrize("build,end", [(2025, 2044), (2031, 2044), (2044, 2044), (2030, 2090)])
def test_lump_sum_with_salvage_equals_annuity_stream(build, end):
    r, L, y0 = 0.035, 40, 2025
    assert lump_sum_pv_factor(build, end, y0, r, L) == pytest.approx(annuity_pv_factor(build, end, y0, r, L), rel=1e-12)


def test_annuity_stream_counts_only_years_inside_horizon():
    r, y0 = 0.05, 2025
    a = annuity(1.0, r, 30)
    expected = sum(a * (1 + r) ** -(y - y0) for y in (2042, 2043, 2044))
    assert annuity_pv_factor(2042, 2044, y0, r, 30) == pytest.approx(expected, rel=1e-12)
    assert discount_factor(2030, 2025, 0.035) == pytest.approx(1.035 ** -5)
