"""Reduce a full-year profiles CSV (365/366 days of weight 1) to k representative days with tsam.

    python instances/tools/reduce_profiles.py IN OUT.csv -k 12 [--no-peak] [--method hierarchical]
           [--extreme-method append|new_cluster] [--peak-weights res=5.0,com=1.2] [--info info.json]

IN is a profiles CSV (``day,hour,weight,<class>...``) or an instance folder (its profiles, with
the peak weighted by each class's MW at the horizon's end, see ``flexplan.reduce.reduce_instance``).
When the folder's own profiles are representative days already (as in the shipped SimBench
instances), its full-year file is reduced instead: ``--year-file`` (default
``profiles_year.csv`` beside instance.toml).
OUT is written in the same CSV format, ready to be an instance's ``[profiles] file``. The
reduction's accuracy (RMSE, peak error, energy error) goes to stderr, and with ``--info`` the
whole ``info`` dict (day-of-year mapping, tsam settings) to a JSON file.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from flexplan.errors import FlexplanError
from flexplan.instance.model import Profiles
from flexplan.reduce import reduce_instance, representative_days, write_profiles_csv


def read_profiles_csv(path: Path) -> Profiles:
    df = pd.read_csv(path)
    missing = {"day", "hour", "weight"} - set(df.columns)
    if missing:
        raise SystemExit(f"{path}: missing column(s) {sorted(missing)} (expected day,hour,weight,<class>...)")
    df["day"] = df["day"].astype(str)
    classes = [c for c in df.columns if c not in ("day", "hour", "weight")]
    days = list(dict.fromkeys(df["day"]))
    sizes = df.groupby("day", sort=False).size()
    if sizes.nunique() != 1:
        raise SystemExit(f"{path}: days of unequal length ({sizes.min()} to {sizes.max()} rows)")
    hours = int(sizes.iloc[0])
    df = df.set_index("day").loc[days].reset_index()
    weights = df.groupby("day", sort=False)["weight"].first().loc[days].to_numpy(dtype=float)
    factors = {c: df[c].to_numpy(dtype=float).reshape(len(days), hours) for c in classes}
    return Profiles(days=tuple(days), weights=weights, hours=hours, dt_h=24.0 / hours, factors=factors)


def _full_year(inst, folder: Path, year_file: str):
    """``inst`` with full-year profiles: its own when they are a year of single days, else
    those of ``year_file`` in ``folder`` (checked like the instance's profiles, the same
    steps per day and load classes)."""
    import dataclasses

    from flexplan.instance.loader import _profiles
    from flexplan.instance.tables import data_path

    if np.all(inst.profiles.weights == 1.0):
        return inst
    shown = str(folder / "instance.toml")
    path = data_path(folder, year_file, shown, "--year-file")
    if not path.is_file():
        raise ValueError(f"{folder}: its profiles are {len(inst.profiles.days)} representative days already and "
                         f"there is no full-year file {year_file} beside instance.toml: give a full-year profiles "
                         "CSV as IN, or its name in the folder with --year-file")
    year = _profiles(path, str(path))
    missing = sorted(set(inst.profiles.factors) - set(year.factors))
    if missing or year.hours != inst.profiles.hours:
        raise ValueError(f"{path}: does not match the instance's profiles (steps per day {year.hours} vs "
                         f"{inst.profiles.hours}; missing classes: {', '.join(missing) or 'none'})")
    return dataclasses.replace(inst, profiles=year)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, help="profiles CSV or instance folder")
    p.add_argument("out", type=Path, help="reduced profiles CSV to write")
    p.add_argument("-k", type=int, required=True, help="number of representative days (peak day included)")
    p.add_argument("--no-peak", action="store_true", help="do not keep the peak day as its own period")
    p.add_argument("--method", default="hierarchical", help="tsam clustering method (default hierarchical)")
    p.add_argument("--extreme-method", default="append", choices=["append", "new_cluster"])
    p.add_argument("--peak-weights", default=None, help="class=MW,... weights of the total whose peak is kept")
    p.add_argument("--info", type=Path, default=None, help="write the info dict as JSON here")
    p.add_argument("--year-file", default="profiles_year.csv", help="with an instance folder whose profiles are "
                   "representative days: the full-year profiles file in it (default profiles_year.csv)")
    a = p.parse_args(argv)
    kw = {"extreme_peak": not a.no_peak, "method": a.method, "extreme_method": a.extreme_method}
    if a.peak_weights:
        kw["peak_weights"] = {c: float(v) for c, v in (item.split("=") for item in a.peak_weights.split(","))}
    try:
        if a.source.is_dir():
            import flexplan as fp
            inst = _full_year(fp.load_instance(a.source), a.source, a.year_file)
            inst, info = reduce_instance(inst, a.k, **kw)
            reduced = inst.profiles
        else:
            reduced, info = representative_days(read_profiles_csv(a.source), a.k, **kw)
    except (ValueError, FlexplanError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_profiles_csv(reduced, a.out)
    print(f"{info['n_days']} days -> {info['k']} ({', '.join(f'{d}:{w:g}' for d, w in info['weights'].items())})\n"
          f"rmse {info['rmse_overall']:.4g} ({', '.join(f'{c} {v:.4g}' for c, v in info['rmse'].items())}), "
          f"peak error {info['peak_error']:+.3g} (peak day {info['peak_day']}), energy error "
          f"{max(abs(v) for v in info['energy_error'].values()):.2g}", file=sys.stderr)
    if a.info:
        a.info.write_text(json.dumps(info, indent=1, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
