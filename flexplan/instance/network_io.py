"""Networks from pandapower (built-in or JSON) or CSV tables, checked to be radial.

Conversion rules (pandapower -> flexplan):

* out-of-service elements, and lines or transformers behind an open switch, are left out;
  buses joined by a closed bus-bus switch are merged;
* a line's impedance is ``(r|x)_ohm_per_km * length_km / parallel``, its rating
  ``sqrt(3) * vn_kv * max_i_ka * parallel`` MVA (times ``max_loading_percent`` when the
  instance limits say so); a two-winding transformer's series impedance comes from
  ``vk_percent`` / ``vkr_percent`` on ``sn_mva`` (tap changers and phase shift are not
  modelled: LinDistFlow is a balanced, lossless single-phase equivalent);
* loads are ``p_mw * scaling``, ``q_mvar * scaling`` (phase ``abc``: balanced); a wye
  ``asymmetric_load`` becomes one load per phase that draws power (phase ``a``, ``b`` or ``c``),
  a delta one is an error; static generators are not read yet;
* zero-sequence data, where pandapower has it (``r0/x0_ohm_per_km``, ``vk0/vkr0_percent``),
  become the branches' ``r0_pu`` / ``x0_pu`` (for the three-phase formulation, §2.12).

The result must be a forest: each connected part holds exactly one slack bus (an
``ext_grid``) and no loop.  Isolated buses without load are dropped with a warning.

:func:`pandapower_radial` is the one conversion: the runtime loader (:func:`from_pandapower`,
``source = "pandapower"`` or ``"json"``) and the offline converters (:mod:`flexplan.convert`)
both call it; the converters also merge parallel branches and leave unsupported elements out.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InstanceError, Problem
from .model import Network

log = logging.getLogger(__name__)

PANDAPOWER_BUILTINS = ("case33bw", "create_cigre_network_mv", "create_cigre_network_lv", "mv_oberrhein")


def pandapower_builtin(name: str, where: str):
    """Return a pandapower built-in network by name."""
    import inspect

    import pandapower as pp
    import pandapower.networks as pn

    builder = getattr(pn, name, None) if isinstance(name, str) and not name.startswith("_") else None
    if name not in PANDAPOWER_BUILTINS and not inspect.isfunction(builder):
        shown = name if len(name) <= 40 else name[:39] + "…"
        raise InstanceError(Problem(where, f"unknown pandapower network '{shown}'; shipped ones include "
                                    + ", ".join(PANDAPOWER_BUILTINS), field="network.name"))
    try:
        net = builder()
    except TypeError as e:  # networks that need arguments
        raise InstanceError(Problem(where, f"pandapower network '{name}' cannot be built without arguments: {e}",
                                    field="network.name")) from e
    except Exception as e:  # noqa: BLE001 - a builder that needs data or a download
        raise InstanceError(Problem(where, f"pandapower could not build network '{name}': {type(e).__name__}: "
                                    f"{str(e)[:120]}", field="network.name")) from e
    if not isinstance(net, pp.pandapowerNet):
        raise InstanceError(Problem(where, f"pandapower.networks.{name} does not return a network",
                                    field="network.name"))
    return net


def pandapower_json(path, where: str):
    import pandapower as pp

    from .tables import read_text

    if not path.exists():
        raise InstanceError(Problem(where, f"network file not found: {path}", field="network.file"))
    text = read_text(path, str(path), "JSON")  # a regular UTF-8 file of bounded size
    try:
        return pp.from_json_string(text)
    except Exception as e:  # pandapower raises many kinds; its message may quote the file: cut short
        msg = " ".join(str(e).split())
        raise InstanceError(Problem(str(path), "not a readable pandapower JSON network: "
                                    + (msg if len(msg) <= 120 else msg[:119] + "…"))) from e


class _UnionFind:
    def __init__(self, items):
        self.parent = {i: i for i in items}

    def find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _label(x) -> str:
    """A pandapower name as text ('' when missing: None, NaN or empty)."""
    if x is None or (not isinstance(x, str) and pd.isna(x)):
        return ""
    return str(x)


def _element_name(x, fallback: str) -> str:
    """A line's or transformer's name: its pandapower name if that is a non-empty string."""
    return str(x) if isinstance(x, str) and x else fallback


@dataclass
class PandapowerRadial:
    """A pandapower net as a radial flexplan network (see :func:`pandapower_radial`).

    ``network``: the :class:`Network` (branches oriented away from their slack bus, per unit on
    ``s_base_mva``).  ``branches``: one row per row of ``network.branches`` (same order) with its
    pandapower data: ``name, kind``, ``a, b`` (positions in ``network.buses`` as pandapower orients
    the element: a line's from bus and a transformer's hv bus are ``a``), ``elements`` (the
    pandapower line or trafo indices the branch stands for: more than one where parallels were
    merged), ``r_ohm, x_ohm, length_km`` (lines), ``sn_mva, vk_percent, vkr_percent``
    (transformers), ``rating_mva, vn_kv``.  ``taken``: every pandapower line and transformer that
    was read (in service, not behind an open switch, both buses in service), in pandapower order
    before parallels are merged: ``kind, pp_index, name, reached`` (``reached``: its buses are fed
    from a slack bus and kept).  ``bus_of``: pandapower bus index -> position in ``network.buses``
    (buses merged through a closed bus-bus switch share one; buses left out are absent).
    ``notes``: what was merged or left out, one sentence each."""

    network: Network
    branches: pd.DataFrame
    taken: pd.DataFrame
    bus_of: dict
    notes: list = field(default_factory=list)


def _merge_parallel(grp: list[dict]) -> dict:
    """Branches of one kind between the same two buses as one: lines with their impedances in
    parallel, ratings added and the mean length; transformers with their per-unit impedances (on
    their own rating) in parallel, expressed in percent of the summed rating."""
    e0 = dict(grp[0], name=" + ".join(e["name"] for e in grp), elements=sum((e["elements"] for e in grp), ()),
              source=" + ".join(e["source"] for e in grp))
    if e0["kind"] == "line":
        z = 1.0 / sum(1.0 / complex(e["r_ohm"], e["x_ohm"]) for e in grp)
        e0.update(r_ohm=z.real, x_ohm=z.imag, rating_mva=sum(e["rating_mva"] for e in grp),
                  length_km=float(np.mean([e["length_km"] for e in grp])))
    else:
        zs = [complex(e["vkr_percent"], math.sqrt(max(e["vk_percent"] ** 2 - e["vkr_percent"] ** 2, 0.0)))
              / 100.0 / e["sn_mva"] for e in grp]
        z = 1.0 / sum(1.0 / zz for zz in zs)
        sn = sum(e["sn_mva"] for e in grp)
        e0.update(sn_mva=sn, rating_mva=sn, vk_percent=abs(z) * sn * 100.0, vkr_percent=z.real * sn * 100.0)
    return e0


def pandapower_radial(net, source: str, s_base_mva: float = 1.0, use_max_loading: bool = False,
                      merge_parallel: bool = False, unsupported: str = "error",
                      bus_fallback: str = "{}") -> PandapowerRadial:
    """Convert a pandapower network to a radial network (the rules: see the module docstring).

    The one pandapower conversion of flexplan: the runtime loader (:func:`from_pandapower`) and
    the offline converters (:mod:`flexplan.convert`) both call it.

    * ``merge_parallel``: lines (or transformers) between the same two buses become one branch
      (:func:`_merge_parallel`, noted); otherwise they close a loop and are rejected;
    * ``unsupported``: ``"error"`` rejects three-winding transformers and impedance elements,
      ``"leave_out"`` leaves them out with a note;
    * ``bus_fallback``: the name of a bus without one (formatted with its pandapower index);
      when two buses share a name, every bus gets its fallback name.

    Raises :class:`InstanceError` for unsupported elements, loops (naming the branches that close
    them), slack buses connected to each other and loads no slack bus feeds (see
    :func:`orient_radial`)."""
    notes: list[str] = []
    n3w = len(net.trafo3w)
    n_imp = len(net.impedance) if "impedance" in net else 0
    if unsupported == "error":
        problems = []
        if n3w:
            problems.append(Problem(source, "three-winding transformers are not supported", field="trafo3w"))
        if n_imp:
            problems.append(Problem(source, "impedance elements are not supported", field="impedance"))
        if problems:
            raise InstanceError(problems)
    elif unsupported != "leave_out":
        raise ValueError(f"unsupported = {unsupported!r}: 'error' or 'leave_out'")

    bus_ok = [int(b) for b in net.bus.index[net.bus.in_service.astype(bool)]]
    uf = _UnionFind(bus_ok)
    open_lines, open_trafos = set(), set()
    for s in net.switch.itertuples():
        if s.et == "b":
            if bool(s.closed) and s.bus in uf.parent and s.element in uf.parent:
                uf.union(int(s.bus), int(s.element))
        elif s.et == "l" and not bool(s.closed):
            open_lines.add(int(s.element))
        elif s.et == "t" and not bool(s.closed):
            open_trafos.add(int(s.element))
    merged = sum(1 for b in bus_ok if uf.find(b) != b)
    if merged:
        notes.append(f"{merged} bus(es) merged into their neighbour through closed bus-bus switches")
    if open_lines:
        notes.append(f"{len(open_lines)} line(s) behind open switches left out: "
                     + ", ".join(str(net.line.at[i, "name"]) if i in net.line.index else f"line {i}"
                                 for i in sorted(open_lines)))
    if n3w and unsupported == "leave_out":
        notes.append(f"{n3w} three-winding transformer(s) left out")
    if n_imp and unsupported == "leave_out":
        notes.append(f"{n_imp} impedance element(s) left out")

    reps = sorted({uf.find(b) for b in bus_ok})
    pos = {r: i for i, r in enumerate(reps)}
    bus_pos = {b: pos[uf.find(b)] for b in bus_ok}
    names = [_label(net.bus.at[r, "name"]) or bus_fallback.format(r) for r in reps]
    if len(set(names)) != len(names):
        names = [bus_fallback.format(r) for r in reps]
    buses = pd.DataFrame({"name": names, "vn_kv": [float(net.bus.at[r, "vn_kv"]) for r in reps], "pp_index": reps})

    nan = float("nan")
    elements = []
    for idx, ln in net.line.iterrows():
        if not bool(ln.in_service) or idx in open_lines or ln.from_bus not in bus_pos or ln.to_bus not in bus_pos:
            continue
        par = float(ln.get("parallel", 1) or 1)
        vn = float(net.bus.at[ln.from_bus, "vn_kv"])
        length = float(ln.length_km)
        rating = math.sqrt(3) * vn * float(ln.max_i_ka) * par
        if use_max_loading and "max_loading_percent" in ln and not pd.isna(ln.max_loading_percent):
            rating *= float(ln.max_loading_percent) / 100.0
        elements.append(dict(name=_element_name(ln.get("name"), f"line_{idx}"), kind="line",
                             a=bus_pos[ln.from_bus], b=bus_pos[ln.to_bus], elements=(int(idx),),
                             r_ohm=float(ln.r_ohm_per_km) * length / par, x_ohm=float(ln.x_ohm_per_km) * length / par,
                             r0_ohm=float(ln.get("r0_ohm_per_km", nan)) * length / par,
                             x0_ohm=float(ln.get("x0_ohm_per_km", nan)) * length / par,
                             length_km=length, sn_mva=nan, vk_percent=nan, vkr_percent=nan, rating_mva=rating,
                             vn_kv=vn, source=f"{source} line {idx}"))
    for idx, tr in net.trafo.iterrows():
        if not bool(tr.in_service) or idx in open_trafos or tr.hv_bus not in bus_pos or tr.lv_bus not in bus_pos:
            continue
        sn = float(tr.sn_mva) * float(tr.get("parallel", 1) or 1)
        elements.append(dict(name=_element_name(tr.get("name"), f"trafo_{idx}"), kind="transformer",
                             a=bus_pos[tr.hv_bus], b=bus_pos[tr.lv_bus], elements=(int(idx),),
                             r_ohm=nan, x_ohm=nan, length_km=0.0, sn_mva=sn, vk_percent=float(tr.vk_percent),
                             vkr_percent=float(tr.vkr_percent), rating_mva=sn,
                             vk0_percent=float(tr.get("vk0_percent", nan)), vkr0_percent=float(tr.get("vkr0_percent", nan)),
                             vn_kv=float(net.bus.at[tr.lv_bus, "vn_kv"]), source=f"{source} trafo {idx}"))

    if merge_parallel:
        groups: dict[tuple, list] = {}
        for e in elements:
            groups.setdefault((e["kind"], min(e["a"], e["b"]), max(e["a"], e["b"])), []).append(e)
        branch_rows = []
        for (kind, a, b), grp in groups.items():
            if len(grp) > 1:
                na, nb = sorted((names[a], names[b]))
                notes.append(f"{len(grp)} parallel {kind}s between '{na}' and '{nb}' merged into one: "
                             + ", ".join(e["name"] for e in grp))
            branch_rows.append(grp[0] if len(grp) == 1 else _merge_parallel(grp))
    else:
        branch_rows = elements

    def trafo_z(vk, vkr, sn):
        z = vk / 100.0 * s_base_mva / sn
        r = vkr / 100.0 * s_base_mva / sn
        return r, math.sqrt(max(z * z - r * r, 0.0))

    edges = []
    for e in branch_rows:
        if e["kind"] == "line":
            zbase = e["vn_kv"] ** 2 / s_base_mva
            r_pu, x_pu = e["r_ohm"] / zbase, e["x_ohm"] / zbase
            r0_pu, x0_pu = e.get("r0_ohm", nan) / zbase, e.get("x0_ohm", nan) / zbase
        else:
            r_pu, x_pu = trafo_z(e["vk_percent"], e["vkr_percent"], e["sn_mva"])
            r0_pu, x0_pu = trafo_z(e.get("vk0_percent", nan), e.get("vkr0_percent", nan), e["sn_mva"]) \
                if not pd.isna(e.get("vk0_percent", nan)) else (nan, nan)
        edges.append(dict(name=e["name"], kind=e["kind"], a=e["a"], b=e["b"], r_pu=r_pu, x_pu=x_pu,
                          rating_mva=e["rating_mva"], length_km=e["length_km"], vn_kv=e["vn_kv"], virtual=False,
                          source=e["source"], r0_pu=r0_pu, x0_pu=x0_pu))
    edges = pd.DataFrame(edges, columns=["name", "kind", "a", "b", "r_pu", "x_pu", "rating_mva", "length_km", "vn_kv",
                                         "virtual", "source", "r0_pu", "x0_pu"])

    loads = []
    for idx, ld in net.load.iterrows():
        if not bool(ld.in_service) or ld.bus not in bus_pos:
            continue
        sc = float(ld.get("scaling", 1.0))
        loads.append(dict(bus=bus_pos[ld.bus], p_mw=float(ld.p_mw) * sc, q_mvar=float(ld.q_mvar) * sc,
                          load_class="", name=_element_name(ld.get("name"), f"load_{idx}"), phase="abc"))
    # unbalanced loads (wye): one load per phase that draws power, with that phase
    asym = net["asymmetric_load"] if "asymmetric_load" in net else None
    for idx, ld in (asym.iterrows() if asym is not None else ()):
        if not bool(ld.in_service) or ld.bus not in bus_pos:
            continue
        if str(ld.get("type", "wye")) == "delta":
            raise InstanceError(Problem(source, f"asymmetric load {idx} is delta-connected; only wye (phase to "
                                        "neutral) loads are read", field="asymmetric_load.type"))
        sc = float(ld.get("scaling", 1.0))
        for ph in "abc":
            p, q = float(ld[f"p_{ph}_mw"]) * sc, float(ld[f"q_{ph}_mvar"]) * sc
            if p or q:
                loads.append(dict(bus=bus_pos[ld.bus], p_mw=p, q_mvar=q, load_class="", phase=ph,
                                  name=f"{_element_name(ld.get('name'), f'asymmetric_load_{idx}')}:{ph}"))
    slack = [dict(bus=bus_pos[eg.bus], vm_pu=float(eg.vm_pu)) for eg in net.ext_grid.itertuples()
             if bool(eg.in_service) and eg.bus in bus_pos]
    network = orient_radial(buses, edges, pd.DataFrame(loads, columns=["bus", "p_mw", "q_mvar", "load_class", "name",
                                                                       "phase"]),
                            pd.DataFrame(slack, columns=["bus", "vm_pu"]), source, s_base_mva)

    kept = {int(r): i for i, r in enumerate(network.buses["pp_index"])}
    new_pos = [kept.get(r, -1) for r in reps]  # position before -> after dropping buses no slack feeds
    dropped = [names[i] for i, p in enumerate(new_pos) if p < 0]
    if dropped:
        notes.append(f"{len(dropped)} bus(es) not reached from the slack left out: {', '.join(dropped[:10])}")
    by_name = {e["name"]: e for e in branch_rows}
    cols = ["name", "kind", "a", "b", "elements", "r_ohm", "x_ohm", "length_km", "sn_mva", "vk_percent",
            "vkr_percent", "rating_mva", "vn_kv"]
    branches = pd.DataFrame([{c: by_name[n][c] for c in cols} for n in network.branches["name"]], columns=cols)
    branches["a"] = [new_pos[a] for a in branches["a"]]
    branches["b"] = [new_pos[b] for b in branches["b"]]
    taken = pd.DataFrame([dict(kind=e["kind"], pp_index=e["elements"][0], name=e["name"], reached=new_pos[e["a"]] >= 0)
                          for e in elements], columns=["kind", "pp_index", "name", "reached"])
    bus_of = {b: new_pos[bus_pos[b]] for b in bus_ok if new_pos[bus_pos[b]] >= 0}
    return PandapowerRadial(network=network, branches=branches, taken=taken, bus_of=bus_of, notes=notes)


def from_pandapower(net, source: str, s_base_mva: float = 1.0, use_max_loading: bool = False) -> Network:
    """Convert a pandapower network to a radial :class:`Network` (see module docstring and
    :func:`pandapower_radial`; parallel branches are rejected as loops, three-winding
    transformers and impedance elements as unsupported)."""
    return pandapower_radial(net, source, s_base_mva, use_max_loading).network


def _where(edge_source: str, fallback: str, field: str) -> dict:
    """File, row and field of a branch from its ``source`` (``FILE line N`` for a CSV row):
    a transformer is blamed on its transformers file, a line on its lines file."""
    file, sep, row = str(edge_source).rpartition(" line ")
    if sep and row.isdigit() and file.endswith(".csv"):
        return dict(file=file, row=int(row), field=field)
    return dict(file=fallback, row=None, field=field)


def orient_radial(buses: pd.DataFrame, edges: pd.DataFrame, loads: pd.DataFrame, slack: pd.DataFrame,
                  source: str, s_base_mva: float) -> Network:
    """Check that ``edges`` (columns ``a``, ``b`` and the branch data) form a forest with one
    slack bus per tree, orient every branch away from its slack bus and return the Network.

    Raises :class:`InstanceError` naming the branches that close a loop, the buses that
    no slack bus reaches (when they carry load), or the trees with two slack buses.
    """
    nb = len(buses)
    problems: list[Problem] = []
    if len(slack) == 0:
        raise InstanceError(Problem(source, "no slack bus (ext_grid / network.slack_bus) in service", field="slack"))
    adj: list[list[tuple[int, int]]] = [[] for _ in range(nb)]
    sources = edges["source"].tolist() if "source" in edges else [source] * len(edges)
    kinds = edges["kind"].tolist() if "kind" in edges else ["line"] * len(edges)
    for k, (a, b) in enumerate(zip(edges["a"], edges["b"])):
        if a == b:
            what = "transformer" if kinds[k] == "transformer" else "branch"
            problems.append(Problem(message=f"{what} '{edges.at[k, 'name']}' connects bus '{buses.at[a, 'name']}' to "
                                    "itself", **_where(sources[k], source, "lv_bus" if kinds[k] == "transformer"
                                                       else "to_bus")))
            continue
        adj[a].append((b, k))
        adj[b].append((a, k))
    if problems:
        raise InstanceError(problems)

    seen_from = np.full(nb, -1)
    parent_edge = np.full(nb, -1)
    used = np.zeros(len(edges), dtype=bool)
    frm = np.zeros(len(edges), dtype=int)
    to = np.zeros(len(edges), dtype=int)
    loop_edges = []
    for s in slack["bus"]:
        if seen_from[s] >= 0:
            problems.append(Problem(source, f"slack buses '{buses.at[seen_from[s], 'name']}' and '{buses.at[s, 'name']}' "
                                    "are connected: each radial part must have exactly one slack bus", field="slack"))
            continue
        seen_from[s] = s
        stack = [s]
        while stack:
            u = stack.pop()
            for v, k in adj[u]:
                if used[k]:
                    continue
                used[k] = True
                if seen_from[v] >= 0:
                    if seen_from[v] != s:
                        problems.append(Problem(source, f"slack buses '{buses.at[seen_from[v], 'name']}' and "
                                                f"'{buses.at[s, 'name']}' are connected: each radial part must have "
                                                "exactly one slack bus", field="slack"))
                    else:
                        loop_edges.append(k)
                    continue
                seen_from[v] = s
                parent_edge[v] = k
                frm[k], to[k] = u, v
                stack.append(v)
    if loop_edges:
        by_file: dict[tuple, list[int]] = {}
        for k in loop_edges:  # each branch blamed on its own file: lines or transformers
            w = _where(sources[k], source, "line")
            by_file.setdefault((w["file"], kinds[k]), []).append(k)
        for (file, kind), ks in by_file.items():
            names = ", ".join(f"'{edges.at[k, 'name']}'" for k in ks[:10])
            more = f" (and {len(ks) - 10} more)" if len(ks) > 10 else ""
            what = "transformer(s)" if kind == "transformer" else "branch(es)"
            rows = [_where(sources[k], source, "")["row"] for k in ks]
            at = f" (line {', '.join(str(r) for r in rows[:10])} of the file)" if all(rows) else ""
            problems.append(Problem(file, f"network is not radial: {what} {names}{more}{at} close a loop; open a "
                                    "switch or take the branch out of service",
                                    row=rows[0] if len(ks) == 1 and rows[0] else None,
                                    field="transformer" if kind == "transformer" else "line"))
    unreached = np.where(seen_from < 0)[0]
    load_buses = set(loads["bus"]) if len(loads) else set()
    bad = [b for b in unreached if b in load_buses]
    if bad:
        problems.append(Problem(source, "bus(es) " + ", ".join(f"'{buses.at[b, 'name']}'" for b in bad[:10])
                                + " carry load but no slack bus feeds them (disconnected network)", field="bus"))
    if problems:
        raise InstanceError(problems)
    if len(unreached):
        log.warning("%s: dropping %d isolated bus(es) without load: %s", source, len(unreached),
                    ", ".join(str(buses.at[b, "name"]) for b in unreached[:10]))
        keep = np.where(seen_from >= 0)[0]
        remap = -np.ones(nb, dtype=int)
        remap[keep] = np.arange(len(keep))
        buses = buses.iloc[keep].reset_index(drop=True)
        keep_e = np.where(used & (seen_from[np.maximum(frm, 0)] >= 0))[0]
        edges = edges.iloc[keep_e].reset_index(drop=True)
        frm, to = remap[frm[keep_e]], remap[to[keep_e]]
        loads = loads.assign(bus=remap[loads["bus"].to_numpy(dtype=int)])  # an empty frame has dtype object
        slack = slack.assign(bus=remap[slack["bus"].to_numpy(dtype=int)])

    branches = edges.drop(columns=["a", "b"]).assign(from_bus=frm, to_bus=to)
    cols = ["name", "kind", "from_bus", "to_bus", "r_pu", "x_pu", "rating_mva", "length_km", "vn_kv", "virtual",
            "source"]
    branches = branches[cols + [c for c in ("r0_pu", "x0_pu") if c in branches]].reset_index(drop=True)
    if branches["name"].duplicated().any():
        dup = branches["name"][branches["name"].duplicated()].iloc[0]
        raise InstanceError(Problem(source, f"branch name '{dup}' is used twice; names must be unique", field="name"))
    return Network(buses=buses.reset_index(drop=True), branches=branches, loads=loads.reset_index(drop=True),
                   slack=slack.reset_index(drop=True), s_base_mva=s_base_mva, source=source)


def add_substation_limit(net: Network, rating_mva: float) -> Network:
    """Put an import limit of ``rating_mva`` between each slack bus and the grid: a new
    slack bus ``grid`` joined by a zero-impedance virtual branch ``substation`` whose
    rating the reinforcement catalogue can raise (for networks without a transformer)."""
    buses = net.buses.copy()
    branches = net.branches.copy()
    new_slack = []
    for k, (bus, vm) in enumerate(zip(net.slack["bus"], net.slack["vm_pu"])):
        nb = len(buses)
        suffix = "" if len(net.slack) == 1 else f"_{k}"
        buses.loc[nb] = {"name": f"grid{suffix}", "vn_kv": buses.at[bus, "vn_kv"], "pp_index": -1}
        branches.loc[len(branches)] = dict(name=f"substation{suffix}", kind="substation", from_bus=nb, to_bus=bus,
                                           r_pu=0.0, x_pu=0.0, rating_mva=float(rating_mva), length_km=0.0,
                                           vn_kv=buses.at[bus, "vn_kv"], virtual=True, source="network.substation_mva")
        new_slack.append(dict(bus=nb, vm_pu=vm))
    return Network(buses=buses, branches=branches, loads=net.loads, slack=pd.DataFrame(new_slack),
                   s_base_mva=net.s_base_mva, source=net.source)
