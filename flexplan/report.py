"""A self-contained HTML report of a result folder: the summary, tables and every figure,
embedded (no external files, scripts or fonts), so that it can be mailed to a colleague.

Built from what :meth:`flexplan.results.Results.write` puts in the folder (``report.md`` for
the text, the PNG plots, ``ac_check.json`` when ``flexplan check-ac`` has run), so it can
also be made again later for an older folder: ``flexplan report OUTDIR``.
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

FIGURES = [("voltage_profile.png", "Voltage along the feeder at the worst hours"),
           ("voltage_envelope.png", "Voltage envelope along the feeder over all hours"),
           ("loading_duration.png", "Loading duration curves of the most loaded branches"),
           ("investment_timeline.png", "Investment timeline"),
           ("cost_breakdown.png", "Cost breakdown (expected present value)"),
           ("ev_peak_day.png", "EV charging on the day the plan moves most: uncontrolled vs planned"),
           ("ev_envelope.png", "EV energy envelope with the planned trajectory"),
           ("flexibility_heatmap.png", "EV flexibility used, by hour of the day and year"),
           ("nodal_prices.png", "Nodal prices (highest per bus and hour) and the value of a MW of flexibility per bus"),
           ("capacity_fade.png", "Battery capacity fade: calendar and cycling"),
           ("decision_tree.png", "Stochastic plan: decisions per scenario-tree node"),
           ("scenario_costs.png", "Cost per scenario: stochastic plan, perfect foresight, expected-value plan, "
                                  "no flexibility")]
STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
figure{margin:1.5em 0}figcaption{color:#555;font-size:90%}code{background:#f6f6f6}"""


def _markdown_to_html(md: str) -> str:
    """The subset report.md uses: headings, pipe tables, bullet lists, bold, code, paragraphs."""
    out, table, items = [], [], []

    def inline(t):
        t = html.escape(t)
        t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", t)

    def flush():
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|[\s:\-|]+\|", r)]
            cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{inline(c)}</{'th' if i == 0 else 'td'}>" for c in row)
                + "</tr>" for i, row in enumerate(cells)) + "</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- "):
            items.append(line[2:])
            continue
        flush()
        m = re.match(r"(#+) (.*)", line)
        if m:
            out.append(f"<h{len(m.group(1))}>{inline(m.group(2))}</h{len(m.group(1))}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


def write_html_report(folder: str | Path) -> Path:
    """Write ``report.html`` into a result folder and return its path."""
    folder = Path(folder)
    md = (folder / "report.md").read_text() if (folder / "report.md").exists() else ""
    summary = json.loads((folder / "summary.json").read_text())
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>flexplan: "
             f"{html.escape(summary.get('instance', ''))} under {html.escape(summary.get('model', ''))}</title>"
             f"<style>{STYLE}</style></head><body>", _markdown_to_html(md)]
    ac = folder / "ac_check.json"
    if ac.exists():
        a = json.loads(ac.read_text())
        parts.append("<h2>AC check</h2><p>" + html.escape(
            f"{a['converged']}/{a['ops']} AC power flows converged; voltage {a['v_min_ac_pu']:.4f}..."
            f"{a['v_max_ac_pu']:.4f} pu, loading up to {a['max_loading_ac_pct']:.1f} %, the model's voltage above AC by up "
            f"to {a['max_ldf_minus_ac_pu']:.4f} pu; the plan is {'' if a['ac_feasible'] else 'not '}AC-feasible.") + "</p>")
    parts.append("<h2>Figures</h2>")
    known = {name for name, _ in FIGURES}
    others = [(p.name, p.stem.replace("_", " ")) for p in sorted(folder.glob("*.png")) if p.name not in known]
    for name, caption in FIGURES + others:  # the blocks' own plots follow, captioned by their file name
        path = folder / name
        if path.exists():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(caption)} ({name})</figcaption></figure>")
    parts.append("</body></html>")
    out = folder / "report.html"
    tmp = folder / ".report.html.tmp"
    tmp.write_text("\n".join(parts))
    tmp.replace(out)
    return out


def write_sweep_report(csv_path: str | Path, breakeven: dict | None = None, title: str = "") -> Path:
    """A self-contained HTML report of a sweep (``<csv>.html`` beside its table): the table,
    the tornado chart (``<csv>.png``) and, when given, the break-even search (its points and
    curve, ``<csv>-breakeven.png``)."""
    import pandas as pd

    csv_path = Path(csv_path)
    df = pd.read_csv(csv_path) if csv_path.exists() else pd.DataFrame()
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>flexplan sweep: "
             f"{html.escape(title or csv_path.stem)}</title><style>{STYLE}</style></head><body>",
             f"<h1>flexplan sweep: {html.escape(title or csv_path.stem)}</h1>"]

    def figure(path: Path, caption: str) -> None:
        if path.exists():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(caption)} ({path.name})</figcaption></figure>")

    if len(df) and breakeven is None:
        failed = int((df["status"] == "error").sum()) if "status" in df else 0
        parts.append(f"<p>{len(df)} runs, {failed} failed.</p>")
        figure(csv_path.with_suffix(".png"), "Tornado: objective range per parameter around the base case")
        cols = [c for c in df.columns if c.startswith("param:")] + [c for c in (
            "status", "objective_eur", "investment_eur", "flexibility_mwh", "builds", "error") if c in df.columns]
        parts.append(df[cols].to_html(index=False, na_rep="", float_format=lambda x: f"{x:,.2f}", border=0))
    if breakeven is not None:
        parts.append("<h2>Break-even flexibility price</h2><p>" + html.escape(
            f"{breakeven['param']}: break-even {breakeven['breakeven']:.6g} (between {breakeven['lower']:.6g} and "
            f"{breakeven['upper']:.6g}, {breakeven.get('steps', 0)} bisection steps, relative tolerance "
            f"{breakeven.get('rel_tol', 0)}); the reference with uncontrolled EVs invests "
            f"{breakeven['reference_investment_eur']:,.0f} EUR.") + "</p>")
        figure(csv_path.with_name(csv_path.stem + "-breakeven.png"), "Break-even search: cost and investment per price")
        parts.append(pd.DataFrame(breakeven["points"]).sort_values("value").to_html(
            index=False, float_format=lambda x: f"{x:,.2f}", border=0))
    parts.append("</body></html>")
    out = csv_path.with_suffix(".html")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(out)
    return out
