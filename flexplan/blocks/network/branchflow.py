"""The branch-flow model with losses on a radial feeder (docs/formulation.md §2.11), the
formulation of the AC-feasible plans.

LinDistFlow (:mod:`.lindistflow`) plus, per op t and branch k = (i -> j), the squared
current ``l_k`` (pu² of the base current):

* balance at j: the flow arriving is the sending-end flow less the branch's losses,
  ``P_k - r_k l_k S_base`` (``Q_k - x_k l_k S_base``);
* voltage drop: ``v_j = v_i - 2 (r_k P_k + x_k Q_k) / S_base + (r_k² + x_k²) l_k`` (exact for a
  radial network);
* the cone ``(P_k² + Q_k²) / S_base² <= v_i l_k``, the convex relaxation of the equality
  ``|S|² = v |I|²``, outer-approximated by tangent planes (linear rows) so that HiGHS still
  solves an LP/MILP; :mod:`flexplan.acfeasible` adds planes where a solution lies outside the cone
  until the relative gap is below ``cone_tol`` (default 1e-4);
* the losses cost ``loss_price_eur_per_mwh`` (default a token 0.01 EUR/MWh), which keeps ``l_k`` on the
  cone, so that the model's voltages and flows are those of the AC power flow of its
  injections;
* a replacement changes r and x: the current is split into one part per alternative, only the
  one in place may carry it (``l_alt <= l̄ · state``), each alternative's losses use its own r;
  a parallel candidate has a current of its own, zero unless built;
* all of this in the ops where the feeder as it stands comes within ``stress_margin_pu`` of a
  limit (``loss_ops = "stressed"``; every op where a block injects a variable power, or with
  ``"all"``); reinforcement only relieves the other ops, which stay lossless.

Every plan feasible in AC (within the candidates and limits) satisfies these rows, so the
model's optimum, and the MIP's dual bound, is a lower bound on the cost of any AC-feasible plan
of the same objective.  The outer approximation can only understate losses (by at most
``cone_tol`` relative once refined): a plan on a voltage limit may miss it in AC by ~1e-6 pu;
``flexplan solve`` replays every plan in pandapower's AC power flow and corrects exactly those
buses and hours (:func:`flexplan.acfeasible.make_ac_feasible`).
"""
from __future__ import annotations

from .. import BlockSpec, register_formulation
from .lindistflow import (BranchFlowConfig, add_lindistflow, extract_lindistflow, locate_lindistflow,
                          prices_lindistflow, violations_lindistflow)

register_formulation(BlockSpec("branchflow", add_lindistflow, BranchFlowConfig, requires=("demand",),
                               extract=extract_lindistflow, doc=__doc__, prices=prices_lindistflow,
                               violations=violations_lindistflow, locate=locate_lindistflow))
