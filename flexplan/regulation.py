"""The regulated DSO's own view of a plan (docs/formulation.md §9).

A DSO does not minimise the social cost; it maximises its regulated profit.  How the
regulator pays it back for what it spends decides which plan it prefers:

* **CAPEX regime** (the classic "RAB" model): capital spending enters the regulated asset
  base (RAB) and earns the allowed return ``w`` plus straight-line depreciation over ``D``
  years; operating spending, such as paying EV owners for flexibility, is covered by a fixed
  ex-ante allowance, so each extra EUR comes out of the DSO's profit (a share
  ``opex_passthrough`` of it may be passed through to customers).
* **TOTEX regime** (RIIO-style): capital and operating spending are pooled; the DSO keeps a
  share ``s`` (the sharing factor) of any under- or over-spend against its allowance, and of
  the spending that customers fund, a share ``c`` (the capitalisation rate) is added to the
  RAB ("slow money") and the rest paid back in the year ("fast money").

Per EUR of spending the DSO's *private cost* (what it loses in present value, discounting at
its own cost of capital ``r``, the instance's discount rate) is

    R(w, r, D) = Σ_{t=1..D} [1/D + w (1 − (t − 1)/D)] (1 + r)^−t     (PV of the RAB's revenue;
                                                                        R = 1 when w = r)
    CAPEX regime:  k_capex = 1 − R,                  k_opex = 1 − passthrough − flex incentive
    TOTEX regime:  k_capex = k_opex = 1 − (1 − s) [(1 − c) + c R]     (= s when w = r)
    both:          k_quality = quality_incentive     (what it pays per EUR of VOLL, overloads, voltage)

The DSO's **regulated profit** from a plan, against spending nothing (the allowances do not
depend on the plan), is −Σ_groups k_group × cost_group.  The **regulated plan** is the plan
that maximises it; the EV owners', the aggregator's and the losses' costs stay in its
objective at their full weight (the DSO decides its assets and purchases; the other parties
still only act where it pays them), and ``tie_break`` × the social cost ranks plans of equal
profit (the DSO is indifferent to capex under a CAPEX regime at w = r).  The gap between the
regulated plan's social cost and the social optimum is the "fit and forget" bias.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pyomo.environ as pyo

from .errors import RecipeError

REGIMES = ("capex", "totex")
#: Cost categories by who pays them under regulation (the Hub's category names).
CAPEX = ("investment", "storage_investment")
OPEX = ("ev_flexibility", "contract_availability", "contract_utilisation", "contract_penalty", "connection_discount",
        "pv_curtailment", "heat_pump_flexibility", "storage_ageing", "phase_balancing")
QUALITY_PREFIX = "penalty_"


def group_of(category: str) -> str:
    """``capex``, ``opex`` (the DSO's operating spending), ``quality`` (the limits' penalties) or
    ``others`` (costs of the EV owners, the aggregator, losses)."""
    if category in CAPEX:
        return "capex"
    if category in OPEX:
        return "opex"
    if category.startswith(QUALITY_PREFIX):
        return "quality"
    return "others"


@dataclass
class Regulation:
    """How the regulator remunerates the DSO (see the module docstring for the equations).

    * ``regime``: ``capex`` or ``totex`` (default ``capex``: the regime the seed paper names as
      the source of the "fit and forget" bias).
    * ``allowed_return``: the allowed return on the RAB, per year (default None: the instance's
      discount rate, i.e. the regulator sets it at the DSO's cost of capital, the neutral case;
      RIIO-ED2's final determinations allowed about 3.2 % CPIH-real [check]).
    * ``depreciation_years``: regulatory asset life, straight line (years; default 45: Ofgem's
      regulatory depreciation life for new electricity distribution assets since RIIO-ED1
      [check]).
    * ``opex_passthrough``: share of operating spending passed through to customers under the
      CAPEX regime (default 0: a fixed ex-ante opex allowance, the DSO bears every extra EUR).
    * ``totex_sharing``: the DSO's share of a totex over- or under-spend (default 0.5: RIIO-ED2
      final determinations, 30 Nov 2022, incentive rates 49.3-50 %).
    * ``capitalisation_rate``: share of totex added to the RAB (default 0.75: RIIO-ED2's
      totex capitalisation rates are of this order [check]).
    * ``quality_incentive``: EUR the DSO pays per EUR of the limits' penalties (unserved energy
      at VOLL, overloads, voltage), an output incentive (default 1: it bears them in full).
    * ``flexibility_incentive``: share of flexibility spending the regulator pays back as an
      innovation incentive under the CAPEX regime (default 0).
    * ``tie_break``: weight of the social cost in the DSO's objective (dimensionless, default
      1e-3): ranks plans of equal regulated profit by their cost to society.
    """

    regime: str = "capex"
    allowed_return: float | None = None
    depreciation_years: int = 45
    opex_passthrough: float = 0.0
    totex_sharing: float = 0.5
    capitalisation_rate: float = 0.75
    quality_incentive: float = 1.0
    flexibility_incentive: float = 0.0
    tie_break: float = 1e-3

    def __post_init__(self):
        problem = self.validate()
        if problem:
            raise RecipeError(f"regulation: {problem}")

    def validate(self) -> str | None:
        if self.regime not in REGIMES:
            return f"regime must be one of {', '.join(REGIMES)}, got '{self.regime}'"
        if self.allowed_return is not None and not -0.5 < self.allowed_return < 1.0:
            return f"allowed_return must be a yearly rate in (-0.5, 1), got {self.allowed_return}"
        if not isinstance(self.depreciation_years, int) or self.depreciation_years < 1:
            return f"depreciation_years must be a whole number >= 1, got {self.depreciation_years}"
        for name in ("opex_passthrough", "totex_sharing", "capitalisation_rate", "flexibility_incentive"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                return f"{name} must be in [0, 1], got {v}"
        if self.quality_incentive < 0:
            return f"quality_incentive must be >= 0, got {self.quality_incentive}"
        if not 0.0 <= self.tie_break < 1.0:
            return f"tie_break must be in [0, 1), got {self.tie_break}"
        return None

    def rab_pv(self, rate: float) -> float:
        """R: present value at the DSO's cost of capital ``rate`` of the revenue one EUR added
        to the RAB earns (depreciation + allowed return on the opening RAB, paid at each year's
        end)."""
        w = rate if self.allowed_return is None else self.allowed_return
        d = self.depreciation_years
        return sum((1.0 / d + w * (1.0 - (t - 1) / d)) * (1.0 + rate) ** -t for t in range(1, d + 1))

    def private_cost(self, rate: float) -> dict[str, float]:
        """k per group: EUR of profit the DSO loses per EUR of that group's cost."""
        rab = self.rab_pv(rate)
        if self.regime == "capex":
            capex = 1.0 - rab
            opex = 1.0 - self.opex_passthrough - self.flexibility_incentive
        else:
            capex = opex = 1.0 - (1.0 - self.totex_sharing) * ((1.0 - self.capitalisation_rate)
                                                               + self.capitalisation_rate * rab)
        return dict(capex=capex, opex=opex, quality=self.quality_incentive)

    def objective_weight(self, category: str, rate: float) -> float:
        """The weight of a cost category in the DSO's objective: its private cost plus the
        tie-break; the other parties' costs at 1."""
        g = group_of(category)
        if g == "others":
            return 1.0
        return self.private_cost(rate)[g] + self.tie_break


def regulated_profit(res, reg: Regulation, rate: float) -> dict:
    """The DSO's regulated profit from a solved plan (:class:`~flexplan.results.Results`):
    per group, the cost (EUR, expected present value) and the profit −k × cost; ``profit_eur``
    their sum."""
    k = reg.private_cost(rate)
    cost = dict(capex=0.0, opex=0.0, quality=0.0)
    for cat, v in res.cost_breakdown_eur.items():
        g = group_of(cat)
        if g in cost:
            cost[g] += v
    profit = {g: -k[g] * cost[g] for g in cost}
    return dict(regime=reg.regime, k=k, rab_pv_per_eur=reg.rab_pv(rate), cost_eur=cost, profit_by_group_eur=profit,
                profit_eur=sum(profit.values()))


def set_regulated_objective(pm, reg: Regulation) -> None:
    """Replace ``pm``'s objective by the DSO's: each cost term weighted by its category's
    :meth:`Regulation.objective_weight`."""
    from .assemble import set_objective

    rate = pm.instance.economics.discount_rate
    set_objective(pm, lambda t: reg.objective_weight(t.category, rate))


def dso_stake_eur(res) -> float:
    """What the DSO's own money is about in a solved plan: |capex| + |opex| + |penalties| (EUR,
    expected present value)."""
    return float(sum(abs(v) for c, v in res.cost_breakdown_eur.items() if group_of(c) != "others"))


def solve_regulated(inst, recipe, reg: "Regulation", social, social_start: dict | None = None, mip_gap: float = 1e-4,
                    **solve_kw):
    """The regulated DSO's plan of ``recipe``, started from the social plan (``social_start``,
    its decisions), with the MIP gap taken on what the DSO's money is about: the gap
    ``mip_gap`` × :func:`dso_stake_eur` of the social plan as an absolute gap (at least 1 EUR)
    instead of a relative one.  A relative gap would be measured against the whole objective,
    where the owners' energy bill (weight 1, often most of it) would let HiGHS stop at any plan
    whose regulated profit is within a percent of that bill."""
    import flexplan as fp

    pm = fp.build_model(inst, recipe)
    set_regulated_objective(pm, reg)
    abs_gap = max(1.0, mip_gap * dso_stake_eur(social)) if social is not None and social.has_solution else None
    kw = dict(solve_kw)
    if abs_gap is not None:
        kw.update(mip_gap=0.0, mip_abs_gap=abs_gap)
    else:
        kw["mip_gap"] = mip_gap
    return fp.solve(pm, start=social_start, **kw)


def build_megawatts(res) -> float:
    """MVA of rating the plan's builds add (a replacement: its new rating; a parallel line or
    a transformer: its own), summed over the builds."""
    if res.builds is None or not len(res.builds) or "rating_mva" not in res.builds:
        return 0.0
    return float(res.builds["rating_mva"].fillna(0.0).sum())


def social_cost(res) -> float:
    """The plan's cost to society: the sum of its cost categories (expected present value)."""
    return float(sum(res.cost_breakdown_eur.values()))


def compare_regulated(instance, recipe, reg: Regulation | None = None, progress=None, social=None,
                      **solve_kw) -> dict:
    """Solve ``recipe`` on ``instance`` for society (unless ``social``, its solved Results, is
    given) and for the regulated DSO; return both plans' social costs, builds and profits and
    the gap (the "fit and forget" bias, EUR and MVA).  ``res`` of the regulated solve is under
    ``regulated_results``."""
    import flexplan as fp

    reg = reg or Regulation()
    inst = instance if isinstance(instance, fp.Instance) else fp.load_instance(instance)
    rate = inst.economics.discount_rate
    start = None
    if social is None:
        pm = fp.build_model(inst, recipe)
        social = fp.solve(pm, **solve_kw)
        start = fp.decision_values(pm) if social.has_solution else None
        del pm
    regulated = solve_regulated(inst, recipe, reg, social, start, **solve_kw)
    if progress:
        progress(f"regulated plan ({reg.regime}): {regulated.status}")
    out = dict(regulation=asdict(reg), regulated_results=regulated, social_results=social)
    for name, res in (("social", social), ("regulated", regulated)):
        if not res.has_solution:
            out[name] = dict(status=res.status)
            continue
        out[name] = dict(status=res.status, social_cost_eur=social_cost(res), build_mva=build_megawatts(res),
                         builds=[f"{b.year} {b.asset}" for b in res.builds.itertuples()],
                         dso_profit_eur=regulated_profit(res, reg, rate)["profit_eur"],
                         cost_breakdown_eur=res.cost_breakdown_eur)
    if social.has_solution and regulated.has_solution:
        out["bias_eur"] = out["regulated"]["social_cost_eur"] - out["social"]["social_cost_eur"]
        out["bias_mva"] = out["regulated"]["build_mva"] - out["social"]["build_mva"]
        out["dso_profit_gain_eur"] = out["regulated"]["dso_profit_eur"] - out["social"]["dso_profit_eur"]
    return out
