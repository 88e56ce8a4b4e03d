"""The dashboard in process (no browser): sign-in and sessions, the API through the session cookie,
CSRF, roles, the map's geometry and colours, the determination link, page weight and headers.

The browser tests (tests/test_web_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import warnings
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from tierline.answers import tiers_answer
from tierline.api import keys as api_keys
from tierline.countries import all_countries
from tierline.ledger import Ledger
from tierline.policy import Context
from tierline.web.views import transaction_from_query
from tierline.web.worldmap import STATIC, geometries, map_svg

MB = 1_000_000


def key(app: Any, role: str) -> dict[str, Any]:
    return api_keys.create_key(
        Ledger(app.state.web_sessions.engine.url.render_as_string(hide_password=False)), role, f"{role} test"
    )


def sign_in(client: TestClient, app: Any, role: str) -> tuple[dict[str, Any], str]:
    made = key(app, role)
    r = client.post("/dashboard/login", data={"key": made["key"], "next": "/dashboard/ledger"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/ledger"
    page = client.get("/dashboard/ledger")
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert csrf
    return made, csrf.group(1)


# ---- sign-in and sessions ------------------------------------------------------------------------
def test_index_and_pages_send_the_browser_to_sign_in(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/"
    r = client.get("/dashboard/chips?vendor=AMD", follow_redirects=False)
    assert r.status_code == 303
    target = parse_qs(urlparse(r.headers["location"]).query)["next"][0]
    assert target == "/dashboard/chips?vendor=AMD"
    assert 'type="password"' in client.get("/dashboard/login").text


def test_login_cookie_is_httponly_strict_and_never_the_key(client: TestClient, app: Any) -> None:
    made = key(app, "viewer")
    forged = client.post("/dashboard/login", data={"key": made["key"]}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and "tierline_session" not in forged.headers.get("set-cookie", "")
    bad = client.post("/dashboard/login", data={"key": "tl_x_y"}, follow_redirects=False)
    assert bad.status_code == 401 and "unknown or revoked" in bad.text
    r = client.post(
        "/dashboard/login", data={"key": made["key"], "next": "https://evil.example/"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/"  # never off-site
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("tierline_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert made["key"] not in value and made["key"].split("_", 2)[2] not in value  # the secret may hold "_"


def test_session_uses_the_api_with_the_keys_role_and_csrf(client: TestClient, app: Any) -> None:
    made, csrf = sign_in(client, app, "officer")
    assert client.get("/v1/ledger/accounts").status_code == 200
    body = {"account": "allocation:BR", "tpp": 1000, "effective_date": "2025-06-01"}
    no_csrf = client.post("/v1/ledger/reserve", json=body, headers={"Idempotency-Key": "w1"})
    assert no_csrf.status_code == 403 and "X-CSRF-Token" in no_csrf.json()["detail"]
    ok = client.post("/v1/ledger/reserve", json=body, headers={"Idempotency-Key": "w1", "X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    events = client.get("/v1/ledger/accounts/allocation:BR/history").json()["events"]
    assert events[-1]["actor"] == f"key:{made['id']}"


def test_viewer_session_is_refused_writes(client: TestClient, app: Any) -> None:
    _, csrf = sign_in(client, app, "viewer")
    body = {"account": "allocation:BR", "tpp": 1000, "effective_date": "2025-06-01"}
    r = client.post("/v1/ledger/reserve", json=body, headers={"Idempotency-Key": "v1", "X-CSRF-Token": csrf})
    assert r.status_code == 403 and "officer" in r.json()["detail"]
    files = {"file": ("o.csv", b"date,chip,quantity,destination,consignee_id\n", "text/csv")}
    r = client.post("/v1/screenings", files=files, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    page = client.get("/dashboard/ledger").text
    assert 'id="reserve-form"' not in page and 'id="no-write"' in page
    assert 'id="screen-form"' not in client.get("/dashboard/screenings").text


def test_sign_out_and_revocation_end_the_session(client: TestClient, app: Any) -> None:
    made, csrf = sign_in(client, app, "analyst")
    old = client.cookies.get("tierline_session")
    r = client.post("/dashboard/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    client.cookies.set("tierline_session", old or "")
    assert client.get("/v1/tiers").status_code == 401  # ended on the server, not only in the browser
    client.cookies.clear()
    made, _ = sign_in(client, app, "analyst")
    assert client.get("/v1/tiers").status_code == 200
    api_keys.revoke_key(Ledger(app.state.web_sessions.engine.url.render_as_string(hide_password=False)), made["id"])
    assert client.get("/v1/tiers").status_code == 401
    assert client.get("/dashboard/map", follow_redirects=False).status_code == 303


# ---- the map ------------------------------------------------------------------------------------
def test_every_destination_has_a_shape_or_marker() -> None:
    shapes = geometries()
    assert set(shapes) == set(all_countries())
    assert all((g.path is None) != (g.marker is None) for g in shapes.values())
    for iso2 in ("DE", "BR", "CN", "US", "RU", "FJ", "AQ", "XK"):
        assert shapes[iso2].path, iso2
    for iso2 in ("SG", "HK", "MO", "MT", "BH", "LI"):
        assert shapes[iso2].marker, iso2


def test_shipped_topojson_is_world_atlas_110m() -> None:
    topo = json.loads((STATIC / "countries-110m.json").read_text(encoding="utf-8"))
    assert topo["type"] == "Topology" and len(topo["objects"]["countries"]["geometries"]) == 177
    assert (
        "ISC" in (STATIC / "world-atlas.LICENSE").read_text()
        or "Permission" in (STATIC / "world-atlas.LICENSE").read_text()
    )


@pytest.mark.parametrize(
    ("day", "vintage"), [("2023-12-01", "ear-2023"), ("2025-06-01", "ai-diffusion"), ("2026-03-01", "ai-diffusion")]
)
def test_map_tier_counts_match_tiers_answer(day: str, vintage: str) -> None:
    ctx = Context.make(vintage, dt.date.fromisoformat(day))
    svg = map_svg(ctx)
    tiers = dict(re.findall(r"data-iso2='([A-Z]{2})' data-tier='(\w+)'", svg))
    assert len(tiers) == len(all_countries())
    answer = tiers_answer(ctx)
    counts = Counter(tiers.values())
    if answer["tiers_apply"]:
        assert {t: counts[t] for t in ("1", "2", "3")} == answer["counts"]
        assert (tiers["DE"], tiers["BR"], tiers["CN"], tiers["HK"]) == ("1", "2", "3", "3")
    else:
        assert counts == {"none": len(all_countries())}


# ---- determination link ---------------------------------------------------------------------------
def test_determination_query_is_the_transaction() -> None:
    query = (
        "date=2025-06-01&destination=BR&vintage=ai-diffusion&end_use=data_center&cert=approved_designer"
        "&item_chip=H100+SXM5&item_qty=2%2C000&item_system=no&item_ics="
        "&item_chip=H20&item_qty=8&item_system=yes&item_ics=8"
        "&c_id=acme-br&c_name=Acme&c_headquarters=BR&c_ultimate_parent_headquarters=US&c_kind=commercial"
        "&u_name=Lab&u_country=BR&u_kind=university"
    )
    tx, rows = transaction_from_query(parse_qs(query, keep_blank_values=True))
    assert tx == {
        "date": "2025-06-01",
        "vintage": "ai-diffusion",
        "destination": "BR",
        "export_from": "US",
        "end_use": "data_center",
        "certifications": ["approved_designer"],
        "items": [
            {"chip": "H100 SXM5", "quantity": 2000},
            {"chip": "H20", "quantity": 8, "system": True, "ics_per_unit": 8},
        ],
        "ultimate_consignee": {
            "id": "acme-br",
            "name": "Acme",
            "country": "BR",
            "headquarters": "BR",
            "ultimate_parent_headquarters": "US",
            "kind": "commercial",
        },
        "end_user": {"name": "Lab", "country": "BR", "kind": "university"},
    }
    assert len(rows) == 3 and rows[-1]["chip"] == ""  # one empty line to add another


def test_determination_page_reproduces_from_its_link(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    url = (
        "/dashboard/determine?date=2025-06-01&destination=BR&item_chip=H100+SXM5&item_qty=2000"
        "&c_id=acme-br&end_use=data_center"
    )
    first, second = client.get(url).text, client.get(url).text
    strip = re.compile(r'<meta name="csrf-token"[^>]*>')
    assert strip.sub("", first) == strip.sub("", second)
    assert 'id="authorization">LICENSE<' in first and "15 CFR 740.27" in first
    bad = client.get("/dashboard/determine?date=2025-06-01&destination=BR&item_chip=H100+SXM5&item_qty=lots")
    assert "items[0].quantity" in bad.text


# ---- every page ---------------------------------------------------------------------------------
PAGES = [
    "/dashboard/map?date=2025-06-01",
    "/dashboard/map?date=2023-12-01&vintage=ear-2023",
    "/dashboard/country/BR?date=2025-06-01",
    "/dashboard/country/HK?date=2026-03-01",
    "/dashboard/determine?date=2025-06-01&destination=BR&item_chip=H100+SXM5&item_qty=2000",
    "/dashboard/screenings",
    "/dashboard/ledger",
    "/dashboard/ledger/account/allocation:BR",
    "/dashboard/chips",
    "/dashboard/chips?vendor=NVIDIA&year_from=2023",
    "/dashboard/design",
    "/dashboard/design?chip=nvidia-h20-hgx-sxm-96gb&date=2025-06-01",
    "/dashboard/inference",
    "/dashboard/inference?parameters=8B&bytes_per_weight=2&all=1&date=2025-06-01",
]


def test_pages_are_small_self_contained_and_locked_down(client: TestClient, app: Any) -> None:
    sign_in(client, app, "officer")
    for path in PAGES:
        raw = client.get(path, headers={"Accept-Encoding": "gzip"})
        assert raw.status_code == 200, path
        csp = raw.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert raw.headers["cache-control"] == "no-store"
        text = raw.text
        assert len(gzip.compress(text.encode())) < MB and len(text.encode()) < 2 * MB, path
        external = re.findall(r'(?:src|href|action)=["\'](?:https?:)?//[^"\']+', text)
        assert external == [], (path, external)
    for asset in ("app.css", "app.js", "favicon.svg"):
        assert client.get(f"/dashboard/static/{asset}").status_code == 200


def test_unknown_things_are_404_pages(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    assert client.get("/dashboard/country/Atlantis").status_code == 404
    assert client.get("/dashboard/ledger/account/nonsense").status_code == 404
    assert client.get("/dashboard/screenings/ffff").status_code == 404
    assert client.get("/dashboard/screenings/ffff/rows").status_code == 404


def test_burndown_starts_full_and_steps_down_by_shipment_date(app: Any) -> None:
    from tierline.ledger import Draw, Ledger
    from tierline.web.views import allocation_burndown

    ledger = Ledger()
    ledger.apply([Draw("allocation:BR", 395_000_000, dt.date(2025, 6, 1))], idempotency_key="bd-1", actor="test")
    svg = allocation_burndown(ledger, "allocation:BR", dt.date(2025, 7, 1))
    line = re.search(r"class='bd-line' d='M([\d.]+) ([\d.]+)L([^']*)'", svg)
    assert line
    points = [tuple(map(float, p.split())) for p in line.group(3).split("L")]
    top, bottom = 16.0, 260.0 - 36.0
    assert (float(line.group(1)), float(line.group(2))) == (70.0, top)  # the whole 790M TPP at the period's start
    # half the allocation (395M of 790M) drawn on 2025-06-01: the line steps down to the middle
    assert any(abs(y - (top + bottom) / 2) < 0.2 for _, y in points)


# ---- architecture analysis: design headroom and inference bounds ----------------------------------
def _cells(html: str, row: str) -> list[str]:
    """The text of each cell of the table row opening with `row`."""
    found = re.search(re.escape(row) + r"(.*?)</tr>", html, re.S)
    assert found, row
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", found.group(1), re.S)]


def test_design_page_headroom_ceilings_and_flip(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    empty = client.get("/dashboard/design")
    assert empty.status_code == 200 and 'id="design-form"' in empty.text and 'id="design-answer"' not in empty.text
    assert 'href="/dashboard/design" aria-current="page"' in empty.text and 'href="/dashboard/inference"' in empty.text
    # TPP = 598.75 x 8 = 4,790 on 798.5 mm2: PD 5.999 >= 5.92 -> 3A090.a.2, 10 below the a.1 line 4,800
    url = "/dashboard/design?rate_fp8=598.75&die_area=798.5&line=a1&date=2025-06-01&vintage=ai-diffusion"
    first, second = client.get(url).text, client.get(url).text
    strip = re.compile(r'<meta name="csrf-token"[^>]*>')
    assert strip.sub("", first) == strip.sub("", second)  # the link reproduces the answer
    assert 'id="design-outcome">3A090.a.2<' in first
    a1 = _cells(first, '<tr data-line="a1.tpp_min">')
    assert a1[2:8] == ["4,790", "4,800", "-10", f"{4790 / 4800:.4f}", "below", "no"]
    assert "15 CFR 774 Supp. 1, ECCN 3A090.a.1" in a1[8] and "eccn_3a090.a1.tpp_min" in a1[8] and "primary" in a1[8]
    for name in ("ear-2023", "ai-diffusion", "enforcement-posture"):
        assert f'<th scope="row">{name}</th>' in first
    # largest rate strictly below a.1: 4800 / 8 = 600 at fp8 (margin 600 - 598.75 = 1.25), 4800 / 16 = 300 at fp16
    assert _cells(first, '<tr data-precision="fp8" class="given">')[1:] == ["8", "600", "600", "598.75", "1.25"]
    assert _cells(first, '<tr data-precision="fp16">')[1:4] == ["16", "300", "300"]
    # 4800 / 4790 = 1.002088 -> 1.0021 on the 0.0001 grid flips a.2 to a.1
    assert "scale all rates by 1.0021 (+0.21%) → 3A090.a.1" in first
    assert re.search(r'id="design-chart"><svg', first)


def test_design_page_prefills_from_a_catalogue_chip(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    page = client.get("/dashboard/design?chip=nvidia-h20-hgx-sxm-96gb&date=2025-06-01").text
    assert 'name="rate_fp8" value="296"' in page and 'name="die_area" value="814"' in page
    assert 'name="memory_bandwidth" value="4000"' in page
    # H20: TPP 296 x 8 = 2,368 < 2,400 (b.1 floor), PD 2,368 / 814 = 2.91 < 3.2 -> not 3A090
    assert 'id="design-outcome">not 3A090<' in page
    assert "scale all rates by 1.0136 (+1.36%) → 3A090.b.1" in page  # 2400 / 2368 = 1.01351 -> 1.0136


def test_design_page_errors_name_the_field(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    bad = client.get("/dashboard/design?rate_fp8=296&die_area=814&memory_bandwidth=fast")
    assert bad.status_code == 200 and 'id="design-answer"' not in bad.text
    assert 'id="design-error"' in bad.text and "Memory bandwidth (GB/s)" in bad.text and "not a number" in bad.text
    assert (
        'id="memory_bandwidth" name="memory_bandwidth" value="fast"' in bad.text and 'aria-invalid="true"' in bad.text
    )
    none = client.get("/dashboard/design?rate_fp8=&die_area=814")
    assert none.status_code == 200 and "<code>rates</code>" in none.text and "give at least one rate" in none.text
    stack = client.get("/dashboard/design?rate_fp8=296&stack_area=600")
    assert "<code>stack_area</code>" in stack.text and "needs the memory bandwidth" in stack.text


INFERENCE = (
    "/dashboard/inference?parameters=70e9&bytes_per_weight=1&kv_bytes_per_token=327680&context=4096&batch=1"
    "&chip=nvidia-h100-sxm5-80gb&chip=nvidia-h20-hgx-sxm-96gb&date=2025-06-01"
)


def test_inference_page_bounds_binding_and_formulas(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    empty = client.get("/dashboard/inference")
    assert empty.status_code == 200 and 'id="inference-answer"' not in empty.text
    page = client.get(INFERENCE).text
    # decode bytes at batch 1: 70e9 x 1 + 4096 x 327,680 = 71,342,177,280
    data = 70e9 + 4096 * 327_680
    h100 = _cells(page, '<tr data-chip="nvidia-h100-sxm5-80gb">')
    h20 = _cells(page, '<tr data-chip="nvidia-h20-hgx-sxm-96gb">')
    assert h100[1] == h20[1] == "fp8"
    assert h100[7] == h20[7] == "memory bandwidth"
    assert float(h100[6]) == pytest.approx(3.35e12 / data, rel=1e-5)  # 46.96 tok/s
    assert float(h20[6]) == pytest.approx(4.0e12 / data, rel=1e-5)  # 56.07 tok/s
    # prefill of 4,096 tokens on the H100: 2 x 70e9 x 4096 / 1978.9e12 s -> 14,135 tok/s, compute-bound
    assert h100[8] == "14,135" and h100[9] == "compute"
    # per H100-equivalent: the H20's 56.07 / (2,368 / 15,832) = 375
    assert float(h20[11]) == pytest.approx(4.0e12 / data * 15_832 / 2_368, rel=1e-4)
    assert "FLOPs = 2 × active_params × B" in page and 'id="inference-chart"' in page and "tok/s" in page


def test_inference_page_errors_name_the_field(client: TestClient, app: Any) -> None:
    sign_in(client, app, "viewer")
    bad = client.get("/dashboard/inference?parameters=70e9&bytes_per_weight=3&chip=nvidia-h20-hgx-sxm-96gb")
    assert bad.status_code == 200 and 'id="inference-error"' in bad.text
    assert "<code>bytes_per_weight</code>" in bad.text and "matches no precision" in bad.text
    batch = client.get("/dashboard/inference?parameters=70e9&bytes_per_weight=1&batch=0&chip=H20")
    assert "<code>batch</code>" in batch.text and 'id="inference-answer"' not in batch.text
    chips = client.get("/dashboard/inference?parameters=70e9&bytes_per_weight=1")
    assert "<code>chip</code>" in chips.text and "give at least one chip" in chips.text
