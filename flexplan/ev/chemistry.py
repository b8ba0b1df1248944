"""Battery ageing models: calendar and cycling capacity fade (docs/formulation.md §5).

Capacity loss adds up, Q_loss = Q_cal + Q_cyc (fractions of the nominal capacity); end of
life at ``1 − eol_loss`` remaining capacity (conventionally 80 %: ``eol_loss`` 0.2).

**LFP** (graphite / LiFePO4, Sony/Murata US26650FTC1 cells):

* calendar, Naumann et al., J. Energy Storage 17 (2018) 153-169:
  Q_cal = k_T(T) · k_SOC(SOC) · √t, t in seconds,
  k_T = 1.2571e-5 · exp(−17126/8.314 · (1/T − 1/298.15)) (T in K),
  k_SOC = 2.8575 (SOC − 0.5)³ + 0.60225;
  4.25 %/yr at 25 °C and SOC 0.5, 6.77 %/yr at SOC 1.  Validity (the paper's test matrix):
  0-100 % SOC, 25-60 °C.
* cycling, Naumann et al., J. Power Sources 451 (2020) 227666:
  Q_cyc = (0.0630 C + 0.0971) · (4.0253 (DoD − 0.6)³ + 1.0923) · √FEC  (in %),
  C the C-rate, DoD the depth of each cycle (0..1), FEC full equivalent cycles;
  8 558 FEC of 100 % DoD at 1C to 20 % loss.  Validity: 0.2C-1C (the paper tested 0.2C to 1C),
  DoD 5-100 %, at 25 °C.

**NMC** (graphite / NMC, Sanyo UR18650E cells):

* calendar, Schmalstieg et al., J. Power Sources 257 (2014) 325-334:
  Q_cal = α · t^0.75, t in days, α = (7.543 V − 23.75)·10⁶ · exp(−6976 / T),
  V the open-circuit voltage at the SOC (:func:`nmc_ocv`); 2.4 %/yr at 25 °C and 3.7 V.
  Validity: 35-50 °C in the paper (extrapolated to 25 °C as in BLAST-Lite), 3.3-4.2 V.
* cycling, same paper: Q_cyc = β · √Q, Q the charge throughput (Ah) of a 2.15 Ah cell,
  β = 7.348e-3 (V̄ − 3.667)² + 7.6e-4 + 4.081e-3 · DoD, V̄ the mean voltage of the cycle.
  Validity: DoD 1-100 %, 1C.

Varying stress (SOC over the day) is integrated with the usual time-equivalent rule: when the
stress changes, the law continues from the time at which the new stress would have produced
the loss reached so far.  :meth:`Chemistry.calendar_loss` and :meth:`Chemistry.cycle_loss`
are these exact (nonlinear) evaluations; :meth:`Chemistry.calendar_pwl` and
:meth:`Chemistry.depth_cost_pwl` the convex piecewise-linear forms the ageing block uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

R_GAS = 8.314  # J/(mol K)
SECONDS_PER_DAY = 86_400.0


#: Open-circuit voltage of the Sanyo UR18650E cell: 58 points, SOC (0..1) and volts (V).
#: The lookup table of NREL's BLAST-Lite 1.1.1 (``Nmc111_Gr_Sanyo2Ah_Battery._soc_index`` /
#: ``_ocv``; Copyright (c) 2023 Alliance for Energy Innovation, LLC).  Its stated sources:
#: "data from Ecker et al for 0/10% SOC" (J. Power Sources 248 (2014) 839-851, the same
#: cell), "other values were extracted from Figure 1 in Schmalsteig et al using
#: WebPlotDigitizer".  Copied as published, not resampled; tests/test_ageing.py checks it
#: against BLAST-Lite's own figures (tests/reference/blast_lite_nmc_ocv.csv).
NMC_OCV_SOC = (
    0.0, 0.008637153, 0.026779514, 0.044921875, 0.063064236, 0.081206597, 0.099348958,
    0.117491319, 0.135633681, 0.153776042, 0.171918403, 0.190060764, 0.208203125, 0.226345486,
    0.244487847, 0.262630208, 0.280772569, 0.298914931, 0.317057292, 0.335199653, 0.353342014,
    0.371484375, 0.389626736, 0.407769097, 0.425911458, 0.444053819, 0.462196181, 0.480338542,
    0.498480903, 0.516623264, 0.534765625, 0.552907986, 0.571050347, 0.589192708, 0.607335069,
    0.625477431, 0.643619792, 0.661762153, 0.679904514, 0.698046875, 0.716189236, 0.734331597,
    0.752473958, 0.770616319, 0.788758681, 0.806901042, 0.825043403, 0.843185764, 0.861328125,
    0.879470486, 0.897612847, 0.915755208, 0.933897569, 0.952039931, 0.970182292, 0.988324653,
    0.998220486, 1.0,
)
NMC_OCV_V = (
    3.331, 3.345014187, 3.37917149, 3.411603677, 3.440585632, 3.466289865, 3.490268982,
    3.511315401, 3.529946658, 3.547197821, 3.561688798, 3.574972194, 3.586357962, 3.597053683,
    3.605506753, 3.613442288, 3.620342753, 3.626380661, 3.632073544, 3.63690387, 3.642079219,
    3.646909545, 3.652084894, 3.657605266, 3.663470662, 3.670198615, 3.677444104, 3.686759732,
    3.696420384, 3.708323686, 3.720572012, 3.734372943, 3.749553967, 3.765252525, 3.781123596,
    3.797857224, 3.814590852, 3.832532062, 3.849783226, 3.866861877, 3.884458064, 3.900846669,
    3.917752809, 3.934831461, 3.953462717, 3.971921462, 3.991415276, 4.011771649, 4.03195551,
    4.05196686, 4.070770628, 4.087849279, 4.104237884, 4.120108955, 4.135980025, 4.152541142,
    4.160649189, 4.162,
)


def nmc_ocv(soc):
    """Open-circuit voltage (V) of the Sanyo UR18650E NMC cell against SOC (0..1, clipped):
    linear interpolation in :data:`NMC_OCV_SOC` / :data:`NMC_OCV_V`, as BLAST-Lite does
    (monotone: both columns increase).  Vectorised; used inside the NMC calendar and cycle
    laws."""
    return np.interp(np.clip(np.asarray(soc, dtype=float), 0.0, 1.0), NMC_OCV_SOC, NMC_OCV_V)


def _lower_convex_hull(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
    pts = []
    for p in zip(x.tolist(), y.tolist()):
        while len(pts) >= 2:
            (x1, y1), (x2, y2) = pts[-2], pts[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:  # not a left turn
                pts.pop()
            else:
                break
        pts.append(p)
    return pts


def convex_lines(f, lo: float, hi: float, pieces: int, grid: int = 401) -> list[tuple[float, float]]:
    """(slope, intercept) of at most ``pieces`` lines whose maximum is the lower convex
    envelope of f on [lo, hi], interpolated at evenly spaced points of the hull: a convex
    piecewise-linear function never above f's convex envelope and exact at its breakpoints."""
    x = np.linspace(lo, hi, grid)
    hull = _lower_convex_hull(x, np.asarray([f(v) for v in x], dtype=float))
    hx = np.array([p[0] for p in hull])
    hy = np.array([p[1] for p in hull])
    knots = np.linspace(lo, hi, pieces + 1)
    ky = np.interp(knots, hx, hy)
    return [((ky[i + 1] - ky[i]) / (knots[i + 1] - knots[i]),
             ky[i] - (ky[i + 1] - ky[i]) / (knots[i + 1] - knots[i]) * knots[i]) for i in range(pieces)]


@dataclass(frozen=True)
class Chemistry:
    """A cell chemistry's fade laws; see the module docstring for equations and sources.

    ``calendar_exponent`` z: Q_cal ∝ t^z; ``cycle_exponent``: Q_cyc ∝ FEC^z (0.5 for both
    chemistries here); ``t_min_c`` / ``t_max_c`` (°C) and ``c_rate_max`` (1/h): the range the
    fits were made on (outside it the block warns)."""

    name: str
    source: str
    calendar_exponent: float
    cycle_exponent: float
    t_min_c: float
    t_max_c: float
    c_rate_max: float

    # -- calendar ------------------------------------------------------------------------
    def calendar_stress(self, soc, t_c: float):
        """k such that Q_cal = k · t^z with t in hours (fraction of capacity)."""
        T = t_c + 273.15
        soc = np.asarray(soc, dtype=float)
        if self.name == "lfp":
            k_t = 1.2571e-5 * math.exp(-17126.0 / R_GAS * (1.0 / T - 1.0 / 298.15))
            k_soc = 2.8575 * (soc - 0.5) ** 3 + 0.60225
            return k_t * k_soc * 3600.0 ** 0.5  # t in s -> t in h
        alpha = np.maximum(7.543 * nmc_ocv(soc) - 23.75, 0.0) * 1e6 * math.exp(-6976.0 / T)
        return alpha / 24.0 ** 0.75  # t in days -> t in h

    def calendar_loss(self, soc_trace, dt_h: float, t_c: float = 25.0, q0: float = 0.0) -> float:
        """Calendar loss (fraction) after the SOC trace (one value per step of ``dt_h`` hours),
        starting from the loss ``q0``; exact, with the time-equivalent rule."""
        z = self.calendar_exponent
        k = self.calendar_stress(np.asarray(soc_trace, dtype=float), t_c)
        q = q0
        # runs of equal stress are one step each (constant-SOC traces are exact in one go)
        change = np.flatnonzero(np.diff(k) != 0) + 1
        for seg in np.split(np.arange(len(k)), change):
            ks = float(k[seg[0]])
            if ks <= 0:
                continue
            t_eq = (q / ks) ** (1.0 / z)
            q = ks * (t_eq + len(seg) * dt_h) ** z
        return q

    def calendar_rate(self, soc, t_c: float, age_h: float):
        """Marginal calendar loss per hour at ``soc`` for a battery of age ``age_h`` hours
        (d/dt of k t^z at t = age): the law linearised in time around the battery's age."""
        z = self.calendar_exponent
        return self.calendar_stress(soc, t_c) * z * max(age_h, 1.0) ** (z - 1.0)

    def calendar_pwl(self, t_c: float, age_h: float, pieces: int = 6, soc_min: float = 0.2) -> list[tuple[float, float]]:
        """Lines (a, b): calendar loss per hour of a battery ≥ max_m (a_m SOC + b_m), the convex
        envelope of :meth:`calendar_rate` over SOC ``soc_min``..1 (exact where the rate is
        convex, SOC ≥ 0.5 for LFP; below, the chord keeps a benefit for lower SOC).  EVs
        rarely sit below 0.2 (the V2G floor), so the envelope is fitted from there."""
        return convex_lines(lambda s: float(self.calendar_rate(s, t_c, age_h)), soc_min, 1.0, pieces)

    # -- cycling -------------------------------------------------------------------------
    def cycle_stress(self, dod, c_rate: float = 0.5, v_rms: float | None = None):
        """k(DoD) such that Q_cyc = k · FEC^0.5 (fraction) for cycles of depth ``dod``.
        NMC: ``v_rms`` is the cycle's root-mean-square voltage (V); default: a cycle of that
        depth centred on SOC 0.5."""
        dod = np.clip(np.asarray(dod, dtype=float), 0.0, 1.0)
        if self.name == "lfp":
            return 0.01 * (0.0630 * c_rate + 0.0971) * (4.0253 * (dod - 0.6) ** 3 + 1.0923)
        # Schmalstieg: Q = beta sqrt(Ah); one FEC of the 2.15 Ah cell moves 2 x 2.15 Ah
        # (charge and discharge), the throughput convention of BLAST-Lite's implementation
        if v_rms is None:
            v_rms = (nmc_ocv(0.5 - dod / 2) + nmc_ocv(0.5 + dod / 2)) / 2
        beta = 7.348e-3 * (np.asarray(v_rms) - 3.667) ** 2 + 7.6e-4 + 4.081e-3 * dod
        return beta * math.sqrt(2 * 2.15)

    def cycle_loss(self, depths, counts=None, c_rate: float = 0.5, q0: float = 0.0, v_rms: float | None = None) -> float:
        """Cycling loss (fraction) of cycles of the given depths (with multiplicities
        ``counts``, e.g. from rainflow: 0.5 for a half cycle), in order, from the loss ``q0``;
        each depth's law continues from the equivalent throughput of the loss so far."""
        depths = np.asarray(depths, dtype=float)
        counts = np.ones_like(depths) if counts is None else np.asarray(counts, dtype=float)
        q = q0
        z = self.cycle_exponent
        for d, n in zip(depths, counts):
            k = float(self.cycle_stress(d, c_rate, v_rms))
            if k <= 0 or d <= 0:
                continue
            fec_eq = (q / k) ** (1.0 / z)
            q = k * (fec_eq + n * d) ** z
        return q

    def cycles_to_eol(self, dod: float, c_rate: float = 0.5, eol_loss: float = 0.2) -> float:
        """Cycles of depth ``dod`` from new to a loss of ``eol_loss`` (cycling alone)."""
        k = float(self.cycle_stress(dod, c_rate))
        return (eol_loss / k) ** (1.0 / self.cycle_exponent) / dod

    def life_used(self, depth, c_rate: float = 0.5, eol_loss: float = 0.2, fec_age: float | None = None):
        """Φ(δ): the share of a battery's life one cycle of depth δ uses.  ``fec_age`` None:
        averaged over the life, 1 / cycles_to_eol(δ) (Wöhler curve, Miner's rule, as in Xu
        et al.); a number: the marginal loss of that cycle for a battery that has already
        done ``fec_age`` full equivalent cycles (the law linearised around its age),
        δ · k(δ) · z · FEC^(z−1) / eol_loss."""
        depth = np.asarray(depth, dtype=float)
        k = self.cycle_stress(depth, c_rate)
        if fec_age is None:
            z = self.cycle_exponent
            return np.where(depth > 0, depth * (k / eol_loss) ** (1.0 / z), 0.0)
        z = self.cycle_exponent
        return depth * k * z * max(fec_age, 1.0) ** (z - 1.0) / eol_loss

    def depth_cost_pwl(self, segments: int, c_rate: float = 0.5, eol_loss: float = 0.2,
                       fec_age: float | None = None) -> np.ndarray:
        """Marginal cycle ageing of the Xu et al. (IEEE Trans. Power Syst. 33(2), 2018)
        segment model: split the depth of a cycle into ``segments`` equal segments; c_j =
        J [Φ(j/J) − Φ((j−1)/J)] with Φ from :meth:`life_used`.  Returns c (share of life per
        unit of depth), made non-decreasing (the convex envelope where Φ is not convex) so
        that an LP fills the segments in order."""
        J = segments
        phi = np.concatenate([[0.0], self.life_used(np.arange(1, J + 1) / J, c_rate, eol_loss, fec_age)])
        return np.maximum.accumulate(J * np.diff(phi))


CHEMISTRIES = {
    "lfp": Chemistry("lfp", "Naumann et al. 2018 (calendar), 2020 (cycling)", 0.5, 0.5, 25.0, 60.0, 1.0),
    "nmc": Chemistry("nmc", "Schmalstieg et al. 2014", 0.75, 0.5, 25.0, 50.0, 1.0),
}
