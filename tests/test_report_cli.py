"""`tierline report KIND ...` and `--report` write REPORT.html and REPORT.pdf through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pypdfium2

from helpers import run_cli


def _pdf_text(path: Path) -> list[str]:
    doc = pypdfium2.PdfDocument(str(path))
    return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]


def test_report_pathways_writes_html_and_pdf_stamped_on_every_page(tmp_path: Path) -> None:
    env = {"TIERLINE_HOME": str(tmp_path / "home")}
    out = tmp_path / "reports" / "brazil"
    result = run_cli(
        "report", "pathways", "BR", "--as-of", "2026-01-01", "--scenario", "double-tier2", "--out", str(out), env=env
    )
    assert result.code == 0, result.stderr
    html, pdf = out.with_suffix(".html"), out.with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    stamp = "Vintage ai-diffusion · reform double-tier2 · as of 2026-01-01"
    assert stamp in html.read_text(encoding="utf-8")
    pages = _pdf_text(pdf)
    assert pages and all(stamp in page for page in pages)
    # double-tier2: 790,000,000 x 2 = 1,580,000,000 TPP left in Brazil's allocation (nothing used yet)
    assert "1,580,000,000" in "".join(pages)


def test_report_option_on_compare_and_project(tmp_path: Path) -> None:
    env = {"TIERLINE_HOME": str(tmp_path / "home")}
    tx = tmp_path / "tx.json"
    tx.write_text(
        json.dumps(
            {
                "date": "2025-08-01",
                "destination": "PL",
                "items": [{"chip": "H100", "quantity": 2000}],
                "ultimate_consignee": {"id": "c1", "name": "C1", "country": "PL"},
                "end_use": "data_center",
                "certifications": ["aia_certification", "approved_designer"],
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "cmp"
    result = run_cli(
        "compare",
        str(tx),
        "--side",
        "ai-diffusion",
        "--side",
        "ai-diffusion+poland-tier1",
        "--report",
        str(out),
        "--json",
        env=env,
    )
    assert result.code == 0, result.stderr
    json.loads(result.stdout)  # the report's path goes to stderr: --json stays parseable
    assert "15 CFR 740.27" in "".join(_pdf_text(out.with_suffix(".pdf")))  # AIA decided the changed line
    demand = tmp_path / "demand.csv"
    demand.write_text("date,country,chip,quantity\n2025-06-01,BR,H100,1000\n", encoding="utf-8")
    result = run_cli("report", "projection", str(demand), "--out", str(tmp_path / "proj"), env=env)
    assert result.code == 0, result.stderr
    assert (tmp_path / "proj.pdf").read_bytes().startswith(b"%PDF")
    assert run_cli("report", "compare", str(tx), "--side", "ai-diffusion", env=env).code == 2  # one side only
