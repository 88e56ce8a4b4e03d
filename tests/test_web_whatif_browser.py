"""The dashboard's what-if pages in a real browser: the real ``tierline serve`` in a subprocess and
Debian's Chromium driven by Playwright (the fixture pattern of tests/test_web_browser.py). Screenshots
of every new page go to ``artifacts/``; any request to another host fails the test.

Skipped when /usr/bin/chromium is absent, unless TIERLINE_REQUIRE_BROWSER=1, when it fails.

Hand arithmetic (values from the regulation): an H100 SXM5 is 1,978.9 x 8 = 15,831.2 TPP, 2,000 of them
31,662,400 TPP; a Tier 2 country allocation is 790,000,000 TPP for 2025-2027; the H100 reference chip is
1,979 x 8 = 15,832 TPP.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import KENYA_H100
from web_server import DESKTOP, PHONE, Tab, WebServer, require_browser, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    require_browser()
    srv = start_server(tmp_path_factory.mktemp("web-whatif"))
    try:
        yield srv
    finally:
        srv.stop()


def download(page: Any, selector: str, folder: Path) -> bytes:
    with page.expect_download() as info:
        page.locator(selector).click()
    saved = folder / str(info.value.suggested_filename)
    info.value.save_as(saved)
    return saved.read_bytes()


# ---- pathways ------------------------------------------------------------------------------------
def test_pathway_form_shows_the_remaining_h100s_of_a_tier2_country(
    tab_for: Any, server: WebServer, tmp_path: Path
) -> None:
    # 2,000 H100 SXM5 to Kenya dated 2025-06-01: 31,662,400 TPP, over LPP's 26,900,000: a licence that
    # draws Kenya's allocation, recorded through the API
    tx = dict(KENYA_H100)
    with server.api("officer") as officer:
        applied = officer.post("/v1/determinations/apply", json=tx, headers={"Idempotency-Key": "browser-ke-1"})
    assert applied.status_code == 200 and applied.json()["authorization"] == "LICENSE", applied.text

    tab = tab_for("viewer")
    page = tab.page
    page.get_by_role("link", name="Pathways", exact=True).click()
    page.wait_for_url(re.compile(r".*/dashboard/pathways$"))
    tab.shot("pathways-form")
    page.get_by_label("Destination", exact=True).fill("KE")
    page.get_by_label("As of", exact=True).fill("2025-06-01")
    page.get_by_label("Scenario", exact=True).select_option("")
    page.get_by_role("button", name="Show the pathways").click()
    page.wait_for_selector("#pathways-answer")
    assert page.locator("#pathways-tier").inner_text() == "2"
    allocation = page.locator("#pathways-table tr[data-pathway='allocation']")
    # 790,000,000 - 31,662,400 = 758,337,600 TPP; / 15,832 = 47,899.04 H100s; whole: 15,832 x 47,899 =
    # 758,336,968 <= 758,337,600 -> 47,899
    assert allocation.locator(".used").inner_text() == "31,662,400"
    assert allocation.locator(".remaining").inner_text() == "758,337,600"
    assert allocation.locator(".units").inner_text() == "47,899"
    assert allocation.locator(".h100e").inner_text() == "47,899.0"
    assert allocation.locator(".open").inner_text() == "yes"
    lpp = page.locator("#pathways-table tr[data-pathway='lpp']")
    assert lpp.locator(".remaining").inner_text() == "26,900,000"
    assert page.locator("#pathways-chart svg").count() == 1
    tips = page.locator("#pathways-chart svg rect > title").all_text_contents()
    assert any("47,899.0 H100-equivalents" in t for t in tips), tips
    tab.shot("pathways-answer")
    pdf = download(page, "#pathways-report-pdf", tmp_path)
    assert pdf.startswith(b"%PDF")
    report = download(page, "#pathways-report-html", tmp_path).decode()
    assert "758,337,600" in report and not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", report)
    # a bad destination names the field next to the form
    page.get_by_label("Destination", exact=True).fill("Atlantis")
    page.get_by_role("button", name="Show the pathways").click()
    page.locator("#pathways-error").wait_for()
    assert "unknown country" in page.locator("#pathways-error").inner_text()
    assert page.locator("#destination").get_attribute("aria-invalid") == "true"


# ---- compare -----------------------------------------------------------------------------------
def test_compare_a_polish_transaction_with_and_without_poland_in_tier1(tab_for: Any, tmp_path: Path) -> None:
    tab = tab_for("analyst")
    page = tab.page
    page.get_by_role("link", name="Compare", exact=True).click()
    page.wait_for_url(re.compile(r".*/dashboard/compare$"))
    tab.shot("compare-form")
    page.locator("#side-1").select_option("ai-diffusion")
    page.locator("#side-2").select_option("ai-diffusion+poland-tier1")
    page.get_by_label("Shipment date").fill("2025-08-01")
    page.get_by_label("Destination", exact=True).fill("PL")
    page.get_by_label("Chip (catalogue name)").fill("H100 SXM5")
    page.get_by_label("Quantity", exact=True).fill("2000")
    page.get_by_label("Consignee identifier").fill("acme-pl")
    page.get_by_label("Consignee headquarters").fill("PL")
    page.get_by_label("Ultimate parent's headquarters").fill("PL")
    page.get_by_label("End use").select_option("data_center")
    page.get_by_label("§740.27(b)(2) AIA certification submitted").check()
    page.get_by_label("IC by an approved or authorized designer").check()
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_selector("#compare-answer")
    base = page.locator("#compare-outcomes td.outcome[data-side='ai-diffusion'] .authorization").inner_text()
    reformed = page.locator(
        "#compare-outcomes td.outcome[data-side='ai-diffusion+poland-tier1'] .authorization"
    ).inner_text()
    # as enacted Poland is Tier 2: 31,662,400 TPP is over LPP, a licence against its allocation; under
    # poland-tier1 (Tier 1 from 2025-07-01) the AIA certification makes it License Exception AIA
    assert base != reformed
    assert (base, reformed) == ("LICENSE (approval)", "AIA")
    changes = page.locator("#compare-changes").inner_text()
    assert "authorization LICENSE → AIA" in changes and "explanations part at step" in changes
    assert "side=ai-diffusion%2Bpoland-tier1" in page.locator("#share-link").input_value()
    tab.shot("compare-answer")
    assert download(page, "#compare-report-pdf", tmp_path).startswith(b"%PDF")

    # the same order in a book, uploaded by an analyst
    book = tmp_path / "orders.csv"
    book.write_text(
        "line_id,date,chip,quantity,destination,consignee_id\n"
        "PL-1,2025-08-01,H100 SXM5,2000,PL,acme-pl\n"
        "BR-1,2025-08-02,H100 SXM5,10,BR,acme-br\n",
        encoding="utf-8",
    )
    page.get_by_label("Order book", exact=True).set_input_files(str(book))
    page.locator("#book-side-2").select_option("ai-diffusion+poland-tier1")
    page.get_by_role("button", name="Upload and compare").click()
    page.wait_for_url(re.compile(r".*/dashboard/compare/orders/[0-9a-f]+$"))
    assert page.locator("#book-summary [data-field=changed]").inner_text() == "1"
    assert page.locator("#book-changed tbody tr").count() == 1
    assert "PL-1" in page.locator("#book-changed").inner_text()
    assert page.locator("#book-chart svg").count() == 1
    tab.shot("compare-book")
    changed = download(page, "#download-changed", tmp_path).decode()
    assert "PL-1" in changed and "BR-1" not in changed


def test_viewer_compares_transactions_but_sees_no_book_upload(tab_for: Any) -> None:
    tab = tab_for("viewer")
    tab.go("/dashboard/compare")
    assert tab.page.locator("#book-form").count() == 0 and tab.page.locator("#no-book").count() == 1


# ---- scenarios ---------------------------------------------------------------------------------
def test_scenario_list_and_page(tab_for: Any) -> None:
    tab = tab_for("viewer")
    page = tab.page
    page.get_by_role("link", name="Scenarios", exact=True).click()
    page.wait_for_url(re.compile(r".*/dashboard/scenarios$"))
    names = page.locator("#scenario-list tbody tr").evaluate_all("rows => rows.map(r => r.dataset.scenario)")
    assert {"poland-tier1", "lpp-10m", "double-tier2"} <= set(names)
    tab.shot("scenarios")
    page.get_by_role("link", name="poland-tier1", exact=True).click()
    page.wait_for_url(re.compile(r".*/dashboard/scenarios/poland-tier1$"))
    row = page.locator("#scenario-countries tbody tr").first.inner_text()
    assert "Poland (PL)" in row and "SUPP5A" in row and "2025-07-01" in row
    tab.shot("scenario-poland-tier1")
    page.get_by_role("link", name="Compare a transaction under it").click()
    page.wait_for_url(re.compile(r".*/dashboard/compare\?.*"))
    assert page.locator("#side-2").input_value() == "ai-diffusion+poland-tier1"


# ---- projection --------------------------------------------------------------------------------
def test_projection_of_the_example_demand(tab_for: Any, tmp_path: Path) -> None:
    tab = tab_for("viewer")
    page = tab.page
    page.get_by_role("link", name="Projection", exact=True).click()
    page.wait_for_url(re.compile(r".*/dashboard/projection$"))
    tab.shot("projection-form")
    # Brazil: 3 x 20,000 H100 SXM5 = 316,624,000 TPP each, cumulative 949,872,000 > 790,000,000 on the
    # third delivery, 2026-03-01; Poland 30,000 = 474,936,000 fits as Tier 2, and never binds in Tier 1
    page.get_by_label("Paste a demand CSV").fill(
        "date,country,chip,quantity\n"
        "2025-09-01,BR,H100 SXM5,20000\n"
        "2026-01-01,BR,H100 SXM5,20000\n"
        "2026-03-01,BR,H100 SXM5,20000\n"
        "2025-09-01,PL,H100 SXM5,30000\n"
    )
    page.get_by_label("Side 1", exact=True).select_option("ai-diffusion")
    page.get_by_label("Side 2 (optional)", exact=True).select_option("ai-diffusion+poland-tier1")
    page.get_by_role("button", name="Project", exact=True).click()
    page.wait_for_url(re.compile(r".*/dashboard/projection/[0-9a-f]+$"))
    br = page.locator("#projection-table tr[data-country='BR'][data-side='ai-diffusion']")
    assert br.get_attribute("data-status") == "runs_out" and br.locator(".runs-out").inner_text() == "2026-03-01"
    assert (
        page.locator("#projection-table tr[data-country='PL'][data-side='ai-diffusion']").get_attribute("data-status")
        == "fits"
    )
    assert (
        page.locator("#projection-table tr[data-country='PL'][data-side='ai-diffusion+poland-tier1']").get_attribute(
            "data-status"
        )
        == "never"
    )
    assert page.locator(".projection-chart svg").count() == 2
    tab.shot("projection-answer")
    assert download(page, "#projection-report-pdf", tmp_path).startswith(b"%PDF")


# ---- every new page: weight, hosts, phones, labels -----------------------------------------------------
PAGES = [
    ("scenarios", "/dashboard/scenarios"),
    ("scenario", "/dashboard/scenarios/lpp-10m"),
    (
        "compare",
        "/dashboard/compare?side=ai-diffusion&side=ai-diffusion%2Bpoland-tier1&side=&date=2025-08-01"
        "&destination=PL&item_chip=H100+SXM5&item_qty=2000&c_headquarters=PL&end_use=data_center",
    ),
    ("pathways", "/dashboard/pathways?destination=BR&as_of=2025-06-01&entity=dc-op&headquarters=US"),
    ("projection", "/dashboard/projection"),
]


def test_whatif_pages_are_light_local_responsive_and_labelled(browser: Any, server: WebServer) -> None:
    for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        tab = Tab(browser, server, "analyst", viewport)
        try:
            for name, path in PAGES:
                tab.check_page(path, f"{width}-whatif-{name}")
        finally:
            tab.close()
