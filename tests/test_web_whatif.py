"""The dashboard's what-if pages in process (no browser): scenarios, compare (a transaction and an order
book), pathways and projections, their reports, roles and CSRF on the two upload forms.

Hand arithmetic (values from the regulation, not from tierline): an H100 SXM5 is 1,978.9 x 8 = 15,831.2
TPP, 2,000 of them 31,662,400 TPP; a Tier 2 country allocation is 790,000,000 TPP (2025-2027); the H100
reference chip is 1,979 x 8 = 15,832 TPP.
"""

from __future__ import annotations

import gzip
import html
import re
import warnings
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from helpers import KENYA_H100
from tierline.api import keys as api_keys
from tierline.ledger import Ledger

MB = 1_000_000
PL_QUERY = [
    ("side", "ai-diffusion"),
    ("side", "ai-diffusion+poland-tier1"),
    ("side", ""),
    ("date", "2025-08-01"),
    ("destination", "PL"),
    ("item_chip", "H100 SXM5"),
    ("item_qty", "2000"),
    ("c_id", "acme-pl"),
    ("c_headquarters", "PL"),
    ("c_ultimate_parent_headquarters", "PL"),
    ("end_use", "data_center"),
    ("cert", "aia_certification"),
    ("cert", "approved_designer"),
]
DEMAND = (
    "date,country,chip,quantity\n"
    "2025-09-01,MX,H100 SXM5,20000\n"  # 316,624,000 TPP
    "2026-01-01,MX,H100 SXM5,20000\n"  # 633,248,000 cumulative
    "2026-03-01,MX,H100 SXM5,20000\n"  # 949,872,000 > 790,000,000: runs out here
    "2025-09-01,PL,H100 SXM5,60000\n"  # 949,872,000 at once; Tier 1 under poland-tier1
)
BOOK = (
    b"line_id,date,chip,quantity,destination,consignee_id\n"
    b"PL-1,2025-08-01,H100 SXM5,2000,PL,acme-pl\n"
    b"BR-1,2025-08-02,H100 SXM5,10,BR,acme-br\n"
)
EXTERNAL = re.compile(r"""(?:src|href|action)=["'](?:https?:)?//[^"']+""")


def sign_in(client: TestClient, app: Any, role: str) -> str:
    """Sign in with a new key of `role`; the session's CSRF token."""
    ledger = Ledger(app.state.web_sessions.engine.url.render_as_string(hide_password=False))
    made = api_keys.create_key(ledger, role, f"{role} test")
    client.cookies.clear()
    r = client.post("/dashboard/login", data={"key": made["key"], "next": "/dashboard/scenarios"})
    assert r.status_code == 200, r.text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', r.text)
    assert token
    return token.group(1)


def cells(page: str, css_class: str) -> list[str]:
    return [
        html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
        for c in re.findall(rf'class="{css_class}"[^>]*>(.*?)</t[dh]>', page, re.S)
    ]


def row_of(page: str, attribute: str) -> str:
    found = re.search(rf"<tr {attribute}>(.*?)</tr>", page, re.S)
    assert found, attribute
    return found.group(1)


# ---- navigation and sign-in --------------------------------------------------------------------------
def test_pages_need_a_session_and_are_in_the_navigation(client: TestClient, app: Any) -> None:
    for path in ("/dashboard/scenarios", "/dashboard/compare", "/dashboard/pathways", "/dashboard/projection"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and parse_qs(urlparse(r.headers["location"]).query)["next"] == [path]
    sign_in(client, app, "viewer")
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', client.get("/dashboard/map").text, re.S)
    assert nav
    links = re.findall(r'href="(/dashboard/[a-z]+)"', nav.group(1))
    assert {"/dashboard/scenarios", "/dashboard/compare", "/dashboard/pathways", "/dashboard/projection"} <= set(links)
    assert 'aria-current="page"' in re.search(
        r'<a href="/dashboard/pathways"[^>]*>', client.get("/dashboard/pathways").text
    ).group(0)  # type: ignore[union-attr]


# ---- scenarios -----------------------------------------------------------------------------------
def test_scenario_list_and_pages(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    listed = client.get("/dashboard/scenarios").text
    assert {"poland-tier1", "lpp-10m", "double-tier2"} <= set(re.findall(r'data-scenario="([^"]+)"', listed))
    poland = client.get("/dashboard/scenarios/poland-tier1").text
    countries = re.search(r'<table id="scenario-countries">(.*?)</table>', poland, re.S)
    assert countries and "Poland (PL)" in countries.group(1) and "SUPP5A" in countries.group(1)
    assert "2025-07-01" in countries.group(1) and "added" in countries.group(1)
    assert "scenario, not law" in poland
    link = re.search(r'href="(/dashboard/compare\?[^"]+)"', poland)
    assert link and parse_qs(urlparse(html.unescape(link.group(1))).query)["side"] == [
        "ai-diffusion",
        "ai-diffusion+poland-tier1",
    ]
    lpp = client.get("/dashboard/scenarios/lpp-10m").text
    parameters = re.search(r'<table id="scenario-parameters"[^>]*>(.*?)</table>', lpp, re.S)
    # from 2026-01-01 10,000,000 TPP replaces the LPP limit of 26,900,000 TPP (15 CFR 740.29(a))
    assert parameters and "lpp.annual_tpp_per_consignee" in parameters.group(1)
    assert "10,000,000" in parameters.group(1) and "26,900,000" in parameters.group(1)
    assert client.get("/dashboard/scenarios/no-such-scenario").status_code == 404


# ---- the map and a country under a scenario --------------------------------------------------------
def map_tiers(page: str) -> dict[str, str]:
    return dict(re.findall(r"data-iso2='([A-Z]{2})' data-tier='(\w+)'", page))


def test_map_and_country_page_under_a_scenario(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    law = map_tiers(client.get("/dashboard/map?date=2025-07-01&vintage=ai-diffusion").text)
    page = client.get("/dashboard/map?date=2025-07-01&vintage=ai-diffusion&scenario=poland-tier1").text
    scenario = map_tiers(page)
    eve = map_tiers(client.get("/dashboard/map?date=2025-06-30&vintage=ai-diffusion&scenario=poland-tier1").text)
    # Tier 1 = the United States and the 18 destinations of supp. no. 5(a) to part 740 (90 FR 4544);
    # poland-tier1 adds Poland from 2025-07-01 and changes nothing else
    assert list(law.values()).count("1") == 19 and list(scenario.values()).count("1") == 20
    assert (law["PL"], scenario["PL"], eve["PL"]) == ("2", "1", "2")
    assert {code for code in law if law[code] != scenario[code]} == {"PL"}
    assert "not law" in page and 'option value="poland-tier1" selected' in page
    assert "/dashboard/country/PL?date=2025-07-01&amp;vintage=ai-diffusion&amp;scenario=poland-tier1" in page

    country = client.get("/dashboard/country/PL?date=2025-07-01&vintage=ai-diffusion&scenario=poland-tier1").text
    assert '<span id="tier">Tier 1</span>' in country
    # the timeline under the scenario: Tier 2 until 2025-06-30, Tier 1 from 2025-07-01
    assert re.search(r'<td>[0-9-]+</td><td>2025-06-30</td><td><span class="swatch t2"', country)
    assert re.search(r'<td>2025-07-01</td><td>[0-9-]+</td><td><span class="swatch t1"', country)
    law_country = client.get("/dashboard/country/PL?date=2025-07-01&vintage=ai-diffusion").text
    assert '<span id="tier">Tier 2</span>' in law_country and "2025-07-01</td>" not in law_country

    unknown = client.get("/dashboard/map?date=2025-07-01&vintage=ai-diffusion&scenario=no-such").text
    assert "unknown scenario &#39;no-such&#39;" in unknown and "showing the law" in unknown
    assert map_tiers(unknown)["PL"] == "2"


# ---- compare -----------------------------------------------------------------------------------
def test_compare_a_polish_transaction_under_poland_tier1(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    page = client.get("/dashboard/compare?" + urlencode(PL_QUERY))
    assert page.status_code == 200
    text = page.text
    outcomes = re.findall(
        r'<td class="outcome" data-side="([^"]+)"><strong class="authorization">([^<]+)</strong>', text
    )
    # as enacted: 31,662,400 TPP > LPP, a licence against Poland's Tier 2 allocation (presumption of
    # approval); under poland-tier1 (Tier 1 from 2025-07-01) with the certifications: License Exception AIA
    assert outcomes == [("ai-diffusion", "LICENSE (approval)"), ("ai-diffusion+poland-tier1", "AIA")]
    assert "draws 31,662,400 TPP on <code>allocation:PL</code>" in text
    changes = re.search(r'<ul id="compare-changes">(.*?)</ul>', text, re.S)
    assert changes and "authorization LICENSE → AIA" in html.unescape(changes.group(1))
    assert "The explanations part at step" in changes.group(1) and "15 CFR 740.27" in changes.group(1)
    # the report links reproduce the comparison
    link = re.search(r'id="compare-report-pdf" href="([^"]+)"', text)
    assert link
    pdf = client.get(html.unescape(link.group(1)))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    report = client.get(html.unescape(link.group(1)).replace("format=pdf", "format=html"))
    assert report.headers["content-type"].startswith("text/html") and "poland-tier1" in report.text
    assert not EXTERNAL.search(report.text) and "<script" not in report.text.lower()


def test_compare_errors_name_the_field(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    query = [(k, "Atlantis" if k == "destination" else v) for k, v in PL_QUERY]
    error = re.search(r'id="compare-error">([^<]+)<', client.get("/dashboard/compare?" + urlencode(query)).text)
    assert error and "destination" in error.group(1) and "unknown country" in html.unescape(error.group(1))
    query = [(k, "ai-diffusion+no-such" if v == "ai-diffusion+poland-tier1" else v) for k, v in PL_QUERY]
    error = re.search(r'id="compare-error">([^<]+)<', client.get("/dashboard/compare?" + urlencode(query)).text)
    assert error and error.group(1).startswith("sides[1]") and "no-such" in html.unescape(error.group(1))


def test_order_book_compare_for_analysts(client: TestClient, app: Any) -> None:
    csrf = sign_in(client, app, "analyst")
    files = {"file": ("orders.csv", BOOK, "text/csv")}
    form = {"sides": ["ai-diffusion", "ai-diffusion+poland-tier1", ""], "csrf": csrf}
    forged = client.post("/dashboard/compare/orders", files=files, data={**form, "csrf": "wrong"})
    assert forged.status_code == 403
    r = client.post("/dashboard/compare/orders", files=files, data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"]).text
    assert re.search(r'data-field="screened">2<', page) and re.search(r'data-field="changed">1<', page)
    transitions = re.search(r'<table id="book-transitions">(.*?)</table>', page, re.S)
    assert (
        transitions
        and "LICENSE (approval)" in transitions.group(1)
        and "LICENSE (case-by-case)" in transitions.group(1)
    )
    changed = re.search(r'<table id="book-changed"[^>]*>(.*?)</table>', page, re.S)
    assert changed and "PL-1" in changed.group(1) and "BR-1" not in changed.group(1)
    assert re.search(r'<table id="book-countries"[^>]*>.*PL.*</table>', page, re.S)
    assert "<svg" in re.search(r'<figure class="chart-wrap" id="book-chart">(.*?)</figure>', page, re.S).group(1)  # type: ignore[union-attr]
    download = re.search(r'id="download-changed" href="([^"]+)"', page)
    assert download and "PL-1" in client.get(download.group(1)).text
    report = re.search(r'id="book-report-pdf" href="([^"]+)"', page)
    assert report and client.get(html.unescape(report.group(1))).content.startswith(b"%PDF")
    # a book with a bad line is refused, naming it
    bad = client.post(
        "/dashboard/compare/orders",
        files={"file": ("orders.csv", BOOK + b"BAD,2025-13-01,H100 SXM5,1,BR,x\n")},
        data=form,
    )
    assert bad.status_code == 422 and "1 invalid line(s)" in bad.text
    problems = re.search(r'<table id="book-problems">(.*?)</table>', bad.text, re.S)
    assert problems and "<td>3</td><td>date</td>" in problems.group(1)  # the third order line


def test_viewers_compare_transactions_but_not_books(client: TestClient, app: Any) -> None:
    csrf = sign_in(client, app, "viewer")
    page = client.get("/dashboard/compare").text
    assert 'id="book-form"' not in page and 'id="no-book"' in page
    r = client.post(
        "/dashboard/compare/orders",
        files={"file": ("orders.csv", BOOK, "text/csv")},
        data={"sides": ["ai-diffusion", "ai-diffusion+poland-tier1"], "csrf": csrf},
    )
    assert r.status_code == 403 and "analyst" in r.text


# ---- pathways ------------------------------------------------------------------------------------
def test_pathways_page_counts_recorded_usage(client: TestClient, app: Any) -> None:
    csrf = sign_in(client, app, "officer")
    # 2,000 H100 SXM5 to Kenya dated 2025-06-01: 31,662,400 TPP, over LPP: a licence drawing the allocation
    tx = dict(KENYA_H100)
    applied = client.post(
        "/v1/determinations/apply", json=tx, headers={"Idempotency-Key": "ke-1", "X-CSRF-Token": csrf}
    )
    assert applied.status_code == 200 and applied.json()["authorization"] == "LICENSE", applied.text
    query = {"destination": "KE", "as_of": "2025-06-01", "vintage": "ai-diffusion", "consignees": "1"}
    page = client.get("/dashboard/pathways?" + urlencode(query)).text
    assert re.search(r'Tier <span id="pathways-tier">2</span>', page)
    allocation = row_of(page, 'data-pathway="allocation"')
    # 790,000,000 - 31,662,400 = 758,337,600 TPP; / 15,832 = 47,899.04 H100-equivalents, 47,899 whole H100s
    assert cells(allocation, "num used") == ["31,662,400"]
    assert cells(allocation, "num remaining") == ["758,337,600"]
    assert cells(allocation, "num units") == ["47,899"]
    assert cells(allocation, "num h100e") == ["47,899.0"]
    lpp = row_of(page, 'data-pathway="lpp"')
    assert cells(lpp, "num remaining") == ["26,900,000"]  # one unnamed consignee: the whole LPP limit
    chart = re.search(r'<figure class="chart-wrap" id="pathways-chart">(.*?)</figure>', page, re.S)
    assert chart and "<svg" in chart.group(1) and "<script" not in chart.group(1)
    link = re.search(r'id="pathways-report-pdf" href="([^"]+)"', page)
    assert link and link.group(1).startswith("/v1/pathways/report?")
    pdf = client.get(html.unescape(link.group(1)))  # the session cookie reads the API
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert 'filename="pathways-KE-2025-06-01.pdf"' in pdf.headers["content-disposition"]
    # under double-tier2: 1,580,000,000 - 31,662,400 = 1,548,337,600 TPP
    doubled = client.get("/dashboard/pathways?" + urlencode({**query, "scenario": "double-tier2"})).text
    assert cells(row_of(doubled, 'data-pathway="allocation"'), "num remaining") == ["1,548,337,600"]
    assert "Under scenario double-tier2 (not law)" in doubled


def test_pathways_errors_mark_the_field(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    page = client.get("/dashboard/pathways?destination=Atlantis&as_of=2025-06-01").text
    error = re.search(r'id="pathways-error">(.*?)</p>', page, re.S)
    assert error and 'href="#destination"' in error.group(1) and "unknown country" in html.unescape(error.group(1))
    assert re.search(r'id="destination"[^>]*aria-invalid="true"', page)
    page = client.get("/dashboard/pathways?destination=BR&as_of=2025-06-01&chip=Imaginary+GPU+9000").text
    assert re.search(r'id="chip"[^>]*aria-invalid="true"', page)


# ---- projection --------------------------------------------------------------------------------
def test_projection_from_pasted_demand(client: TestClient, app: Any) -> None:
    csrf = sign_in(client, app, "viewer")
    form = {"demand": DEMAND, "sides": ["ai-diffusion", "ai-diffusion+poland-tier1", ""], "until": "", "csrf": csrf}
    assert client.post("/dashboard/projection", data={**form, "csrf": "nope"}).status_code == 403
    r = client.post("/dashboard/projection", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"]).text
    rows = dict(re.findall(r'<tr data-country="(\w+)" data-side="[^"]+" data-status="(\w+)">', page))
    statuses = re.findall(r'<tr data-country="(\w+)" data-side="([^"]+)" data-status="(\w+)">', page)
    assert ("MX", "ai-diffusion", "runs_out") in statuses and ("PL", "ai-diffusion", "runs_out") in statuses
    assert ("PL", "ai-diffusion+poland-tier1", "never") in statuses and rows
    mx = re.search(r'<tr data-country="MX" data-side="ai-diffusion" data-status="runs_out">(.*?)</tr>', page, re.S)
    assert mx and cells(mx.group(1), "runs-out") == ["2026-03-01"]
    assert len(re.findall(r'<figure class="chart-wrap projection-chart" data-country="(\w+)">', page)) == 2
    report = re.search(r'id="projection-report-pdf" href="([^"]+)"', page)
    assert report and client.get(html.unescape(report.group(1))).content.startswith(b"%PDF")
    html_report = client.get(html.unescape(report.group(1)).replace("format=pdf", "format=html"))
    assert "runs out on 2026-03-01" in html_report.text and not EXTERNAL.search(html_report.text)
    # a bad row is named by its line and column; the pasted text is kept
    bad = client.post("/dashboard/projection", data={**form, "demand": DEMAND + "2025-10-01,Atlantis,H100 SXM5,1\n"})
    assert bad.status_code == 422
    error = re.search(r'id="projection-error">([^<]+)<', bad.text)
    assert error and error.group(1).startswith("line 6, column country")
    assert "Atlantis" in bad.text.split('id="demand"')[1]
    # an uploaded file is used instead of the pasted text
    uploaded = client.post(
        "/dashboard/projection",
        data={**form, "demand": ""},
        files={"file": ("plan.csv", DEMAND.encode(), "text/csv")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303
    assert "plan.csv" in client.get(uploaded.headers["location"]).text


# ---- every page ----------------------------------------------------------------------------------
PAGES = [
    "/dashboard/scenarios",
    "/dashboard/scenarios/poland-tier1",
    "/dashboard/compare",
    "/dashboard/compare?" + urlencode(PL_QUERY),
    "/dashboard/pathways",
    "/dashboard/pathways?destination=BR&as_of=2025-06-01&entity=dc-op&headquarters=US",
    "/dashboard/projection",
]


def test_pages_are_small_self_contained_and_locked_down(client: TestClient, app: Any) -> None:
    sign_in(client, app, "analyst")
    for path in PAGES:
        raw = client.get(path, headers={"Accept-Encoding": "gzip"})
        assert raw.status_code == 200, path
        assert "default-src 'self'" in raw.headers["content-security-policy"]
        assert raw.headers["cache-control"] == "no-store"
        assert len(gzip.compress(raw.text.encode())) < MB, path
        assert EXTERNAL.findall(raw.text) == [], path
        assert "<script" not in re.sub(r'<script src="/dashboard/static/app.js" defer></script>', "", raw.text), path
        assert " style=" not in raw.text, path  # the CSP has no 'unsafe-inline' styles
        ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', raw.text)
        labels = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', raw.text))
        hidden = set(re.findall(r'<input type="hidden"[^>]*\bid="([^"]+)"', raw.text))
        assert [i for i in ids if i not in labels and i not in hidden and i != "share-link"] == [], path
