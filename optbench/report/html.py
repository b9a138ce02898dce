"""A self-contained, offline HTML report: Plotly is embedded, nothing is fetched.

Every name that came from a user (model, backend, variant, weights, reasons) is escaped
on the server: tables are built here with html.escape, and the figures' labels are
escaped before Plotly sees them, so markup in a name is shown as text, never executed.
The page's data travels as JSON inside a <script type="application/json"> block with
'<', '>' and '&' escaped, so it cannot close the script element.

Sized for stores of 10,000 configurations: the blob holds each group's rows once (values,
hover text, provenance) and every figure of the group reads them by index; a table longer
than a page (PAGE_ROWS) travels in the blob as cells, drawn a page at a time by a few lines
of plain JavaScript with a filter box and sortable columns (text set with textContent,
never parsed as markup); a series of more than GL_POINTS points is drawn with WebGL
(scattergl), and when a page's WebGL figures would need more contexts than a browser keeps,
each is drawn as it scrolls into view and the oldest out of view released.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from optbench.carbon import CarbonSettings
from optbench.report.analysis import Group, best_first, measured, provenance_groups
from optbench.report.columns import (
    BY_KEY,
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
from optbench.report.families import classic_line
from optbench.report.fleet import (
    FLEET_NOTE,
    NO_CLOSED_LOOP,
    RATE_NOTE,
    FleetView,
    bar_series,
    fleet_cells,
    fleet_head,
    rate_head,
    rate_rows,
    whiskers,
)
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
from optbench.report.significance import significance_lines
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

PAGE_ROWS = 100  # tables longer than this are drawn by the page, a page at a time
GL_POINTS = 2000  # series with more points are drawn with WebGL (SVG is fine below)
# WebGL contexts in use at once: browsers keep about 16 a page and drop the oldest beyond;
# a scattergl figure takes three (Plotly's context, focus and pick canvases), a 3-D one one.
LIVE_CONTEXTS = 12
LISTED = 20  # rejected configurations listed by name in a recommendation box

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{margin-bottom:.2rem} .note{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:right}
th{background:#f3f3f3} td.l{text-align:left}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem}
.plot{height:420px} .rec{background:#eef6ee;border-left:4px solid #3a3;padding:.5rem 1rem}
.none{background:#fbeeee;border-left-color:#c33} .est{color:#a60}
.paged table{margin-top:.3rem} .paged th{cursor:pointer} .ctl{margin:.8rem 0 0;font-size:.85rem}
.ctl input{width:18rem}
"""

SCRIPT = """
(function(){
  var data = JSON.parse(document.getElementById('optbench-data').textContent);
  var GL_POINTS = %(gl_points)d, LIVE_CONTEXTS = %(live)d, PAGE = %(page_rows)d, drawn = 0;
  function mark(){ drawn += 1; document.body.setAttribute('data-plots-drawn', String(drawn)); }
  function pick(a, idx){ return idx.map(function(i){ return a[i]; }); }
  function members(idx){ var s = {}; (idx || []).forEach(function(i){ s[i] = true; }); return s; }
  var config = {displaylogo:false, responsive:true}, jobs = [];
  function figure(p, g){
    var xs = g.x[p.key], est = members(g.estimated), hollow = members(g.hollow), front = {};
    p.lines.forEach(function(l){ l.idx.forEach(function(i){ front[i] = true; }); });
    var all = [];
    for (var i = 0; i < g.y.length; i++) { if (xs[i] !== null && g.y[i] !== null) all.push(i); }
    var series = p.split ? [['measured energy', all.filter(function(i){ return !est[i]; }), false],
                            ['estimated energy', all.filter(function(i){ return est[i]; }), true]]
                         : [['configurations', all, false]];
    series = series.filter(function(s){ return s[1].length; });
    var gl = series.some(function(s){ return s[1].length > GL_POINTS; }) ? 3 : 0;
    return {id: p.id, gl: gl, draw: function(){  // scattergl: three WebGL contexts
      var traces = series.map(function(s){
        var idx = s[1], big = idx.length > GL_POINTS;
        var colors = idx.map(function(i){ return front[i] ? '#1f77b4' : '#999999'; });
        var t = {x:pick(xs, idx), y:pick(g.y, idx), text:pick(g.text, idx), hoverinfo:'text',
                 mode:'markers', type:big ? 'scattergl' : 'scatter', name:s[0],
                 marker:{size:big ? 6 : 10, color:colors, line:{width:big ? 1 : 2, color:colors},
                         symbol:idx.map(function(i){
                           return s[2] || hollow[i] ? 'circle-open' : 'circle'; })}};
        if (p.err) t.error_x = {type:'data', visible:true, thickness:1, color:'#aaaaaa',
                                array:pick(g.err, idx).map(function(e){ return e || 0; })};
        return t;
      });
      p.lines.forEach(function(l){
        traces.push({x:pick(xs, l.idx), y:pick(g.y, l.idx), mode:'lines', type:'scatter',
                     name:l.name, line:{shape:l.shape, color:l.color, width:1.5},
                     hoverinfo:'skip'});
      });
      Plotly.newPlot(p.id, traces, {title:{text:p.title}, xaxis:{title:{text:p.xlabel},
        type:p.log ? 'log' : 'linear'}, yaxis:{title:{text:p.ylabel}},
        margin:{t:40,r:10,b:90,l:60}, legend:{orientation:'h', y:-0.28}}, config);
    }};
  }
  function cube(c, g){
    var ex = g.x.energy_per_sample_j || [], lx = g.x.latency_p99_s || [], front = members(c.front);
    var hollow = members(g.hollow), idx = [];
    for (var i = 0; i < g.y.length; i++) {
      if (ex[i] != null && lx[i] != null && g.y[i] !== null) idx.push(i);
    }
    return {id: c.id, gl: 1, draw: function(){
      Plotly.newPlot(c.id, [{x:pick(ex, idx), y:pick(lx, idx), z:pick(g.y, idx),
        text:pick(g.text, idx), hoverinfo:'text', mode:'markers', type:'scatter3d',
        marker:{size:idx.length > GL_POINTS ? 3 : 5,
                color:idx.map(function(i){ return front[i] ? '#d62728' : '#999999'; }),
                symbol:idx.map(function(i){ return hollow[i] ? 'circle-open' : 'circle'; })}}],
        {title:{text:c.title}, scene:{xaxis:{title:{text:c.xlabel}, type:'log'},
        yaxis:{title:{text:c.ylabel}, type:'log'}, zaxis:{title:{text:c.zlabel}}},
        margin:{t:40,r:0,b:0,l:0}}, config);
    }};
  }
  function load(p){
    return {id: p.id, gl: 0, draw: function(){
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
        legend:{orientation:'h', y:-0.28}}, config);
    }};
  }
  function bars(p){
    return {id: p.id, gl: 0, draw: function(){
      Plotly.newPlot(p.id, [{x:p.x, y:p.y, text:p.text, hoverinfo:'text', type:'bar',
        textposition:'none',
        marker:{color:p.colors}, error_y:{type:'data', symmetric:false, array:p.up,
        arrayminus:p.down, visible:true}}],
        {title:{text:p.title}, yaxis:{title:{text:p.ylabel}}, margin:{t:40,r:10,b:90,l:60}},
        config);
    }};
  }
  data.plots.forEach(function(g){ g.figures.forEach(function(p){ jobs.push(figure(p, g)); }); });
  (data.bars || []).forEach(function(p){ jobs.push(bars(p)); });
  data.cubes.forEach(function(c){ jobs.push(cube(c, data.plots[c.group])); });
  (data.lines || []).forEach(function(p){ jobs.push(load(p)); });
  function cost(list){ return list.reduce(function(sum, j){ return sum + j.gl; }, 0); }
  if (cost(jobs) <= LIVE_CONTEXTS || !('IntersectionObserver' in window)) {
    jobs.forEach(function(j){ j.draw(); mark(); });
  } else {
    var byId = {}, live = [], seen = {};
    var forget = function(j){ j.live = false; live = live.filter(function(k){ return k !== j; }); };
    var release = function(room){  // purge the oldest figures out of view until there is room
      for (var n = 0; n < live.length && cost(live) + room > LIVE_CONTEXTS; ) {
        if (live[n].visible) { n += 1; continue; }
        var old = live[n];
        forget(old);
        Plotly.purge(old.id);
      }
    };
    var observer = new IntersectionObserver(function(entries){
      entries.forEach(function(e){ byId[e.target.id].visible = e.isIntersecting; });
      entries.forEach(function(e){
        var j = byId[e.target.id];
        if (!j.visible || j.live) return;
        if (j.gl) release(j.gl);
        j.draw(); j.live = true;
        if (!seen[j.id]) { seen[j.id] = true; mark(); }
        if (!j.gl) return;
        live.push(j);
        document.getElementById(j.id).querySelectorAll('canvas').forEach(function(c){
          c.addEventListener('webglcontextlost', function(){ forget(j); }, {once: true});
        });  // a context the browser took back: drawn again when next scrolled to
      });
    }, {rootMargin: '100px'});
    jobs.forEach(function(j){ byId[j.id] = j; observer.observe(document.getElementById(j.id)); });
  }
  (data.tables || []).forEach(function(t){
    var box = document.getElementById(t.id), body = box.querySelector('tbody');
    var input = box.querySelector('input'), info = box.querySelector('.info');
    var prev = box.querySelector('.prev'), next = box.querySelector('.next');
    var odd = {}, page = 0, hay = null, sense = {};
    t.odd.forEach(function(o){ odd[o[0] + ',' + o[1]] = o[2]; });
    var order = t.rows.map(function(r, i){ return i; }), view = order;
    function render(){
      var start = page * PAGE, shown = view.slice(start, start + PAGE);
      var frag = document.createDocumentFragment();
      shown.forEach(function(i){
        var tr = document.createElement('tr');
        t.rows[i].forEach(function(text, c){
          var td = document.createElement('td'), cls = odd[i + ',' + c];
          td.textContent = text;
          cls = cls === undefined ? t.cls[c] : cls;
          if (cls) td.className = cls;
          tr.appendChild(td);
        });
        frag.appendChild(tr);
      });
      body.textContent = '';
      body.appendChild(frag);
      info.textContent = view.length ? 'rows ' + (start + 1) + '-' + (start + shown.length) +
        ' of ' + view.length + (view.length < t.rows.length ? ' (filtered from ' +
        t.rows.length + ')' : '') : 'no row matches';
      prev.disabled = page === 0;
      next.disabled = start + PAGE >= view.length;
    }
    function filter(){
      var q = input.value.toLowerCase();
      if (q && !hay) hay = t.rows.map(function(r){ return r.join('\\t').toLowerCase(); });
      view = q ? order.filter(function(i){ return hay[i].indexOf(q) >= 0; }) : order;
      page = 0;
      render();
    }
    input.addEventListener('input', filter);
    prev.addEventListener('click', function(){ page -= 1; render(); });
    next.addEventListener('click', function(){ page += 1; render(); });
    box.querySelectorAll('th').forEach(function(th, c){
      th.title = 'sort';
      th.addEventListener('click', function(){
        var d = sense[c] = -(sense[c] || -1), text = /(^| )l( |$)/.test(t.cls[c]);
        var keys = t.rows.map(function(r){ var v = parseFloat(r[c]); return isNaN(v) ? null : v; });
        order = order.slice().sort(function(a, b){
          var x = text ? null : keys[a], y = text ? null : keys[b];
          if (x !== null && y !== null) return d * (x - y) || a - b;
          if (x !== null || y !== null) return x === null ? 1 : -1;
          return d * t.rows[a][c].localeCompare(t.rows[b][c]) || a - b;
        });
        filter();
      });
    });
    render();
  });
})();
""" % {"gl_points": GL_POINTS, "live": LIVE_CONTEXTS, "page_rows": PAGE_ROWS}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
SATURATED = "#d62728"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


class Page:
    """What the page's one JSON blob carries beside its figures: the tables too long to
    send as HTML, as cells; each gets an element id its script fills."""

    def __init__(self) -> None:
        self.tables: list[dict[str, Any]] = []

    def table(self, head: list[str] | tuple[str, ...], rows: list[list[tuple[str, str]]]
              ) -> str:
        """A table drawn by the page, a page at a time: the header as HTML, the cells (text
        unescaped: the script sets textContent) in the blob. A column's usual CSS class
        is sent once; cells that differ (an estimated method) are listed."""
        tid = f"table-{len(self.tables)}"
        classes = [c for _, c in rows[0]] if rows else []
        odd = [[r, c, css] for r, cells in enumerate(rows) for c, (_, css) in enumerate(cells)
               if css != classes[c]]
        self.tables.append({"id": tid, "rows": [[text for text, _ in cells] for cells in rows],
                            "cls": classes, "odd": odd})
        return (f'<div class="paged" id="{tid}"><p class="ctl"><input type="search" '
                'placeholder="filter rows (any text in them)" aria-label="filter rows"> '
                '<button class="prev" type="button">previous</button> <span class="info">'
                f'{len(rows)} rows (shown with JavaScript)</span> '
                '<button class="next" type="button">next</button></p><table><thead><tr>'
                + "".join(f"<th>{esc(h)}</th>" for h in head)
                + "</tr></thead><tbody></tbody></table></div>")


def html_table(head: list[str] | tuple[str, ...], rows: list[list[tuple[str, str]]],
               page: Page | None = None) -> str:
    """A table of (text, CSS class) cells; every header and cell escaped. Longer than
    PAGE_ROWS and with a `page` to carry it: drawn by the page instead (Page.table)."""
    if page is not None and len(rows) > PAGE_ROWS:
        return page.table(head, rows)
    return ("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(
                "<tr>" + "".join(f'<td class="{c}">{esc(v)}</td>' for v, c in cells) + "</tr>"
                for cells in rows) + "</tbody></table>")


def hover(row: dict[str, Any], group: Group) -> str:
    """Hover text: every line escaped, joined with Plotly's <br>."""
    lines = [run_label(row, short=True), f"{group.metric}: {fmt(row['quality_value'], 1, 4)}",
             f"energy/{group.unit}: {fmt(row['energy_per_sample_j'], 1e3)} mJ"
             + (f" ± {fmt(row['energy_per_sample_ci95_j'], 1e3, 2)}"
                if row.get("energy_per_sample_ci95_j") is not None else ""),
             f"latency p50/p99: {fmt(row['latency_p50_s'], 1e3)} / "
             f"{fmt(row['latency_p99_s'], 1e3)} ms",
             *provenance(row).split("; ")]
    if row.get("valid") is False:
        lines.append(f"invalid: {row.get('validity') or 'failed a validity check'}")
    return "<br>".join(esc(line) for line in lines)


def shown(value: Any, scale: float = 1.0) -> float | None:
    """A value as a figure draws it: scaled, to 6 significant digits (the page's size),
    None where missing or not finite (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value * scale:.6g}")


ENERGY, P99 = BY_KEY["energy_per_sample_j"], BY_KEY["latency_p99_s"]


def plot_specs(group: Group, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The group's figures with the rows they draw, sent once: per row its quality, hover
    text, the value of each plotted axis and the energy interval, and which rows have
    estimated energy or failed validity (drawn open). Each figure names its axis and
    lists its fronts' rows; the cube (energy, latency p99, quality) lists front3's."""
    rows = group.rows
    position = {r["run_id"]: i for i, r in enumerate(rows)}
    data: dict[str, Any] = {
        "y": [shown(r.get("quality_value")) for r in rows],
        "text": [hover(r, group) for r in rows],
        "estimated": [i for i, r in enumerate(rows) if not measured(r)],
        "hollow": [i for i, r in enumerate(rows) if r.get("valid") is False],
        "x": {}, "err": [shown(r.get("energy_per_sample_ci95_j"), ENERGY.scale) for r in rows],
        "figures": []}
    for n, column in enumerate(PLOTTED):
        key, scale = column.key, column.scale
        pts = [r for r in rows if r.get(key) is not None and r.get("quality_value") is not None]
        if key in (ENERGY.key, P99.key) or pts:
            data["x"][key] = [shown(r.get(key), scale) for r in rows]
        if not pts:
            continue
        front = group.fronts.get(key, set())
        lines = []
        for members in provenance_groups(pts, key):
            on = sorted((r for r in members if r["run_id"] in front),
                        key=lambda r: (r[key], r["quality_value"]))
            if on:
                est = key == ENERGY.key and not measured(on[0])
                lines.append({"name": "front (estimated energy)" if est else "front",
                              "idx": [position[r["run_id"]] for r in on],
                              "shape": "hv" if column.sense == "min" else "vh",
                              "color": "#ff7f0e" if est else "#1f77b4"})
        values = [r[key] for r in pts]
        axis = column.axis.format(unit=group.unit)
        data["figures"].append({
            "id": f"plot-{index}-{n}", "key": key, "split": key == ENERGY.key,
            "err": key == ENERGY.key, "lines": lines,
            "title": esc(f"{axis.split(' (')[0]} vs {group.metric}"), "xlabel": esc(axis),
            "ylabel": esc(group.metric + ("" if group.higher_is_better
                                          else " (lower is better)")),
            "log": max(values) / max(min(values), 1e-12) > 20})
    cube = {"id": f"cube-{index}", "group": index,
            "title": esc(f"non-dominated in (energy, latency p99, {group.metric})"),
            "xlabel": esc(ENERGY.axis.format(unit=group.unit)), "ylabel": esc(P99.axis),
            "zlabel": esc(group.metric),
            "front": sorted(position[i] for i in group.front3 if i in position)}
    return data, cube


def css(column: Column, row: dict[str, Any]) -> str:
    """Text left, numbers right; an estimated energy method stands out."""
    shown = column.table
    assert shown is not None
    estimated = shown.flag_estimated and not measured(row)
    return ("l" if shown.left else "") + (" est" if estimated else "")


def table(group: Group, page: Page | None = None) -> str:
    """The group's runs, best quality first: the same cells as the Markdown table."""
    columns = table_columns(group)
    rows = [list(zip(table_cells(columns, r, group), [css(c, r) for c in columns]))
            for r in best_first(group)]
    return (html_table(table_head(columns, group), rows, page)
            + f'<p class="note">{esc(fronts_legend(group))}</p>' + significance_html(group))


def significance_html(group: Group) -> str:
    """Which quality differences are real and which are noise (report.significance)."""
    lines = significance_lines(group)
    if not lines:
        return ""
    items = "".join(f"<li>{esc(line.removeprefix('- '))}</li>" for line in lines[1:])
    return f'<p class="note">{esc(lines[0])}</p><ul class="note">{items}</ul>'



def left(cells: list[str]) -> list[tuple[str, str]]:
    return [(c, "l") for c in cells]


def making_table(rows: list[dict[str, Any]], page: Page | None = None) -> str:
    """What each model is, what it cost to make, and when that energy is paid back."""
    out = ['<h3>What each model cost to make</h3><p class="note">Break-even: '
           f"{break_even_unit(rows)} after which the per-sample energy saving over the same "
           "backend's untransformed fp32 run repays the training energy.</p>",
           html_table(making_head(rows), [left(making_cells(r)) for r in making_order(rows)],
                      page)]
    if mentions_unstructured(rows):
        out.append(f'<p class="note">{esc(SPARSITY_NOTE)}</p>')
    return "".join(out)


def listed(items: list[str]) -> str:
    """At most LISTED list items, then how many more (10,000 rejections are a table's job)."""
    more = len(items) - LISTED
    return "".join(items[:LISTED]) + (f"<li>and {more:,} more (see the table)</li>"
                                      if more > 0 else "")


def recommendation_html(rec: Recommendation) -> str:
    if rec.best is None:
        items = listed([f"<li>{esc(run_label(r, short=True))}: {esc(why)}</li>"
                        for r, why in rec.rejected])
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
    rejected = listed([f"<li>not chosen: {esc(serving_label(r, short=True))}: {esc(why)}</li>"
                       for r, why in choice.rejected])
    asked = esc(asked_text(choice.constraints))
    if choice.best is None:
        return (f'<div class="rec none"><b>Recommendation ({asked}):</b> nothing satisfies '
                f"the constraints.<ul>{rejected}</ul></div>")
    items = "".join(f"<li>{esc(reason)}</li>" for reason in choice.reasons)
    items += "".join(f"<li>runner-up: {esc(runner_up_text(choice, r))}</li>"
                     for r in choice.runners_up)
    return (f'<div class="rec"><b>Recommendation ({asked}):</b> '
            f"{esc(serving_label(choice.best))}<ul>{items}{rejected}</ul></div>")


def serving_section(view: ServingView, specs: list[dict[str, Any]],
                    page: Page | None = None) -> str:
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
            + html_table(serving_head(group), rows, page)
            + "<p>Where the energy-per-request curves cross (linear interpolation between "
              "measured rates, over the rates both configurations measured unsaturated):</p>"
            + f"<ul>{crossings}</ul><p>Highest offered rate that held the latency bound "
              f"(rate search):</p><ul>{ceilings}</ul>")


def fleet_specs(view: FleetView, index: int) -> list[dict[str, Any]]:
    """The Plotly specs of the fleet bars: one figure per axis, a bar per machine."""
    specs = []
    for n, (title, unit, bars) in enumerate(bar_series(view)):
        down, up = whiskers(bars)
        specs.append({"id": f"fleet-{index}-{n}", "title": esc(title), "ylabel": esc(unit),
                      "x": [esc(b[0]) for b in bars], "y": [b[1] for b in bars],
                      "up": up, "down": down,
                      "text": [esc(f"{b[0]}: {'n/a' if b[1] is None else f'{b[1]:.4g}'} {unit}")
                               for b in bars],
                      "colors": [PALETTE[k % len(PALETTE)] for k in range(len(bars))]})
    return specs


def fleet_section(view: FleetView, specs: list[dict[str, Any]], page: Page | None = None) -> str:
    """Machines side by side: the table, what it says, bars, the same at the asked rate."""
    findings = "".join(f"<li>{esc(line)}</li>" for line in view.findings)
    out = [f"<h3>{esc(view.group.model)}: machines side by side</h3>"]
    if view.closed_loop:
        out += [f'<p class="note">{esc(FLEET_NOTE)}</p>',
                html_table(fleet_head(view), [left(fleet_cells(m)) for m in view.machines],
                           page),
                f'<ul class="rec">{findings}</ul>' if findings else "",
                '<div class="plots">' + "".join(f'<div class="plot" id="{p["id"]}"></div>'
                                                for p in specs) + "</div>"]
    elif not view.at_rate:
        out.append(f'<p class="note">{esc(NO_CLOSED_LOOP)}</p>')
    if view.at_rate:
        rate = "".join(f"<li>{esc(line)}</li>" for line in view.rate_findings)
        out += [f'<p class="note">{esc(RATE_NOTE)}</p>',
                html_table(rate_head(view), [left(r) for r in rate_rows(view)], page),
                f'<ul class="rec">{rate}</ul>' if rate else ""]
    if view.ray_cost:
        items = "".join(f"<li>{esc(line)}</li>" for line in view.ray_cost)
        out.append('<p class="note">Other processes on each machine\'s meters (an '
                   "executor's daemons, such as Ray's, among them; docs/fleet.md):</p>"
                   f'<ul class="note">{items}</ul>')
    return "".join(out)


def render_html(data: ReportData, groups: list[Group], recs: list[Recommendation],
                carbon: CarbonSettings, title: str,
                serving: dict[str, ServingView] | None = None,
                fleet: dict[str, FleetView] | None = None,
                figures: dict[str, list[str]] | None = None) -> str:
    """The self-contained page; `figures` (render's static files, relative to the page)
    adds each group's training-energy figure as an image."""
    import plotly.offline

    serving = serving or {}
    fleet = fleet or {}
    bars: list[dict[str, Any]] = []
    page = Page()
    lines: list[dict[str, Any]] = []
    plots: list[dict[str, Any]] = []
    cubes: list[dict[str, Any]] = []
    body = [f"<h1>{esc(title)}</h1>", f'<p class="note">{esc(BOUNDARY)}</p>',
            f'<p class="note">CO2: {esc(carbon.describe())}. Energy is never scaled by PUE.</p>',
            '<noscript><p class="rec none">The figures and long tables need JavaScript; '
            "report.md beside this page has every table.</p></noscript>"]
    for eid, env in data.environments.items():
        body.append(f'<p class="note">Environment <code>{esc(eid)}</code>: '
                    f"{esc(environment_summary(env))}. Packages: {esc(packages_summary(env))}."
                    "</p>")
    for index, (group, rec) in enumerate(zip(groups, recs)):
        group_plots, cube = plot_specs(group, index)
        plots.append(group_plots)
        cubes.append(cube)
        body.append(f"<h2>{esc(group.model)}: {esc(group.metric)}</h2>")
        quality = QUALITY_NOTES.get(group.metric, group.metric)
        deltas = (f" Deltas against {run_label(group.baseline, short=True)}."
                  if group.baseline else "")
        body.append(f'<p class="note">Quality: {esc(quality)}.{esc(deltas)}</p>')
        if group.models[1:]:
            body.append(f'<p class="note">Models on these fronts, judged on the same '
                        f'samples: {esc(", ".join(group.models))}.</p>')
        body.append(recommendation_html(rec))
        shallow = classic_line(group)
        if shallow:
            body.append(f'<p class="rec">{esc(shallow)}</p>')
        body.append('<div class="plots">' + "".join(
            f'<div class="plot" id="{p["id"]}"></div>' for p in group_plots["figures"])
            + f'<div class="plot" id="{cube["id"]}"></div></div>')
        body.append('<p class="note">Filled markers: measured energy; open: estimated (its '
                    "front is drawn separately) or a run that failed a validity check. "
                    "Whiskers: 95% confidence interval over trials. Hover a point for its "
                    "provenance.</p>")
        body.append(table(group, page))
        if shows_making(group.rows):
            body.append(making_table(group.rows, page))
        body += [f'<p><img src="{esc(p)}" alt="{esc(group.model)}: quality against training '
                 f'and inference energy" style="max-width:100%"></p>'
                 for p in (figures or {}).get(f"{group.model}|{group.metric}", [])
                 if p.endswith("-training.svg")]
        view = serving.get(f"{group.model}|{group.metric}")
        if view is not None:
            specs = serving_specs(view, index)
            lines += specs
            body.append(serving_section(view, specs, page))
        machines = fleet.get(f"{group.model}|{group.metric}")
        if machines is not None:
            specs = fleet_specs(machines, index)
            bars += specs
            body.append(fleet_section(machines, specs, page))
    others = [r for r in data.rows if r["status"] != "ok"]
    if others:
        body.append("<h2>Skipped and failed</h2>"
                    + html_table(FAILED_HEAD, [left(failed_cells(r)) for r in others], page))
    shown = {"plots": plots, "cubes": cubes, **({"lines": lines} if lines else {}),
             **({"bars": bars} if bars else {}),
             **({"tables": page.tables} if page.tables else {})}
    payload = json.dumps(shown, ensure_ascii=False, separators=(",", ":"),
                         allow_nan=False).replace("<", "\\u003c").replace(
        ">", "\\u003e").replace("&", "\\u0026")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style>"
            f"<script>{plotly.offline.get_plotlyjs()}</script></head><body>"
            + "".join(body)
            + f'<script type="application/json" id="optbench-data">{payload}</script>'
            + f"<script>{SCRIPT}</script></body></html>")
