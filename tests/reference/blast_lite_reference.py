#!/usr/bin/env python
"""Reference capacity-fade figures from NREL's BLAST-Lite, for tests/test_ageing.py.

BLAST-Lite pins numpy < 2 and an old ``packaging``, so it cannot be installed beside
pandapower: it runs in a virtual environment of its own, and its figures are kept here as
``blast_lite_reference.csv``.  To make them again (from the repository root):

    python -m venv /tmp/blast-venv
    /tmp/blast-venv/bin/pip install blast-lite==1.1.1
    /tmp/blast-venv/bin/python tests/reference/blast_lite_reference.py > tests/reference/blast_lite_reference.csv
    /tmp/blast-venv/bin/python tests/reference/blast_lite_reference.py ocv > tests/reference/blast_lite_nmc_ocv.csv

Cells: ``Nmc111_Gr_Sanyo2Ah_Battery`` (Schmalstieg et al. 2014, the equations flexplan's NMC
uses) and ``Lfp_Gr_SonyMurata3Ah_Battery`` (NREL's fit to the Naumann 2018/2020 Sony/Murata
data: the same cell as flexplan's LFP, a different functional form).  25 °C, hourly SOC
series, one ``update_battery_state`` call per day on the 25 samples of that day (both ends),
which is how BLAST-Lite aggregates stress; ``simulate_battery_life`` would chunk 25-hour
days and end after 365.46 days.

Profiles: constant SOC 0.1 / 0.2 / 0.3 / 0.5 / 0.7 / 0.9 for a year; one full cycle a day
(1.0 -> 0.0 -> 1.0) at 1C (1 h down, 1 h up) and at 0.5C (2 h down, 2 h up), rest at SOC 1.0,
for a year; and
the same 1C cycle day after day until the cycling part of the loss reaches 20 %
(``profile = life_1C``: ``efc`` is then the full equivalent cycles to that point).

``ocv``: the Sanyo cell's open-circuit voltage (``calc_voltage``, V) and calendar stress
``alpha_cap`` (fraction per day^0.75, as BLAST-Lite computes it in ``update_rates`` for one
day at that constant SOC) at SOC 0, 0.05, ..., 1, at 25 °C.
"""
import sys
from importlib.metadata import version

import numpy as np
from blast.models import Lfp_Gr_SonyMurata3Ah_Battery, Nmc111_Gr_Sanyo2Ah_Battery

T_C = 25.0
MODELS = {"nmc": Nmc111_Gr_Sanyo2Ah_Battery, "lfp": Lfp_Gr_SonyMurata3Ah_Battery}


def day(profile):
    """25 hourly SOC samples of one day (hour 24 = hour 0 of the next)."""
    if profile.startswith("cal_soc"):
        d = np.full(25, float(profile[len("cal_soc"):]))
    else:
        d = np.ones(25)
        if profile in ("cyc_1C", "life_1C"):
            d[1] = 0.0
        elif profile == "cyc_0.5C":
            d[1:4] = [0.5, 0.0, 0.5]
        else:
            raise ValueError(profile)
    return d


def losses(b):
    s = b.states
    if "qLoss_t" in s:  # Sanyo / Schmalstieg
        return float(s["qLoss_t"][-1]), float(s["qLoss_EFC"][-1])
    return float(s["qLoss_LLI_t"][-1]), float(s["qLoss_LLI_EFC"][-1] + s["qLoss_BreakIn_EFC"][-1])


def run(model, profile, days=365, stop_cycling_loss=None):
    b = model()
    soc = day(profile)
    temp = np.full(25, T_C)
    for d in range(days):
        b.update_battery_state((24 * d + np.arange(25)) * 3600.0, soc, temp)
        if stop_cycling_loss is not None and losses(b)[1] >= stop_cycling_loss:
            break
    cal, cyc = losses(b)
    return float(b.stressors["t_days"][-1]), cal, cyc, float(b.stressors["efc"][-1])


def ocv_table():
    print(f"# blast-lite {version('blast-lite')} (numpy {np.__version__}); "
          "command: python tests/reference/blast_lite_reference.py ocv (in a blast-lite venv)")
    print("soc,ocv_v,alpha_cap_per_day075,temperature_c")
    for soc in np.round(np.linspace(0.0, 1.0, 21), 2):
        b = Nmc111_Gr_Sanyo2Ah_Battery()
        b.update_battery_state(np.arange(25) * 3600.0, np.full(25, soc), np.full(25, T_C))
        print(f"{soc:.2f},{float(b.calc_voltage(soc)):.10f},{float(b.rates['alpha_cap'][-1]):.10e},{T_C}")
    return 0


def main():
    if sys.argv[1:] == ["ocv"]:
        return ocv_table()
    print(f"# blast-lite {version('blast-lite')} (numpy {np.__version__}); "
          "command: python tests/reference/blast_lite_reference.py (in a blast-lite venv)")
    print("chemistry,model,profile,days,temperature_c,q_loss_calendar,q_loss_cycling,efc")
    for chem, model in MODELS.items():
        for profile in ("cal_soc0.1", "cal_soc0.2", "cal_soc0.3", "cal_soc0.5", "cal_soc0.7", "cal_soc0.9",
                        "cyc_1C", "cyc_0.5C"):
            t, cal, cyc, efc = run(model, profile)
            print(f"{chem},{model.__name__},{profile},{t:.6f},{T_C},{cal:.10f},{cyc:.10f},{efc:.6f}")
        t, cal, cyc, efc = run(model, "life_1C", days=60 * 365, stop_cycling_loss=0.2)
        print(f"{chem},{model.__name__},life_1C,{t:.6f},{T_C},{cal:.10f},{cyc:.10f},{efc:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
