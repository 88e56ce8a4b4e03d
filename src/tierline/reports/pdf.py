"""A report as a PDF with fpdf2: the stamp line heads every page, "page N of M" and the title at every foot.

Offline by construction: the PDF core fonts (Helvetica) only, charts drawn as vector graphics from their
sanitised SVG, and fpdf2 forbidden to load any resource. The core fonts cover Latin-1, so text is
transliterated (`to_latin1`): ≥ as >=, ≤ as <=, – and — as -, ’ as ', … as ...; · § × ² µ ± survive.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
from typing import Any

from fpdf import FPDF, FontFace
from fpdf.enums import ResourceAccessPolicy, TableBordersLayout, TableCellFillMode, TableHeadingsDisplay
from fpdf.svg import SVGObject
from fpdf.util import Padding

from tierline.reports.html import CHART_CSS, UnsafeSvg, clean_svg, numeric_columns, table_rows
from tierline.reports.model import Chart, Report, Table

# Characters outside Latin-1 and what the PDF prints instead (anything else: its decomposition, or "?").
TRANSLITERATION = {
    "≥": ">=",
    "≤": "<=",
    "≠": "!=",
    "≈": "~",
    "−": "-",
    "‐": "-",
    "‑": "-",
    "‒": "-",
    "–": "-",
    "—": "-",
    "―": "-",
    "‘": "'",
    "’": "'",
    "‚": "'",
    "′": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "″": '"',
    "…": "...",
    "•": "·",
    "∙": "·",
    "⋅": "·",
    "→": "->",
    "←": "<-",
    "↔": "<->",
    "⇒": "=>",
    "∞": "inf",
    "√": "sqrt",
    "∑": "sum",
    "∆": "delta",
    "Δ": "delta",
    "€": "EUR",
    "™": "(TM)",
    "‰": " per mille",
    "✓": "yes",
    "✔": "yes",
    "✗": "no",
    "✘": "no",
    "\u2009": " ",  # thin space
    "\u202f": " ",  # narrow no-break space
    "\u2007": " ",  # figure space
    "\u200b": "",  # zero width space
    "\ufeff": "",
}

A4_W, A4_H = 210.0, 297.0
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 16.0, 21.0, 18.0
PX_MM = 25.4 / 96  # one CSS pixel
ACCENT = (31, 78, 121)
INK, MUTED, RULE = (29, 36, 51), (91, 101, 119), (200, 206, 216)
HEAD_FILL, ZEBRA, SUMMARY_FILL = (233, 238, 245), (246, 248, 251), (239, 243, 248)
FONT = "helvetica"


def to_latin1(text: str) -> str:
    """`text` as the PDF core fonts can print it (Latin-1), by `TRANSLITERATION` then decomposition."""
    out = []
    for ch in text:
        if ord(ch) < 256:
            out.append(ch)
        elif ch in TRANSLITERATION:
            out.append(TRANSLITERATION[ch])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(base if base and all(ord(c) < 256 for c in base) else "?")
    return "".join(out)


class _ReportPDF(FPDF):
    """A4 portrait with the stamp line as running header and "page N of M" in the footer."""

    def __init__(self, report: Report) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.stamp = to_latin1(report.stamp.line())
        self.foot_title = to_latin1(report.title)
        self.resource_access_policy = ResourceAccessPolicy.NONE
        self.set_margins(MARGIN_X, MARGIN_TOP, MARGIN_X)
        self.set_auto_page_break(True, MARGIN_BOTTOM)
        self.alias_nb_pages()
        self.set_title(report.title)
        self.set_subject(report.stamp.line())
        self.set_creator("tierline")
        self.set_author("tierline")
        self.set_keywords(f"{report.kind} report")
        self.set_lang("en")
        self.set_creation_date(_aware(report.generated))

    def header(self) -> None:
        self.set_text_color(*INK)
        size = 8.5
        self.set_font(FONT, "", size)
        while size > 6 and self.get_string_width(self.stamp) > self.epw:
            size -= 0.5
            self.set_font(FONT, "", size)
        self.set_xy(MARGIN_X, 9)
        self.multi_cell(self.epw, 3.6, self.stamp, align="L")
        self.set_draw_color(*ACCENT)
        self.set_line_width(0.4)
        line_y = max(self.get_y() + 1.2, 15.0)
        self.line(MARGIN_X, line_y, A4_W - MARGIN_X, line_y)
        self.set_y(max(MARGIN_TOP, line_y + 5))

    def footer(self) -> None:
        self.set_y(-13)
        self.set_draw_color(*RULE)
        self.set_line_width(0.2)
        self.line(MARGIN_X, self.get_y(), A4_W - MARGIN_X, self.get_y())
        self.set_font(FONT, "", 8)
        self.set_text_color(*MUTED)
        page = f"page {self.page_no()} of {{nb}}"
        room = self.epw - self.get_string_width(f"page {self.page_no()} of 0000") - 6
        title = self.foot_title
        if self.get_string_width(title) > room:
            while title and self.get_string_width(title + "...") > room:
                title = title[:-1]
            title = title.rstrip() + "..."
        self.set_y(-11)
        self.cell(room, 5, title, align="L")
        self.set_x(A4_W - MARGIN_X - 40)
        self.cell(40, 5, page, align="R")

    # ---- blocks --------------------------------------------------------------------------------------
    def room(self) -> float:
        """Space left on this page above the bottom margin."""
        return self.page_break_trigger - self.get_y()

    def keep(self, height: float) -> None:
        """Start a new page unless `height` mm fit on this one."""
        if self.room() < height:
            self.add_page()

    def paragraph(self, text: str, size: float = 10, style: str = "", colour: tuple[int, int, int] = INK) -> None:
        self.set_font(FONT, style, size)
        self.set_text_color(*colour)
        self.set_x(self.l_margin)
        self.multi_cell(0, size * 0.5, to_latin1(text), align="L")
        self.ln(size * 0.2)

    def heading(self, text: str) -> None:
        self.keep(32)
        self.ln(3)
        self.set_font(FONT, "B", 13)
        self.set_text_color(*ACCENT)
        self.set_x(self.l_margin)
        self.multi_cell(0, 6.5, to_latin1(text), align="L")
        self.set_draw_color(*RULE)
        self.set_line_width(0.3)
        self.line(self.l_margin, self.get_y() + 0.5, A4_W - self.r_margin, self.get_y() + 0.5)
        self.ln(3)

    def caption(self, text: str) -> None:
        self.set_font(FONT, "B", 9.5)
        self.set_text_color(*INK)
        self.set_x(self.l_margin)
        self.multi_cell(0, 4.8, to_latin1(text), align="L")
        self.ln(1)

    def summary(self, paragraphs: tuple[str, ...]) -> None:
        self.set_fill_color(*SUMMARY_FILL)
        self.set_font(FONT, "", 10.5)
        self.set_text_color(*INK)
        for text in paragraphs:
            self.set_x(self.l_margin)
            self.multi_cell(0, 5.4, to_latin1(text), align="L", fill=True, padding=Padding(1.5, 3, 1.5, 3))
            self.ln(1.5)
        self.ln(1)

    def data_table(self, table: Table) -> None:
        num = numeric_columns(table)
        header = [to_latin1(c) for c in table.columns]
        rows = [[to_latin1(c) for c in row] for row in table_rows(table)]
        self.keep(4.8 * (1 + to_latin1(table.caption).count("\n")) + 6 * min(len(rows) + 1, 4))
        self.caption(table.caption)
        self._grid(header, rows, num)
        self.ln(4)

    def citations(self, report: Report) -> None:
        self.heading("Citations")
        rows = [[to_latin1(c.cite), to_latin1(c.used_for)] for c in report.citations]
        self._grid(["Citation", "Used for"], rows, (False, False), widths=(0.32, 0.68))

    def _grid(
        self, header: list[str], rows: list[list[str]], num: tuple[bool, ...], widths: tuple[float, ...] | None = None
    ) -> None:
        size = 8.5
        self.set_font(FONT, "", size)
        self.set_text_color(*INK)
        self.set_draw_color(*RULE)
        self.set_line_width(0.2)
        if widths is None:
            widths = self._widths(header, rows, size, num)
            width = min(self.epw, max(sum(widths) * 1.25, 70.0))
        else:
            width = self.epw
        align = tuple("RIGHT" if n else "LEFT" for n in num)
        with self.table(
            col_widths=widths,
            align="LEFT",
            text_align=align,
            line_height=4.2,
            padding=(1.0, 1.8),
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            cell_fill_mode=TableCellFillMode.EVEN_ROWS,
            cell_fill_color=ZEBRA,
            headings_style=FontFace(emphasis="BOLD", fill_color=HEAD_FILL, color=INK),
            repeat_headings=TableHeadingsDisplay.ON_TOP_OF_EVERY_PAGE,
            v_align="TOP",
            first_row_as_headings=True,
            width=width,
        ) as grid:
            grid.row(header)
            for row in rows:
                grid.row(row)

    def _widths(
        self, header: list[str], rows: list[list[str]], size: float, num: tuple[bool, ...] = ()
    ) -> tuple[float, ...]:
        """Column widths from the widest text in each column (headers bold), long text capped. When
        they do not fit the page, number columns keep their width (a number is never wrapped), each
        text column keeps at least its longest word, and the text columns share what is left."""
        cap = self.epw * 0.45
        natural, words = [], []
        for i, name in enumerate(header):
            self.set_font(FONT, "B", size)
            widest = max((self.get_string_width(w) for w in name.split()), default=0.0)
            word = widest
            self.set_font(FONT, "", size)
            for row in rows[:400]:
                widest = max(widest, self.get_string_width(row[i]))
                word = max([word, *(self.get_string_width(w) for w in row[i].split())])
            natural.append(min(widest, cap) + 4.0)
            words.append(min(word, 30.0) + 4.0)
        numeric = [i < len(num) and num[i] for i in range(len(natural))]
        if sum(natural) <= self.epw or not any(numeric):
            return tuple(natural)
        room = self.epw - sum(w for w, n in zip(natural, numeric, strict=True) if n)
        low = [min(w, n) for w, n in zip(words, natural, strict=True)]
        floor = sum(w for w, n in zip(low, numeric, strict=True) if not n)
        extra = sum(n - w for w, n, k in zip(low, natural, numeric, strict=True) if not k)
        share = max(0.0, room - floor) / extra if extra else 0.0
        if room < floor:  # not even the longest words fit: shrink the text columns alike
            return tuple(n if k else w * max(room, 1.0) / floor for w, n, k in zip(low, natural, numeric, strict=True))
        return tuple(n if k else w + (n - w) * share for w, n, k in zip(low, natural, numeric, strict=True))

    def chart(self, chart: Chart, n: int) -> None:
        try:
            svg = _pdf_svg(chart, n)
            obj = SVGObject(svg)
            width, height = _svg_size(obj)
            _trial(svg, width, height)
        except Exception as exc:  # fpdf2 cannot draw some SVG features: say so instead of failing the report
            self.keep(20)
            self.caption(chart.title)
            self.paragraph(f"[Chart not drawn in the PDF ({_reason(exc)}); see the HTML report.]", 9, "I", MUTED)
            return
        w = min(self.epw, width * PX_MM)
        h = w * height / width
        body = self.page_break_trigger - MARGIN_TOP - 14
        if h > body:
            w, h = w * body / h, body
        self.keep(h + 10)
        self.caption(chart.title)
        x = self.l_margin + (self.epw - w) / 2
        y = self.get_y()
        self.set_fill_color(0, 0, 0)
        self.set_draw_color(0, 0, 0)
        self.set_text_color(0, 0, 0)
        self.image(io.BytesIO(svg.encode("utf-8")), x=x, y=y, w=w, h=h, alt_text=to_latin1(chart.title))
        self.set_y(y + h + 5)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return to_latin1(text[:120])


_FONT_FAMILY = re.compile(r'(font-family\s*(?:="|:\s*))([^";}]+)')


def _pdf_svg(chart: Chart, n: int) -> str:
    """The chart as fpdf2 reads it: sanitised, Latin-1 text, class styles inlined, a core-font fallback."""
    svg = clean_svg(
        chart.svg,
        prefix=f"c{n}-",
        titles=False,
        text=to_latin1,
        css=CHART_CSS,
        defaults={"fill": "#000000"},  # SVG's default; fpdf2 would otherwise paint text in its current fill colour
    )
    return _FONT_FAMILY.sub(lambda m: f"{m.group(1)}{m.group(2).rstrip()}, sans-serif", svg)


def _svg_size(obj: Any) -> tuple[float, float]:
    """The chart's width and height in CSS pixels (width/height attributes, else the viewBox)."""
    width, height = obj.width, obj.height
    if not (isinstance(width, int | float) and isinstance(height, int | float)) and obj.viewbox:
        width, height = obj.viewbox[2], obj.viewbox[3]
    if not (isinstance(width, int | float) and isinstance(height, int | float)) or width <= 0 or height <= 0:
        raise UnsafeSvg("the chart has no usable size (width/height or viewBox)")
    return float(width), float(height)


def _trial(svg: str, width: float, height: float) -> None:
    """Draw the chart into a scratch PDF first: fpdf2 reports some failures (fonts) only on output."""
    pdf = FPDF(unit="pt")
    pdf.resource_access_policy = ResourceAccessPolicy.NONE
    pdf.add_page()
    pdf.image(io.BytesIO(svg.encode("utf-8")), x=0, y=0, w=min(width, 500.0), h=min(width, 500.0) * height / width)
    pdf.output()


def render_pdf(report: Report) -> bytes:
    """The report as PDF bytes."""
    pdf = _ReportPDF(report)
    pdf.add_page()
    pdf.set_font(FONT, "B", 19)
    pdf.set_text_color(*INK)
    pdf.multi_cell(0, 8.5, to_latin1(report.title), align="L")
    pdf.ln(1)
    when = _aware(report.generated).strftime("%Y-%m-%d %H:%M %Z")
    pdf.paragraph(f"{report.kind.capitalize()} report · generated {when} by tierline", 9, "", MUTED)
    pdf.paragraph("Basis: " + "; ".join(report.stamp.sides()) + f" · as of {report.stamp.as_of}", 9, "", MUTED)
    pdf.ln(2)
    if report.summary:
        pdf.summary(report.summary)
    n = 0
    for section in report.sections:
        pdf.heading(section.heading)
        for text in section.paragraphs:
            pdf.paragraph(text)
        for table in section.tables:
            pdf.data_table(table)
        for chart in section.charts:
            n += 1
            pdf.chart(chart, n)
    if report.citations:
        pdf.citations(report)
    return bytes(pdf.output())
