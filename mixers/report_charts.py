"""The charts of `dolma report`, as Vega-Lite specs built with altair, and the page and files they become.

The page embeds the Vega / Vega-Lite / vega-embed JavaScript that vl-convert-python bundles, so it opens from
file:// with no network; vl-convert also renders the same specs to SVG and PNG files without a browser. Every
text that came from an input (document excerpts, rule text, attribute names) is HTML-escaped on the page, and
specs are embedded as JSON with `<`, `>` and `&` escaped so no value can close the script element.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

from dolma.errors import ConfigError

WIDTH = 520


def _libraries() -> tuple[Any, Any]:
    try:
        import altair
        import vl_convert
    except ImportError:
        raise ConfigError(
            "dolma report needs the 'report' extra (altair and vl-convert-python): pip install 'dolma-toolkit[report]'"
        ) from None
    return altair, vl_convert


@dataclass
class Chart:
    """One figure: a stable file name, a title for the page, its Vega-Lite spec and a note shown under it."""

    name: str
    title: str
    spec: dict[str, Any]
    note: str = ""


def bars(name: str, title: str, rows: list[dict[str, Any]], x: str, y: str, color: str | None = None) -> Chart:
    """Horizontal bars, one per `y` category (with a `color` field, stacked)."""
    alt, _ = _libraries()
    encoding: dict[str, Any] = {
        "x": alt.X(f"{x}:Q", title=x),
        "y": alt.Y(f"{y}:N", title=None, sort="-x"),
        "tooltip": [f"{y}:N", f"{x}:Q"],
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=color)
        encoding["tooltip"].append(f"{color}:N")
    chart = alt.Chart(alt.Data(values=rows)).mark_bar().encode(**encoding).properties(width=WIDTH, title=title)
    return Chart(name, title, chart.to_dict())


def measures(name: str, title: str, rows: list[dict[str, Any]], category: str, fields: list[str]) -> Chart:
    """One bar chart per measure (documents, bytes, tokens...) side by side, each with its own scale."""
    alt, _ = _libraries()
    values = [{category: row[category], "measure": f, "value": row[f]} for row in rows for f in fields if f in row]
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X("value:Q", title=None),
            y=alt.Y(f"{category}:N", title=None),
            tooltip=[f"{category}:N", "measure:N", "value:Q"],
        )
        .properties(width=220)
        .facet(column=alt.Column("measure:N", title=None, sort=fields))
        .resolve_scale(x="independent")
        .properties(title=title)
    )
    return Chart(name, title, chart.to_dict())


def histogram(name: str, title: str, counts: list[int], edges: list[float], lines: list[dict[str, Any]]) -> Chart:
    """A histogram from fixed bins, with a vertical rule and a label for every threshold in `lines`
    (`{"value": number, "label": text}`)."""
    alt, _ = _libraries()
    bins = [{"start": lo, "end": hi, "count": c} for c, lo, hi in zip(counts, edges, edges[1:])]
    base = (
        alt.Chart(alt.Data(values=bins))
        .mark_bar()
        .encode(
            x=alt.X("start:Q", title="score", scale=alt.Scale(zero=False)),
            x2="end:Q",
            y=alt.Y("count:Q", title="spans", scale=alt.Scale(zero=True)),
            y2=alt.datum(0),
            tooltip=["start:Q", "end:Q", "count:Q"],
        )
    )
    layers = [base]
    if lines:
        # labels stacked from the top of the plot, one line each (y in pixels: scale=None)
        data = alt.Data(values=[dict(line, ypos=4 + 14 * i) for i, line in enumerate(lines)])
        rule = alt.Chart(data).mark_rule(color="#d62728", strokeWidth=2).encode(x="value:Q", tooltip=["label:N"])
        text = (
            alt.Chart(data)
            .mark_text(align="left", baseline="top", dx=4, color="#d62728")
            .encode(x="value:Q", y=alt.Y("ypos:Q", scale=None), text="label:N")
        )
        layers += [rule, text]
    chart = alt.layer(*layers).properties(width=WIDTH, height=220, title=title)
    return Chart(name, title, chart.to_dict())


# ----------------------------------------------------------------------------------------------------------
# Files for papers and the page
# ----------------------------------------------------------------------------------------------------------


def render_file(chart: Chart, fmt: str) -> bytes:
    """The chart as an SVG or PNG file, drawn by vl-convert (no browser)."""
    _, vlc = _libraries()
    if fmt == "svg":
        return vlc.vegalite_to_svg(chart.spec).encode()
    return vlc.vegalite_to_png(chart.spec, scale=2)


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no value can end it or open a comment."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.note { color: #555; font-size: 0.9em; } .chart { margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }
td.excerpt { max-width: 640px; white-space: pre-wrap; font-family: ui-monospace, monospace; }
"""

# Draws every chart (SVG renderer: marks are DOM elements a test can count); a failure goes to the console
# and to the page, and <body data-charts> says when all are done ("ok" or "failed").
_DRAW = """
(function () {
  const specs = JSON.parse(document.getElementById("dolma-specs").textContent);
  const jobs = Object.keys(specs).map(function (id) {
    return vegaEmbed("#" + id, specs[id], {renderer: "svg", actions: false});
  });
  Promise.all(jobs).then(
    function () { document.body.dataset.charts = "ok"; },
    function (err) { document.body.dataset.charts = "failed"; console.error("dolma report: a chart failed", err); }
  );
})();
"""


def page(title: str, sections: list[tuple[str, list[Chart], str]]) -> str:
    """The whole report: sections of (heading, charts, extra HTML already escaped), JavaScript inline."""
    _, vlc = _libraries()
    specs: dict[str, Any] = {}
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, charts, extra in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for chart in charts:
            chart_id = f"chart-{len(specs)}"
            specs[chart_id] = chart.spec
            body.append(f'<div class="chart" id="{chart_id}" data-name="{html.escape(chart.name)}"></div>')
            if chart.note:
                body.append(f'<p class="note">{html.escape(chart.note)}</p>')
        body.append(extra)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_STYLE}</style>",
            f"<script>{vlc.javascript_bundle()}</script>",
            "</head><body>",
            *body,
            f'<script type="application/json" id="dolma-specs">{_script_json(specs)}</script>',
            f"<script>{_DRAW}</script>",
            "</body></html>",
        ]
    )


def table(header: list[str], rows: list[list[Any]], excerpt_column: int | None = None) -> str:
    """An HTML table; every cell is escaped (cells come from documents and configs)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = [f"<table><tr>{head}</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="excerpt"' if i == excerpt_column else ""
            cells.append(f"<td{cls}>{html.escape(str(cell))}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)
