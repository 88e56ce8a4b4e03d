"""A report as one self-contained HTML5 file: inline CSS, inline sanitised SVG, no external references.

The stamp line (vintage, reform, as-of) heads the page on screen and every printed page (CSS ``@page``
margin boxes, with "page N of M" at the foot); table headers repeat on every printed page.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from jinja2 import Environment
from markupsafe import Markup

from tierline.reports.model import Cell, Chart, Report, Table

SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"

# Drawing elements kept in a chart; anything else (script, foreignObject, image, animate, iframe...) is dropped
# with its content. <a> is unwrapped: its children stay, the link goes.
_KEPT = frozenset(
    {
        *("svg", "g", "defs", "symbol", "use", "switch", "clipPath", "mask", "pattern", "marker"),
        *("linearGradient", "radialGradient", "stop", "style", "title", "desc"),
        *("rect", "circle", "ellipse", "line", "polyline", "polygon", "path", "text", "tspan"),
    }
)
_UNWRAPPED = frozenset({"a"})
_URL = re.compile(r"url\(\s*(['\"]?)([^'\")]*)\1\s*\)", re.IGNORECASE)
_ID_LIST_ATTRS = frozenset({"aria-labelledby", "aria-describedby"})
_NUMBER = re.compile(r"^[<>≤≥~≈±+\-−]?\s*\$?\d[\d,  ]*(\.\d+)?\s*(%|[kMGT]|e[+-]?\d+)?$")

# Class styles used by the dashboard's charts (tierline.web.svg), with concrete colours: a chart taken from
# there looks the same in a report, in the browser (page CSS) and in the PDF (injected into the SVG).
CHART_CSS = """
.bd-axis { font-size: 11px; fill: #5b6577; }
.bd-grid { stroke: #e3e7ee; }
.bd-tick { stroke: #8a93a3; }
.bd-line { fill: none; stroke: #1f4e79; stroke-width: 2; }
.bd-area { fill: #dfe6ee; }
.bd-today { stroke: #a4161a; stroke-dasharray: 4 3; }
.gauge-left { fill: #e4efe6; }
.gauge-used { fill: #1f4e79; }
.gauge-held { fill: #8fb3d9; }
.gauge-text { font-size: 12px; fill: #111111; font-weight: bold; }
.tl { stroke: #ffffff; stroke-width: 1; }
.t0 { fill: #bdbdbd; }
.t1 { fill: #2c7bb6; }
.t2 { fill: #f4a340; }
.t3 { fill: #c8102e; }
.tl-label { font-size: 12px; fill: #111111; font-weight: bold; }
"""


# ---- cells ---------------------------------------------------------------------------------------------
def numeric_columns(table: Table) -> tuple[bool, ...]:
    """Per column, whether it is right-aligned: `table.numeric` if given, else all its cells look like numbers."""
    width = len(table.columns)
    if table.numeric:
        return tuple(table.numeric[i] if i < len(table.numeric) else False for i in range(width))
    out = []
    for i in range(width):
        cells = [row[i] for row in table.rows if i < len(row) and row[i] is not None and row[i] != ""]
        out.append(bool(cells) and all(_looks_numeric(c) for c in cells))
    return tuple(out)


def _looks_numeric(cell: Cell) -> bool:
    if isinstance(cell, bool):
        return False
    if isinstance(cell, int | float):
        return True
    return bool(_NUMBER.match(str(cell).strip()))


def format_cell(cell: Cell) -> str:
    """A cell as text: thousands separators for numbers, an em dash for a missing value."""
    if cell is None:
        return "—"
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    if isinstance(cell, int):
        return f"{cell:,}"
    if isinstance(cell, float):
        if not math.isfinite(cell):
            return str(cell)
        if cell == 0 or 1e-3 <= abs(cell) < 1e15:
            text = f"{cell:,.4f}".rstrip("0").rstrip(".")
            return "0" if text in ("-0", "") else text
        return f"{cell:.3e}"
    return str(cell)


def table_rows(table: Table) -> list[list[str]]:
    """The body rows as text, padded or cut to the number of columns."""
    width = len(table.columns)
    return [[format_cell(row[i]) if i < len(row) else "" for i in range(width)] for row in table.rows]


# ---- SVG sanitiser ---------------------------------------------------------------------------------------
class UnsafeSvg(ValueError):
    """A chart's SVG could not be parsed or is not an SVG document."""


def clean_svg(
    svg: str,
    *,
    prefix: str = "",
    standalone: bool = True,
    titles: bool = True,
    text: Callable[[str], str] | None = None,
    css: str = "",
    label: str | None = None,
    defaults: dict[str, str] | None = None,
) -> str:
    """The chart with only drawing elements and document-local references left.

    Drops scripts, event handlers, foreign objects, images and every reference that is not a fragment
    (``href``, ``xlink:href``, ``url(...)``, ``@import``); prefixes ids with `prefix` so several charts
    can share one page. `standalone` adds the SVG namespace (for a file; inline HTML needs none),
    `titles` keeps <title>/<desc>, `text` maps every text node, `css` is prepended as a <style>, `label` becomes the root's
    accessible name (role="img") unless it has one, `defaults` are root attributes set when absent.
    Raises `UnsafeSvg` when the text is not an SVG document (or declares a DOCTYPE / entities).
    """
    if re.search(r"<!(DOCTYPE|ENTITY)", svg, re.IGNORECASE):
        raise UnsafeSvg("DOCTYPE and entity declarations are not allowed in a chart")
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise UnsafeSvg(f"not well-formed XML: {exc}") from exc
    if _local(root.tag) != "svg" or _space(root.tag) not in ("", SVG_NS):
        raise UnsafeSvg(f"the root element is <{_local(root.tag)}>, not <svg>")
    if label and not any(k in root.attrib for k in ("aria-label", "aria-labelledby")):
        root.set("aria-label", label)
        root.set("role", "img")
    for key, value in (defaults or {}).items():
        root.attrib.setdefault(key, value)
    writer = _SvgWriter(prefix=prefix, titles=titles, text=text or (lambda s: s))
    return "".join(writer.element(root, root=True, standalone=standalone, css=css))


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _space(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _esc(value: str, quote: bool = False) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value.replace('"', "&quot;").replace("'", "&#39;") if quote else value


@dataclass
class _SvgWriter:
    prefix: str
    titles: bool
    text: Callable[[str], str]

    def element(self, el: ET.Element, *, root: bool = False, standalone: bool = True, css: str = "") -> Iterator[str]:
        if not isinstance(el.tag, str):  # comments, processing instructions
            return
        name = _local(el.tag)
        if _space(el.tag) not in ("", SVG_NS):
            return
        if name in _UNWRAPPED:
            yield from self.children(el)
            return
        if name not in _KEPT or (name in ("title", "desc") and not self.titles):
            return
        if name == "style":
            body = "".join(el.itertext())
            if _unsafe_css(body):
                return
            yield f"<style>{_esc(self._rename_urls(body))}</style>"
            return
        attrs = self.attributes(el)
        if name == "use" and not any(k == "href" for k, _ in attrs):
            return  # its reference was external: nothing left to draw
        if root:
            if standalone:
                attrs.insert(0, ("xmlns", SVG_NS))
            names = {k for k, _ in attrs}
            box = (el.get("viewBox") or "").replace(",", " ").split()
            if "width" not in names and "height" not in names and len(box) == 4:
                attrs += [("width", box[2]), ("height", box[3])]
        yield f"<{name}" + "".join(f' {k}="{_esc(v, True)}"' for k, v in attrs) + ">"
        if root and css and not _unsafe_css(css):
            yield f"<style>{_esc(css)}</style>"
        yield from self.children(el)
        yield f"</{name}>"

    def children(self, el: ET.Element) -> Iterator[str]:
        if el.text:
            yield _esc(self.text(el.text))
        for child in el:
            yield from self.element(child)
            if child.tail:
                yield _esc(self.text(child.tail))

    def attributes(self, el: ET.Element) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for key, value in el.attrib.items():
            if key == _XML_SPACE:
                out.append(("xml:space", value))
                continue
            if key == _XLINK_HREF:
                key = "href"
            if key.startswith("{") or key.lower().startswith("on") or "javascript:" in value.lower():
                continue
            if key == "href":
                if value.strip().startswith("#"):
                    out.append(("href", "#" + self.prefix + value.strip()[1:]))
                continue
            if key == "id":
                value = self.prefix + value
            elif key in _ID_LIST_ATTRS:
                value = " ".join(self.prefix + v for v in value.split())
            elif key == "style" and _unsafe_css(value):
                continue
            elif "url(" in value.lower():
                if any(not m.group(2).strip().startswith("#") for m in _URL.finditer(value)):
                    continue
                value = self._rename_urls(value)
            out.append((key, value))
        return out

    def _rename_urls(self, value: str) -> str:
        return _URL.sub(lambda m: f"url(#{self.prefix}{m.group(2).strip()[1:]})", value)


def _unsafe_css(css: str) -> bool:
    low = css.lower()
    if any(bad in low for bad in ("@import", "expression(", "javascript:", "</", "\\")):
        return True
    return "url(" in low and any(not m.group(2).strip().startswith("#") for m in _URL.finditer(css))


# ---- page -------------------------------------------------------------------------------------------------
def css_string(text: str) -> str:
    """`text` as a CSS string literal, every character that is not plainly safe written as an escape."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_+()")
    return '"' + "".join(c if c in safe else f"\\{ord(c):x} " for c in text) + '"'  # the space ends the escape


_CSS = """
:root { --ink: #1d2433; --muted: #5b6577; --line: #d7dce5; --accent: #1f4e79; --zebra: #f5f7fa; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Helvetica, Arial, sans-serif; }
.stamp { position: sticky; top: 0; z-index: 1; background: var(--accent); color: #fff; padding: 6px 24px;
  font-size: 13px; display: flex; gap: 12px; flex-wrap: wrap; justify-content: space-between; }
.stamp .kind { text-transform: uppercase; letter-spacing: .06em; opacity: .85; }
@media (max-width: 600px) { .stamp { position: static; padding: 6px 16px; } main { padding: 8px 16px 40px; } }
main { max-width: 1040px; margin: 0 auto; padding: 8px 24px 48px; }
h1 { font-size: 28px; line-height: 1.2; margin: 24px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
.generated { color: var(--muted); margin: 0 0 16px; font-size: 13px; }
.summary { background: #f3f6fa; border-left: 4px solid var(--accent); padding: 4px 16px; margin: 16px 0; }
figure { margin: 16px 0 24px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: auto; min-width: min(100%, 36rem); font-size: 13px;
  font-variant-numeric: tabular-nums; }
.citations table { width: 100%; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 0 0 6px; }
th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: #e9eef5; border-bottom: 2px solid #b8c2d1; }
tbody tr:nth-child(even) { background: var(--zebra); }
th.num, td.num { text-align: right; white-space: nowrap; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.chart-missing { border: 1px dashed var(--line); padding: 12px; color: var(--muted); }
.citations td:first-child { white-space: nowrap; }
footer { max-width: 1040px; margin: 0 auto; padding: 12px 24px 32px; color: var(--muted); font-size: 12px;
  border-top: 1px solid var(--line); }
@media print {
  body { font-size: 10pt; }
  .stamp { position: static; background: none; color: var(--ink); border-bottom: 1px solid var(--ink);
    padding: 0 0 4px; font-size: 8pt; }
  main { max-width: none; padding: 0; }
  h1 { font-size: 18pt; margin-top: 8pt; }
  h2 { font-size: 13pt; break-after: avoid; }
  table { font-size: 8.5pt; }
  thead { display: table-header-group; }
  tr, figure.chart, caption { break-inside: avoid; }
  .table-wrap { overflow: visible; }
  tbody tr:nth-child(even) { background: none; }
  footer { padding: 8pt 0 0; }
}
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tierline">
<title>{{ report.title }}</title>
<style>{{ css }}
@page { size: A4; margin: 20mm 15mm 18mm;
  @top-left { content: {{ page_stamp }}; font: 8pt sans-serif; color: #333; }
  @bottom-left { content: {{ page_title }}; font: 8pt sans-serif; color: #555; }
  @bottom-right { content: "page " counter(page) " of " counter(pages); font: 8pt sans-serif; color: #555; }
}
</style>
</head>
<body>
<header class="stamp"><span class="stamp-line">{{ stamp }}</span><span class="kind">{{ report.kind }} report</span></header>
<main>
<h1>{{ report.title }}</h1>
<p class="generated">Generated <time datetime="{{ generated_iso }}">{{ generated }}</time> by tierline</p>
{% if report.summary %}<section class="summary" aria-label="Summary">
{% for p in report.summary %}<p>{{ p }}</p>
{% endfor %}</section>
{% endif %}
{% for section in sections %}<section>
<h2>{{ section.heading }}</h2>
{% for p in section.paragraphs %}<p>{{ p }}</p>
{% endfor %}
{% for t in section.tables %}<figure class="table-wrap"><table>
<caption>{{ t.caption }}</caption>
<thead><tr>{% for c in t.columns %}<th scope="col"{% if c.num %} class="num"{% endif %}>{{ c.name }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for cell in row %}<td{% if cell.num %} class="num"{% endif %}>{{ cell.text }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table></figure>
{% endfor %}
{% for c in section.charts %}<figure class="chart">
{% if c.svg %}{{ c.svg }}{% else %}<div class="chart-missing">Chart not shown: {{ c.error }}</div>{% endif %}
<figcaption>{{ c.title }}</figcaption>
</figure>
{% endfor %}</section>
{% endfor %}
{% if report.citations %}<section class="citations">
<h2>Citations</h2>
<table>
<thead><tr><th scope="col">Citation</th><th scope="col">Used for</th></tr></thead>
<tbody>
{% for c in report.citations %}<tr><td><cite>{{ c.cite }}</cite></td><td>{{ c.used_for }}</td></tr>
{% endfor %}</tbody>
</table>
</section>
{% endif %}
</main>
<footer>{{ stamp }} · generated {{ generated }} · self-contained file: no scripts, fonts or links to load</footer>
</body>
</html>
"""

_ENV = Environment(autoescape=True, trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True)
_PAGE = _ENV.from_string(_TEMPLATE)


def _chart(chart: Chart, n: int) -> dict[str, object]:
    try:
        svg = clean_svg(chart.svg, prefix=f"c{n}-", standalone=False, label=chart.title)
    except UnsafeSvg as exc:
        return {"title": chart.title, "svg": None, "error": str(exc)}
    return {"title": chart.title, "svg": Markup(svg), "error": None}


def render_html(report: Report) -> str:
    """The report as one self-contained HTML5 document (UTF-8 text)."""
    n = 0
    sections = []
    for section in report.sections:
        tables = []
        for table in section.tables:
            num = numeric_columns(table)
            tables.append(
                {
                    "caption": table.caption,
                    "columns": [{"name": c, "num": num[i]} for i, c in enumerate(table.columns)],
                    "rows": [[{"text": t, "num": num[i]} for i, t in enumerate(row)] for row in table_rows(table)],
                }
            )
        charts = []
        for chart in section.charts:
            n += 1
            charts.append(_chart(chart, n))
        sections.append(
            {"heading": section.heading, "paragraphs": section.paragraphs, "tables": tables, "charts": charts}
        )
    stamp = report.stamp.line()
    return _PAGE.render(
        report=report,
        sections=sections,
        stamp=stamp,
        css=Markup(_CSS + CHART_CSS),
        page_stamp=Markup(css_string(stamp)),
        page_title=Markup(css_string(report.title)),
        generated=report.generated.strftime("%Y-%m-%d %H:%M %Z").strip(),
        generated_iso=report.generated.isoformat(),
    )
