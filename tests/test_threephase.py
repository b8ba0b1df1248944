"""The three-phase linear model (flexplan.threephase) against pandapower's unbalanced AC power
flow on the IEEE European LV test feeder, and its balanced limit against LinDistFlow."""
from __future__ import annotations

import numpy as np
import pytest

from flexplan.errors import InstanceError
from flexplan.threephase import GAMMA, feeder_from_pandapower, flow_matrices, phase_matrix, voltages_3ph

pytestmark = pytest.mark.validation

PH = ["vm_a_pu", "vm_b_pu", "vm_c_pu"]


@pytest.fixture(scope="module", params=["on_peak_566", "off_peak_1"])
def european_lv(request):
    import pandapower.networks as pn
    from pandapower.pf.runpp_3ph import runpp_3ph

    net = pn.ieee_european_lv_asymmetric(request.param)
    runpp_3ph(net)
    return request.param, net


def test_per_phase_voltages_match_runpp_3ph(european_lv):
    """906 LV buses, 55 single-phase loads: every phase of every bus within 0.005 pu of the
    AC result (measured: 0.0012 pu at the on-peak snapshot, 2e-5 off-peak)."""
    case, net = european_lv
    v = voltages_3ph(net)
    ref = net.res_bus_3ph.loc[v.index, PH].to_numpy()
    err = np.abs(v[PH].to_numpy() - ref)
    print(f"{case}: max |linear - runpp_3ph| = {err.max():.5f} pu; lowest phase voltage {v[PH].min().min():.5f} "
          f"(AC {ref.min():.5f})")
    assert err.max() < 0.005
    # the unbalance is real: at the on-peak snapshot the phases differ by more than the error
    if case == "on_peak_566":
        spread = ref.max(axis=1) - ref.min(axis=1)
        assert spread.max() > 5 * err.max()
        assert np.argmin(v[PH].min().to_numpy()) == np.argmin(ref.min(axis=0))  # the same phase sags most


def test_balanced_flows_give_the_positive_sequence_drop():
    """Equal flows on the three phases see r1 and x1 (the row sums of M_P, M_Q), whatever z0:
    the balanced LinDistFlow."""
    z1, z0 = complex(0.3, 0.08), complex(1.2, 0.1)
    m_p, m_q = flow_matrices(phase_matrix(z1, z0), z_base=1.0)
    assert m_p.sum(axis=1) == pytest.approx([-2 * z1.real] * 3, abs=1e-12)
    assert m_q.sum(axis=1) == pytest.approx([-2 * z1.imag] * 3, abs=1e-12)
    # a single-phase flow on phase a drops phase a by 2 Re(zs conj) and moves b and c through zm
    zs, zm = (z0 + 2 * z1) / 3, (z0 - z1) / 3
    assert m_p[0, 0] == pytest.approx(-2 * zs.real)
    assert m_p[1, 0] == pytest.approx(-2 * (GAMMA[1, 0] * np.conj(zm)).real)


def test_balanced_loads_give_the_balanced_lindistflow(tmp_path):
    """The IEEE European LV feeder with every load spread evenly over its phases: the three
    phases agree, and equal the balanced LinDistFlow recursion run here on the
    positive-sequence impedances (v_j² = v_i² − 2 (r1 P + x1 Q) / z_base per branch)."""
    import pandapower.networks as pn

    net = pn.ieee_european_lv_asymmetric("on_peak_566")
    al = net.asymmetric_load
    p_tot = al[["p_a_mw", "p_b_mw", "p_c_mw"]].sum(axis=1)
    q_tot = al[["q_a_mvar", "q_b_mvar", "q_c_mvar"]].sum(axis=1)
    for ph in "abc":
        al[f"p_{ph}_mw"], al[f"q_{ph}_mvar"] = p_tot / 3, q_tot / 3
    v = voltages_3ph(net)
    assert np.ptp(v[PH].to_numpy(), axis=1).max() < 1e-12
    # the balanced recursion, independently: three-phase totals, positive sequence, bus by bus
    f = feeder_from_pandapower(net)
    pos = {b: i for i, b in enumerate(f.names)}
    total, qtot = np.zeros(len(f.names)), np.zeros(len(f.names))  # MW, Mvar of the three phases
    np.add.at(total, al["bus"].map(pos).to_numpy(), p_tot.to_numpy())
    np.add.at(qtot, al["bus"].map(pos).to_numpy(), q_tot.to_numpy())
    for i in range(len(f.names) - 1, 0, -1):
        total[f.parent[i]] += total[i]
        qtot[f.parent[i]] += qtot[i]
    z1 = {}
    for r in net.line.itertuples():
        z1[r.to_bus] = (complex(r.r_ohm_per_km, r.x_ohm_per_km) * r.length_km, 0.416)
    t = net.trafo.iloc[0]
    zb = t.vn_lv_kv ** 2 / t.sn_mva
    rr = t.vkr_percent / 100 * zb
    z1[int(t.lv_bus)] = (complex(rr, np.sqrt((t.vk_percent / 100 * zb) ** 2 - rr ** 2)), t.vn_lv_kv)
    y = np.empty(len(f.names))
    y[0] = net.ext_grid.vm_pu.iloc[0] ** 2
    for i in range(1, len(f.names)):
        z, kv = z1[f.names[i]]
        y[i] = y[f.parent[i]] - 2 * (z.real * total[i] + z.imag * qtot[i]) / kv ** 2
    assert v["vm_a_pu"].to_numpy() == pytest.approx(np.sqrt(y), abs=1e-8)


def test_meshed_or_incomplete_networks_are_refused():
    import pandapower as pp
    import pandapower.networks as pn

    net = pn.ieee_european_lv_asymmetric("off_peak_1")
    pp.create_line_from_parameters(net, 5, 40, 0.01, 0.4, 0.07, 0, 0.4, r0_ohm_per_km=1.5, x0_ohm_per_km=0.08,
                                   c0_nf_per_km=0.0)
    with pytest.raises(InstanceError, match="not radial"):
        feeder_from_pandapower(net)
    net = pn.ieee_european_lv_asymmetric("off_peak_1")
    net.line["r0_ohm_per_km"] = np.nan
    with pytest.raises(InstanceError, match="r0_ohm_per_km"):
        feeder_from_pandapower(net)
