"""Three-phase linearised power flow on radial feeders (LinDist3Flow; docs/formulation.md §2.12).

LV feeders are unbalanced: most home chargers are single-phase, and one phase's voltage can
break its limit while the balanced total looks fine.  This module holds the three-phase
linear model that the planning formulation builds on, and evaluates it for a pandapower
network, so that it can be checked against pandapower's unbalanced AC power flow
(``runpp_3ph``).

**Phase impedances.**  A four-wire line with a grounded neutral (Kron-reduced), or a
transformer seen from its wye side, given by its positive- and zero-sequence impedances
``z1``, ``z0`` (Ω), has the phase impedance matrix

    Z_abc = [[zs, zm, zm], [zm, zs, zm], [zm, zm, zs]],   zs = (z0 + 2 z1) / 3,  zm = (z0 − z1) / 3.

**Voltage drop.**  With ``Y_i`` the squared phase-to-neutral voltage magnitudes of bus ``i``
(per unit, a 3-vector), ``S = P + jQ`` the per-phase power flowing from ``i`` to ``j`` (MW,
Mvar), and the phases taken 120° apart (``Γ_φk = exp(j(θ_φ − θ_k))``, θ = 0, −120°, +120°),

    Y_j = Y_i − 2 Re[(Γ ∘ Z̄) S] = Y_i + M_P P + M_Q Q,
    M_P = −2 Re(Γ ∘ Z̄) / z_base,   M_Q = 2 Im(Γ ∘ Z̄) / z_base,

with ``z_base = V_LL² / S_base`` per phase and S in units of ``S_base / 3``: the classical
LinDist3Flow of Sankur et al. (2016) / Arnold et al. (2016), losses neglected.  For equal
flows on the three phases the row sums of ``M_P`` and ``M_Q`` are ``−2 r1`` and ``−2 x1``: the
balanced LinDistFlow with the positive-sequence impedance, which ``tests/test_threephase.py``
checks together with ``runpp_3ph`` on the IEEE European LV test feeder.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PHASES = ("a", "b", "c")
THETA = np.array([0.0, -2.0 * np.pi / 3.0, 2.0 * np.pi / 3.0])
GAMMA = np.exp(1j * (THETA[:, None] - THETA[None, :]))


def phase_matrix(z1: complex, z0: complex) -> np.ndarray:
    """Z_abc (Ω, 3×3) of a branch with positive- and zero-sequence impedances ``z1``, ``z0``."""
    zs, zm = (z0 + 2.0 * z1) / 3.0, (z0 - z1) / 3.0
    return np.full((3, 3), zm, dtype=complex) + np.eye(3) * (zs - zm)


def flow_matrices(z_abc: np.ndarray, z_base: float) -> tuple[np.ndarray, np.ndarray]:
    """(M_P, M_Q): per unit of squared voltage per unit of per-phase power (S_base / 3)."""
    a = GAMMA * np.conj(z_abc) / z_base
    return -2.0 * a.real, 2.0 * a.imag


def angle_matrices(z_abc: np.ndarray, z_base: float) -> tuple[np.ndarray, np.ndarray]:
    """(N_P, N_Q): the change of each phase's voltage angle (rad, against its balanced
    position) per unit of per-phase power: θ_j = θ_i + N_P P + N_Q Q, from the imaginary part
    of the relative drop Σ_k Z_φk conj(S_k) conj(Γ_φk) (|V| ≈ 1)."""
    bm = z_abc * np.conj(GAMMA) / z_base
    return -bm.imag, bm.real


def unbalance_factor(vm: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
    """|V₂| / |V₁| (%) from per-phase magnitudes ``vm`` (n × 3, pu) and angle deviations from
    the balanced positions ``theta`` (rad; None: zero, the magnitudes alone, which overstates
    it where the angles move: 2.0 % instead of 0.73 % on the IEEE European LV feeder)."""
    alpha = np.exp(2j * np.pi / 3)
    e = vm * np.exp(1j * (theta if theta is not None else 0.0))  # phasors divided by their balanced rotation
    v2 = (e[:, 0] + alpha * e[:, 1] + alpha ** 2 * e[:, 2]) / 3.0
    return 100.0 * np.abs(v2) / np.abs(e.mean(axis=1))


@dataclass
class Feeder3:
    """A radial three-phase feeder: buses in an order where each bus comes after its parent;
    ``parent[i]`` (−1 at the slack), and per bus the (M_P, M_Q) of the branch from its parent
    (3×3 each; zeros at the slack); ``slack_vm_pu``; ``names``."""

    names: list
    parent: np.ndarray
    m_p: np.ndarray  # (n, 3, 3)
    m_q: np.ndarray  # (n, 3, 3)
    slack_vm_pu: float
    s_base_mva: float
    n_p: np.ndarray | None = None  # (n, 3, 3): angle change per unit of flow
    n_q: np.ndarray | None = None

    def solve(self, p_mw: np.ndarray, q_mvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-phase voltage magnitudes (pu) and angle deviations from the balanced positions
        (rad), n × 3 each, for per-phase withdrawals ``p_mw``, ``q_mvar`` (n × 3, MW and Mvar per
        phase; negative for generation), losses neglected."""
        n = len(self.names)
        scale = 3.0 / self.s_base_mva  # per-phase MW -> per unit of S_base / 3
        P, Q = np.asarray(p_mw, float) * scale, np.asarray(q_mvar, float) * scale
        # the flow into each bus from its parent: its own load plus everything below it
        for i in range(n - 1, 0, -1):
            P[self.parent[i]] += P[i]
            Q[self.parent[i]] += Q[i]
        y, th = np.empty((n, 3)), np.zeros((n, 3))
        y[0] = self.slack_vm_pu ** 2
        for i in range(1, n):
            y[i] = y[self.parent[i]] + self.m_p[i] @ P[i] + self.m_q[i] @ Q[i]
            if self.n_p is not None:
                th[i] = th[self.parent[i]] + self.n_p[i] @ P[i] + self.n_q[i] @ Q[i]
        return np.sqrt(np.maximum(y, 0.0)), th

    def voltages(self, p_mw: np.ndarray, q_mvar: np.ndarray) -> np.ndarray:
        """Per-phase voltage magnitudes (pu, n × 3): :meth:`solve`'s first part."""
        return self.solve(p_mw, q_mvar)[0]


def feeder_from_pandapower(net, s_base_mva: float = 1.0) -> Feeder3:
    """The three-phase linear model of a radial pandapower network with one external grid:
    lines from ``r/x_ohm_per_km`` and ``r0/x0_ohm_per_km``, two-winding transformers from
    ``vk/vkr_percent`` and ``vk0/vkr0_percent`` (impedances referred to the low-voltage side).
    A meshed network, a missing zero-sequence column or a second external grid is an error
    naming it."""
    from .errors import InstanceError, Problem

    where = f"pandapower:{getattr(net, 'name', '') or 'network'}"
    if len(net.ext_grid) != 1:
        raise InstanceError(Problem(where, f"three-phase model: the network needs exactly one external grid, it has "
                                           f"{len(net.ext_grid)}", field="ext_grid"))
    for col in ("r0_ohm_per_km", "x0_ohm_per_km"):
        if len(net.line) and (col not in net.line or net.line[col].isna().any()):
            raise InstanceError(Problem(where, "three-phase model: lines need zero-sequence data (Ω/km)",
                                        field=f"line.{col}"))
    edges = []  # (from bus, to bus, z_abc Ω, v_ll kV at the 'to' side)
    vn = net.bus["vn_kv"]
    for r in net.line[net.line["in_service"]].itertuples():
        k = r.length_km / r.parallel
        z1, z0 = complex(r.r_ohm_per_km, r.x_ohm_per_km) * k, complex(r.r0_ohm_per_km, r.x0_ohm_per_km) * k
        edges.append((int(r.from_bus), int(r.to_bus), phase_matrix(z1, z0), float(vn[r.to_bus]), f"line {r.name}"))
    for r in net.trafo[net.trafo["in_service"]].itertuples():
        for col in ("vk0_percent", "vkr0_percent"):
            if pd.isna(getattr(r, col, np.nan)):
                raise InstanceError(Problem(where, f"three-phase model: transformer {r.Index} ('{r.name}') has no "
                                            "zero-sequence short-circuit voltage", field=f"trafo.{col}"))
        zb = r.vn_lv_kv ** 2 / r.sn_mva  # Ω at the low-voltage side

        def z(vk, vkr):
            rr = vkr / 100.0 * zb
            return complex(rr, np.sqrt(max((vk / 100.0 * zb) ** 2 - rr ** 2, 0.0)))

        edges.append((int(r.hv_bus), int(r.lv_bus), phase_matrix(z(r.vk_percent, r.vkr_percent),
                                                                   z(r.vk0_percent, r.vkr0_percent)) / r.parallel,
                      float(r.vn_lv_kv), f"transformer {r.name}"))
    slack = int(net.ext_grid["bus"].iloc[0])
    adj: dict[int, list] = {}
    for e in edges:
        adj.setdefault(e[0], []).append(e)
        adj.setdefault(e[1], []).append(e)
    order, parent, branch = [slack], {slack: -1}, {slack: None}
    k = 0
    while k < len(order):
        b = order[k]
        k += 1
        for e in adj.get(b, ()):
            other = e[1] if e[0] == b else e[0]
            if other == parent[b] and branch[b] is e:
                continue
            if other in parent:
                raise InstanceError(Problem(where, f"three-phase model: the network is not radial ({e[4]} closes a "
                                            "loop)"))
            parent[other], branch[other] = b, e
            order.append(other)
    missing = sorted(set(net.bus.index[net.bus["in_service"]]) - set(order))
    if missing:
        raise InstanceError(Problem(where, f"three-phase model: buses {missing[:5]} are not connected to the external "
                                    "grid", field="bus"))
    pos = {b: i for i, b in enumerate(order)}
    n = len(order)
    m_p, m_q, n_p, n_q = (np.zeros((n, 3, 3)) for _ in range(4))
    for b in order[1:]:
        _, _, z_abc, v_ll, _ = branch[b]
        m_p[pos[b]], m_q[pos[b]] = flow_matrices(z_abc, v_ll ** 2 / s_base_mva)
        n_p[pos[b]], n_q[pos[b]] = angle_matrices(z_abc, v_ll ** 2 / s_base_mva)
    return Feeder3(names=order, parent=np.array([pos[parent[b]] if parent[b] >= 0 else -1 for b in order]),
                   m_p=m_p, m_q=m_q, slack_vm_pu=float(net.ext_grid["vm_pu"].iloc[0]), s_base_mva=s_base_mva,
                   n_p=n_p, n_q=n_q)


def phase_loads(net, feeder: Feeder3) -> tuple[np.ndarray, np.ndarray]:
    """Per-phase withdrawals (MW, Mvar; n × 3 in the feeder's bus order) of a pandapower net:
    its wye ``asymmetric_load`` per phase, its balanced ``load`` split in thirds, less its
    ``asymmetric_sgen`` and ``sgen`` the same way (``scaling`` applied).  Delta-connected
    asymmetric loads are an error (the model has phase-to-neutral loads only)."""
    from .errors import InstanceError, Problem

    pos = {b: i for i, b in enumerate(feeder.names)}
    P, Q = np.zeros((len(pos), 3)), np.zeros((len(pos), 3))
    for table, sign in (("asymmetric_load", 1.0), ("asymmetric_sgen", -1.0)):
        t = net[table] if table in net else None
        if t is None or not len(t):
            continue
        t = t[t["in_service"]]
        if "type" in t and (t["type"].astype(str) == "delta").any():
            bad = t.index[t["type"].astype(str) == "delta"][0]
            raise InstanceError(Problem(f"pandapower:{getattr(net, 'name', '') or 'network'}",
                                        f"three-phase model: {table} {bad} is delta-connected; only wye (phase to "
                                        "neutral) loads are modelled", field=f"{table}.type"))
        for k, ph in enumerate(PHASES):
            np.add.at(P[:, k], t["bus"].map(pos).to_numpy(), sign * t[f"p_{ph}_mw"].to_numpy() * t["scaling"].to_numpy())
            np.add.at(Q[:, k], t["bus"].map(pos).to_numpy(), sign * t[f"q_{ph}_mvar"].to_numpy() * t["scaling"].to_numpy())
    for table, sign in (("load", 1.0), ("sgen", -1.0)):
        t = net[table] if table in net else None
        if t is None or not len(t):
            continue
        t = t[t["in_service"]]
        idx = t["bus"].map(pos).to_numpy()
        for k in range(3):
            np.add.at(P[:, k], idx, sign * t["p_mw"].to_numpy() * t["scaling"].to_numpy() / 3.0)
            np.add.at(Q[:, k], idx, sign * t["q_mvar"].to_numpy() * t["scaling"].to_numpy() / 3.0)
    return P, Q


def voltages_3ph(net, s_base_mva: float = 1.0) -> pd.DataFrame:
    """The linear model's per-phase voltages (pu) of a pandapower net at its loads: columns
    ``bus``, ``vm_a_pu``, ``vm_b_pu``, ``vm_c_pu``, ``unbalance_pct`` (|V₂|/|V₁| from the linear
    magnitudes and angles, :func:`unbalance_factor`)."""
    f = feeder_from_pandapower(net, s_base_mva)
    P, Q = phase_loads(net, f)
    v, th = f.solve(P, Q)
    return pd.DataFrame({"bus": f.names, "vm_a_pu": v[:, 0], "vm_b_pu": v[:, 1], "vm_c_pu": v[:, 2],
                         "unbalance_pct": unbalance_factor(v, th)}).set_index("bus")


def _series_pu(r: float, x: float) -> tuple[float, float]:
    from .acpf import _series

    return _series(r, x)


def in_parallel(zs) -> complex:
    """The impedance of impedances ``zs`` in parallel (one sequence): 1 / Σ 1/z.  For phase
    matrices built from sequence impedances this is exact per sequence, since such a matrix stays
    one under inversion and sums."""
    return 1.0 / sum(1.0 / z for z in zs)


def branch_currents(v: np.ndarray, frm, to, vn_kv, zbase, z, phasors: bool = False) -> np.ndarray:
    """|I| per branch and phase (kA) from complex phase voltages ``v`` (buses x 3, pu of the
    phase-to-neutral base) through each branch's phase impedance matrix built from ``z`` =
    (r, x, r0, x0, rating) in pu of ``zbase`` (Ω); a branch without impedance gets 0.
    ``phasors``: the complex currents instead (their sum is the neutral's return current)."""
    zr, zx, zr0, zx0 = z[:4]
    out = np.zeros((len(frm), 3), dtype=complex if phasors else float)
    for k in range(len(frm)):
        z1 = complex(zr[k], zx[k]) * zbase[k]
        if abs(z1) == 0:
            continue
        z0 = complex(zr0[k], zx0[k]) * zbase[k] if np.isfinite(zr0[k]) and np.isfinite(zx0[k]) else z1
        dv = (v[frm[k]] - v[to[k]]) * vn_kv[k] / np.sqrt(3)  # kV
        i = np.linalg.solve(phase_matrix(z1, z0), dv)  # kA
        out[k] = i if phasors else np.abs(i)
    return out


def check_ac_3ph(pm, res=None, ops=None, progress=None) -> tuple[pd.DataFrame, dict]:
    """Replay a solved ``lindist3flow`` model in pandapower's unbalanced AC power flow
    (``runpp_3ph``), op by op: the feeder of the instance (branches as series impedances with
    their zero sequence, as the model had them), the slack at its voltage, and at each bus and
    phase the net withdrawal the plan evaluated (its per-phase flows in minus out, so the load
    it shed, if any, is not replayed).  Returns a table per op (convergence, the lowest phase
    voltage and where, the largest unbalance factor, the largest per-phase loading, the largest
    difference between the model's and AC's phase voltages) and a summary with the AC
    violations of the instance's limits.  The branches are those in service at the op's node
    (a replacement the plan built replaces its branch's impedances and rating), and the loading
    is each branch's largest phase current (from AC's phase voltages through its impedance
    matrix) against its rated current; the neutral's loading is the phases' sum (the return
    current) against the same rated current (a four-core cable's neutral is a full conductor),
    and counts in ``holds``.  Parallel cables in service are replayed with the branch as one
    impedance of all its parts, and each part's current (the same voltage drop through its own
    impedance) is rated against its own rating.  ``ops``: the ops to replay (default all)."""
    import pandapower as pp
    import pyomo.environ as pyo
    from pandapower.pf.runpp_3ph import runpp_3ph

    from .acpf import build_pandapower

    spec, blk = pm.blocks["network"]
    if spec.name != "lindist3flow":
        raise ValueError(f"check_ac_3ph replays a 'lindist3flow' model, this one is '{spec.name}'")
    inst, ix = pm.instance, pm.index
    network, lim = inst.network, inst.limits
    br = network.branches
    net, rating, _ = build_pandapower(network)
    z1 = br["r_pu"].to_numpy(float), br["x_pu"].to_numpy(float)
    r0 = br["r0_pu"].to_numpy(float) if "r0_pu" in br else np.full(len(br), np.nan)
    x0 = br["x0_pu"].to_numpy(float) if "x0_pu" in br else np.full(len(br), np.nan)
    r0 = np.where(np.isfinite(r0), r0, z1[0])
    x0 = np.where(np.isfinite(x0), x0, z1[1])
    imp = net.impedance
    imp["rft0_pu"], imp["xft0_pu"] = np.maximum(r0, 0.0), np.where((r0 == 0) & (x0 == 0), imp["xft_pu"], x0)
    imp["rtf0_pu"], imp["xtf0_pu"] = imp["rft0_pu"], imp["xft0_pu"]
    for c in ("gf_pu", "bf_pu", "gt_pu", "bt_pu", "gf0_pu", "bf0_pu", "gt0_pu", "bt0_pu"):
        imp[c] = 0.0
    eg = net.ext_grid  # a stiff source: the model holds the slack's three phases at vm
    eg["s_sc_max_mva"], eg["rx_max"], eg["r0x0_max"], eg["x0x_max"] = 1e6, 0.1, 0.1, 1.0
    T = range(ix.n_ops) if ops is None else list(ops)
    frm, to = br["from_bus"].to_numpy(int), br["to_bus"].to_numpy(int)
    # the impedances (pu: positive, zero sequence) and rating of every branch at each node of the
    # plan: a replacement in service there replaces the branch's
    z_node = {}
    for n in ix.node_names:
        zr, zx, zr0, zx0, rat = (a.copy() for a in (z1[0], z1[1], r0, x0, rating.astype(float)))
        for k, opts in blk._meta.get("options", {}).items():
            for o in opts:
                if float(pyo.value(o.state[n])) > 0.5:
                    zr[k], zx[k], zr0[k], zx0[k], rat[k] = o.r_pu, o.x_pu, o.r0_pu, o.x0_pu, o.rating_mva
        z_node[n] = (zr, zx, zr0, zx0, rat)
    # parallel cables in service: the parts of each such branch per node, (r, x, r0, x0, rating)
    # each; the branch is replayed as one impedance of its parts (per sequence, exact) and each
    # part's current is rated against its own rating.  A pair the model held as one branch (its
    # only candidate, "paired") has the original branch and the new cable as its parts.
    pars = blk._meta.get("parallels", [])
    paired = blk._meta.get("paired", {})
    orig = (z1[0], z1[1], r0, x0, rating.astype(float))

    def cable(o):
        return o.r_pu, o.x_pu, o.r0_pu, o.x0_pu, o.rating_mva

    groups = {}
    for n, zn in z_node.items():
        g = {}
        for k, o in pars:
            if float(pyo.value(o.state[n])) > 0.5:
                g.setdefault(k, [tuple(a[k] for a in zn)]).append(cable(o))
        for k, o in paired.items():
            if float(pyo.value(o.state[n])) > 0.5:
                g[k] = [tuple(a[k] for a in orig), cable(o)]
        groups[n] = g
        for k, parts in g.items():  # the branch as one impedance of its parts
            e1 = in_parallel([complex(p[0], p[1]) for p in parts])
            e0 = in_parallel([complex(p[2], p[3]) for p in parts])
            zn[0][k], zn[1][k], zn[2][k], zn[3][k] = e1.real, e1.imag, e0.real, e0.imag
    vn = br["vn_kv"].to_numpy(float)
    zbase = vn ** 2 / float(network.s_base_mva)  # Ω
    i_rated_by_node = {n: z[4] / (np.sqrt(3) * vn) for n, z in z_node.items()}  # kA
    last_node = [None]
    P = blk.P.value_array().reshape(len(br), 3, ix.n_ops)
    Q = blk.Q.value_array().reshape(len(br), 3, ix.n_ops)
    nb = network.n_buses
    # each bus's net withdrawal per phase and op: the flows in minus out (the parallel cables' too)
    W = np.zeros((nb, 3, ix.n_ops), dtype=complex)
    np.add.at(W, to, P + 1j * Q)
    np.add.at(W, frm, -(P + 1j * Q))
    if pars:
        pk = np.asarray([k for k, _ in pars], dtype=np.int64)
        S = (blk.Pc.value_array() + 1j * blk.Qc.value_array()).reshape(len(pars), 3, ix.n_ops)
        np.add.at(W, to[pk], S)
        np.add.at(W, frm[pk], -S)
    W[list(blk._meta["slack_v"])] = 0.0
    V = np.ones((nb, 3, ix.n_ops))
    for bus, v2 in blk._meta["slack_v"].items():
        V[bus] = np.sqrt(v2)
    if blk._meta["buses"]:
        V[np.asarray(blk._meta["buses"], dtype=np.int64)] = np.sqrt(np.maximum(np.nan_to_num(blk.y.value_array()),
                                                                                 0.0))
    loads = []
    for j in range(nb):
        loads.append(pp.create_asymmetric_load(net, j, name=f"bus {j}"))
    al = net.asymmetric_load
    names = network.buses["name"].astype(str).to_numpy()
    frame = ix.op_frame()
    rows = []
    worst = dict(v_min=(np.inf, None), v_max=(-np.inf, None), vuf=(0.0, None), loading=(np.nan, None),
                 neutral=(np.nan, None))
    t0 = __import__("time").perf_counter()
    for n_done, t in enumerate(T):
        for k, ph in enumerate(PHASES):
            al[f"p_{ph}_mw"], al[f"q_{ph}_mvar"] = W[:, k, t].real, W[:, k, t].imag
        node = ix.node_names[ix.op_node[t]]
        if node != last_node[0]:  # the branches in service at this op's node
            zr, zx, zr0, zx0, _ = z_node[node]
            sr, sx = np.vectorize(_series_pu)(zr, zx)
            imp["rft_pu"], imp["xft_pu"], imp["rtf_pu"], imp["xtf_pu"] = sr, sx, sr, sx
            imp["rft0_pu"] = np.maximum(zr0, 0.0)
            imp["xft0_pu"] = np.where((zr0 == 0) & (zx0 == 0), sx, zx0)
            imp["rtf0_pu"], imp["xtf0_pu"] = imp["rft0_pu"], imp["xft0_pu"]
            last_node[0] = node
        try:
            runpp_3ph(net, max_iteration=30)
            ok = bool(net.converged)
        except Exception:  # noqa: BLE001 - a diverging power flow is reported per op, not raised
            ok = False
        f = frame.iloc[t]
        row = dict(node=f["node"], year=int(f["year"]), day=f["day"], hour=int(f["hour"]), converged=ok)
        if ok:
            r = net.res_bus_3ph
            vm = r[["vm_a_pu", "vm_b_pu", "vm_c_pu"]].to_numpy()
            vuf = r["unbalance_percent"].to_numpy()
            low = np.unravel_index(np.argmin(vm), vm.shape)
            # runpp_3ph reports no currents for impedance elements (pandapower 3.x): each branch's
            # phase currents from AC's phase voltages through its 3x3 impedance, I = Z_abc⁻¹ ΔV
            va = np.deg2rad(r[["va_a_degree", "va_b_degree", "va_c_degree"]].to_numpy())
            phasor = branch_currents(vm * np.exp(1j * va), frm, to, vn, zbase, z_node[node], phasors=True)
            cur = np.abs(phasor)
            i_rated = i_rated_by_node[node]
            with np.errstate(divide="ignore", invalid="ignore"):
                pct = 100 * cur.max(axis=1) / np.where(i_rated > 0, i_rated, np.nan)
                # the neutral returns the phases' sum (a four-core cable: neutral rated as a phase)
                npct = 100 * np.abs(phasor.sum(axis=1)) / np.where(i_rated > 0, i_rated, np.nan)
            for k, group in groups[node].items():  # each part against its own rating
                p_pct, n_pct = [], []
                for z in (tuple(np.array([a]) for a in part) for part in group):
                    i = branch_currents(vm * np.exp(1j * va), frm[k:k + 1], to[k:k + 1], vn[k:k + 1],
                                        zbase[k:k + 1], z, phasors=True)[0]
                    rated = z[4][0] / (np.sqrt(3) * vn[k]) if z[4][0] < 1e4 else np.inf
                    p_pct.append(100 * np.abs(i).max() / rated)
                    n_pct.append(100 * abs(i.sum()) / rated)
                pct[k], npct[k] = max(p_pct), max(n_pct)
            limited_k = np.isfinite(pct) & (z_node[node][4] < 1e4)
            loading = float(pct[limited_k].max()) if limited_k.any() else np.nan
            neutral = float(npct[limited_k].max()) if limited_k.any() else np.nan
            row.update(v_min_pu=float(vm.min()), v_min_bus=names[low[0]], v_min_phase=PHASES[low[1]],
                       v_max_pu=float(vm.max()), unbalance_max_pct=float(np.nanmax(vuf)),
                       unbalance_bus=names[int(np.nanargmax(vuf))], loading_max_pct=loading,
                       neutral_loading_max_pct=neutral,
                       max_diff_pu=float(np.abs(vm - V[:, :, t]).max()))
            where = f"{f['node']} {int(f['year'])} {f['day']} {int(f['hour'])}"
            for key, val, better in (("v_min", row["v_min_pu"], min), ("v_max", row["v_max_pu"], max),
                                     ("vuf", row["unbalance_max_pct"], max), ("loading", loading, max),
                                     ("neutral", neutral, max)):
                if np.isfinite(val) and (not np.isfinite(worst[key][0]) or better(val, worst[key][0]) == val):
                    worst[key] = (val, where)
        rows.append(row)
        if progress and (n_done + 1) % 24 == 0:
            progress(f"  three-phase AC check: {n_done + 1} of {len(T)} ops ({__import__('time').perf_counter() - t0:.0f} s)")
    table = pd.DataFrame(rows)
    cfg_vuf = getattr(blk, "_vuf_limit", None)
    summary = dict(ops=len(rows), converged=int(table["converged"].sum()) if len(table) else 0,
                   v_min_pu=worst["v_min"][0], v_min_where=worst["v_min"][1],
                   v_max_pu=worst["v_max"][0], unbalance_max_pct=worst["vuf"][0], unbalance_where=worst["vuf"][1],
                   loading_max_pct=worst["loading"][0] if np.isfinite(worst["loading"][0]) else None,
                   neutral_loading_max_pct=worst["neutral"][0] if np.isfinite(worst["neutral"][0]) else None,
                   max_diff_pu=float(table["max_diff_pu"].max()) if "max_diff_pu" in table else None)
    summary["holds"] = bool(summary["converged"] == len(rows) and summary["v_min_pu"] >= lim.v_min_pu - 1e-6
                            and summary["v_max_pu"] <= lim.v_max_pu + 1e-6
                            and (cfg_vuf is None or summary["unbalance_max_pct"] <= cfg_vuf + 1e-6)
                            and not (summary["loading_max_pct"] or 0.0) > lim.max_loading_pct + 1e-6
                            and not (summary["neutral_loading_max_pct"] or 0.0) > lim.max_loading_pct + 1e-6)
    return table, summary


# -- what phases change in a plan ------------------------------------------------------------------
def phase_planning(inst, recipe, balancing: dict | None = None, mip_gap: float = 1e-4, progress=None,
                   **solve_kw) -> dict:
    """Plan an LV feeder three ways and say what the phases are worth (docs/formulation.md §2.12):

    1. ``balanced``: the recipe with ``lindistflow`` (every load spread on three phases), and that
       plan's builds fixed in the three-phase model: what it costs once the phases are seen
       (its voltage, unbalance and overload penalties);
    2. ``three_phase``: the recipe with ``lindist3flow`` (the builds it needs phase by phase);
    3. ``phase_balancing``: the same with the ``phase_balancing`` block (``balancing``: its
       options, e.g. ``{"fleets": ["home"], "cost_eur_per_move": 250}``): moves against builds.

    ``recipe``: a recipe (name, file, dict) with ``reinforcement`` among its blocks; its network
    options that the formulations share are kept.  Returns ``table`` (one row per plan: total
    cost, investment, penalties, phase moves, builds, and for the balanced plan its cost in three
    phases) and ``summary``: ``under_build_eur`` (investment the three-phase plan makes that the
    balanced one does not), ``balanced_plan_penalty_eur`` (what the balanced plan's feeder pays in
    three phases for the limits it breaks), ``value_of_phase_balancing_eur`` (three-phase plan's
    cost less the plan with phase balancing), and the results of each plan (``results``)."""
    import dataclasses
    import time

    import pyomo.environ as pyo

    from . import build_model, decision_values, solve
    from .errors import RecipeError
    from .recipe import resolve_recipe, with_formulation

    say = progress or (lambda _m: None)
    rec = resolve_recipe(recipe)
    if "reinforcement" not in rec.blocks:
        raise RecipeError(f"recipe '{rec.name}': phase planning compares builds; add 'reinforcement' to its blocks")
    bal = with_formulation(rec, "lindistflow")
    three = with_formulation(rec, "lindist3flow")
    balancing = dict(balancing or {})
    pb = dataclasses.replace(three, name=f"{three.name}+phase_balancing",
                             blocks=[*[b for b in three.blocks if b != "phase_balancing"], "phase_balancing"],
                             options={**three.options, "phase_balancing": balancing})
    results, rows = {}, []

    step = [0]

    def run(label, r, fix=None, start=None):
        step[0] += 1
        say(f"phase planning {step[0]}/4: {label} ({r.formulation}) ...")
        t0 = time.perf_counter()
        pm = build_model(inst, dataclasses.replace(r, name=f"{r.name} [{label}]"))
        if fix is not None:
            blk = pm.blocks["reinforcement"][1]
            for key, var in blk.build.items():
                var.fix(fix.get(key, 0.0))
        res = solve(pm, mip_gap=mip_gap, start=start, **solve_kw)
        if not res.has_solution:
            raise RecipeError(f"phase planning, {label}: no plan ({res.status}, HiGHS: {res.highs_status})")
        say(f"phase planning {step[0]}/4: {label}: {res.status}, {res.objective_eur:,.2f} EUR "
            f"({time.perf_counter() - t0:.0f} s)")
        results[label] = res
        return pm, res

    def builds_of(pm):
        blk = pm.blocks["reinforcement"][1]
        return {key: round(float(pyo.value(v))) for key, v in blk.build.items()}

    def row(label, res, **extra):
        c = res.cost_breakdown_eur
        pen = sum(v for k, v in c.items() if k.startswith("penalty_"))
        moves = res.tables.get("phase_moves")
        return dict(plan=label, formulation=extra.pop("formulation"), cost_eur=float(res.objective_eur),
                    investment_eur=float(c.get("investment", 0.0)), penalties_eur=float(pen),
                    phase_balancing_eur=float(c.get("phase_balancing", 0.0)),
                    moves=int(moves["moved"].sum()) if moves is not None and len(moves) else 0,
                    builds=", ".join(sorted(res.builds["candidate"].astype(str))) if len(res.builds) else "", **extra)

    # each plan is a MIP start for the next (every plan of the one before stays feasible: the
    # limits are soft and a move is optional), so that branch and bound prunes from the start
    pm_b, res_b = run("balanced", bal)
    _, res_b3 = run("balanced plan in three phases", three, fix=builds_of(pm_b))
    pm_3, res_3 = run("three_phase", three, start=decision_values(pm_b))
    _, res_pb = run("phase_balancing", pb, start=decision_values(pm_3))
    rows.append(row("balanced", res_b, formulation="lindistflow", cost_in_three_phases_eur=float(res_b3.objective_eur)))
    rows.append(row("three_phase", res_3, formulation="lindist3flow", cost_in_three_phases_eur=float(res_3.objective_eur)))
    rows.append(row("phase_balancing", res_pb, formulation="lindist3flow",
                    cost_in_three_phases_eur=float(res_pb.objective_eur)))
    table = pd.DataFrame(rows)
    pen_b3 = sum(v for k, v in res_b3.cost_breakdown_eur.items() if k.startswith("penalty_"))
    summary = dict(under_build_eur=float(table.at[1, "investment_eur"] - table.at[0, "investment_eur"]),
                   balanced_plan_penalty_eur=float(pen_b3),
                   value_of_phase_balancing_eur=float(res_3.objective_eur - res_pb.objective_eur),
                   balanced_plan_cost_in_three_phases_eur=float(res_b3.objective_eur))
    return dict(table=table, summary=summary, results=results)


def phase_planning_plot(table: pd.DataFrame, summary: dict, path, title: str = ""):
    """Stacked bars per plan of :func:`phase_planning`: investment, phase moves and penalties
    (EUR, present value), with the balanced plan's cost once the phases are seen written above
    its bar (its penalties are usually orders of magnitude above the plans' costs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .results import atomic_path

    labels = {"balanced": "balanced plan\n(lindistflow)", "three_phase": "three-phase plan",
              "phase_balancing": "three-phase plan\nwith phase balancing"}
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = np.arange(len(table))
    inv, mov, pen = (table[c].to_numpy(float) for c in ("investment_eur", "phase_balancing_eur", "penalties_eur"))
    ax.bar(x, inv, label="investment", color="#4c72b0")
    ax.bar(x, mov, bottom=inv, label="phase moves", color="#55a868")
    ax.bar(x, pen, bottom=inv + mov, label="penalties (limits broken)", color="#c44e52")
    top = float(np.nanmax(inv + mov + pen)) if len(table) else 0.0
    ax.set_ylim(0, max(top, 1.0) * 1.45)
    for xi, v in zip(x, inv + mov + pen):
        ax.annotate(f"{v:,.0f}", (xi, v), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    b3 = summary.get("balanced_plan_cost_in_three_phases_eur")
    if b3 is not None and len(table):  # often far above the others (penalties): said, not drawn
        ax.annotate(f"seen in three phases:\n{b3:,.0f} EUR\n({summary.get('balanced_plan_penalty_eur', 0.0):,.0f} "
                    "of penalties)", (0, max(top, 1.0) * 1.15), ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round", fc="#fff3f3", ec="#c44e52"))
    ax.set_xticks(x, [labels.get(p, p) for p in table["plan"]])
    ax.set_ylabel("cost, EUR (present value)")
    ax.set_title(title or "what the phases change in the plan")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
