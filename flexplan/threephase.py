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
