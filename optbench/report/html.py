"""A self-contained, offline HTML report: Plotly is embedded, nothing is fetched.

Every name that came from a user (model, backend, variant, weights, reasons) is escaped
on the server: tables are built here with html.escape, and the figures' labels are
escaped before Plotly sees them, so markup in a name is shown as text, never executed.
The page's data travels as JSON inside a <script type="application/json"> block with
'<', '>' and '&' escaped, so it cannot close the script element.
"""

from __future__ import annotations

import html
import json
from typing import Any

from optbench.carbon import CarbonSettings
from optbench.report.analysis import Group, best_first, measured
from optbench.report.columns import (
    PLOTTED,
    SERVING_TABLE,
    Column,
    fronts_legend,
    serving_cells,
    serving_head,
    table_cells,
    table_columns,
    table_head,
)
from optbench.report.data import ReportData
from optbench.report.recommend import Recommendation
from optbench.report.serving import (
    LOAD_FIGURES,
    SERVING_NOTE,
    ServingView,
    asked_text,
    crossover_lines,
    load_series,
    max_rate_text,
    runner_up_text,
    spans_decades,
)
from optbench.report.text import (
    BOUNDARY,
    FAILED_HEAD,
    QUALITY_NOTES,
    SPARSITY_NOTE,
    break_even_unit,
    environment_summary,
    failed_cells,
    fmt,
    making_cells,
    making_head,
    making_order,
    mentions_unstructured,
    packages_summary,
    provenance,
    run_label,
    serving_label,
    shows_making,
)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{margin-bottom:.2rem} .note{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:right}
th{background:#f3f3f3} td.l{text-align:left}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem}
.plot{height:420px} .rec{background:#eef6ee;border-left:4px solid #3a3;padding:.5rem 1rem}
.none{background:#fbeeee;border-left-color:#c33} .est{color:#a60}
"""

SCRIPT = """
(function(){
  var data = JSON.parse(document.getElementById('optbench-data').textContent);
  data.plots.forEach(function(p){
    var traces = p.series.map(function(s){
      return {x:s.x, y:s.y, text:s.text, hoverinfo:'text', mode:'markers', type:'scatter',
              name:s.name, error_x:{type:'data', array:s.err, visible:true, thickness:1},
              marker:{size:10, symbol:s.symbol, color:s.color, line:{width:2, color:s.color}}};
    });
    p.fronts.forEach(function(f){
      traces.push({x:f.x, y:f.y, mode:'lines', type:'scatter', name:f.name,
                   line:{shape:f.shape, color:f.color, width:1.5}, hoverinfo:'skip'});
    });
    Plotly.newPlot(p.id, traces, {title:{text:p.title}, xaxis:{title:{text:p.xlabel},
      type:p.log ? 'log' : 'linear'}, yaxis:{title:{text:p.ylabel}},
      margin:{t:40,r:10,b:90,l:60}, legend:{orientation:'h', y:-0.28}},
      {displaylogo:false, responsive:true});
  });
  data.cubes.forEach(function(c){
    Plotly.newPlot(c.id, [{x:c.x, y:c.y, z:c.z, text:c.text, hoverinfo:'text',
      mode:'markers', type:'scatter3d', marker:{size:5, color:c.color}}],
      {title:{text:c.title}, scene:{xaxis:{title:{text:'energy (mJ)'}, type:'log'},
      yaxis:{title:{text:'latency p99 (ms)'}, type:'log'}, zaxis:{title:{text:c.zlabel}}},
      margin:{t:40,r:0,b:0,l:0}}, {displaylogo:false, responsive:true});
  });
  document.body.setAttribute('data-plots-drawn', String(data.plots.length + data.cubes.length));
})();
"""


SERVING_SCRIPT = """
(function(){
  var data = JSON.parse(document.getElementById('optbench-data').textContent);
  data.lines.forEach(function(p){
    var traces = p.series.map(function(s){
      return {x:s.x, y:s.y, text:s.text, hoverinfo:'text', mode:'lines+markers',
              type:'scatter', name:s.name, error_y:{type:'data', array:s.err, visible:true,
              thickness:1}, line:{color:s.color, dash:s.dash},
              marker:{size:9, symbol:s.symbols, color:s.markers}};
    });
    p.bounds.forEach(function(b){
      traces.push({x:p.span, y:[b.y, b.y], mode:'lines', type:'scatter', name:b.name,
                   line:{color:'#d62728', dash:'dot', width:1.5}, hoverinfo:'skip'});
    });
    Plotly.newPlot(p.id, traces, {title:{text:p.title}, xaxis:{title:{text:p.xlabel},
      type:p.xlog ? 'log' : 'linear'}, yaxis:{title:{text:p.ylabel},
      type:p.ylog ? 'log' : 'linear'}, margin:{t:40,r:10,b:90,l:60},
      legend:{orientation:'h', y:-0.28}}, {displaylogo:false, responsive:true});
  });
  var drawn = Number(document.body.getAttribute('data-plots-drawn') || 0);
  document.body.setAttribute('data-plots-drawn', String(drawn + data.lines.length));
})();
"""
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
SATURATED = "#d62728"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def hover(row: dict[str, Any], group: Group) -> str:
    """Hover text: every line escaped, joined with Plotly's <br>."""
    lines = [run_label(row, short=True), f"{group.metric}: {fmt(row['quality_value'], 1, 4)}",
             f"energy/{group.unit}: {fmt(row['energy_per_sample_j'], 1e3)} mJ"
             + (f" ± {fmt(row['energy_per_sample_ci95_j'], 1e3, 2)}"
                if row.get("energy_per_sample_ci95_j") is not None else ""),
             f"latency p50/p99: {fmt(row['latency_p50_s'], 1e3)} / "
             f"{fmt(row['latency_p99_s'], 1e3)} ms",
             *provenance(row).split("; ")]
    return "<br>".join(esc(line) for line in lines)


def plot_specs(group: Group, index: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    plots = []
    for n, column in enumerate(PLOTTED):
        key, scale = column.key, column.scale
        pts = [r for r in group.rows if r.get(key) is not None
               and r.get("quality_value") is not None]
        if not pts:
            continue
        front = group.fronts.get(key, set())
        series = []
        for name, members, symbol in (
                ("measured energy", [r for r in pts if measured(r)], "circle"),
                ("estimated energy", [r for r in pts if not measured(r)], "circle-open")):
            if key != "energy_per_sample_j":
                members = pts if name == "measured energy" else []
                name, symbol = "configurations", "circle"
            if not members:
                continue
            series.append({
                "name": name, "symbol": symbol,
                "x": [r[key] * scale for r in members], "y": [r["quality_value"] for r in members],
                "err": [((r.get("energy_per_sample_ci95_j") or 0) * scale
                         if key == "energy_per_sample_j" else 0) for r in members],
                "text": [hover(r, group) for r in members],
                "color": ["#1f77b4" if r["run_id"] in front else "#999999" for r in members]})
        fronts = []
        groups = ([[r for r in pts if measured(r)], [r for r in pts if not measured(r)]]
                  if key == "energy_per_sample_j" else [pts])
        for members in groups:
            line = sorted((r[key] * scale, r["quality_value"]) for r in members
                          if r["run_id"] in front)
            if line:
                est = key == "energy_per_sample_j" and not measured(members[0])
                fronts.append({"name": "front (estimated energy)" if est else "front",
                               "x": [p[0] for p in line], "y": [p[1] for p in line],
                               "shape": "hv" if column.sense == "min" else "vh",
                               "color": "#ff7f0e" if est else "#1f77b4"})
        values = [r[key] for r in pts]
        axis = column.axis.format(unit=group.unit)
        plots.append({"id": f"plot-{index}-{n}", "series": series, "fronts": fronts,
                      "title": esc(f"{axis.split(' (')[0]} vs {group.metric}"),
                      "xlabel": esc(axis),
                      "ylabel": esc(group.metric + ("" if group.higher_is_better
                                                    else " (lower is better)")),
                      "log": max(values) / max(min(values), 1e-12) > 20})
    keys = ("energy_per_sample_j", "latency_p99_s", "quality_value")
    pts = [r for r in group.rows if all(r.get(k) is not None for k in keys)]
    cube = {"id": f"cube-{index}", "title": esc("non-dominated in (energy, latency p99, "
                                                 f"{group.metric})"),
            "zlabel": esc(group.metric), "x": [r["energy_per_sample_j"] * 1e3 for r in pts],
            "y": [r["latency_p99_s"] * 1e3 for r in pts], "z": [r["quality_value"] for r in pts],
            "text": [hover(r, group) for r in pts],
            "color": ["#d62728" if r["run_id"] in group.front3 else "#999999" for r in pts]}
    return plots, cube


def html_table(head: list[str] | tuple[str, ...], rows: list[list[tuple[str, str]]]) -> str:
    """A table of (text, CSS class) cells; every header and cell escaped."""
    return ("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(
                "<tr>" + "".join(f'<td class="{c}">{esc(v)}</td>' for v, c in cells) + "</tr>"
                for cells in rows) + "</tbody></table>")


def css(column: Column, row: dict[str, Any]) -> str:
    """Text left, numbers right; an estimated energy method stands out."""
    shown = column.table
    assert shown is not None
    estimated = shown.flag_estimated and not measured(row)
    return ("l" if shown.left else "") + (" est" if estimated else "")


def table(group: Group) -> str:
    """The group's runs, best quality first: the same cells as the Markdown table."""
    columns = table_columns(group)
    rows = [list(zip(table_cells(columns, r, group), [css(c, r) for c in columns]))
            for r in best_first(group)]
    return (html_table(table_head(columns, group), rows)
            + f'<p class="note">{esc(fronts_legend(group))}</p>')


def left(cells: list[str]) -> list[tuple[str, str]]:
    return [(c, "l") for c in cells]


def making_table(rows: list[dict[str, Any]]) -> str:
    """What each model is, what it cost to make, and when that energy is paid back."""
    out = ['<h3>What each model cost to make</h3><p class="note">Break-even: '
           f"{break_even_unit(rows)} after which the per-sample energy saving over the same "
           "backend's untransformed fp32 run repays the training energy.</p>",
           html_table(making_head(rows), [left(making_cells(r)) for r in making_order(rows)])]
    if mentions_unstructured(rows):
        out.append(f'<p class="note">{esc(SPARSITY_NOTE)}</p>')
    return "".join(out)


def recommendation_html(rec: Recommendation) -> str:
    if rec.best is None:
        items = "".join(f"<li>{esc(run_label(r, short=True))}: {esc(why)}</li>"
                        for r, why in rec.rejected)
        return (f'<div class="rec none"><b>Recommendation:</b> nothing satisfies the '
                f"constraints ({esc(rec.constraints)}).<ul>{items}</ul></div>")
    items = "".join(f"<li>{esc(reason)}</li>" for reason in rec.reasons)
    items += "".join(f"<li>runner-up: {esc(run_label(r))}</li>" for r in rec.runners_up)
    return (f'<div class="rec"><b>Recommendation ({esc(rec.constraints.objective)}):</b> '
            f"{esc(run_label(rec.best))}<ul>{items}</ul></div>")


def serving_hover(row: dict[str, Any]) -> str:
    """A serving point's hover text: every line escaped, joined with Plotly's <br>."""
    lines = [serving_label(row, short=True),
             f"offered {fmt(row.get('offered_rate_per_s'), 1, 4)} req/s, achieved "
             f"{fmt(row.get('achieved_rate_per_s'), 1, 4)}",
             f"latency p50/p99: {fmt(row.get('latency_p50_s'), 1e3)} / "
             f"{fmt(row.get('latency_p99_s'), 1e3)} ms",
             f"energy/request: {fmt(row.get('energy_per_request_j'), 1e3)} mJ"
             + (f" ± {fmt(row['energy_per_request_ci95_j'], 1e3, 2)}"
                if row.get("energy_per_request_ci95_j") is not None else "")
             + f" ({row.get('energy_method') or '-'})"]
    if row.get("saturated"):
        lines.append("saturated")
    return "<br>".join(esc(line) for line in lines)


def serving_specs(view: ServingView, index: int) -> list[dict[str, Any]]:
    """The Plotly specs of a group's two load figures (energy, p99 against offered load)."""
    specs = []
    for n, (key, err_key, scale, ylabel, title) in enumerate(LOAD_FIGURES.values()):
        lines = load_series(view, key, err_key, scale)
        if not any(v is not None for s in lines for v in s.y):
            continue
        series = []
        for m, s in enumerate(lines):
            color = PALETTE[m % len(PALETTE)]
            hollow = not s.measured and key == "energy_per_request_j"
            series.append({
                "name": esc(s.label + (" (estimated)" if hollow else "")), "x": s.x, "y": s.y,
                "err": [e or 0 for e in s.err], "color": color,
                "dash": "dash" if hollow else "solid",
                "symbols": ["x" if sat else "circle-open" if hollow else "circle"
                            for sat in s.saturated],
                "markers": [SATURATED if sat else color for sat in s.saturated],
                "text": [serving_hover(r) for r in s.rows]})
        xs = [x for s in lines for x in s.x]
        bounds = ([{"y": b * 1e3, "name": esc(f"latency bound {b * 1e3:g} ms")}
                   for b in view.bounds_s] if key == "latency_p99_s" else [])
        specs.append({"id": f"serving-{index}-{n}", "series": series, "bounds": bounds,
                      "span": [min(xs), max(xs)], "title": esc(title),
                      "xlabel": "offered load (requests/s)", "ylabel": esc(ylabel),
                      "xlog": spans_decades(list(xs)),
                      "ylog": spans_decades([v for s in lines for v in s.y])})
    return specs


def serving_css(column: Column, row: dict[str, Any]) -> str:
    shown = column.serving
    assert shown is not None
    estimated = shown.flag_estimated and not measured(row)
    return ("l" if shown.left else "") + (" est" if estimated else "")


def choice_html(view: ServingView) -> str:
    """The serving choice at the asked rate, as the closed-loop recommendation box."""
    choice = view.choice
    if choice is None:
        return ""
    rejected = "".join(f"<li>not chosen: {esc(serving_label(r, short=True))}: {esc(why)}</li>"
                       for r, why in choice.rejected)
    asked = esc(asked_text(choice.constraints))
    if choice.best is None:
        return (f'<div class="rec none"><b>Recommendation ({asked}):</b> nothing satisfies '
                f"the constraints.<ul>{rejected}</ul></div>")
    items = "".join(f"<li>{esc(reason)}</li>" for reason in choice.reasons)
    items += "".join(f"<li>runner-up: {esc(runner_up_text(choice, r))}</li>"
                     for r in choice.runners_up)
    return (f'<div class="rec"><b>Recommendation ({asked}):</b> '
            f"{esc(serving_label(choice.best))}<ul>{items}{rejected}</ul></div>")


def serving_section(view: ServingView, specs: list[dict[str, Any]]) -> str:
    """A group's serving section: choice, load figures, table, crossovers, max rates."""
    group = view.group
    rows = [list(zip(serving_cells(r, group), [serving_css(c, r) for c in SERVING_TABLE]))
            for r in view.rows]
    crossings = "".join(f"<li>{esc(line)}</li>"
                        for line in crossover_lines(view.configurations, view.crossovers))
    ceilings = "".join(f"<li>{esc(max_rate_text(c))}</li>" for c in view.configurations)
    return (f"<h3>{esc(group.model)}: serving</h3>"
            f'<p class="note">{esc(SERVING_NOTE)}</p>' + choice_html(view)
            + '<div class="plots">' + "".join(f'<div class="plot" id="{p["id"]}"></div>'
                                             for p in specs) + "</div>"
            + '<p class="note">Red crosses: saturated points. Whiskers: 95% confidence '
              "interval over the metered windows. Dashed lines, open markers: estimated "
              "energy.</p>"
            + html_table(serving_head(group), rows)
            + "<p>Where the energy-per-request curves cross (linear interpolation between "
              "measured rates, over the rates both configurations measured unsaturated):</p>"
            + f"<ul>{crossings}</ul><p>Highest offered rate that held the latency bound "
              f"(rate search):</p><ul>{ceilings}</ul>")


def render_html(data: ReportData, groups: list[Group], recs: list[Recommendation],
                carbon: CarbonSettings, title: str,
                serving: dict[str, ServingView] | None = None) -> str:
    import plotly.offline

    serving = serving or {}
    lines: list[dict[str, Any]] = []
    plots: list[dict[str, Any]] = []
    cubes: list[dict[str, Any]] = []
    body = [f"<h1>{esc(title)}</h1>", f'<p class="note">{esc(BOUNDARY)}</p>',
            f'<p class="note">CO2: {esc(carbon.describe())}. Energy is never scaled by PUE.</p>']
    for eid, env in data.environments.items():
        body.append(f'<p class="note">Environment <code>{esc(eid)}</code>: '
                    f"{esc(environment_summary(env))}. Packages: {esc(packages_summary(env))}."
                    "</p>")
    for index, (group, rec) in enumerate(zip(groups, recs)):
        group_plots, cube = plot_specs(group, index)
        plots += group_plots
        cubes.append(cube)
        body.append(f"<h2>{esc(group.model)}: {esc(group.metric)}</h2>")
        quality = QUALITY_NOTES.get(group.metric, group.metric)
        deltas = (f" Deltas against {run_label(group.baseline, short=True)}."
                  if group.baseline else "")
        body.append(f'<p class="note">Quality: {esc(quality)}.{esc(deltas)}</p>')
        body.append(recommendation_html(rec))
        body.append('<div class="plots">' + "".join(
            f'<div class="plot" id="{p["id"]}"></div>' for p in group_plots)
            + f'<div class="plot" id="{cube["id"]}"></div></div>')
        body.append('<p class="note">Filled markers: measured energy; open: estimated (its '
                    "front is drawn separately). Whiskers: 95% confidence interval over "
                    "trials. Hover a point for its provenance.</p>")
        body.append(table(group))
        if shows_making(group.rows):
            body.append(making_table(group.rows))
        view = serving.get(f"{group.model}|{group.metric}")
        if view is not None:
            specs = serving_specs(view, index)
            lines += specs
            body.append(serving_section(view, specs))
    others = [r for r in data.rows if r["status"] != "ok"]
    if others:
        body.append("<h2>Skipped and failed</h2>"
                    + html_table(FAILED_HEAD, [left(failed_cells(r)) for r in others]))
    shown = {"plots": plots, "cubes": cubes, **({"lines": lines} if lines else {})}
    payload = json.dumps(shown).replace("<", "\\u003c").replace(
        ">", "\\u003e").replace("&", "\\u0026")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style>"
            f"<script>{plotly.offline.get_plotlyjs()}</script></head><body>"
            + "".join(body)
            + f'<script type="application/json" id="optbench-data">{payload}</script>'
            + f"<script>{SCRIPT}</script>"
            + (f"<script>{SERVING_SCRIPT}</script>" if lines else "") + "</body></html>")
