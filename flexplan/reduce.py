"""Representative days: reduce a year of daily load profiles to k typical days with tsam.

A full-year profile (365 or 366 days of ``H`` steps, every day weight 1 day/year) makes
``days x H`` operating points per modelled year (8760 hourly); most of them are alike. This
module clusters the days with tsam's typical-period aggregation (period = one day) and
returns k representative days whose weights (days/year) are the numbers of days they stand
for, so that a planning model solves on ``k x H`` points per year instead
(DESIGN.md "Speed": reduce time with representative days before reducing fidelity).

The planning peak must not be averaged away: with ``extreme_peak=True`` the day holding the
highest total load (``sum_c peak_weights[c] * factors[c]``) is kept as a period of its own,
exactly, with weight 1, through tsam's extreme-period option ``method="append"`` (see
:func:`representative_days` for why not ``new_cluster`` or ``replace``).

Units: the factors are dimensionless multipliers of the base-year peak load (as in
:class:`flexplan.instance.model.Profiles`); weights are days/year; ``dt_h`` hours;
``peak_weights`` MW per class (only their ratios matter).
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .instance.model import Instance, Profiles

__all__ = [
    "class_peak_mw",
    "full_year_profiles",
    "profiles_frame",
    "reduce_instance",
    "representative_days",
    "write_profiles_csv",
]

#: Name of the helper column (weighted total load) that tsam's extreme-period search uses.
_TOTAL = "__flexplan_total__"
_METHODS = ("averaging", "kmeans", "kmedoids", "kmaxoids", "hierarchical", "contiguous")
_EXTREME_METHODS = ("append", "new_cluster")


def representative_days(profiles: Profiles, k: int, *, extreme_peak: bool = True, method: str = "hierarchical",
                        columns: Sequence[str] | None = None, peak_weights: Mapping[str, float] | None = None,
                        representation: str | None = None, extreme_method: str = "append",
                        preserve_means: bool = True, prefix: str = "rd") -> tuple[Profiles, dict]:
    """Reduce a full year of daily profiles to ``k`` representative days.

    ``profiles``: a year of days (365 or 366, each of weight 1 day/year, ``hours`` steps of
    ``dt_h`` h, factors dimensionless). ``k``: number of representative days to return
    (1 <= k <= number of days; 2 <= k with ``extreme_peak``).

    tsam (``tsam.aggregate``) clusters the days (period = ``hours * dt_h`` h = one day) with
    ``method`` (tsam's ``ClusterConfig.method``: hierarchical = Ward agglomerative, the
    default, deterministic) and represents each cluster by ``representation`` (default: the
    method's, the medoid for hierarchical: a real day). With ``preserve_means`` (tsam's
    ``preserve_column_means``) the non-peak representatives are rescaled so that every
    class's annual energy (weighted sum of its factors) equals the input's.

    ``extreme_peak``: keep the day with the highest total load ``sum_c peak_weights[c] *
    factors[c]`` (``peak_weights`` in MW per class, default 1 for each class; only ratios
    matter) as its own period, unscaled, named ``"peak"``. It is found by tsam's extreme
    periods (``ExtremeConfig(max_value=[total])`` on a helper total column that takes no
    part in the clustering distance) with ``extreme_method``:

    - ``"append"`` (default): the peak day becomes an extra cluster of weight 1, the other
      ``k - 1`` clusters hold the other days: the peak is kept exactly and counted once;
    - ``"new_cluster"``: the same, and every day closer to the peak day than to its own
      centre is moved to it: the peak is kept exactly, but the peak profile then stands
      for several days (more energy at peak level than the year has);
    - tsam's ``"replace"`` is refused: it overwrites only the extreme column (here the
      helper total) of the nearest centre, so the class profiles of the peak day are lost.

    When tsam skips the extreme (it does so when the peak day is itself a cluster medoid),
    the days other than the peak are clustered into ``k - 1`` and the peak day is appended
    by hand (``info["tsam"]["peak_fallback"]``), which is what ``append`` does.

    ``columns``: the classes that define the clustering distance (default all); the others
    follow the clustering with tsam's minimal weight. ``k`` equal to the number of days
    returns the input unchanged (every day its own period, weight 1, the input's names).

    Returns ``(reduced, info)``: ``reduced`` with days ``rd01..`` (and ``peak``) in
    order of first appearance in the year (rd01 stands for the input's first day); ``info`` (JSON-serialisable):
    ``rmse`` {class: RMSE of the reconstructed year (each day replaced by its
    representative) against the input, in factor units}, ``rmse_overall`` (all classes
    pooled), ``rmse_total`` (of the weighted total load, in ``peak_weights`` units),
    ``peak_error`` ((max reconstructed total - max input total) / max input total),
    ``energy_error`` {class: relative error of the annual weighted sum}, ``mapping`` {input
    day: representative}, ``assignment`` (representative per day of year, in order),
    ``source_day`` {representative: the input day it was taken from (a medoid, before
    rescaling, or the peak day), None for a synthetic one (e.g. a mean)}, ``peak_day``, ``weights``, ``tsam`` (settings and version), ``clustering_s``.

    Raises ValueError for k out of range, days of unequal length, weights other than 1, a
    day count other than 365/366, NaN or infinite factors, unknown classes or methods.
    """
    n, hours, factors = _check_year(profiles)
    k = _check_k(k, n, extreme_peak)
    classes = list(factors)
    cols = _check_columns(columns, classes)
    pw = _peak_weights(peak_weights, classes)
    if method not in _METHODS:
        raise ValueError(f"unknown clustering method {method!r}: use one of {', '.join(_METHODS)}")
    if extreme_method == "replace":
        raise ValueError("extreme_method 'replace' does not keep the peak day (tsam overwrites only the extreme "
                         "column of the nearest centre); use 'append' or 'new_cluster'")
    if extreme_method not in _EXTREME_METHODS:
        raise ValueError(f"unknown extreme_method {extreme_method!r}: use 'append' or 'new_cluster'")
    total = sum(pw[c] * factors[c] for c in classes)
    peak_day = int(np.argmax(total.max(axis=1))) if extreme_peak else None

    if k == n:  # every day its own period: exact by construction, tsam not needed
        reduced = Profiles(days=tuple(profiles.days), weights=np.ones(n), hours=hours, dt_h=float(profiles.dt_h),
                           factors={c: factors[c].copy() for c in classes})
        info = _info(profiles, factors, reduced, np.arange(n), list(range(n)), pw, peak_day)
        info["tsam"] = {"used": False, "reason": "k equals the number of days: the input is returned unchanged"}
        info["clustering_s"] = 0.0
        return reduced, info

    import tsam
    from tsam import ClusterConfig, ExtremeConfig

    t0 = time.perf_counter()
    cluster = ClusterConfig(method=method, representation=representation)
    weights = {c: tsam.options.min_weight for c in classes if c not in cols}
    settings = {"used": True, "version": getattr(tsam, "__version__", "?"), "period_duration_h": hours * profiles.dt_h,
                "temporal_resolution_h": float(profiles.dt_h), "cluster": cluster.to_dict(),
                "representation": str(cluster.get_representation()), "preserve_column_means": bool(preserve_means),
                "clustered_columns": cols, "peak_weights": pw, "peak_fallback": False}
    caught: list[str] = []
    if extreme_peak:
        extremes = ExtremeConfig(method=extreme_method, max_value=[_TOTAL])
        settings.update(n_clusters=k - 1, extremes={"method": extreme_method, "max_value": [_TOTAL]},
                        extreme_column="weighted total load "
                        "sum_c peak_weights[c] * factors[c] (helper column, minimal clustering weight)")
        data = _frame(factors, classes, np.arange(n), hours, total)
        res = _aggregate(tsam, data, k - 1, cluster, extremes, {**weights, _TOTAL: tsam.options.min_weight},
                         preserve_means, profiles.dt_h, hours, caught)
        reps, assign, centres = _unpack(res, classes, n)
        ext = list(res.clustering.extreme_cluster_indices or ())
        if (len(ext) == 1 and assign[peak_day] == ext[0] and (extreme_method == "new_cluster"
                                                               or np.sum(assign == ext[0]) == 1)):
            peak_cluster = ext[0]
        else:  # tsam skipped the extreme (peak day is a medoid): cluster the rest, append the peak
            settings["peak_fallback"] = True
            rest = np.delete(np.arange(n), peak_day)
            data = _frame(factors, classes, rest, hours)
            res = _aggregate(tsam, data, k - 1, cluster, None, weights, preserve_means, profiles.dt_h, hours, caught)
            r_reps, r_assign, r_centres = _unpack(res, classes, n - 1)
            m = len(r_centres)
            reps = {c: np.vstack([r_reps[c], factors[c][peak_day]]) for c in classes}
            assign = np.insert(r_assign, peak_day, m)
            centres = [None if x is None else int(rest[x]) for x in r_centres] + [peak_day]
            peak_cluster = m  # tsam matched the other days' energy; the peak day adds its own
        for c in classes:  # the peak day itself, bit for bit (tsam's min-max round trip leaves ~1e-16)
            reps[c][peak_cluster] = factors[c][peak_day]
        centres[peak_cluster] = peak_day
    else:
        peak_cluster = None
        settings.update(n_clusters=k, extremes=None)
        data = _frame(factors, classes, np.arange(n), hours)
        res = _aggregate(tsam, data, k, cluster, None, weights, preserve_means, profiles.dt_h, hours, caught)
        reps, assign, centres = _unpack(res, classes, n)
    clustering_s = time.perf_counter() - t0

    m = len(centres)
    members = [np.flatnonzero(assign == j) for j in range(m)]
    # in order of first appearance in the year: rd01 stands for the first day, the next name goes
    # to the first day that rd01 does not stand for, and so on
    first = [int(members[j][0]) if len(members[j]) else n for j in range(m)]
    order = sorted(range(m), key=lambda j: (first[j], j))
    width = max(2, len(str(m)))
    names, i = {}, 0
    for j in order:
        if j == peak_cluster:
            names[j] = "peak"
        else:
            i += 1
            names[j] = f"{prefix}{i:0{width}d}"
    new_index = {j: p for p, j in enumerate(order)}
    reduced = Profiles(days=tuple(names[j] for j in order),
                       weights=np.array([float(len(members[j])) for j in order]),
                       hours=hours, dt_h=float(profiles.dt_h),
                       factors={c: np.ascontiguousarray(reps[c][order]) for c in classes})
    if m < k:
        caught.append(f"tsam returned {m} representative days for k={k} (fewer distinct days than clusters)")
    info = _info(profiles, factors, reduced, np.array([new_index[j] for j in assign]),
                 [None if centres[j] is None else int(centres[j]) for j in order], pw, peak_day)
    settings["warnings"] = caught
    info["tsam"] = settings
    info["clustering_s"] = round(clustering_s, 4)
    return reduced, info


def reduce_instance(inst: Instance, k: int, **kw) -> tuple[Instance, dict]:
    """The same instance with its full-year profiles reduced to ``k`` representative days.

    Keyword arguments go to :func:`representative_days`. By default ``peak_weights`` are the
    MW each load class draws at the horizon's last year (:func:`class_peak_mw`: base-year
    MW of its loads x its growth factor), so that the kept peak day is the one with the
    highest feeder load when it matters, and ``columns`` are the classes with load (> 0 MW).
    Everything else of the instance (network, EV fleets, economics) is unchanged; EV fleets
    depend on the steps per day only, which stay the same. Returns ``(instance, info)``.
    """
    if "peak_weights" not in kw:
        kw["peak_weights"] = class_peak_mw(inst)
    if "columns" not in kw:
        cols = [c for c, w in kw["peak_weights"].items() if w > 0 and c in inst.profiles.factors]
        kw["columns"] = cols or None
    reduced, info = representative_days(inst.profiles, k, **kw)
    return dataclasses.replace(inst, profiles=reduced), info


def class_peak_mw(inst: Instance) -> dict[str, float]:
    """MW per load class of ``inst.profiles`` at the horizon's last year: the base-year sum of
    the ``p_mw`` of its loads times the class's growth factor in ``economics.end_year``
    (factor 1 without a growth entry). Classes without loads get 0 MW."""
    loads = inst.network.loads
    out = {}
    for c in inst.profiles.factors:
        mw = float(loads.loc[loads["load_class"] == c, "p_mw"].sum())
        g = inst.growth
        year = inst.economics.end_year
        if g is not None and c in getattr(g, "columns", ()) and year in g.index:
            mw *= float(g.loc[year, c])
        out[c] = mw
    return out


def full_year_profiles(series: Mapping[str, np.ndarray | Sequence[float]], hours: int = 24, *,
                       days: Sequence[str] | None = None) -> Profiles:
    """A full-year :class:`Profiles` (every day weight 1 day/year) from one series per load class.

    ``series``: class -> factors (dimensionless), either a flat sequence of ``n_days * hours``
    steps or an array ``(n_days, hours)``; ``hours``: steps per day (dividing 24, so
    ``dt_h = 24 / hours`` h); ``days``: day names (default ``d001``...). Raises ValueError
    when a series is not whole days, the classes differ in length, or values are NaN.
    """
    if not series:
        raise ValueError("no load class given: series must map at least one class to its factors")
    if not isinstance(hours, (int, np.integer)) or hours < 1 or 24 % hours:
        raise ValueError(f"hours (steps per day) must be a positive divisor of 24, got {hours!r}")
    factors, n = {}, None
    for c, s in series.items():
        try:
            a = np.asarray(s, dtype=float)
        except ValueError as e:
            raise ValueError(f"class '{c}': days of unequal length or non-numeric values ({e})") from None
        if a.ndim == 2:
            if a.shape[1] != hours:
                raise ValueError(f"class '{c}': days of {a.shape[1]} steps, expected {hours}")
            a2 = a
        elif a.ndim == 1:
            if a.size % hours:
                raise ValueError(f"class '{c}': {a.size} steps are not whole days of {hours} steps "
                                 f"({a.size / hours:.3f} days)")
            a2 = a.reshape(-1, hours)
        else:
            raise ValueError(f"class '{c}': expected a flat series or an array (days, hours), got shape {a.shape}")
        if n is not None and a2.shape[0] != n:
            raise ValueError(f"class '{c}' has {a2.shape[0]} days but '{next(iter(series))}' has {n}")
        n = a2.shape[0]
        factors[str(c)] = a2.copy()
    names = tuple(days) if days is not None else tuple(f"d{i + 1:03d}" for i in range(n))
    if len(names) != n or len(set(names)) != n:
        raise ValueError(f"days: {len(names)} names ({len(set(names))} distinct) for {n} days")
    prof = Profiles(days=names, weights=np.ones(n), hours=int(hours), dt_h=24.0 / hours, factors=factors)
    _check_finite(prof.days, factors)
    return prof


def profiles_frame(profiles: Profiles) -> pd.DataFrame:
    """The profiles as the instance CSV table: ``day, hour, weight, <class>...`` (one row per
    step; weight in days/year)."""
    n, H = len(profiles.days), profiles.hours
    df = pd.DataFrame({"day": np.repeat(np.asarray(profiles.days, dtype=object), H),
                       "hour": np.tile(np.arange(H), n),
                       "weight": np.repeat(np.asarray(profiles.weights, dtype=float), H)})
    for c, a in profiles.factors.items():
        df[c] = np.asarray(a, dtype=float).reshape(-1)
    return df


def write_profiles_csv(profiles: Profiles, path: str | Path) -> Path:
    """Write ``profiles`` as an instance profiles CSV (``day,hour,weight,<class>...``; factors
    with 17 significant digits so that a reload is exact). Returns the path."""
    path = Path(path)
    profiles_frame(profiles).to_csv(path, index=False, float_format="%.17g")
    return path


# ----------------------------------------------------------------------------- internals

def _check_year(profiles: Profiles) -> tuple[int, int, dict[str, np.ndarray]]:
    days = tuple(profiles.days)
    n, hours = len(days), profiles.hours
    if not isinstance(hours, (int, np.integer)) or hours < 1:
        raise ValueError(f"profiles.hours must be a positive number of steps per day, got {hours!r}")
    if not profiles.factors:
        raise ValueError("profiles have no load class")
    factors = {}
    for c, a in profiles.factors.items():
        try:
            arr = np.asarray(a, dtype=float)
        except ValueError:
            raise ValueError(f"class '{c}': days of unequal length (the factors are not a days x hours array)") from None
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(f"class '{c}': factors of shape {arr.shape}, expected ({n} days, {hours} steps)")
        if arr.shape[1] != hours:
            raise ValueError(f"class '{c}': days of {arr.shape[1]} steps but profiles.hours is {hours}: "
                             "every day needs the same number of steps")
        factors[c] = arr
    _check_finite(days, factors)
    w = np.asarray(profiles.weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"{w.size} weights for {n} days")
    if not np.all(w == 1.0):
        bad = int(np.argmax(w != 1.0))
        raise ValueError(f"weights must all be 1 (a full year of single days) but day '{days[bad]}' has weight "
                         f"{w[bad]:g}: these look like representative days already")
    if n not in (365, 366):
        raise ValueError(f"expected a full year of 365 or 366 days of weight 1, got {n} days")
    if abs(profiles.dt_h * hours - 24.0) > 1e-9:
        raise ValueError(f"{hours} steps of {profiles.dt_h} h do not make a 24 h day")
    return n, int(hours), factors


def _check_finite(days, factors) -> None:
    for c, a in factors.items():
        bad = ~np.isfinite(a)
        if bad.any():
            d, h = map(int, np.argwhere(bad)[0])
            raise ValueError(f"class '{c}' has {int(bad.sum())} NaN or infinite factor(s), the first on day "
                             f"'{days[d]}' (day {d + 1}) step {h}")


def _check_k(k, n: int, extreme_peak: bool) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer number of representative days, got {k!r}")  # noqa: TRY004
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1 representative day, got {k}")
    if k > n:
        raise ValueError(f"k = {k} exceeds the {n} days of the input")
    if extreme_peak and k < 2 and n > 1:
        raise ValueError("k = 1 leaves no typical day beside the kept peak day: use k >= 2 or extreme_peak=False")
    return k


def _check_columns(columns, classes) -> list[str]:
    if columns is None:
        return list(classes)
    cols = [columns] if isinstance(columns, str) else list(columns)
    unknown = [c for c in cols if c not in classes]
    if unknown or not cols:
        raise ValueError(f"columns {unknown or cols} are not load classes of the profiles ({', '.join(classes)})")
    return cols


def _peak_weights(peak_weights, classes) -> dict[str, float]:
    if peak_weights is None:
        return {c: 1.0 for c in classes}
    unknown = [c for c in peak_weights if c not in classes]
    if unknown:
        raise ValueError(f"peak_weights for {unknown}, which are not load classes ({', '.join(classes)})")
    pw = {c: float(peak_weights.get(c, 0.0)) for c in classes}
    if any(not np.isfinite(v) or v < 0 for v in pw.values()) or not any(v > 0 for v in pw.values()):
        raise ValueError(f"peak_weights must be finite, >= 0 MW and not all 0, got {pw}")
    return pw


def _frame(factors, classes, days_idx, hours, total=None) -> pd.DataFrame:
    data = {c: factors[c][days_idx].reshape(-1) for c in classes}
    if total is not None:
        data[_TOTAL] = total[days_idx].reshape(-1)
    # the dates are labels only (tsam reshapes by rows); the resolution is passed explicitly
    return pd.DataFrame(data, index=pd.RangeIndex(len(days_idx) * hours))


def _aggregate(tsam, data, n_clusters, cluster, extremes, weights, preserve_means, dt_h, hours, caught):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = tsam.aggregate(data, n_clusters, period_duration=hours * dt_h, temporal_resolution=dt_h,
                             cluster=cluster, extremes=extremes, weights={c: w for c, w in weights.items()} or None,
                             preserve_column_means=preserve_means,
                             rescale_exclude_columns=[_TOTAL] if _TOTAL in data else None)
    caught.extend(str(w.message) for w in rec)
    return res


def _unpack(res, classes, n):
    reps_df = res.cluster_representatives
    m = res.n_clusters
    reps = {c: reps_df[c].unstack("timestep").sort_index().to_numpy(dtype=float) for c in classes}
    assign = np.asarray(res.cluster_assignments, dtype=int)
    if assign.shape != (n,) or any(reps[c].shape[0] != m for c in classes):
        raise RuntimeError(f"unexpected tsam result: {assign.shape} assignments, {m} clusters")
    centres = list(res.clustering.cluster_centers or ())
    centres = [int(x) if x is not None else None for x in centres] + [None] * (m - len(centres))
    return reps, assign, centres[:m]


def _info(profiles, factors, reduced, assign, centres, pw, peak_day) -> dict:
    classes = list(factors)
    recon = {c: reduced.factors[c][assign] for c in classes}
    rmse = {c: float(np.sqrt(np.mean((recon[c] - factors[c]) ** 2))) for c in classes}
    overall = float(np.sqrt(np.mean([np.mean((recon[c] - factors[c]) ** 2) for c in classes])))
    tot_in = sum(pw[c] * factors[c] for c in classes)
    tot_re = sum(pw[c] * recon[c] for c in classes)
    peak_in = float(tot_in.max())
    energy = {}
    for c in classes:
        e_in = float(factors[c].sum())
        e_re = float((reduced.weights[:, None] * reduced.factors[c]).sum())
        energy[c] = (e_re - e_in) / e_in if e_in else e_re
    days = list(profiles.days)
    names = list(reduced.days)
    return {"k": len(names), "n_days": len(days),
            "rmse": rmse, "rmse_overall": overall,
            "rmse_total": float(np.sqrt(np.mean((tot_re - tot_in) ** 2))),
            "peak_error": (float(tot_re.max()) - peak_in) / peak_in if peak_in else 0.0,
            "energy_error": energy,
            "peak_day": None if peak_day is None else days[peak_day],
            "mapping": {d: names[a] for d, a in zip(days, assign)},
            "assignment": [names[a] for a in assign],
            "source_day": {names[j]: (None if centres[j] is None else days[centres[j]]) for j in range(len(names))},
            "weights": {d: float(w) for d, w in zip(names, reduced.weights)}}
