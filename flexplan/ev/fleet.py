"""An EV fleet of an instance: where it charges, how many EVs per year, and its sessions.

A fleet is one charging behaviour (home, workplace, public, or a user's session file) at
one or more buses; ``evs`` gives the number of EVs *per bus* in every year of the horizon.
The sessions are a sample (``ev_days`` EV-days); the model works per EV and scales by the
count, so its size does not depend on how many EVs there are (docs/formulation.md §4).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .envelopes import FleetEnvelopes, build_envelopes


@dataclass(frozen=True)
class EVFleet:
    """``buses``: bus indices (``bus_names`` their names); ``evs``: EVs per bus per year
    (pd.Series indexed by calendar year, every year of the horizon); ``sessions``: validated
    sessions (with ``start``, ``length``, ``v2g``); ``ev_days``: EV-days the sample covers;
    ``soc_min`` / ``soc_max`` (fraction of battery), ``eta_charge`` / ``eta_discharge``
    (dimensionless) as in :func:`flexplan.ev.build_envelopes`; ``source``: where the
    sessions came from (a file, or the generator and its seed); ``clipped``: sessions whose
    requirement was lowered to what the charger can deliver; ``phase``: the chargers' phase
    shares (a, b, c), None when balanced (the three-phase formulation splits it evenly)."""

    name: str
    buses: tuple[int, ...]
    bus_names: tuple[str, ...]
    behaviour: str
    evs: pd.Series
    sessions: pd.DataFrame
    ev_days: float
    soc_min: float = 0.2
    soc_max: float = 1.0
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    source: str = ""
    clipped: int = 0
    phase: tuple[float, float, float] | None = None
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def envelopes(self, hours: int, dt_h: float, v2g: bool, max_cohorts: int | None = None,
                  split_by_charger: bool = True, per_session: bool = False) -> FleetEnvelopes:
        key = (hours, dt_h, v2g, max_cohorts, split_by_charger, per_session)
        if key not in self._cache:
            self._cache[key] = build_envelopes(
                self.sessions, self.ev_days, hours, dt_h, eta_charge=self.eta_charge,
                eta_discharge=self.eta_discharge, soc_min=self.soc_min, soc_max=self.soc_max, v2g=v2g,
                split_by_charger=split_by_charger, max_cohorts=max_cohorts, per_session=per_session)
        return self._cache[key]

    @property
    def v2g_share(self) -> float:
        """Fraction of the sample's sessions that can discharge."""
        return float(self.sessions["v2g"].mean()) if len(self.sessions) else 0.0


def evs_per_year(spec, years: list[int]) -> np.ndarray:
    """EV counts for ``years`` from ``{year: count}`` (linear between the given years, held
    flat before the first and after the last) or an uptake S-curve
    ``{final, midpoint, rate[, initial]}``: N(y) = initial + (final − initial) /
    (1 + exp(−rate (y − midpoint))) (logistic diffusion, Bass-type; ``rate`` 1/yr)."""
    ys = np.asarray(years, dtype=float)
    if "final" in spec:
        n0 = float(spec.get("initial", 0.0))
        return n0 + (float(spec["final"]) - n0) / (1.0 + np.exp(-float(spec["rate"]) * (ys - float(spec["midpoint"]))))
    pts = sorted((int(k), float(v)) for k, v in spec.items())
    return np.interp(ys, [p[0] for p in pts], [p[1] for p in pts])


def is_integer_year(key) -> bool:
    """Whether a TOML key (a string) is a whole year such as ``"2030"``."""
    return str(key).strip().isdigit()
