"""The dashboard in a real browser: the real ``tierline serve`` in a subprocess and Debian's Chromium
driven by Playwright. Screenshots of every page go to ``artifacts/``.

Skipped when /usr/bin/chromium is absent, unless TIERLINE_REQUIRE_BROWSER=1 (CI), when it fails.
Expected values come from the regulation and the tier data through ``tiers_answer`` (the map must
agree with the answer the API gives), or are written out by hand.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from helpers import run_cli
from web_server import DESKTOP, PHONE, Tab, WebServer, require_browser, start_server

# The dashboard's tier colours (src/tierline/web/static/app.css), as the browser reports them.
TIER_RGB = {1: "rgb(44, 123, 182)", 2: "rgb(244, 163, 64)", 3: "rgb(200, 16, 46)", 0: "rgb(189, 189, 189)"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    require_browser()
    srv = start_server(tmp_path_factory.mktemp("web"))
    try:
        yield srv
    finally:
        srv.stop()


def confirm(page: Any, accept: bool = True) -> None:
    """Answer the dashboard's confirmation dialog."""
    dialog = page.locator("dialog#confirm")
    dialog.wait_for(state="visible")
    page.locator("#confirm-ok" if accept else "#confirm-cancel").click()
    dialog.wait_for(state="hidden")


# ---- sign-in -----------------------------------------------------------------------------------
def test_sign_in_session_cookie_and_sign_out(tab_for: Any, server: WebServer) -> None:
    tab = tab_for(None)
    tab.go("/dashboard/ledger")
    assert "/dashboard/login" in tab.page.url
    tab.shot("sign-in")
    tab.page.get_by_label("API key").fill("tl_nope_wrong")
    tab.page.get_by_role("button", name="Sign in").click()
    assert "unknown or revoked" in tab.page.locator("[role=alert]").first.inner_text()
    key = server.key("analyst")
    tab.page.get_by_label("API key").fill(key)
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.wait_for_url(re.compile(r".*/dashboard/ledger"))  # back where the user was going
    (cookie,) = [c for c in tab.context.cookies() if c["name"] == "tierline_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert key not in cookie["value"] and key.split("_", 2)[2] not in cookie["value"]  # the secret may hold "_"
    assert "analyst" in tab.page.locator("header .badge").inner_text()
    # the session cookie authenticates the dashboard's API calls with the key's role
    assert tab.page.evaluate("async () => (await fetch('/v1/tiers?as_of=2025-06-01')).status") == 200
    tab.page.get_by_role("button", name="Sign out").click()
    tab.page.wait_for_url(re.compile(r".*/dashboard/login"))
    assert tab.page.evaluate("async () => (await fetch('/v1/tiers?as_of=2025-06-01')).status") == 401
    tab.go("/dashboard/map")
    assert "/dashboard/login" in tab.page.url


# ---- the map -----------------------------------------------------------------------------------
MAP_CASES = [
    # (date, vintage, {country: tier}); tier 0 = the vintage has no tiers
    ("2023-12-01", "ear-2023", {"DE": 0, "BR": 0, "CN": 0, "US": 0}),
    ("2025-06-01", "ai-diffusion", {"DE": 1, "US": 1, "BR": 2, "IN": 2, "CN": 3, "HK": 3, "MO": 3, "RU": 3}),
    ("2026-03-01", "ai-diffusion", {"DE": 1, "JP": 1, "BR": 2, "SG": 2, "CN": 3, "IR": 3}),
]


@pytest.mark.parametrize(("day", "vintage", "expected"), MAP_CASES, ids=[c[0] for c in MAP_CASES])
def test_map_colours_every_country_by_tier(tab_for: Any, day: str, vintage: str, expected: dict[str, int]) -> None:
    from tierline.answers import tiers_answer
    from tierline.countries import all_countries
    from tierline.policy import Context

    answer = tiers_answer(Context.make(vintage, dt.date.fromisoformat(day)))
    tab = tab_for("viewer")
    tab.go(f"/dashboard/map?date={day}&vintage={vintage}")
    fills = tab.page.evaluate(
        """() => Array.from(document.querySelectorAll('svg.worldmap a.country')).map(a => [
            a.dataset.iso2, getComputedStyle(a.querySelector('path, circle')).fill])"""
    )
    by_country = dict(fills)
    assert len(fills) == len(by_country) == len(all_countries()), "every destination is drawn exactly once"
    counts = {t: sum(1 for f in by_country.values() if f == rgb) for t, rgb in TIER_RGB.items()}
    if answer["tiers_apply"]:
        assert {str(t): counts[t] for t in (1, 2, 3)} == answer["counts"]
        assert counts[0] == 0
    else:
        assert counts == {1: 0, 2: 0, 3: 0, 0: len(all_countries())}
    for iso2, tier in expected.items():
        assert by_country[iso2] == TIER_RGB[tier], (iso2, by_country[iso2])
    tip = tab.page.locator("svg.worldmap a[data-iso2=DE] > title").text_content() or ""
    assert ("Tier 1" if expected["DE"] else "no tiers") in tip and "Country Groups: A:1, A:5, B" in tip
    tab.shot(f"map-{day}")
    # hover shows the tooltip element's shape highlighted; a click opens the country page
    tab.page.locator("svg.worldmap a[data-iso2=DE] path").first.click()
    tab.page.wait_for_url(re.compile(r".*/dashboard/country/DE\?.*"))
    assert tab.page.locator("h1").inner_text().startswith("Germany")
    assert tab.page.locator("#tier").inner_text() == ("Tier 1" if expected["DE"] else "no tiers")


def test_map_date_slider_moves_through_the_months(tab_for: Any) -> None:
    tab = tab_for("viewer")
    tab.go("/dashboard/map?date=2025-06-01&vintage=ai-diffusion")
    slider = tab.page.get_by_label(re.compile("Month, 2023"))
    slider.focus()
    for _ in range(3):
        tab.page.keyboard.press("ArrowLeft")
    assert tab.page.locator("#month-out").inner_text() == "Mar 2025"
    tab.page.wait_for_url(re.compile(r".*date=2025-03-01.*"))
    assert tab.page.locator("h1").inner_text().endswith("2025-03-01")


def test_map_under_a_scenario_keeps_it_while_the_date_moves(tab_for: Any) -> None:
    tab = tab_for("viewer")
    tab.go("/dashboard/map?date=2025-07-01&vintage=ai-diffusion")

    def fill(iso2: str) -> str:
        return str(
            tab.page.evaluate(
                f"() => getComputedStyle(document.querySelector('svg.worldmap a[data-iso2={iso2}] path, svg.worldmap a[data-iso2={iso2}] circle')).fill"
            )
        )

    assert fill("PL") == TIER_RGB[2]
    tab.page.get_by_label("Scenario").select_option("poland-tier1")  # submits the date bar
    tab.page.wait_for_url(re.compile(r".*scenario=poland-tier1.*"))
    # poland-tier1 adds Poland to supp. no. 5(a) from 2025-07-01: Tier 1 on the map
    assert fill("PL") == TIER_RGB[1] and fill("CZ") == TIER_RGB[2]
    assert "not law" in tab.page.locator("main").inner_text()
    tab.page.get_by_label(re.compile("Month, 2023")).focus()
    tab.page.keyboard.press("ArrowLeft")  # to 2025-06-01, before the scenario's date
    tab.page.wait_for_url(re.compile(r".*date=2025-06-01.*scenario=poland-tier1.*"))
    assert fill("PL") == TIER_RGB[2]


# ---- the country page --------------------------------------------------------------------------
def test_country_page_allocation_lpp_and_veu(tab_for: Any, server: WebServer) -> None:
    officer = server.api("officer")
    # 100 H100-equivalents (100 x 15,832 TPP) committed on Brazil's allocation, dated 2025-06-01
    hold = officer.post(
        "/v1/ledger/reserve",
        json={"account": "allocation:BR", "tpp": 1_583_200, "effective_date": "2025-06-01"},
        headers={"Idempotency-Key": "web-br-1"},
    )
    assert hold.status_code == 200, hold.text
    done = officer.post(f"/v1/ledger/holds/{hold.json()['hold_id']}/commit", headers={"Idempotency-Key": "web-br-1c"})
    assert done.status_code == 200, done.text
    # 100 H100 SXM5 to Acme Brasil: LPP (100 x 15,831.2 = 1,583,120 TPP), recorded as a determination
    tx = {
        "date": "2025-06-01",
        "destination": "BR",
        "items": [{"chip": "H100 SXM5", "quantity": 100}],
        "ultimate_consignee": {"id": "acme-br", "name": "Acme Brasil", "country": "BR", "headquarters": "BR"},
        "end_use": "data_center",
    }
    applied = officer.post("/v1/determinations/apply", json=tx, headers={"Idempotency-Key": "web-lpp-1"})
    assert applied.status_code == 200 and applied.json()["authorization"] == "LPP", applied.text
    hold = officer.post(
        "/v1/ledger/reserve",
        json={"account": "nveu:dc-op:BR", "tpp": 500_000, "effective_date": "2025-06-01"},
        headers={"Idempotency-Key": "web-nveu-1"},
    )
    assert hold.status_code == 200, hold.text
    officer.post(f"/v1/ledger/holds/{hold.json()['hold_id']}/commit", headers={"Idempotency-Key": "web-nveu-1c"})

    tab = tab_for("viewer")
    tab.go("/dashboard/country/BR?date=2025-06-01&vintage=ai-diffusion")
    page = tab.page
    assert page.locator("#tier").inner_text() == "Tier 2"
    used = page.locator("#allocation-figures [data-field=used]").inner_text()
    assert used.startswith("1,583,200 TPP") and "(100.0 H100e)" in used
    # 790,000,000 - 1,583,200 = 788,416,800 TPP left = 49,798.9 H100e
    remaining = page.locator("#allocation-figures [data-field=remaining]").inner_text()
    assert remaining.startswith("788,416,800 TPP") and "49,798.9 H100e" in remaining
    assert page.locator("svg.burndown").count() == 1 and page.locator("svg.gauge").count() >= 1
    assert page.locator("svg.timeline rect.tl").count() >= 1
    lpp = page.locator("#lpp-table").inner_text()
    assert "acme-br" in lpp and "1,583,120" in lpp and "26,900,000" in lpp
    veu = page.locator("#veu-table").inner_text()
    assert "nveu:dc-op:BR" in veu and "500,000" in veu
    tab.shot("country-BR")
    # Hong Kong: its own dated changes and China's tier
    tab.go("/dashboard/country/HK?date=2025-06-01&vintage=ai-diffusion")
    assert page.locator("#tier").inner_text() == "Tier 3"
    assert "Treated as CN" in page.locator("main").inner_text()
    tab.shot("country-HK")


# ---- determination -----------------------------------------------------------------------------
def test_determination_from_form_to_trace_and_shared_link(tab_for: Any, browser: Any, server: WebServer) -> None:
    tab = tab_for("analyst")
    tab.go("/dashboard/determine")
    page = tab.page
    tab.shot("determination-form")
    page.get_by_label("Shipment date", exact=True).fill("2025-06-01")
    page.get_by_label("Destination", exact=True).fill("BR")
    page.get_by_label("End use", exact=True).select_option("data_center")
    page.get_by_label("Chip (catalogue name)").first.fill("H100 SXM5")
    page.get_by_label("Quantity").first.fill("2000")
    page.locator("#c_id").fill("bigco-br")
    page.locator("#c_name").fill("BigCo Brasil")
    page.locator("#c_headquarters").fill("BR")
    page.get_by_role("button", name="Determine").click()
    page.wait_for_selector("#answer")
    # 2000 x 15,831.2 = 31,662,400 TPP: above LPP's 26,900,000, a-level worldwide licence, Tier 2 allocation
    assert page.locator("#authorization").inner_text() == "LICENSE"
    text = page.locator("#answer").inner_text()
    assert "allocation:BR: 31,662,400 TPP" in text
    assert "15 CFR 774 Supp. 1, ECCN 3A090.a.1" in text and "eccn_3a090.a1.tpp_min" in text
    assert "primary" in text  # the confidence of a parameter used
    exceptions = page.locator("ul.exceptions").first.inner_text()
    assert "AIA" in exceptions and "does not apply" in exceptions and "not met" in exceptions
    assert "LPP" in exceptions and "26900000" in exceptions.replace(",", "")
    trace = page.locator("table.trace-table").first.inner_text()
    assert "Total processing performance" in trace and "15 CFR 740.27" in trace
    tab.shot("determination-answer")
    link = page.locator("#share-link").input_value()
    assert "destination=BR" in link and "item_qty=2000" in link
    other = tab_for("viewer")
    other.page.goto(link)
    assert other.page.locator("#authorization").inner_text() == "LICENSE"
    assert other.page.locator("table.trace-table").first.inner_text() == trace
    assert other.page.locator("#c_id").input_value() == "bigco-br"
    # an analyst cannot record it: no control
    assert page.locator("#apply-determination").count() == 0


def test_determination_error_names_the_field(tab_for: Any) -> None:
    tab = tab_for("viewer")
    tab.go("/dashboard/determine?date=2025-06-01&destination=Atlantis&item_chip=H100+SXM5&item_qty=1")
    assert "unknown country" in tab.page.locator("#determination-error").inner_text()


# ---- screening ---------------------------------------------------------------------------------
def test_screening_upload_progress_filter_download_apply(tab_for: Any, server: WebServer, tmp_path: Path) -> None:
    book = tmp_path / "orders.csv"
    made = run_cli("sample-orders", "--rows", "3000", "--out", str(book), env=server.env)
    assert made.code == 0, made.stderr
    with book.open(encoding="utf-8") as handle:
        lines = sum(1 for _ in csv.DictReader(handle))
    tab = tab_for("analyst")
    tab.go("/dashboard/screenings")
    page = tab.page
    page.get_by_label("Order book", exact=True).set_input_files(str(book))
    page.get_by_role("button", name="Upload and screen").click()
    page.wait_for_url(re.compile(r".*/dashboard/screenings/[0-9a-f]+$"))
    page.wait_for_function(
        "() => ['done', 'refused', 'failed'].includes(document.querySelector('#job-status').textContent)",
        timeout=120_000,
    )
    assert page.locator("#job-status").inner_text() == "done"
    assert page.locator("#job-lines").inner_text() == f"{lines:,}"
    assert page.locator("#summary").count() == 1
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length > 0")
    assert f"of {lines:,} matching lines" in page.locator("#results-count").inner_text()
    tab.shot("screening-results")
    # filter by authorization: every row shown has it
    auth_select = page.get_by_label("Authorization")
    options = [o for o in auth_select.locator("option").all_inner_texts() if o != "any"]
    assert "LICENSE" in options or "NLR" in options
    choice = "LICENSE" if "LICENSE" in options else options[0]
    auth_select.select_option(choice)
    page.wait_for_function(
        "(c) => { const h = Array.from(document.querySelectorAll('#results thead th')).map(t => t.textContent);"
        " const i = h.indexOf('authorization'); const rows = document.querySelectorAll('#results tbody tr');"
        " return rows.length > 0 && Array.from(rows).every(r => r.children[i].textContent === c); }",
        arg=choice,
    )
    with page.expect_download() as info:
        page.get_by_role("link", name="Download decisions").click()
    saved = tmp_path / "decisions.csv"
    info.value.save_as(saved)
    with saved.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == lines and "authorization" in rows[0]
    assert page.locator("#apply-screening").count() == 0  # analysts do not write

    officer = tab_for("officer")
    officer.go(urlparse(page.url).path)
    officer.page.get_by_role("button", name="Apply to the ledger…").click()
    confirm(officer.page, accept=False)
    assert officer.page.locator("#applied").count() == 0
    officer.page.get_by_role("button", name="Apply to the ledger…").click()
    confirm(officer.page, accept=True)
    officer.page.wait_for_selector("#applied", timeout=30_000)
    officer.shot("screening-applied")


# ---- ledger ------------------------------------------------------------------------------------
def test_ledger_reserve_commit_release_with_confirmation(tab_for: Any, server: WebServer) -> None:
    tab = tab_for("officer")
    page = tab.page
    tab.go("/dashboard/ledger?date=2025-07-01")
    page.wait_for_function(
        "() => document.querySelector('#verify-status').textContent.includes('Audit trail verified')"
    )
    for amount in ("1000", "2500"):
        page.get_by_label("Account", exact=True).fill("nveu:web-op:KE")
        page.get_by_label("TPP", exact=True).fill(amount)
        page.get_by_label("Shipment date", exact=True).fill("2025-07-01")
        page.get_by_role("button", name="Reserve…").click()
        if amount == "1000":  # first cancel: nothing happens
            confirm(page, accept=False)
            assert (
                page.locator("#accounts").count() == 0 or "nveu:web-op:KE" not in page.locator("#accounts").inner_text()
            )
            page.get_by_role("button", name="Reserve…").click()
        confirm(page)
        page.wait_for_url(re.compile(r".*/dashboard/ledger/account/nveu(%3A|:)web-op(%3A|:)KE"))
        if amount == "1000":
            tab.go("/dashboard/ledger?date=2025-07-01")
    assert page.locator("#holds tbody tr").count() == 2
    page.get_by_role("button", name=re.compile("^Commit hold")).first.click()
    confirm(page)
    page.wait_for_function("() => document.querySelectorAll('#holds tbody tr').length === 1")
    page.get_by_role("button", name=re.compile("^Release hold")).first.click()
    confirm(page)
    page.wait_for_selector("text=No live holds.")
    history = page.locator("#history").inner_text()
    officer_id = server.key("officer").split("_")[1]
    assert history.count(f"key:{officer_id}") == 4  # two reserves, a commit, a release
    assert "commit" in history and "release" in history
    assert "1,000 TPP" in page.locator("#account-figures [data-field=used]").inner_text()
    tab.shot("ledger-account")
    tab.go("/dashboard/ledger?date=2025-07-01")
    assert "nveu:web-op:KE" in page.locator("#accounts").inner_text()
    tab.shot("ledger")


# ---- viewers -----------------------------------------------------------------------------------
def test_viewer_sees_no_write_controls_and_forged_writes_get_403(tab_for: Any, server: WebServer) -> None:
    tab = tab_for("viewer")
    page = tab.page
    tab.go("/dashboard/ledger")
    assert page.locator("#reserve-form").count() == 0 and page.locator("#no-write").count() == 1
    tab.go("/dashboard/screenings")
    assert page.locator("#screen-form").count() == 0 and page.locator("#no-upload").count() == 1
    tab.go("/dashboard/ledger/account/allocation:BR")
    assert page.get_by_role("button", name=re.compile("Commit|Release")).count() == 0
    tab.go(
        "/dashboard/determine?date=2025-06-01&destination=BR&item_chip=H100+SXM5&item_qty=2000"
        "&c_id=v-br&end_use=data_center"
    )
    assert page.locator("#apply-determination").count() == 0
    # a forged write with the session cookie and even the CSRF token: the server refuses the role
    statuses = page.evaluate(
        """async () => {
            const csrf = document.querySelector('meta[name=csrf-token]').content;
            const post = (url, body, headers) => fetch(url, {method: 'POST', headers: Object.assign(
                {'Content-Type': 'application/json', 'Idempotency-Key': 'forged-' + url}, headers),
                body: JSON.stringify(body)}).then(r => r.status);
            const reserve = {account: 'allocation:BR', tpp: 1000, effective_date: '2025-06-01'};
            return [await post('/v1/ledger/reserve', reserve, {'X-CSRF-Token': csrf}),
                    await post('/v1/ledger/reserve', reserve, {}),
                    await post('/v1/ledger/adjust', {account: 'allocation:BR', tpp: 5, reason: 'x',
                                                     effective_date: '2025-06-01'}, {'X-CSRF-Token': csrf})];
        }"""
    )
    assert statuses == [403, 403, 403]
    history = server.api("viewer").get("/v1/ledger/accounts/allocation:BR/history").json()["events"]
    assert not any("forged" in str(e.get("idempotency_key", "")) for e in history)


# ---- chips -------------------------------------------------------------------------------------
def test_chip_explorer_filters_and_regions(tab_for: Any) -> None:
    tab = tab_for("viewer")
    page = tab.page
    tab.go("/dashboard/chips?date=2025-06-01")
    svg = page.locator("#plane svg")
    labels = svg.locator("text").all_text_contents()
    assert "3A090.a.1" in labels and "3A090.a.2" in labels
    assert svg.locator("[data-region]").count() > 0
    everything = page.locator("#chip-table tbody tr").count()
    tab.shot("chips")
    page.get_by_label("Vendor").select_option("NVIDIA")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*vendor=NVIDIA.*"))
    vendors = page.locator("#chip-table tbody tr td:nth-child(2)").all_inner_texts()
    assert vendors and set(vendors) == {"NVIDIA"} and len(vendors) < everything
    tips = page.locator("#plane svg g.chip > title").all_text_contents()
    assert tips and all("NVIDIA" in t and "TPP" in t for t in tips)
    page.get_by_label("Released from").select_option("2023")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*year_from=2023.*"))
    years = page.locator("#chip-table tbody tr td:nth-child(3)").all_inner_texts()
    assert years and all(int(y) >= 2023 for y in years if y)


# ---- architecture analysis -----------------------------------------------------------------------
def test_design_headroom_form_answer_and_chip_prefill(tab_for: Any) -> None:
    tab = tab_for("viewer")
    page = tab.page
    tab.go("/dashboard/map")
    page.get_by_role("link", name="Design headroom").click()
    page.wait_for_url(re.compile(r".*/dashboard/design$"))
    tab.shot("design-form")
    # an H20-like design: FP16 148, FP8 296 dense on 814 mm2, 4 TB/s
    page.get_by_label("FP16/BF16 dense rate (TOPS)", exact=True).fill("148")
    page.get_by_label("FP8 dense rate (TOPS)", exact=True).fill("296")
    page.get_by_label("Non-planar logic die area (mm²)", exact=True).fill("814")
    page.get_by_label("Memory bandwidth (GB/s)", exact=True).fill("4000")
    page.get_by_label("Line for the rate ceilings", exact=True).select_option("b1")
    page.get_by_label("Rules as of", exact=True).fill("2025-06-01")
    page.get_by_role("button", name="Show the headroom").click()
    page.wait_for_selector("#design-answer")
    assert "line=b1" in page.url and "rate_fp8=296" in page.url
    # TPP 296 x 8 = 2,368 below the b.1 floor 2,400; PD 2,368 / 814 = 2.91 below 3.2: not 3A090
    assert page.locator("#design-outcome").inner_text() == "not 3A090"
    assert page.locator("#design-tpp").inner_text().startswith("2,368")
    # the b.1 TPP floor 2,400: fp8 strictly below 2400 / 8 = 300, fp16 below 150
    floor = page.locator("table.ceiling-table[data-line='b1.tpp_min']")
    assert floor.locator("tr[data-precision='fp8'] .rate-below").inner_text() == "300"
    assert floor.locator("tr[data-precision='fp16'] .rate-below").inner_text() == "150"
    # 2400 / 2368 = 1.01351 -> +1.36% of rate reaches 3A090.b.1
    change = page.locator("#change-smallest-change").inner_text()
    assert "+1.36%" in change and "3A090.b.1" in change
    assert page.locator("#lines tr[data-line='b1.tpp_min'] .side").inner_text() == "below"
    assert page.locator("#design-chart svg").count() == 1
    tab.shot("design-answer")
    # start from a catalogue chip: the form is filled in and the answer shown
    page.get_by_label("Start from a catalogue chip").select_option("nvidia-h100-sxm5-80gb")
    page.get_by_role("button", name="Fill in from the chip").click()
    page.wait_for_url(re.compile(r".*chip=nvidia-h100-sxm5-80gb.*"))
    assert page.get_by_label("FP8 dense rate (TOPS)", exact=True).input_value() == "1978.9"
    assert page.locator("#design-outcome").inner_text() == "3A090.a.1"  # 1978.9 x 8 = 15,831 >= 4,800
    # a bad figure: the error names the field, next to the form
    page.get_by_label("Memory bandwidth (GB/s)", exact=True).fill("lots")
    page.get_by_role("button", name="Show the headroom").click()
    error = page.locator("#design-error")
    error.wait_for()
    assert "Memory bandwidth (GB/s)" in error.inner_text() and "not a number" in error.inner_text()
    assert page.locator("#memory_bandwidth").get_attribute("aria-invalid") == "true"
    tab.shot("design-error")


def test_inference_form_h100_vs_h20_bounds_and_chart(tab_for: Any) -> None:
    tab = tab_for("viewer")
    page = tab.page
    tab.go("/dashboard/map")
    page.get_by_role("link", name="Inference").click()
    page.wait_for_url(re.compile(r".*/dashboard/inference$"))
    tab.shot("inference-form")
    page.get_by_label("Parameters", exact=True).fill("70B")
    page.get_by_label("Bytes per weight", exact=True).fill("1")
    page.get_by_label("KV-cache bytes per token", exact=True).fill("327680")
    page.get_by_label("Context length (tokens)", exact=True).fill("4096")
    page.get_by_label("Batch (concurrent sequences)", exact=True).fill("1")
    page.get_by_label("Catalogue chips", exact=False).select_option(
        ["nvidia-h100-sxm5-80gb", "nvidia-h20-hgx-sxm-96gb"]
    )
    page.get_by_label("Rules as of", exact=True).fill("2025-06-01")
    page.get_by_role("button", name="Compute the bounds").click()
    page.wait_for_selector("#inference-answer")
    rows = page.locator("#bounds tbody tr")
    assert rows.count() == 2
    data = 70e9 + 4096 * 327_680  # bytes per decode step at batch 1: weights once, the KV cache read
    for chip, bandwidth in (("nvidia-h100-sxm5-80gb", 3.35e12), ("nvidia-h20-hgx-sxm-96gb", 4.0e12)):
        row = page.locator(f"#bounds tr[data-chip='{chip}']")
        assert row.locator(".decode-binding").inner_text() == "memory bandwidth"
        assert float(row.locator(".decode").inner_text()) == pytest.approx(bandwidth / data, rel=1e-5)
    h20 = page.locator("#bounds tr[data-chip='nvidia-h20-hgx-sxm-96gb']")
    assert float(h20.locator(".per-h100").inner_text()) == pytest.approx(4.0e12 / data * 15_832 / 2_368, rel=1e-4)
    assert "FLOPs = 2 × active_params × B" in page.locator("#formulas").inner_text()
    chart = page.locator("#inference-chart svg")
    assert chart.locator("path[data-tokens-per-s]").count() > 0
    assert chart.locator("g.chip[data-ids*='nvidia-h20-hgx-sxm-96gb'] circle").get_attribute("r") == "6"
    tab.shot("inference-answer")
    page.get_by_label("Batch (concurrent sequences)", exact=True).fill("0")
    page.get_by_role("button", name="Compute the bounds").click()
    error = page.locator("#inference-error")
    error.wait_for()
    assert "Batch" in error.inner_text() and "batch" in error.inner_text()
    assert page.locator("#inference-answer").count() == 0


# ---- every page: weight, hosts, phones, keyboard -------------------------------------------------
PAGES = [
    ("map", "/dashboard/map?date=2025-06-01"),
    ("country-DE", "/dashboard/country/DE?date=2025-06-01"),
    ("determination", "/dashboard/determine?date=2025-06-01&destination=BR&item_chip=H100+SXM5&item_qty=2000"),
    ("screenings", "/dashboard/screenings"),
    ("ledger-list", "/dashboard/ledger"),
    ("account", "/dashboard/ledger/account/allocation:BR?date=2025-06-01"),
    ("chips-all", "/dashboard/chips"),
    ("design", "/dashboard/design?chip=nvidia-h20-hgx-sxm-96gb&date=2025-06-01"),
    (
        "inference",
        "/dashboard/inference?parameters=70e9&bytes_per_weight=1&kv_bytes_per_token=327680&context=4096&batch=1"
        "&chip=nvidia-h100-sxm5-80gb&chip=nvidia-h20-hgx-sxm-96gb&date=2025-06-01",
    ),
]


def test_pages_are_light_local_responsive_and_labelled(browser: Any, server: WebServer) -> None:
    for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        tab = Tab(browser, server, "officer", viewport)
        try:
            for name, path in PAGES:
                tab.check_page(path, f"{width}-{name}")
            # keyboard: the first Tab reaches the skip link, and it moves focus to the content
            tab.go("/dashboard/map")
            tab.page.keyboard.press("Tab")
            assert tab.page.evaluate("() => document.activeElement.textContent") == "Skip to content"
            tab.page.keyboard.press("Enter")
            assert tab.page.evaluate("() => document.activeElement.id") == "main"
        finally:
            tab.close()
