"""Solver options out of range are refused by name (the command line with exit 2, the
library with OptionError); HiGHS refusing an option is an error, never ignored."""
from __future__ import annotations

import math

import pytest

import flexplan as fp
from flexplan.cli import main
from flexplan.errors import OptionError, SolverError
from flexplan.solve import SolveOptions, solve_model

from test_recipes import TWO_LINES

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("argv,option", [
    (["solve", "X", "--time-limit", "nan"], "--time-limit"),
    (["solve", "X", "--time-limit", "-5"], "--time-limit"),
    (["solve", "X", "--mip-gap", "nan"], "--mip-gap"),
    (["solve", "X", "--mip-gap", "inf"], "--mip-gap"),
    (["solve", "X", "--threads", "-3"], "--threads"),
    (["frameworks", "X", "--time-limit", "nan"], "--time-limit"),
    (["sweep", "X", "--param", "a=1", "--mip-gap", "nan"], "--mip-gap"),
    (["sweep", "X", "--param", "a=1", "--workers", "0"], "--workers"),
    (["breakeven", "X", "--hi", "nan"], "--hi"),
    (["breakeven", "X", "--tol", "0"], "--tol"),
    (["value-curve", "X", "--time-limit", "0"], "--time-limit"),
    (["diagnose", "X", "--time-limit", "inf"], "--time-limit"),
    (["demo", "--time-limit", "nan"], "--time-limit"),
])
def test_command_line_refuses_options_out_of_range(argv, option, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be" in err and "got '" in err


@pytest.mark.parametrize("kw,name", [(dict(time_limit=math.nan), "time_limit"), (dict(time_limit=0), "time_limit"),
                                     (dict(mip_gap=math.nan), "mip_gap"), (dict(mip_gap=-0.1), "mip_gap"),
                                     (dict(threads=-3), "threads"), (dict(threads=1.5), "threads"),
                                     (dict(seed=-1), "seed")])
def test_solve_options_refuse_values_out_of_range(kw, name):
    with pytest.raises(OptionError, match=f"^{name} must be"):
        SolveOptions(**kw)
    assert SolveOptions(time_limit=10, mip_gap=0, threads=2).validate().threads == 2


def test_library_solve_refuses_nan_and_highs_refusals_are_errors(feeder):
    pm = fp.build_model(fp.load_instance(feeder("o", lines=TWO_LINES, loads=[("b1", 0.3, 0.1)])), "reinforce_only")
    with pytest.raises(OptionError, match="time_limit"):
        fp.solve(pm, time_limit=math.nan)
    with pytest.raises(SolverError, match=r"HiGHS refused option random_seed=1099511627776"):
        solve_model(pm.model, SolveOptions(seed=2**40))  # HiGHS takes seeds up to 2^31 - 1
    with pytest.raises(SolverError, match=r"HiGHS refused option no_such_option=1"):
        fp.solve(pm, no_such_option=1)
    assert fp.solve(pm, time_limit=60).status == "optimal"
