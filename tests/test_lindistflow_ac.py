"""LinDistFlow on case33bw at nominal load against independent references:
the closed-form LinDistFlow recursion (numpy) and pandapower's AC power flow."""
import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

import flexplan as fp
from conftest import case33_snapshot

pytestmark = pytest.mark.validation


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    folder = case33_snapshot(tmp_path_factory.mktemp("c33"))
    inst = fp.load_instance(folder)
    res = fp.solve(fp.build_model(inst, "reinforce_only"))
    assert res.status == "optimal"
    v = res.voltages.set_index("bus")["v_pu"]
    return inst, res, v


def test_matches_closed_form_lindistflow(solved):
    """v_j = v_i - 2 (r P + x Q) with P, Q the loads below each line: exact for LinDistFlow."""
    inst, res, v = solved
    net = inst.network
    P = np.zeros(net.n_buses)
    Q = np.zeros(net.n_buses)
    for ld in net.loads.itertuples():
        P[ld.bus] += ld.p_mw
        Q[ld.bus] += ld.q_mvar
    below = net.downstream_buses()
    v2 = np.zeros(net.n_buses)
    v2[net.slack["bus"].iloc[0]] = 1.0
    br = net.branches
    for bus in net.topological_order():
        k = net.parent_branch()[bus]
        if k >= 0:
            i = br.at[k, "from_bus"]
            v2[bus] = v2[i] - 2 * (br.at[k, "r_pu"] * P[below[k]].sum() + br.at[k, "x_pu"] * Q[below[k]].sum())
    expected = np.sqrt(v2)
    got = v.reindex(net.buses["name"]).to_numpy()
    assert np.max(np.abs(got - expected)) < 1e-6


def test_against_pandapower_ac(solved):
    inst, res, v = solved
    net = pn.case33bw()
    pp.runpp(net)
    ac = net.res_bus.vm_pu
    ldf = v.reindex([str(i) for i in ac.index]).to_numpy()
    err = ldf - ac.to_numpy()
    # the reference figures: lossless LinDistFlow min 0.9159 pu vs AC 0.9131 pu at bus 17
    assert ac.idxmin() == 17 and ac.min() == pytest.approx(0.91309, abs=1e-4)
    assert int(np.argmin(ldf)) == 17
    assert ldf.min() == pytest.approx(0.9159, abs=2e-4)
    # lossless: LinDistFlow is optimistic everywhere, by at most ~0.0028 pu
    assert err.min() > -1e-9
    assert err.max() == pytest.approx(0.0028, abs=5e-4)
    print(f"LinDistFlow vs AC on case33bw: max |error| {np.abs(err).max():.5f} pu, mean {np.abs(err).mean():.5f} pu")


def test_flows_and_loading_reported(solved):
    inst, res, v = solved
    head = res.line_loading.set_index("line").loc["line_0"]
    # lossless: the head line carries the whole load
    assert head["p_mw"] == pytest.approx(inst.network.loads["p_mw"].sum(), rel=1e-6)
    assert head["q_mvar"] == pytest.approx(inst.network.loads["q_mvar"].sum(), rel=1e-6)
    assert res.violations == {"max_voltage_deviation_pu": 0.0, "max_overload_pct": 0.0, "unserved_mwh": 0.0}
