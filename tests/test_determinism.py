"""The same instance and options give the same plan and objective, run after run."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_recipes import REINF

pytestmark = pytest.mark.integration

SCRIPT = """
import json, sys
import flexplan as fp
res = fp.solve(fp.build_model(sys.argv[1], "reinforce_only"), mip_gap=0.0, threads=int(sys.argv[2]))
print(json.dumps(dict(status=res.status, objective=repr(res.objective_eur),
                      builds=sorted(f"{b.year} {b.asset} {b.type}" for b in res.builds.itertuples()),
                      n=res.size["binaries"])))
"""


def test_same_instance_same_plan_in_separate_processes(feeder):
    lines = [("l1", "b0", "b1", 0.4, 0.2, 3.0, 1.0), ("l2", "b1", "b2", 4.0, 2.0, 1.0, 1.0),
             ("l3", "b1", "b3", 3.0, 1.5, 0.8, 1.0), ("l4", "b3", "b4", 3.0, 1.5, 0.6, 1.0)]
    folder = feeder("det", lines=lines, loads=[("b1", 0.9, 0.3), ("b2", 1.2, 0.4), ("b3", 0.5, 0.2),
                                               ("b4", 0.6, 0.2)],
                    reinforcement=REINF, extra_network="substation_mva = 2.5", limits="v_min_pu = 0.95",
                    growth="annual_rate = 0.04", profile=[("day", 365, [0.6, 0.9, 1.2, 1.0])],
                    economics="base_year = 2025\nend_year = 2034\nstages = [2025, 2028, 2031]")
    runs = [json.loads(subprocess.run([sys.executable, "-c", SCRIPT, str(folder), "0"], check=True,
                                      capture_output=True, text=True, cwd=Path(__file__).parent).stdout)
            for _ in range(2)]
    assert runs[0]["status"] == "optimal" and runs[0]["n"] > 0 and runs[0]["builds"]
    assert runs[0] == runs[1]  # objective compared as its exact repr
