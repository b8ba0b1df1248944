"""Discounting and investment costs (docs/formulation.md §1).

Conventions, used everywhere in flexplan:

* a cash flow of calendar year ``y`` is discounted by ``delta(y) = (1 + r) ** -(y - y0)``
  (operating costs of year ``y`` and the annuity paid for year ``y`` alike);
* an asset built in year ``b`` with capex ``C`` and lifetime ``L`` costs the annuity
  ``A = C r / (1 - (1 + r) ** -L)`` in every year ``b, b + 1, ...`` up to the horizon end
  ``H`` (and never beyond its life).  Counting only years inside the horizon means a late
  build is not "free" and an early one is not over-charged;
* the alternative ``lump_sum``: capex ``C`` paid at the start of year ``b`` (discounted
  by ``delta(b - 1)``, i.e. the end of the previous year) minus a salvage value at the end
  of the horizon equal to the asset's remaining economic value (the present value of the
  annuities it would still earn after ``H``).  This is the same number as the annuity
  stream, so both rank every plan identically; ``tests/test_economics.py`` checks it.
"""
from __future__ import annotations


def discount_factor(year: int, base_year: int, rate: float) -> float:
    """delta(y) = (1 + r)^-(y - y0), dimensionless."""
    return (1.0 + rate) ** -(year - base_year)


def annuity(capex: float, rate: float, lifetime: int) -> float:
    """Equivalent annual cost (EUR/yr) of ``capex`` (EUR) over ``lifetime`` years."""
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    if rate == 0:
        return capex / lifetime
    return capex * rate / (1.0 - (1.0 + rate) ** -lifetime)


def annuity_pv_factor(build_year: int, end_year: int, base_year: int, rate: float, lifetime: int) -> float:
    """Present value (EUR, at ``base_year``) per EUR of capex of the annuities paid from
    ``build_year`` to ``min(end_year, build_year + lifetime - 1)``, both included."""
    a = annuity(1.0, rate, lifetime)
    last = min(end_year, build_year + lifetime - 1)
    return sum(a * discount_factor(y, base_year, rate) for y in range(build_year, last + 1))


def lump_sum_pv_factor(build_year: int, end_year: int, base_year: int, rate: float, lifetime: int) -> float:
    """Present value per EUR of capex of paying it at the start of ``build_year`` and
    recovering the remaining economic value at the end of ``end_year`` (salvage)."""
    a = annuity(1.0, rate, lifetime)
    paid = discount_factor(build_year - 1, base_year, rate)
    last_life_year = build_year + lifetime - 1
    salvage = sum(a * discount_factor(y, base_year, rate) for y in range(end_year + 1, last_life_year + 1))
    return paid - salvage


INVESTMENT_COST_METHODS = {"annuity": annuity_pv_factor, "lump_sum": lump_sum_pv_factor}
