"""Report renderers: the self-contained HTML file and the PDF, built from hand-made Reports.

Expected values are written out here (the stamp text, the table's header names, the page count a
60-row table must at least reach); nothing is taken from running the renderers. The PDF is read back
with pdfium (text per page, pixels per page). Page images of the sample go to artifacts/reports/.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2 as pdfium
import pytest

from tierline.charts import tpp_density_svg
from tierline.policy import Context
from tierline.reports import Chart, Citation, Report, Section, Stamp, Table
from tierline.reports.html import clean_svg, render_html
from tierline.reports.pdf import render_pdf, to_latin1
from tierline.reports.write import write_report

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "reports"

STAMP_TEXT = "Vintage ai-diffusion vs rescission-2025 · reform raise-tier2-caps · as of 2026-01-01"
# 8.5 pt table text is 3 mm tall, so no row is shorter; an A4 page is 297 mm: at most 99 rows a page, and
# 200 rows need at least three pages.
LONG_ROWS = 200
HAND_SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 400 200' width='400' height='200'>"
    "<title>Two bars</title>"
    "<rect x='0' y='0' width='400' height='200' fill='#ffffff'/>"
    "<rect x='40' y='40' width='120' height='140' fill='#2c7bb6'/>"
    "<rect x='220' y='90' width='120' height='90' fill='#c8102e'/>"
    "<line x1='20' y1='180' x2='380' y2='180' stroke='#333333' stroke-width='2'/>"
    "<text x='100' y='30' font-size='14' text-anchor='middle'>TPP ≥ 4,800</text>"
    "</svg>"
)
EVIL_SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' xmlns:xlink='http://www.w3.org/1999/xlink' viewBox='0 0 100 50' "
    "onload='alert(1)'>"
    "<script>alert('svg')</script>"
    "<style>@import url(https://evil.example/x.css); .a { fill: red; }</style>"
    "<rect x='0' y='0' width='100' height='50' fill='url(https://evil.example/p#g)' onclick='alert(2)'/>"
    "<a href='https://evil.example/'><circle cx='20' cy='20' r='10' fill='#1f4e79'/></a>"
    "<image href='http://evil.example/i.png' width='10' height='10'/>"
    "<use xlink:href='https://evil.example/s.svg#x'/>"
    "<foreignObject width='10' height='10'><div xmlns='http://www.w3.org/1999/xhtml'>hi</div></foreignObject>"
    "<text x='5' y='45' font-family='Nonesuch'>safe text</text>"
    "</svg>"
)


def sample_report(title: str = "Tier 2 allowance comparison § 740.27 · H100 × 8") -> Report:
    """Three sections, a 200-row table, two charts (the 3A090 plane and a hand-written SVG), citations."""
    rows = tuple(
        (f"Country {i:03d} – “quoted”", 100 * i + 0.5, 1979 * 8 * i, None if i % 7 == 0 else f"{i}%")
        for i in range(1, LONG_ROWS + 1)
    )
    return Report(
        kind="comparison",
        title=title,
        stamp=Stamp(
            vintages=("ai-diffusion", "rescission-2025"),
            reforms=(None, "raise-tier2-caps"),
            as_of=dt.date(2026, 1, 1),
        ),
        summary=(
            "Under the reform, Tier 2 caps rise; the H100 × 8 system stays ≥ the 3A090.a.1 line (TPP ≥ 4,800).",
            "Differences are listed per country below — citations at the end.",
        ),
        sections=(
            Section(
                heading="Allowances by country",
                paragraphs=("Each row is one destination; amounts are TPP, numbers right-aligned.",),
                tables=(
                    Table(caption="Allowance per destination", columns=("Country", "Cap", "Used", "Share"), rows=rows),
                ),
            ),
            Section(
                heading="Where the chips fall",
                paragraphs=("The ECCN 3A090 plane as of the stamp date, then a plain bar chart.",),
                charts=(
                    Chart(title="3A090 plane", svg=tpp_density_svg(Context.make("ai-diffusion", "2026-01-01"))),
                    Chart(title="Two bars", svg=HAND_SVG),
                ),
            ),
            Section(
                heading="Method",
                paragraphs=("Paragraphs in § 740.27 and § 744.23 apply … as of the date in the stamp.",),
                tables=(
                    Table(
                        caption="Lines used",
                        columns=("Line", "Value"),
                        rows=(("a1.tpp_min", 4800), ("b2.pd_min", 1.6)),
                        numeric=(False, True),
                    ),
                ),
            ),
        ),
        citations=(
            Citation(cite="15 CFR 740.27(b)", used_for="Tier 2 country allocations"),
            Citation(cite="90 FR 4544", used_for="The AI Diffusion interim final rule"),
        ),
        generated=dt.datetime(2026, 1, 2, 9, 30, tzinfo=dt.UTC),
    )


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any attempt to open a network connection fails the test (and is recorded)."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == [], f"the renderer tried to reach the network: {attempts}"


@pytest.fixture(scope="module")
def report() -> Report:
    return sample_report()


# ---- HTML --------------------------------------------------------------------------------------------
def test_stamp_line_text(report: Report) -> None:
    assert report.stamp.line() == STAMP_TEXT


def test_html_is_self_contained(report: Report, offline: list[Any]) -> None:
    html = render_html(report)
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?:", html, re.IGNORECASE), re.findall(r".{40}https?:.{40}", html)
    assert not re.search(r"(?<![\w-])(src|href)\s*=\s*['\"]?(?!#)", html, re.IGNORECASE)
    assert "@import" not in html
    for target in re.findall(r"url\(\s*['\"]?([^'\")]*)", html, re.IGNORECASE):
        assert target.startswith(("#", "data:")), target
    assert not re.search(r"['\"(\s]//\w", html)  # protocol-relative URLs
    assert "<script" not in html.lower() and "<link" not in html.lower() and "<img" not in html.lower()
    assert "@font-face" not in html


def test_html_has_stamp_title_and_structure(report: Report) -> None:
    html = render_html(report)
    assert STAMP_TEXT in html
    assert "@top-left" in html and "counter(pages)" in html  # running header/footer on printed pages
    assert html.count("<h2>") == 4  # three sections and the citations
    assert "Tier 2 allowance comparison § 740.27 · H100 × 8" in html
    assert "<thead>" in html and 'class="num"' in html
    assert "15 CFR 740.27(b)" in html and "2026-01-02" in html
    # both charts are inline SVG, not images or objects
    assert html.count("<svg") == 2
    assert "<img" not in html and "<object" not in html and "<iframe" not in html


def test_html_numbers_right_aligned(report: Report) -> None:
    html = render_html(report)
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", html, re.S)
    assert header is not None
    assert re.findall(r"<th[^>]*>", header.group(1)) == [
        '<th scope="col">',
        '<th scope="col" class="num">',
        '<th scope="col" class="num">',
        '<th scope="col" class="num">',
    ]
    # 1979 x 8 x 3 = 15,832 x 3 = 47,496 TPP in row 3, right-aligned with a thousands separator
    assert '<td class="num">47,496</td>' in html


def test_html_escapes_text() -> None:
    evil = "<script>alert(1)</script>"
    report = sample_report(title=f"Title {evil}")
    report = Report(
        kind=report.kind,
        title=report.title,
        stamp=report.stamp,
        summary=(f"summary {evil}",),
        sections=(Section(heading=f"h {evil}", tables=(Table(caption="t", columns=("a",), rows=((evil,),)),)),),
        citations=(Citation(cite=evil, used_for="x"),),
    )
    html = render_html(report)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_neutralises_malicious_chart(report: Report) -> None:
    bad = Report(
        kind="comparison",
        title="evil chart",
        stamp=report.stamp,
        sections=(Section(heading="chart", charts=(Chart(title="evil", svg=EVIL_SVG),)),),
    )
    html = render_html(bad)
    svg = html[html.index("<svg") : html.index("</svg>")]
    for bad_text in ("<script", "alert", "onload", "onclick", "evil.example", "@import", "<image", "foreignObject"):
        assert bad_text not in svg, bad_text
    assert "<circle" in svg and "safe text" in svg  # the harmless content of <a> and <text> stays


def test_clean_svg_prefixes_ids() -> None:
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><defs><clipPath id='plot'>"
        "<rect width='5' height='5'/></clipPath></defs><g clip-path='url(#plot)'><use href='#plot'/></g></svg>"
    )
    out = clean_svg(svg, prefix="c7-", standalone=False)
    assert 'id="c7-plot"' in out and 'clip-path="url(#c7-plot)"' in out and 'href="#c7-plot"' in out
    assert "xmlns" not in out


def test_clean_svg_rejects_doctype() -> None:
    with pytest.raises(ValueError):
        clean_svg("<!DOCTYPE svg [<!ENTITY x 'y'>]><svg xmlns='http://www.w3.org/2000/svg'>&x;</svg>")
    with pytest.raises(ValueError):
        clean_svg("<html/>")


# ---- PDF ---------------------------------------------------------------------------------------------
def test_transliteration() -> None:
    assert to_latin1("TPP ≥ 4,800 – ≤ 1.6 — ’x’ … § · ×") == "TPP >= 4,800 - <= 1.6 - 'x' ... § · ×"
    assert to_latin1("“q” ẞ ✓ 中") == '"q" ? yes ?'
    assert to_latin1(STAMP_TEXT) == STAMP_TEXT  # the stamp is Latin-1 already: "·" survives


@pytest.fixture(scope="module")
def pdf_doc(report: Report) -> Iterator[pdfium.PdfDocument]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "create_connection", _no_network)
        data = render_pdf(report)
    assert data.startswith(b"%PDF-")
    doc = pdfium.PdfDocument(data)
    yield doc
    doc.close()


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the PDF renderer tried to reach the network")


def _texts(doc: pdfium.PdfDocument) -> list[str]:
    out = []
    for page in doc:
        textpage = page.get_textpage()
        out.append(_squash(textpage.get_text_range()))
        textpage.close()
    return out


def _pixels(page: Any) -> np.ndarray[Any, Any]:
    bitmap = page.render(scale=1, rev_byteorder=True)  # RGB(x) rather than pdfium's default BGR(x)
    return np.asarray(bitmap.to_numpy())[..., :3].astype(int)


def test_pdf_pages_and_running_header(pdf_doc: pdfium.PdfDocument) -> None:
    texts = _texts(pdf_doc)
    total = len(texts)
    assert total >= 3
    for n, text in enumerate(texts, start=1):
        assert STAMP_TEXT in text, f"page {n}: {text[:200]}"
        assert f"page {n} of {total}" in text, f"page {n}"
    assert "Tier 2 allowance comparison § 740.27 · H100 × 8" in texts[0]


def test_pdf_long_table_repeats_header(pdf_doc: pdfium.PdfDocument) -> None:
    texts = _texts(pdf_doc)
    first = next(i for i, t in enumerate(texts) if "Country 001" in t)
    last = next(i for i, t in enumerate(texts) if f"Country {LONG_ROWS}" in t)
    assert last - first >= 2, f"a {LONG_ROWS}-row table on pages {first + 1} to {last + 1} only"
    for i in range(first, last + 1):
        assert "Country Cap Used Share" in texts[i], f"header row not repeated on page {i + 1}"
    assert 'Country 007 - "quoted"' in texts[first]  # – and “ ” transliterated
    assert "47,496" in "".join(texts)  # 1979 x 8 x 3


def test_pdf_every_page_has_body_content(pdf_doc: pdfium.PdfDocument) -> None:
    for n, page in enumerate(pdf_doc, start=1):
        px = _pixels(page)
        h = px.shape[0]
        body = px[int(h * 0.10) : int(h * 0.92)]
        ink = (body.min(axis=2) < 200).mean()
        assert ink > 0.002, f"page {n} body is nearly blank ({ink:.4f} ink)"


def test_pdf_chart_is_vector_drawing(pdf_doc: pdfium.PdfDocument) -> None:
    texts = _texts(pdf_doc)
    n = next(i for i, t in enumerate(texts) if "Two bars" in t)
    page = pdf_doc[n]
    kinds = [obj.type for obj in page.get_objects(max_depth=4)]
    assert kinds.count(pdfium.raw.FPDF_PAGEOBJ_PATH) >= 3
    assert pdfium.raw.FPDF_PAGEOBJ_IMAGE not in kinds
    px = _pixels(page)
    # the hand-written chart's bars: #2c7bb6 (44, 123, 182) and #c8102e (200, 16, 46)
    blue = (np.abs(px - np.array([44, 123, 182])).sum(axis=2) < 30).sum()
    red = (np.abs(px - np.array([200, 16, 46])).sum(axis=2) < 30).sum()
    assert blue > 2000 and red > 1000, (blue, red)
    # and the 3A090 plane's region fills (e.g. 3A090.a.1 #f6b3ae) on its page
    m = next(i for i, t in enumerate(texts) if "ECCN 3A090" in t)
    plane = _pixels(pdf_doc[m])
    assert (np.abs(plane - np.array([246, 179, 174])).sum(axis=2) < 20).sum() > 5000
    assert "TPP >= 4,800" in texts[m] or "TPP ≥ 4,800" in texts[m]


def test_pdf_metadata(pdf_doc: pdfium.PdfDocument) -> None:
    meta = pdf_doc.get_metadata_dict()
    assert meta["Title"] == "Tier 2 allowance comparison § 740.27 · H100 × 8"
    assert meta["CreationDate"].startswith("D:20260102")


def test_pdf_malicious_and_broken_charts_do_not_crash(report: Report, offline: list[Any]) -> None:
    bad = Report(
        kind="comparison",
        title="charts fpdf2 may not draw",
        stamp=report.stamp,
        sections=(
            Section(
                heading="charts",
                charts=(
                    Chart(title="evil", svg=EVIL_SVG),
                    Chart(title="not svg", svg="<p>no</p>"),
                    Chart(title="no size", svg="<svg xmlns='http://www.w3.org/2000/svg'><rect width='5'/></svg>"),
                ),
            ),
        ),
    )
    doc = pdfium.PdfDocument(render_pdf(bad))
    text = " ".join(_texts(doc))
    assert "safe text" in text
    assert "not svg" in text and "Chart not drawn" in text
    assert "alert" not in text


def test_write_report(tmp_path: Path, report: Report, offline: list[Any]) -> None:
    html, pdf = write_report(report, tmp_path / "deep" / "dir" / "cmp.pdf")
    assert (html.name, pdf.name) == ("cmp.html", "cmp.pdf")
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert sorted(p.name for p in html.parent.iterdir()) == ["cmp.html", "cmp.pdf"]  # no temp files left
    again = write_report(report, tmp_path / "deep" / "dir" / "cmp")
    assert again == (html, pdf)


def test_html_printed_by_chromium_repeats_stamp(tmp_path: Path, report: Report) -> None:
    """Chromium's print of the HTML: the stamp and "page N of M" on every page, the table header repeated."""
    from web_server import CHROMIUM, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    source = tmp_path / "report.html"
    source.write_text(render_html(report), encoding="utf-8")
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.goto(source.as_uri())
            printed = page.pdf(prefer_css_page_size=True)
        finally:
            browser.close()
    assert requested == [source.as_uri()]  # nothing but the file itself
    texts = _texts(pdfium.PdfDocument(printed))
    assert len(texts) >= 3
    for n, text in enumerate(texts, start=1):
        assert STAMP_TEXT in text, f"printed page {n}: {text[:200]}"
        assert f"page {n} of {len(texts)}" in text
    pages_with_rows = [t for t in texts if "Country 1" in t]
    assert pages_with_rows and all("Country Cap Used Share" in t for t in pages_with_rows)


def test_sample_page_images(pdf_doc: pdfium.PdfDocument, report: Report) -> None:
    """Writes the sample's pages as PNGs (and the HTML) to artifacts/reports/ for a look."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("sample-page-*.png"):
        old.unlink()
    for n, page in enumerate(pdf_doc, start=1):
        page.render(scale=2).to_pil().save(ARTIFACTS / f"sample-page-{n}.png")
    write_report(report, ARTIFACTS / "sample")
    assert len(list(ARTIFACTS.glob("sample-page-*.png"))) == len(pdf_doc)
