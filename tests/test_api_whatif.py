"""The what-if operations of the HTTP API (scenarios, compare, pathways, projections, their reports)
against the real ``tierline serve`` on SQLite and PostgreSQL, with usage recorded through the API.

Hand arithmetic (values from the regulation, not from tierline):
- an H100 SXM5 is 1,978.9 dense FP8 TFLOPS x 8 bits = 15,831.2 TPP; 2,000 of them are 31,662,400 TPP,
  above License Exception LPP's 26,900,000 TPP per consignee, so the licence draws the country
  allocation; 20,000 are 316,624,000 TPP;
- a Tier 2 country allocation is 790,000,000 TPP for 2025-2027 (15 CFR 742.6(b)(10));
- the H100 reference chip is 1,979 x 8 = 15,832 TPP (the unit of H100-equivalents).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api_server import BACKENDS, PROBLEM, Key, Server, fields_of, problem_of, running_server

ALLOCATION = 790_000_000
LPP = 26_900_000
H100 = 15_832  # the reference chip
H100_SXM5 = 15_831.2  # 1,978.9 x 8
SIDES = ["ai-diffusion", "ai-diffusion+poland-tier1"]
EXTERNAL = re.compile(
    r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I
)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(request.param, tmp_path_factory.mktemp(f"whatif-{request.param}")) as running:
        yield running


@pytest.fixture(scope="module")
def keys(server: Server) -> dict[str, Key]:
    return {role: server.create_key(role) for role in ("viewer", "analyst", "officer")}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def transaction(
    destination: str, quantity: int, day: str, *, certifications: list[str] | None = None
) -> dict[str, Any]:
    consignee = f"acme-{destination.lower()}"
    return {
        "date": day,
        "destination": destination,
        "items": [{"chip": "H100 SXM5", "quantity": quantity}],
        "ultimate_consignee": {
            "id": consignee,
            "name": consignee,
            "country": destination,
            "headquarters": destination,
            "ultimate_parent_headquarters": destination,
        },
        "end_use": "data_center",
        "certifications": certifications or [],
    }


def record(client: httpx.Client, account: str, tpp: float, day: str, commit: bool = True) -> None:
    """A reserve (and commit) on `account` through the API."""
    hold = client.post(
        "/v1/ledger/reserve",
        json={"account": account, "tpp": tpp, "effective_date": day},
        headers={"Idempotency-Key": unique("reserve")},
    )
    assert hold.status_code == 200, hold.text
    if commit:
        done = client.post(
            f"/v1/ledger/holds/{hold.json()['hold_id']}/commit", headers={"Idempotency-Key": unique("c")}
        )
        assert done.status_code == 200, done.text


def row(answer: dict[str, Any], pathway: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [r for r in answer["pathways"] if r["pathway"] == pathway]
    return found


def no_external_references(html: str) -> None:
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "<script" not in html.lower()


# ---- pathways ------------------------------------------------------------------------------------
def test_pathways_count_the_usage_recorded_through_the_api(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["officer"]) as officer:
        applied = officer.post(
            "/v1/determinations/apply",
            json=transaction("AR", 2000, "2025-06-01"),
            headers={"Idempotency-Key": unique("ar")},
        )
        assert applied.status_code == 200, applied.text
        assert applied.json()["authorization"] == "LICENSE"
        # 2,000 x 15,831.2 = 31,662,400 TPP drawn on Argentina's allocation, dated 2025-06-01
        assert applied.json()["allocation_draws"] == [{"account": "allocation:AR", "tpp": pytest.approx(31_662_400)}]
        record(officer, "allocation:AR", 1_583_200, "2025-06-02", commit=False)  # a live hold, 100 H100s

    with server.client(keys["viewer"]) as viewer:
        answer = viewer.get("/v1/pathways", params={"destination": "AR", "as_of": "2025-06-01"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["destination"], body["tier"], body["as_of"], body["usage_source"]) == (
            "AR",
            2,
            "2025-06-01",
            "ledger",
        )
        allocation = row(body, "allocation")
        assert allocation["available"] is True
        assert allocation["limit_tpp"] == ALLOCATION
        assert allocation["used_tpp"] == pytest.approx(31_662_400)
        # 790,000,000 - 31,662,400 = 758,337,600 TPP = 47,899.04 H100s; whole H100s: 15,832 x 47,899 =
        # 758,336,968 <= 758,337,600 < 758,352,800 -> 47,899
        assert allocation["remaining_tpp"] == pytest.approx(758_337_600)
        assert allocation["units"] == 47_899
        assert allocation["h100_equivalents"] == pytest.approx(758_337_600 / H100)
        assert "15 CFR 742.6(b)(10)" in allocation["citations"]
        lpp = row(body, "lpp")  # one unnamed consignee: the whole LPP limit
        assert (lpp["limit_tpp"], lpp["used_tpp"], lpp["remaining_tpp"]) == (LPP, 0, LPP)

        # the next day the live hold counts too: 790,000,000 - 31,662,400 - 1,583,200 = 756,754,400 TPP
        # = 47,799.04 H100s (15,832 x 47,799 = 756,753,768)
        later = row(
            viewer.get("/v1/pathways", params={"destination": "AR", "as_of": "2025-06-02"}).json(), "allocation"
        )
        assert later["used_tpp"] == pytest.approx(33_245_600) and later["remaining_tpp"] == pytest.approx(756_754_400)
        assert later["units"] == 47_799
        # the day before the shipment nothing was drawn yet
        before = row(
            viewer.get("/v1/pathways", params={"destination": "AR", "as_of": "2025-05-31"}).json(), "allocation"
        )
        assert (before["used_tpp"], before["remaining_tpp"], before["units"]) == (0, ALLOCATION, 49_898)

        # counted in catalogue H100 SXM5s: 758,337,600 / 15,831.2 = 47,901.0... -> 47,901 chips
        sxm = viewer.get("/v1/pathways", params={"destination": "AR", "as_of": "2025-06-01", "chip": "H100 SXM5"})
        assert row(sxm.json(), "allocation")["units"] == 47_901
        # under double-tier2: 1,580,000,000 - 31,662,400 = 1,548,337,600 TPP
        doubled = viewer.get(
            "/v1/pathways", params={"destination": "AR", "as_of": "2025-06-01", "scenario": "double-tier2"}
        ).json()
        assert doubled["reform"] == "double-tier2"
        assert row(doubled, "allocation")["remaining_tpp"] == pytest.approx(1_548_337_600)
        # two named consignees: acme-ar's licence drew no LPP, so 2 x 26,900,000
        named = viewer.get(
            "/v1/pathways", params={"destination": "AR", "as_of": "2025-06-01", "consignees": "acme-ar,other-ar"}
        ).json()
        assert row(named, "lpp")["remaining_tpp"] == 2 * LPP
        # Tier 1 and Tier 3 destinations
        de = viewer.get("/v1/pathways", params={"destination": "DE", "as_of": "2025-06-01"}).json()
        assert de["tier"] == 1 and row(de, "tier1")["unlimited"] is True and row(de, "allocation")["available"] is False
        cn = viewer.get("/v1/pathways", params={"destination": "CN", "as_of": "2025-06-01"}).json()
        assert cn["tier"] == 3 and row(cn, "tier3")["available"] is False


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"destination": "Atlantis"}, "destination"),
        ({"destination": "AR", "scenario": "no-such-scenario"}, "scenario"),
        ({"destination": "AR", "vintage": "no-such-vintage"}, "vintage"),
        ({"destination": "AR", "chip": "Imaginary GPU 9000"}, "chip"),
        ({"destination": "AR", "consignees": "a,,b"}, "consignees"),
        ({"destination": "AR", "as_of": "1999-01-01"}, "as_of"),
        ({"destination": "AR", "as_of": "2025-02-30"}, "as_of"),
        ({}, "destination"),
    ],
)
def test_pathway_errors_name_the_parameter(
    server: Server, keys: dict[str, Key], params: dict[str, str], field: str
) -> None:
    with server.client(keys["viewer"]) as viewer:
        found = fields_of(viewer.get("/v1/pathways", params=params))
    assert any(f == field or f.endswith(f".{field}") for f in found), found


def test_pathway_reports_are_a_pdf_and_a_self_contained_html_file(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["viewer"]) as viewer:
        params = {"destination": "BR", "as_of": "2025-06-01", "chip": "H100 SXM5"}
        pdf = viewer.get("/v1/pathways/report", params={**params, "format": "pdf"})
        assert pdf.status_code == 200, pdf.text
        assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
        assert 'filename="pathways-BR-2025-06-01.pdf"' in pdf.headers["content-disposition"]
        html = viewer.get("/v1/pathways/report", params=params)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert 'filename="pathways-BR-2025-06-01.html"' in html.headers["content-disposition"]
        text = html.text
        no_external_references(text)
        assert "Pathways to Brazil" in text and "<svg" in text
        # 790,000,000 / 15,831.2 = 49,901.3 -> 49,901 whole H100 SXM5s
        assert "49,901" in text and "15 CFR 742.6(b)(10)" in text
        problem_of(viewer.get("/v1/pathways/report", params={**params, "format": "docx"}), 422)


# ---- comparisons --------------------------------------------------------------------------------
def test_poland_tier1_changes_a_polish_line(server: Server, keys: dict[str, Key]) -> None:
    tx = transaction("PL", 2000, "2025-08-01", certifications=["aia_certification", "approved_designer"])
    with server.client(keys["viewer"]) as viewer:
        response = viewer.post("/v1/compare", json={"transaction": tx, "sides": SIDES})
        assert response.status_code == 200, response.text
        answer = response.json()
    assert (answer["kind"], answer["baseline"], answer["as_of"], answer["changed_lines"]) == (
        "transaction",
        "ai-diffusion",
        "2025-08-01",
        1,
    )
    [line] = answer["lines"]
    base, reformed = line["outcomes"]["ai-diffusion"], line["outcomes"]["ai-diffusion+poland-tier1"]
    # as enacted Poland is Tier 2: 31,662,400 TPP is over LPP, a licence drawing Poland's allocation;
    # in Tier 1 from 2025-07-01, with the AIA certification, the requirement is met by License Exception AIA
    assert (base["authorization"], base["draw_account"]) == ("LICENSE", "allocation:PL")
    assert base["draw_tpp"] == pytest.approx(31_662_400)
    assert (reformed["authorization"], reformed["review_policy"], reformed["draw_account"]) == ("AIA", None, None)
    [change] = line["changes"]
    assert change["side"] == "ai-diffusion+poland-tier1"
    assert change["fields"]["authorization"] == ["LICENSE", "AIA"]
    assert change["difference"]["to"]["rule"] == "AIA" and change["difference"]["to"]["citation"]
    assert answer["determinations"]["ai-diffusion+poland-tier1"]["reform"] == "poland-tier1"
    assert answer["determinations"]["ai-diffusion+poland-tier1"]["tier"] == 1
    assert answer["determinations"]["ai-diffusion"]["tier"] == 2


@pytest.mark.parametrize(
    ("sides", "field"),
    [
        (["ai-diffusion", "ai-diffusion+no-such-scenario"], "sides[1]"),
        (["no-such-vintage", "ai-diffusion"], "sides[0]"),
        (["ai-diffusion", "ai-diffusion"], "sides"),
        (["ai-diffusion"], "sides"),
    ],
)
def test_a_bad_side_is_422_naming_it(server: Server, keys: dict[str, Key], sides: list[str], field: str) -> None:
    with server.client(keys["viewer"]) as viewer:
        response = viewer.post("/v1/compare", json={"transaction": transaction("PL", 1, "2025-08-01"), "sides": sides})
    assert field in fields_of(response), response.text


def test_compare_errors_in_the_transaction_name_its_field(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["viewer"]) as viewer:
        bad = viewer.post("/v1/compare", json={"transaction": transaction("ZZ", 1, "2025-08-01"), "sides": SIDES})
        assert fields_of(bad) == ["transaction.destination"]
        negative = transaction("PL", 1, "2025-08-01")
        negative["items"][0]["quantity"] = -1
        assert fields_of(viewer.post("/v1/compare", json={"transaction": negative, "sides": SIDES})) == [
            "transaction.items[0].quantity"
        ]


def test_compare_report(server: Server, keys: dict[str, Key]) -> None:
    body = {"transaction": transaction("PL", 2000, "2025-08-01"), "sides": SIDES}
    with server.client(keys["viewer"]) as viewer:
        html = viewer.post("/v1/compare/report", json=body)
        assert html.status_code == 200, html.text
        assert html.headers["content-type"].startswith("text/html")
        assert 'filename="comparison-2025-08-01.html"' in html.headers["content-disposition"]
        no_external_references(html.text)
        assert "poland-tier1" in html.text and "scenario, not law" in html.text
        pdf = viewer.post("/v1/compare/report", params={"format": "pdf"}, json=body)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def book(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line_id", "date", "chip", "quantity", "destination", "consignee_id"])
    writer.writerows(rows)
    return out.getvalue().encode()


BOOK = book(
    [
        ["PL-1", "2025-08-01", "H100 SXM5", "2000", "PL", "acme-pl"],  # changes under poland-tier1
        ["BR-1", "2025-08-02", "H100 SXM5", "10", "BR", "acme-br"],  # LPP on both sides
    ]
)


def upload(client: httpx.Client, content: bytes, name: str = "orders.csv", **form: Any) -> httpx.Response:
    return client.post("/v1/compare/orders", files={"file": (name, content, "text/csv")}, data={"sides": SIDES, **form})


def test_an_order_book_compared_under_poland_tier1(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["analyst"]) as analyst:
        response = upload(analyst, BOOK)
        assert response.status_code == 200, response.text
        run = response.json()
    comparison = run["comparison"]
    assert run["created_by"] == f"key:{keys['analyst'].id}" and run["file"] == "orders.csv"
    assert (comparison["screened"], comparison["rejected"], comparison["changed_lines"]) == (2, 0, 1)
    assert comparison["starting_state_as_of"] == "2025-08-01"
    [moved] = comparison["transitions"]
    assert moved["side"] == "ai-diffusion+poland-tier1" and moved["lines"] == 1
    assert moved["from_review_policy"] == "presumption_of_approval"  # a licence against Poland's allocation
    [changed] = comparison["changed"]
    assert (changed["line_id"], changed["destination"], changed["from_tier"], changed["to_tier"]) == (
        "PL-1",
        "PL",
        2,
        1,
    )
    assert "server" not in str(comparison.get("out")) and "out" not in comparison  # no server paths
    with server.client(keys["viewer"]) as viewer:
        again = viewer.get(f"/v1/compare/orders/{run['id']}")
        assert again.status_code == 200 and again.json()["comparison"]["changed_lines"] == 1
        lines = viewer.get(run["changed_url"])
        assert lines.status_code == 200 and lines.headers["content-type"].startswith("text/csv")
        [csv_row] = list(csv.DictReader(io.StringIO(lines.text)))
        assert (csv_row["line_id"], csv_row["from_draw_account"], csv_row["to_draw_account"]) == (
            "PL-1",
            "allocation:PL",
            "",
        )
        pdf = viewer.get(run["report_url"], params={"format": "pdf"})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        html = viewer.get(run["report_url"])
        assert html.status_code == 200 and "PL-1" in html.text
        no_external_references(html.text)
        problem_of(viewer.get("/v1/compare/orders/0000000000000000"), 404)
        problem_of(upload(viewer, BOOK), 403)  # a viewer may read comparisons, not run them


def test_an_order_book_with_invalid_lines(server: Server, keys: dict[str, Key]) -> None:
    bad = BOOK + b"BAD-1,2025-13-01,H100 SXM5,1,BR,acme-br\n"
    with server.client(keys["analyst"]) as analyst:
        refused = upload(analyst, bad)
        problem = problem_of(refused, 422)
        fields = [e["field"] for e in problem["errors"]]
        assert fields[0] == "file" and "file: line 3, column date" in fields, fields
        kept = upload(analyst, bad, skip_invalid="true")
        assert kept.status_code == 200, kept.text
        assert kept.json()["comparison"]["rejected"] == 1 and kept.json()["comparison"]["screened"] == 2
        assert [(p["line"], p["column"]) for p in kept.json()["problems"]] == [(3, "date")]
        problem_of(upload(analyst, BOOK, name="orders.txt"), 415)
        assert fields_of(upload(analyst, b"nope,columns\n1,2\n")) == ["file"]
        assert fields_of(
            analyst.post(
                "/v1/compare/orders",
                files={"file": ("orders.csv", BOOK, "text/csv")},
                data={"sides": ["ai-diffusion", "ai-diffusion+no-such-scenario"]},
            )
        ) == ["sides[1]"]


# ---- scenarios ----------------------------------------------------------------------------------
def test_scenarios_create_list_show_and_refusals(server: Server, keys: dict[str, Key]) -> None:
    name = unique("halve-tier2")
    reform = {
        "name": name,
        "description": "Halve every Tier 2 country allocation (790,000,000 / 2 = 395,000,000 TPP)",
        "parameters": [
            {"path": "allocation.tier2_cumulative_tpp", "from": "2025-01-13", "value": 395_000_000, "unit": "tpp"}
        ],
    }
    with server.client(keys["viewer"]) as viewer:
        bundled = {s["name"]: s for s in viewer.get("/v1/scenarios").json()["scenarios"]}
        assert bundled["poland-tier1"]["origin"] == "bundled"
        problem_of(viewer.post("/v1/scenarios", json=reform), 403)  # viewers cannot store scenarios
        problem_of(viewer.get(f"/v1/scenarios/{name}"), 404)
    with server.client(keys["analyst"]) as analyst:
        created = analyst.post("/v1/scenarios", json=reform)
        assert created.status_code == 201, created.text
        assert created.json()["origin"] == "stored" and created.json()["parameters"] == [
            {"path": "allocation.tier2_cumulative_tpp", "from": "2025-01-13", "value": 395_000_000}
        ]
        assert created.json()["citation"] == f"reform {name} (scenario, not law)"
        conflict = analyst.post("/v1/scenarios", json=reform)
        assert fields_of(conflict, 409) == ["name"]
        replaced = analyst.post("/v1/scenarios", params={"replace": "true"}, json={**reform, "description": "again"})
        assert replaced.status_code == 201 and replaced.json()["description"] == "again"
        assert fields_of(analyst.post("/v1/scenarios", json={**reform, "name": "poland-tier1"}), 409) == ["name"]

        def refused(entry: dict[str, Any]) -> list[str]:
            return fields_of(analyst.post("/v1/scenarios", json={"name": unique("bad"), "parameters": [entry]}))

        assert refused({"path": "allocation.no_such_thing", "from": "2025-06-01", "value": 1}) == ["parameters[0].path"]
        assert refused({"path": "lpp.annual_tpp_per_consignee", "from": "2026-01-01", "value": 1, "unit": "usd"}) == [
            "parameters[0].unit"
        ]
        # the LPP limit's first value is dated 2025-01-13: a reform cannot start before it
        assert refused({"path": "lpp.annual_tpp_per_consignee", "from": "2024-01-01", "value": 1}) == [
            "parameters[0].from"
        ]
        assert refused({"path": "lpp.annual_tpp_per_consignee", "from": "2026-01-01", "value": "lots"}) == [
            "parameters[0].value"
        ]
        bad_country = {
            "name": unique("bad"),
            "countries": [{"country": "ZZ", "group": "SUPP5A", "change": "added", "from": "2025-07-01"}],
        }
        assert fields_of(analyst.post("/v1/scenarios", json=bad_country)) == ["countries[0].country"]
        assert fields_of(analyst.post("/v1/scenarios", json={"name": "Not A Name", "parameters": []})) == ["name"]
    with server.client(keys["viewer"]) as viewer:
        listed = {s["name"]: s for s in viewer.get("/v1/scenarios").json()["scenarios"]}
        assert listed[name] == {"name": name, "origin": "stored", "description": "again"}
        shown = viewer.get(f"/v1/scenarios/{name}").json()
        assert shown["parameters"][0]["value"] == 395_000_000 and shown["origin"] == "stored"
        # the stored scenario answers at once: 395,000,000 TPP for Brazil with nothing drawn
        halved = viewer.get("/v1/pathways", params={"destination": "UY", "as_of": "2025-06-01", "scenario": name})
        assert row(halved.json(), "allocation")["limit_tpp"] == 395_000_000
        assert row(halved.json(), "allocation")["units"] == 24_949  # 395,000,000 / 15,832 = 24,949.5


def test_determinations_answer_under_a_scenario(server: Server, keys: dict[str, Key]) -> None:
    tx = transaction("PL", 2000, "2025-08-01", certifications=["aia_certification", "approved_designer"])
    with server.client(keys["viewer"]) as viewer:
        law = viewer.post("/v1/determinations", json=tx).json()
        assert (law["authorization"], law["tier"], law.get("reform")) == ("LICENSE", 2, None)
        reformed = viewer.post("/v1/determinations", params={"scenario": "poland-tier1"}, json=tx)
        assert reformed.status_code == 200, reformed.text
        assert (reformed.json()["authorization"], reformed.json()["tier"], reformed.json()["reform"]) == (
            "AIA",
            1,
            "poland-tier1",
        )
        assert fields_of(viewer.post("/v1/determinations", params={"scenario": "no-such"}, json=tx)) == ["scenario"]


# ---- projections --------------------------------------------------------------------------------
def test_projection_runs_out_per_side_counting_recorded_usage(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["officer"]) as officer:
        record(officer, "allocation:CO", 500_000_000, "2025-06-01")
    demand = [
        # Mexico, nothing recorded: 20,000 H100 SXM5 = 316,624,000 TPP a delivery; cumulative
        # 316,624,000 / 633,248,000 / 949,872,000 -> over 790,000,000 on the third, 2026-03-01
        {"date": "2025-09-01", "country": "MX", "chip": "H100 SXM5", "quantity": 20_000},
        {"date": "2026-01-01", "country": "MX", "chip": "H100 SXM5", "quantity": 20_000},
        {"date": "2026-03-01", "country": "MX", "chip": "H100 SXM5", "quantity": 20_000},
        # Colombia, 500,000,000 TPP recorded: 500,000,000 + 316,624,000 = 816,624,000 > 790,000,000 at once
        {"date": "2025-09-01", "country": "CO", "chip": "H100 SXM5", "quantity": 20_000},
        # Poland: Tier 1 from 2025-07-01 under poland-tier1, no quantity limit
        {"date": "2025-09-01", "country": "PL", "chip": "H100 SXM5", "quantity": 60_000},
    ]
    body = {"demand": demand, "sides": ["ai-diffusion", "ai-diffusion+double-tier2", "ai-diffusion+poland-tier1"]}
    with server.client(keys["viewer"]) as viewer:
        response = viewer.post("/v1/projections", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        by = {(p["country"], p["side"]): p for p in answer["projections"]}
        mx = by[("MX", "ai-diffusion")]
        assert (mx["status"], mx["runs_out_on"]) == ("runs_out", "2026-03-01")
        assert mx["drawn_tpp"] == pytest.approx(949_872_000) and mx["starting_usage_tpp"] == 0
        # doubled: 949,872,000 <= 1,580,000,000 fits
        assert by[("MX", "ai-diffusion+double-tier2")]["status"] == "fits"
        co = by[("CO", "ai-diffusion")]
        assert (co["status"], co["runs_out_on"]) == ("runs_out", "2025-09-01")
        assert co["starting_usage_tpp"] == pytest.approx(500_000_000)
        assert co["points"][0]["cumulative_tpp"] == pytest.approx(816_624_000)
        # Poland: 60,000 x 15,831.2 = 949,872,000 TPP runs out the Tier 2 allocation as enacted; never in Tier 1
        assert by[("PL", "ai-diffusion")]["status"] == "runs_out"
        assert by[("PL", "ai-diffusion+poland-tier1")]["status"] == "never"
        assert answer["usage_source"] == "ledger" and answer["reforms"] == [None, "double-tier2", "poland-tier1"]

        html = viewer.post("/v1/projections/report", json=body)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        no_external_references(html.text)
        assert "runs out on 2026-03-01" in html.text
        pdf = viewer.post("/v1/projections/report", params={"format": "pdf"}, json=body)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert "filename=" in pdf.headers["content-disposition"]

        bad = [*demand[:1], {"date": "2025-09-01", "country": "Atlantis", "chip": "H100 SXM5", "quantity": 1}]
        assert fields_of(viewer.post("/v1/projections", json={"demand": bad})) == ["demand[1].country"]
        bad = [*demand[:1], {"date": "2025-09-01", "country": "MX", "chip": "Imaginary GPU 9000", "quantity": 1}]
        assert fields_of(viewer.post("/v1/projections", json={"demand": bad})) == ["demand[1].chip"]
        bad = [{"date": "2025-09-01", "country": "MX", "chip": "H100 SXM5", "quantity": -1}]
        assert fields_of(viewer.post("/v1/projections", json={"demand": bad})) == ["demand[0].quantity"]
        bad_side = {"demand": demand[:1], "sides": ["ai-diffusion+no-such"]}
        assert fields_of(viewer.post("/v1/projections", json=bad_side)) == ["sides[0]"]


def test_whatif_operations_need_a_key(server: Server) -> None:
    with server.client() as anonymous:
        for method, url in (("GET", "/v1/scenarios"), ("GET", "/v1/pathways?destination=BR"), ("POST", "/v1/compare")):
            response = anonymous.request(method, url)
            assert response.status_code == 401 and response.headers["content-type"].startswith(PROBLEM)
