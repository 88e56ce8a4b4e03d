"""The HTTP API (``tierline serve``) as a real process on loopback, on SQLite and PostgreSQL.

Keys come from the real ``tierline keys create --json``; requests go over httpx. Every response body
is checked for stack traces and 5xx by the client hook in api_server.py.

Hand arithmetic used below (values from the regulation, not from tierline):
- an H100 SXM5 is 1,978.9 dense FP8 TFLOPS x 8 bits = 15,831.2 TPP; 10 of them are 158,312 TPP,
  20 are 316,624 TPP, 5 are 79,156 TPP;
- License Exception LPP: 26,900,000 TPP per ultimate consignee per calendar year (15 CFR 740.29);
  26,900,000 - 158,312 = 26,741,688 TPP of headroom after ten H100s;
- a Tier 2 country allocation is 790,000,000 TPP for 2025-2027 (15 CFR 742.6(a)(6)(iii)).
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_server import BACKENDS, PROBLEM, Key, Server, fields_of, problem_of, running_server

DAY = "2025-06-01"
H100_TPP = 1978.9 * 8  # 15,831.2 TPP
LPP_LIMIT = 26_900_000
ALLOCATION = 790_000_000
MICRO = 1_000_000
ROLES = ("viewer", "analyst", "officer", "admin")
MALFORMED = "tl_not-a-real-key"  # two parts only: never a key
PUBLIC = "public"
WHATIF_SIDES = ["ai-diffusion", "ai-diffusion+poland-tier1"]

# Every route of the API and the least role that may call it. The test compares this list with the
# live OpenAPI document, so a new route cannot ship without a decision here.
MIN_ROLE: dict[tuple[str, str], str] = {
    ("GET", "/v1/countries/{query}"): "viewer",
    ("GET", "/v1/tiers"): "viewer",
    ("GET", "/v1/chips"): "viewer",
    ("GET", "/v1/chips/{name}"): "viewer",
    ("GET", "/v1/policy/vintages"): "viewer",
    ("GET", "/v1/policy/parameters"): "viewer",
    ("GET", "/v1/policy/parameters/{path}"): "viewer",
    ("POST", "/v1/classify"): "viewer",
    ("POST", "/v1/design"): "viewer",
    ("POST", "/v1/inference"): "viewer",
    ("GET", "/v1/charts/tpp-density.svg"): "viewer",
    ("POST", "/v1/determinations"): "viewer",
    ("POST", "/v1/determinations/apply"): "officer",
    ("POST", "/v1/screenings"): "analyst",
    ("GET", "/v1/screenings/{job_id}"): "viewer",
    ("GET", "/v1/screenings/{job_id}/decisions"): "viewer",
    ("GET", "/v1/screenings/{job_id}/rejects"): "viewer",
    ("POST", "/v1/screenings/{job_id}/apply"): "officer",
    ("GET", "/v1/ledger/accounts"): "viewer",
    ("GET", "/v1/ledger/accounts/{account}/history"): "viewer",
    ("GET", "/v1/ledger/verify"): "viewer",
    ("GET", "/v1/ledger/export"): "viewer",
    ("POST", "/v1/ledger/reserve"): "officer",
    ("POST", "/v1/ledger/holds/{hold_id}/commit"): "officer",
    ("POST", "/v1/ledger/holds/{hold_id}/release"): "officer",
    ("POST", "/v1/ledger/adjust"): "officer",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("GET", "/v1/scenarios"): "viewer",
    ("GET", "/v1/scenarios/{name}"): "viewer",
    ("POST", "/v1/scenarios"): "analyst",
    ("POST", "/v1/compare"): "viewer",
    ("POST", "/v1/compare/report"): "viewer",
    ("POST", "/v1/compare/orders"): "analyst",
    ("GET", "/v1/compare/orders/{comparison_id}"): "viewer",
    ("GET", "/v1/compare/orders/{comparison_id}/changed"): "viewer",
    ("GET", "/v1/compare/orders/{comparison_id}/report"): "viewer",
    ("GET", "/v1/pathways"): "viewer",
    ("GET", "/v1/pathways/report"): "viewer",
    ("POST", "/v1/projections"): "viewer",
    ("POST", "/v1/projections/report"): "viewer",
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(request.param, tmp_path_factory.mktemp(f"api-{request.param}")) as running:
        yield running


@pytest.fixture(scope="module")
def keys(server: Server) -> dict[str, Key]:
    """One key per role from the CLI, and a revoked admin key."""
    made = {role: server.create_key(role) for role in ROLES}
    revoked = server.create_key("admin", "revoked before use")
    server.revoke_key(revoked)
    made["revoked"] = revoked
    return made


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def lpp(consignee: str) -> str:
    return f"lpp:{consignee}:2025"


def transaction(consignee: str, quantity: int = 10, destination: str = "BR") -> dict[str, Any]:
    """H100 SXM5s to a Tier 2 consignee: ten (158,312 TPP) are far below the 26,900,000 TPP LPP limit."""
    return {
        "date": DAY,
        "destination": destination,
        "items": [{"chip": "H100 SXM5", "quantity": quantity}],
        "ultimate_consignee": {"id": consignee, "name": consignee, "country": destination, "headquarters": destination},
        "end_use": "data_center",
    }


def book(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line_id", "date", "chip", "quantity", "destination", "consignee_id"])
    writer.writerows(rows)
    return out.getvalue().encode()


def good_book(a: str, b: str) -> bytes:
    """Three valid lines: 10 + 20 H100s for consignee `a`, 5 for `b`, all to Brazil (Tier 2)."""
    return book(
        [
            ["L1", "2025-06-01", "H100 SXM5", "10", "BR", a],
            ["L2", "2025-06-02", "H100 SXM5", "20", "BR", a],
            ["L3", "2025-06-03", "H100 SXM5", "5", "BR", b],
        ]
    )


BAD_BOOK = book(
    [
        ["B1", "2025-06-01", "H100 SXM5", "1", "BR", "bad-book-co"],  # line 1 is valid
        ["B2", "2025-13-02", "H100 SXM5", "1", "BR", "bad-book-co"],  # no 13th month
        ["B3", "2025-06-03", "H100 SXM5", "-5", "BR", "bad-book-co"],  # not 1..1,000,000,000
        ["B4", "2025-06-03", "H100 SXM5", "2.5", "BR", "bad-book-co"],  # not a whole number
        ["B5", "2025-06-03", "Imaginary GPU 9000", "1", "BR", "bad-book-co"],  # not in the catalogue
        ["B6", "2025-06-03", "H100 SXM5", "1", "ZZ", "bad-book-co"],  # not a country
        ["B7", "2025-06-03", "H100 SXM5", "1", "BR", ""],  # required value missing
    ]
)
BAD_LINES = {2: "date", 3: "quantity", 4: "quantity", 5: "chip", 6: "destination", 7: "consignee_id"}


def upload(client: httpx.Client, content: bytes, name: str = "orders.csv", **form: str) -> httpx.Response:
    return client.post("/v1/screenings", files={"file": (name, content, "text/csv")}, data=form)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/screenings/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"screening {job_id} still {job['status']} after {timeout}s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def jobs(server: Server, keys: dict[str, Key]) -> dict[str, str]:
    """A finished screening (for reading and applying) and a refused one (for its rejects)."""
    with server.client(keys["admin"]) as admin:
        done = upload(admin, good_book(unique("matrix-a"), unique("matrix-b")))
        refused = upload(admin, BAD_BOOK)
        assert done.status_code == refused.status_code == 202, (done.text, refused.text)
        assert wait_job(admin, done.json()["id"])["status"] == "done"
        assert wait_job(admin, refused.json()["id"])["status"] == "refused"
        return {"done": done.json()["id"], "refused": refused.json()["id"]}


# ---- 1. route x role ------------------------------------------------------------------------------
Request = dict[str, Any]


def _requests(
    server: Server, admin: httpx.Client, jobs: dict[str, str]
) -> dict[tuple[str, str], Callable[[], Request]]:
    """A valid request per route (fresh resources where a call uses one up)."""

    def hold() -> str:
        response = admin.post(
            "/v1/ledger/reserve",
            json={"account": lpp(unique("matrix-hold")), "tpp": H100_TPP, "effective_date": DAY},
            headers={"Idempotency-Key": unique("matrix-hold")},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["hold_id"])

    def spare_key() -> str:
        response = admin.post("/v1/keys", json={"role": "viewer", "label": "matrix: to delete"})
        assert response.status_code == 201, response.text
        made = response.json()
        server.remember(Key(made["id"], made["role"], made["key"]))
        return str(made["id"])

    def idem() -> dict[str, str]:
        return {"Idempotency-Key": unique("matrix")}

    done, refused = jobs["done"], jobs["refused"]
    comparisons: list[str] = []

    def comparison() -> str:
        """An order-book comparison (made once) whose changed lines and report the viewer routes read."""
        if not comparisons:
            response = admin.post("/v1/compare/orders", **compare_upload())
            assert response.status_code == 200, response.text
            comparisons.append(response.json()["id"])
        return comparisons[0]

    def compare_upload() -> dict[str, Any]:
        orders = book([["PL-1", "2025-08-01", "H100 SXM5", "2000", "PL", unique("matrix-pl")]])
        return {"files": {"file": ("orders.csv", orders, "text/csv")}, "data": {"sides": WHATIF_SIDES}}

    def scenario() -> dict[str, Any]:
        change = {"country": "MX", "group": "SUPP5A", "change": "added", "from": "2025-07-01"}
        return {"name": unique("matrix"), "countries": [change]}

    compare = {
        "transaction": transaction(unique("m"), destination="PL") | {"date": "2025-08-01"},
        "sides": WHATIF_SIDES,
    }
    demand = {"demand": [{"date": "2025-09-01", "country": "BR", "chip": "H100 SXM5", "quantity": 1000}]}
    return {
        ("GET", "/v1/countries/{query}"): lambda: {"url": "/v1/countries/BR", "params": {"as_of": DAY}},
        ("GET", "/v1/tiers"): lambda: {"url": "/v1/tiers", "params": {"as_of": DAY, "tier": 1}},
        ("GET", "/v1/chips"): lambda: {"url": "/v1/chips", "params": {"vendor": "NVIDIA"}},
        ("GET", "/v1/chips/{name}"): lambda: {"url": "/v1/chips/H20"},
        ("GET", "/v1/policy/vintages"): lambda: {"url": "/v1/policy/vintages"},
        ("GET", "/v1/policy/parameters"): lambda: {"url": "/v1/policy/parameters", "params": {"prefix": "lpp"}},
        ("GET", "/v1/policy/parameters/{path}"): lambda: {"url": "/v1/policy/parameters/lpp.annual_tpp_per_consignee"},
        ("POST", "/v1/classify"): lambda: {"url": "/v1/classify", "json": {"chip": "H100 SXM5", "as_of": DAY}},
        ("POST", "/v1/design"): lambda: {
            "url": "/v1/design",
            "json": {"rates": ["fp8=598.75"], "die_areas_mm2": [798.5]},
        },
        ("POST", "/v1/inference"): lambda: {
            "url": "/v1/inference",
            "json": {"chips": ["H100 SXM5", "H20"], "parameters": 70e9, "bytes_per_weight": 1},
        },
        ("GET", "/v1/charts/tpp-density.svg"): lambda: {
            "url": "/v1/charts/tpp-density.svg",
            "params": {"as_of": DAY, "tpp": 4790, "pd": 6.0},
        },
        ("POST", "/v1/determinations"): lambda: {"url": "/v1/determinations", "json": transaction(unique("m"))},
        ("POST", "/v1/determinations/apply"): lambda: {
            "url": "/v1/determinations/apply",
            "json": transaction(unique("matrix-apply")),
            "headers": idem(),
        },
        ("POST", "/v1/screenings"): lambda: {
            "url": "/v1/screenings",
            "files": {"file": ("orders.csv", good_book(unique("ma"), unique("mb")), "text/csv")},
        },
        ("GET", "/v1/screenings/{job_id}"): lambda: {"url": f"/v1/screenings/{done}"},
        ("GET", "/v1/screenings/{job_id}/decisions"): lambda: {"url": f"/v1/screenings/{done}/decisions"},
        ("GET", "/v1/screenings/{job_id}/rejects"): lambda: {"url": f"/v1/screenings/{refused}/rejects"},
        ("POST", "/v1/screenings/{job_id}/apply"): lambda: {"url": f"/v1/screenings/{done}/apply"},
        ("GET", "/v1/ledger/accounts"): lambda: {"url": "/v1/ledger/accounts", "params": {"as_of": DAY}},
        ("GET", "/v1/ledger/accounts/{account}/history"): lambda: {"url": "/v1/ledger/accounts/allocation:BR/history"},
        ("GET", "/v1/ledger/verify"): lambda: {"url": "/v1/ledger/verify"},
        ("GET", "/v1/ledger/export"): lambda: {"url": "/v1/ledger/export"},
        ("POST", "/v1/ledger/reserve"): lambda: {
            "url": "/v1/ledger/reserve",
            "json": {"account": lpp(unique("matrix-reserve")), "tpp": H100_TPP, "effective_date": DAY},
            "headers": idem(),
        },
        ("POST", "/v1/ledger/holds/{hold_id}/commit"): lambda: {
            "url": f"/v1/ledger/holds/{hold()}/commit",
            "headers": idem(),
        },
        ("POST", "/v1/ledger/holds/{hold_id}/release"): lambda: {
            "url": f"/v1/ledger/holds/{hold()}/release",
            "headers": idem(),
        },
        ("POST", "/v1/ledger/adjust"): lambda: {
            "url": "/v1/ledger/adjust",
            "json": {
                "account": lpp(unique("matrix-adjust")),
                "tpp": 1000,
                "reason": "matrix: shipment recorded late",
                "effective_date": DAY,
            },
            "headers": idem(),
        },
        ("GET", "/v1/keys"): lambda: {"url": "/v1/keys"},
        ("POST", "/v1/keys"): lambda: {"url": "/v1/keys", "json": {"role": "viewer", "label": "matrix"}},
        ("DELETE", "/v1/keys/{key_id}"): lambda: {"url": f"/v1/keys/{spare_key()}"},
        ("GET", "/v1/scenarios"): lambda: {"url": "/v1/scenarios"},
        ("GET", "/v1/scenarios/{name}"): lambda: {"url": "/v1/scenarios/poland-tier1"},
        ("POST", "/v1/scenarios"): lambda: {"url": "/v1/scenarios", "json": scenario()},
        ("POST", "/v1/compare"): lambda: {"url": "/v1/compare", "json": compare},
        ("POST", "/v1/compare/report"): lambda: {"url": "/v1/compare/report", "json": compare},
        ("POST", "/v1/compare/orders"): lambda: {"url": "/v1/compare/orders", **compare_upload()},
        ("GET", "/v1/compare/orders/{comparison_id}"): lambda: {"url": f"/v1/compare/orders/{comparison()}"},
        ("GET", "/v1/compare/orders/{comparison_id}/changed"): lambda: {
            "url": f"/v1/compare/orders/{comparison()}/changed"
        },
        ("GET", "/v1/compare/orders/{comparison_id}/report"): lambda: {
            "url": f"/v1/compare/orders/{comparison()}/report",
            "params": {"format": "pdf"},
        },
        ("GET", "/v1/pathways"): lambda: {"url": "/v1/pathways", "params": {"destination": "BR", "as_of": DAY}},
        ("GET", "/v1/pathways/report"): lambda: {
            "url": "/v1/pathways/report",
            "params": {"destination": "BR", "as_of": DAY},
        },
        ("POST", "/v1/projections"): lambda: {"url": "/v1/projections", "json": demand},
        ("POST", "/v1/projections/report"): lambda: {"url": "/v1/projections/report", "json": demand},
        ("GET", "/healthz"): lambda: {"url": "/healthz"},
        ("GET", "/readyz"): lambda: {"url": "/readyz"},
        ("GET", "/metrics"): lambda: {"url": "/metrics"},
    }


def _routes(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, operations in document["paths"].items() for method in operations]


def test_the_matrix_lists_every_route(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["viewer"]) as client:
        document = client.get("/v1/openapi.json").json()
    live = _routes(document)
    assert len(live) == len(set(live))
    assert set(live) == set(MIN_ROLE), (
        f"routes without a role in MIN_ROLE: {sorted(set(live) - set(MIN_ROLE))}; "
        f"listed but not served: {sorted(set(MIN_ROLE) - set(live))}"
    )


def test_route_role_matrix(server: Server, keys: dict[str, Key], jobs: dict[str, str]) -> None:
    forged = f"tl_{keys['admin'].id}_{'x' * 43}"  # a real key id with a wrong secret
    identities: list[tuple[str, str | Key | None]] = [
        ("no key", None),
        ("malformed key", MALFORMED),
        ("revoked key", keys["revoked"]),
        ("wrong secret", forged),
        *((role, keys[role]) for role in ROLES),
    ]
    with server.client(keys["viewer"]) as client:
        document = client.get("/v1/openapi.json").json()
    failures: list[str] = []
    with server.client(keys["admin"]) as admin:
        requests = _requests(server, admin, jobs)
        for index, (method, template) in enumerate(_routes(document)):  # the live routes, not the list
            least = MIN_ROLE.get((method, template))
            if least is None:
                failures.append(f"{method} {template}: not in MIN_ROLE")
                continue
            style = "bearer" if index % 2 == 0 else "x-api-key"
            for name, identity in identities:
                call = requests[(method, template)]()
                url = call.pop("url")
                with server.client(identity, header=style) as client:
                    response = client.request(method, url, **call)
                label = f"{method} {template} as {name} ({style}) -> {response.status_code}"
                if least == PUBLIC:
                    expected = "2xx"
                    ok = 200 <= response.status_code < 300
                elif name not in ROLES:
                    expected = "401"
                    ok = (
                        response.status_code == 401
                        and response.headers.get("www-authenticate") == "Bearer"
                        and response.headers["content-type"].startswith(PROBLEM)
                        and response.json()["status"] == 401
                    )
                elif ROLES.index(name) < ROLES.index(least):
                    expected = "403"
                    ok = (
                        response.status_code == 403
                        and response.headers["content-type"].startswith(PROBLEM)
                        and response.json()["status"] == 403
                    )
                else:
                    expected = "2xx"
                    ok = 200 <= response.status_code < 300
                    if ok and (method, template) == ("POST", "/v1/keys"):
                        made = response.json()
                        server.remember(Key(made["id"], made["role"], made["key"]))
                if not ok:
                    failures.append(f"{label}, expected {expected}: {response.text[:300]}")
    assert not failures, "\n".join(failures)


# ---- 2. audit and idempotency ------------------------------------------------------------------------
def test_ledger_writes_are_audited_with_the_calling_key(server: Server, keys: dict[str, Key]) -> None:
    consignee = unique("audit")
    account = lpp(consignee)
    tpp = 10 * H100_TPP  # 158,312 TPP
    body = {"account": account, "tpp": tpp, "effective_date": DAY}
    officer = keys["officer"]
    with server.client(officer, header="x-api-key") as client:
        first = client.post("/v1/ledger/reserve", json=body, headers={"Idempotency-Key": f"{consignee}-r"})
        assert first.status_code == 200, first.text
        hold = first.json()
        assert (hold["account"], hold["status"], hold["replayed"]) == (account, "held", False)
        assert hold["tpp"] == pytest.approx(158_312)

        again = client.post("/v1/ledger/reserve", json=body, headers={"Idempotency-Key": f"{consignee}-r"})
        assert again.status_code == 200, again.text
        assert again.json()["hold_id"] == hold["hold_id"] and again.json()["replayed"] is True

        other = client.post(
            "/v1/ledger/reserve", json={**body, "tpp": tpp + 1}, headers={"Idempotency-Key": f"{consignee}-r"}
        )
        assert fields_of(other, 409) == ["idempotency_key"]  # a key reused for another request: a conflict

        commit_url = f"/v1/ledger/holds/{hold['hold_id']}/commit"
        committed = client.post(commit_url, headers={"Idempotency-Key": f"{consignee}-c"})
        assert committed.status_code == 200, committed.text
        assert (committed.json()["status"], committed.json()["replayed"]) == ("committed", False)
        replay = client.post(commit_url, headers={"Idempotency-Key": f"{consignee}-c"})
        assert replay.status_code == 200 and replay.json()["replayed"] is True

    with server.client(keys["viewer"]) as viewer:
        history = viewer.get(f"/v1/ledger/accounts/{account}/history")
        assert history.status_code == 200, history.text
        events = history.json()["events"]
        assert [e["op"] for e in events] == ["reserve", "commit"], events  # the replays recorded nothing
        assert {e["actor"] for e in events} == {f"key:{officer.id}"}
        assert {e["hold_id"] for e in events} == {hold["hold_id"]}
        assert [e["idempotency_key"] for e in events] == [f"{consignee}-r", f"{consignee}-c"]
        assert {e["amount_micro"] for e in events} == {158_312 * MICRO}

        status = viewer.get("/v1/ledger/accounts", params={"consignee": consignee, "as_of": DAY})
        [row] = status.json()["accounts"]
        assert row["account"] == account
        assert row["used"] == pytest.approx(158_312) and row["held"] == 0
        assert row["limit"] == LPP_LIMIT and row["headroom"] == pytest.approx(26_741_688)

        export = viewer.get("/v1/ledger/export")
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        [entry] = [r for r in csv.DictReader(io.StringIO(export.text)) if r["account_id"] == account]
        assert entry["actor"] == f"key:{officer.id}"

        verify = viewer.get("/v1/ledger/verify").json()
        assert verify["ok"] is True, verify["problems"]


def test_applied_determinations_are_audited_with_the_calling_key(server: Server, keys: dict[str, Key]) -> None:
    consignee = unique("applied")
    with server.client(keys["admin"]) as admin:
        response = admin.post(
            "/v1/determinations/apply", json=transaction(consignee), headers={"Idempotency-Key": consignee}
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        # ten H100s (158,312 TPP) to a Tier 2 consignee fit under LPP's 26,900,000 TPP
        assert answer["authorization"] == "LPP"
        assert answer["allocation_draws"] == [{"account": lpp(consignee), "tpp": pytest.approx(158_312)}]
        assert answer["applied"]["replayed"] is False
        again = admin.post(
            "/v1/determinations/apply", json=transaction(consignee), headers={"Idempotency-Key": consignee}
        )
        assert again.status_code == 200 and again.json()["applied"]["replayed"] is True
        events = admin.get(f"/v1/ledger/accounts/{lpp(consignee)}/history").json()["events"]
        assert [(e["op"], e["actor"]) for e in events] == [("direct", f"key:{keys['admin'].id}")]


# ---- 3. errors ---------------------------------------------------------------------------------------
BAD_BODIES = [
    pytest.param(
        "/v1/determinations",
        {**transaction("x"), "items": [{"chip": "H100 SXM5", "quantity": -3}]},
        "items[0].quantity",
        id="negative-quantity",
    ),
    pytest.param("/v1/determinations", {**transaction("x"), "items": []}, "items", id="no-items"),
    pytest.param("/v1/determinations", {**transaction("x"), "date": "2025-02-30"}, "date", id="bad-date"),
    pytest.param(
        "/v1/determinations", {**transaction("x"), "destination": "ZZ"}, "destination", id="unknown-destination"
    ),
    pytest.param(
        "/v1/determinations",
        {k: v for k, v in transaction("x").items() if k != "ultimate_consignee"},
        "ultimate_consignee",
        id="no-consignee",
    ),
    pytest.param(
        "/v1/ledger/reserve", {"account": "lpp:x:2025", "tpp": -5, "effective_date": DAY}, "tpp", id="reserve-negative"
    ),
    pytest.param(
        "/v1/ledger/reserve", {"account": "lpp:x:2025", "tpp": "lots", "effective_date": DAY}, "tpp", id="reserve-text"
    ),
    pytest.param("/v1/ledger/reserve", {"tpp": 5, "effective_date": DAY}, "account", id="reserve-no-account"),
    pytest.param(
        "/v1/ledger/reserve", {"account": "bogus", "tpp": 5, "effective_date": DAY}, "account", id="reserve-bad-account"
    ),
    pytest.param(
        "/v1/ledger/reserve",
        {"account": "lpp:x:2025", "tpp": 5, "effective_date": "2025-13-01"},
        "effective_date",
        id="reserve-bad-date",
    ),
    pytest.param(
        "/v1/ledger/reserve",
        {"account": "lpp:x:2025", "tpp": 5, "effective_date": "2024-06-01"},
        "effective_date",
        id="reserve-wrong-year",
    ),
    pytest.param(
        "/v1/ledger/adjust",
        {"account": "lpp:x:2025", "tpp": 5, "reason": "", "effective_date": DAY},
        "reason",
        id="adjust-no-reason",
    ),
    pytest.param("/v1/keys", {"role": "superuser"}, "role", id="key-unknown-role"),
    pytest.param("/v1/classify", {"chip": "H100 SXM5", "colour": "green"}, "colour", id="classify-unknown-field"),
    pytest.param("/v1/classify", {"chip": "Imaginary GPU 9000"}, "chip", id="classify-unknown-chip"),
    pytest.param(
        "/v1/classify",
        {"rates": ["fp8=1979"], "die_areas_mm2": [-814]},
        "die_areas_mm2[0]",
        id="classify-negative-area",
    ),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD_BODIES)
def test_invalid_bodies_are_422_naming_the_field(
    server: Server, keys: dict[str, Key], path: str, body: dict[str, Any], field: str
) -> None:
    with server.client(keys["admin"]) as client:
        response = client.post(path, json=body, headers={"Idempotency-Key": unique("bad")})
    problem = problem_of(response, 422)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert all(e["reason"] for e in problem["errors"]) and problem["detail"]


def test_classify_errors_name_body_fields_not_cli_flags(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["viewer"]) as client:
        assert fields_of(client.post("/v1/classify", json={"hbm_bandwidth_gbs": 819})) == ["hbm_area_mm2"]


def test_a_write_without_an_idempotency_key_is_422(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["officer"]) as client:
        response = client.post("/v1/ledger/reserve", json={"account": "lpp:x:2025", "tpp": 5, "effective_date": DAY})
    assert any("Idempotency-Key" in f for f in fields_of(response)), response.text


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/v1/countries/XX", "XX"),
        ("/v1/chips/Imaginary%20GPU%209000", "Imaginary GPU 9000"),
        ("/v1/policy/parameters/lpp.no_such_parameter", "lpp.no_such_parameter"),
        ("/v1/screenings/0000000000000000", "0000000000000000"),
        ("/v1/screenings/0000000000000000/decisions", "0000000000000000"),
        ("/v1/no-such-route", None),
    ],
)
def test_unknown_things_are_404(server: Server, keys: dict[str, Key], path: str, named: str | None) -> None:
    with server.client(keys["viewer"]) as client:
        problem = problem_of(client.get(path), 404)
    if named:
        assert named in problem["detail"], problem


def test_revoking_an_unknown_key_is_404(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["admin"]) as client:
        assert "ffffffff" in problem_of(client.delete("/v1/keys/ffffffff"), 404)["detail"]


def _over_a_mebibyte() -> bytes:
    body = '{"chip": "H100 SXM5", "rates": [' + ", ".join(['"fp8=1979"'] * 120_000) + "]}"
    assert len(body) > 1 << 20  # 1 MiB = 1,048,576 bytes
    return body.encode()


def test_an_over_limit_body_is_413(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["viewer"]) as client:
        response = client.post("/v1/classify", content=_over_a_mebibyte(), headers={"content-type": "application/json"})
    problem_of(response, 413)


def test_an_over_limit_chunked_body_is_413(server: Server, keys: dict[str, Key]) -> None:
    body = _over_a_mebibyte()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    with server.client(keys["viewer"]) as client:
        response = client.post("/v1/classify", content=chunks(), headers={"content-type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    problem_of(response, 413)


def test_over_allocation_reserves_are_422_naming_tpp(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["officer"]) as client:

        def reserve(account: str, tpp: float) -> httpx.Response:
            body = {"account": account, "tpp": tpp, "effective_date": DAY}
            return client.post("/v1/ledger/reserve", json=body, headers={"Idempotency-Key": unique("alloc")})

        # more than a Tier 2 allocation never fits, whatever is already used
        problem = problem_of(reserve("allocation:BR", ALLOCATION + 1), 422)
        assert [e["field"] for e in problem["errors"]] == ["tpp"] and "allocation:BR" in problem["detail"]
        # a fresh Tier 2 allocation takes exactly 790,000,000 TPP, then not one more
        full = reserve("allocation:AR", ALLOCATION)
        assert full.status_code == 200, full.text
        assert fields_of(reserve("allocation:AR", 1)) == ["tpp"]
        released = client.post(
            f"/v1/ledger/holds/{full.json()['hold_id']}/release", headers={"Idempotency-Key": unique("release")}
        )
        assert released.status_code == 200 and released.json()["status"] == "released"
        [row] = client.get("/v1/ledger/accounts", params={"country": "AR", "as_of": DAY}).json()["accounts"]
        assert (row["used"], row["held"], row["limit"], row["headroom"]) == (0, 0, ALLOCATION, ALLOCATION)


def test_nul_bytes_in_text_never_cause_a_5xx(server: Server, keys: dict[str, Key]) -> None:
    odd = "nul\x00byte"
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/ledger/reserve", {"json": {"account": lpp(odd), "tpp": 1, "effective_date": DAY}}),
        ("GET", "/v1/ledger/accounts/nul%00byte/history", {}),
        ("POST", "/v1/ledger/holds/nul%00byte/commit", {}),
        ("POST", "/v1/determinations", {"json": transaction(odd)}),
        ("POST", "/v1/keys", {"json": {"role": "viewer", "label": odd}}),
        ("DELETE", "/v1/keys/nul%00byte", {}),
    ]
    failures = []
    for method, url, extra in calls:
        with server.client(keys["admin"]) as client:
            client.event_hooks = {"response": []}  # collect every answer here rather than stop at the first
            response = client.request(method, url, headers={"Idempotency-Key": unique("nul")}, **extra)
        if response.status_code >= 500 or "Traceback" in response.text:
            failures.append(f"{method} {url} -> {response.status_code} {response.text[:200]}")
        elif response.status_code == 201 and "key" in response.json():
            made = response.json()
            server.remember(Key(made["id"], made["role"], made["key"]))
    assert not failures, "\n".join(failures)


# ---- 5. keys over HTTP -----------------------------------------------------------------------------
def test_keys_over_http(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["admin"], header="x-api-key") as admin:
        created = admin.post("/v1/keys", json={"role": "viewer", "label": "ERP order hook"})
        assert created.status_code == 201, created.text
        made = created.json()
        key = Key(made["id"], made["role"], made["key"])
        server.remember(key)
        assert (made["role"], made["label"]) == ("viewer", "ERP order hook")
        assert re.fullmatch(rf"tl_{re.escape(key.id)}_[A-Za-z0-9_-]{{20,}}", key.key), key.key

        with server.client(key) as viewer:
            assert viewer.get("/v1/chips/H20").status_code == 200
            problem_of(viewer.post("/v1/ledger/adjust", json={}), 403)
            problem_of(viewer.get("/v1/keys"), 403)

        listed = admin.get("/v1/keys")
        assert listed.status_code == 200
        assert key.secret not in listed.text and keys["admin"].secret not in listed.text
        rows = {row["id"]: row for row in listed.json()["keys"]}
        assert rows[key.id] == {**rows[key.id], "role": "viewer", "label": "ERP order hook", "revoked": False}
        for row in rows.values():
            assert not {"key", "secret", "secret_hash", "hash"} & set(row), row
            assert not any(re.fullmatch(r"[0-9a-f]{64}", str(v)) for v in row.values()), row  # no SHA-256
        assert rows[keys["revoked"].id]["revoked"] is True

        revoked = admin.delete(f"/v1/keys/{key.id}")
        assert revoked.status_code == 200 and revoked.json()["revoked"] is True, revoked.text
        with server.client(key) as viewer:
            response = viewer.get("/v1/chips/H20")
            problem_of(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
        again = admin.delete(f"/v1/keys/{key.id}")
        assert again.status_code == 200 and again.json()["already_revoked"] is True
        assert {row["id"]: row["revoked"] for row in admin.get("/v1/keys").json()["keys"]}[key.id] is True

    cli = server.cli("keys", "list", "--json")
    assert cli.code == 0, cli.stderr
    assert {k["id"]: k["revoked"] for k in cli.json()["keys"]}[key.id] is True
    assert key.secret not in cli.stdout


# ---- 6. health, metrics, OpenAPI, docs --------------------------------------------------------------
def _head_revision() -> str:
    """The newest migration's revision id, read from the migration files (src/tierline/ledger/migrations)."""
    versions = Path(__file__).resolve().parents[1] / "src" / "tierline" / "ledger" / "migrations" / "versions"
    revisions = {}
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = re.search(r'^revision\s*=\s*"([^"]+)"', text, re.M)
        down = re.search(r'^down_revision\s*=\s*"?([^"\n]+?)"?\s*$', text, re.M)
        if found:
            revisions[found.group(1)] = down.group(1) if down else None
    [head] = set(revisions) - set(revisions.values())
    return head


def test_health_and_metrics(server: Server) -> None:
    with server.client() as client:  # no key: probes and scrapers have none
        health = client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "schema": _head_revision()}
        metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    samples = re.findall(r"^tierline_http_requests_total\{([^}]*)\} ([0-9.e+]+)$", metrics.text, re.M)
    assert "# TYPE tierline_http_requests_total counter" in metrics.text
    labels = [dict(re.findall(r'(\w+)="([^"]*)"', text)) | {"value": value} for text, value in samples]
    healthz = [s for s in labels if s["route"] == "/healthz" and s["method"] == "GET" and s["status"] == "200"]
    assert healthz and float(healthz[0]["value"]) >= 1
    assert "tierline_http_request_seconds_bucket" in metrics.text


def test_openapi_is_3x(server: Server, keys: dict[str, Key]) -> None:
    with server.client() as client:
        document = client.get("/v1/openapi.json")
    assert document.status_code == 200
    spec = document.json()
    assert re.fullmatch(r"3\.\d+\.\d+", spec["openapi"]), spec["openapi"]
    assert spec["info"]["title"] == "tierline"
    for path in spec["paths"]:
        assert path.startswith("/v1/") or path in ("/healthz", "/readyz", "/metrics"), path


def _has_example(node: Any, components: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    if isinstance(node, dict):
        if "example" in node or "examples" in node:
            return True
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen and _has_example(components.get(name, {}), components, seen | {name}):
                return True
        return any(_has_example(v, components, seen) for v in node.values())
    if isinstance(node, list):
        return any(_has_example(v, components, seen) for v in node)
    return False


def test_every_operation_has_an_example(server: Server) -> None:
    with server.client() as client:
        spec = client.get("/v1/openapi.json").json()
    components = spec.get("components", {}).get("schemas", {})
    missing = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if not any(
            _has_example(operation.get(part, {}), components) for part in ("parameters", "requestBody", "responses")
        )
    ]
    assert not missing, f"operations without an example: {missing}"


def test_docs_are_served_offline(server: Server) -> None:
    with server.client() as client:
        page = client.get("/v1/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        assert not re.search(r"https?://", html), "the docs page refers to a remote URL"
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
        for asset in assets:
            assert asset.startswith("/v1/docs/static/"), asset
            loaded = client.get(asset)
            assert loaded.status_code == 200 and len(loaded.content) > 100, asset
        assert "/v1/openapi.json" in html


# ---- 7. screening over HTTP --------------------------------------------------------------------------
def test_screening_upload_poll_download_apply(server: Server, keys: dict[str, Key]) -> None:
    a, b = unique("screen-a"), unique("screen-b")
    with server.client(keys["analyst"]) as analyst:
        submitted = upload(analyst, good_book(a, b))
        assert submitted.status_code == 202, submitted.text
        job = wait_job(analyst, submitted.json()["id"])
        assert job["status"] == "done", job
        assert job["lines_done"] == 3 and job["rejected"] == 0 and job["created_by"] == f"key:{keys['analyst'].id}"
        summary = job["summary"]
        assert (summary["lines"], summary["screened"], summary["rejected"]) == (3, 3, 0)
        assert summary["by_outcome"] == [{"authorization": "LPP", "review_policy": None, "lines": 3}]
        # LPP draws: (10 + 20) x 15,831.2 = 474,936 TPP for a; 5 x 15,831.2 = 79,156 TPP for b
        assert summary["drawn"]["lpp"] == {lpp(a): pytest.approx(474_936), lpp(b): pytest.approx(79_156)}
        assert summary["drawn"]["allocation"] == {}

        decisions = analyst.get(job["decisions_url"])
        assert decisions.status_code == 200, decisions.text
        rows = list(csv.DictReader(io.StringIO(decisions.text)))
        assert [r["line_id"] for r in rows] == ["L1", "L2", "L3"]
        assert [r["line"] for r in rows] == ["1", "2", "3"]
        assert [float(r["tpp"]) for r in rows] == pytest.approx([158_312, 316_624, 79_156])
        assert [r["draw_account"] for r in rows] == [lpp(a), lpp(a), lpp(b)]
        assert {r["authorization"] for r in rows} == {"LPP"}
        problem_of(analyst.get(f"/v1/screenings/{job['id']}/rejects"), 409)  # nothing was rejected

        problem_of(analyst.post(f"/v1/screenings/{job['id']}/apply"), 403)  # analysts only look
    with server.client(keys["viewer"]) as viewer:
        problem_of(viewer.post(f"/v1/screenings/{job['id']}/apply"), 403)
        problem_of(upload(viewer, good_book(a, b)), 403)

    with server.client(keys["officer"], header="x-api-key") as officer:
        applied = officer.post(f"/v1/screenings/{job['id']}/apply")
        assert applied.status_code == 200, applied.text
        first = applied.json()
        assert first["replayed"] is False and first["lines"] == 3
        assert {d["account"]: d["tpp"] for d in first["applied"]} == {
            lpp(a): pytest.approx(474_936),
            lpp(b): pytest.approx(79_156),
        }
        second = officer.post(f"/v1/screenings/{job['id']}/apply")
        assert second.status_code == 200 and second.json()["replayed"] is True
        assert second.json()["batch_key"] == first["batch_key"]
        assert officer.get(f"/v1/screenings/{job['id']}").json()["applied"]["batch_key"] == first["batch_key"]

        accounts = officer.get("/v1/ledger/accounts", params={"consignee": a, "as_of": "2025-12-31"}).json()["accounts"]
        assert [(r["account"], r["used"]) for r in accounts] == [(lpp(a), pytest.approx(474_936))]
        events = officer.get(f"/v1/ledger/accounts/{lpp(a)}/history").json()["events"]
        assert [(e["op"], e["actor"]) for e in events] == [("direct", f"key:{keys['officer'].id}")] * 2  # 2 dates


def test_a_malformed_book_is_refused_with_every_bad_line(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["analyst"]) as analyst:
        submitted = upload(analyst, BAD_BOOK)
        assert submitted.status_code == 202, submitted.text
        job = wait_job(analyst, submitted.json()["id"])
        assert job["status"] == "refused", job
        assert job["rejected"] == len(BAD_LINES) and job["decisions_url"] is None
        assert {(p["line"], p["column"]) for p in job["problems"]} == set(BAD_LINES.items())

        rejects = analyst.get(job["rejects_url"])
        assert rejects.status_code == 200 and rejects.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(rejects.text)))
        assert {(int(r["line"]), r["column"]) for r in rows} == set(BAD_LINES.items())
        assert all(r["reason"] for r in rows)
        assert {r["value"] for r in rows} >= {"2025-13-02", "-5", "2.5", "Imaginary GPU 9000", "ZZ"}

        problem_of(analyst.get(f"/v1/screenings/{job['id']}/decisions"), 409)
    with server.client(keys["officer"]) as officer:
        assert fields_of(officer.post(f"/v1/screenings/{job['id']}/apply")) == ["status"]
        # nothing of the refused book reached the ledger
        assert officer.get("/v1/ledger/accounts", params={"consignee": "bad-book-co"}).json()["accounts"] == []


def test_a_book_screened_with_skip_invalid_keeps_the_valid_lines(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["analyst"]) as analyst:
        submitted = upload(analyst, BAD_BOOK, skip_invalid="true")
        job = wait_job(analyst, submitted.json()["id"])
        assert job["status"] == "done" and job["skip_invalid"] is True, job
        rows = list(csv.DictReader(io.StringIO(analyst.get(job["decisions_url"]).text)))
        assert [r["line_id"] for r in rows] == ["B1"]
        assert float(rows[0]["tpp"]) == pytest.approx(15_831.2)
        rejects = list(csv.DictReader(io.StringIO(analyst.get(job["rejects_url"]).text)))
        assert {int(r["line"]) for r in rejects} == set(BAD_LINES)


def test_an_upload_that_is_not_an_order_book_is_415(server: Server, keys: dict[str, Key]) -> None:
    with server.client(keys["analyst"]) as analyst:
        problem_of(upload(analyst, b"hello", name="orders.txt"), 415)


# ---- 4. keys never appear in logs (last: it reads everything the module made the server log) ----------
def test_keys_never_appear_in_the_logs(server: Server, keys: dict[str, Key]) -> None:
    forged = f"tl_{keys['viewer'].id}_{'S' * 43}"
    for identity, style in [(keys["viewer"], "bearer"), (keys["admin"], "x-api-key"), (keys["revoked"], "bearer")]:
        with server.client(identity, header=style) as client:
            client.get("/v1/chips/H20")
            client.get("/v1/nowhere")
    with server.client(forged) as client:
        assert client.get("/v1/tiers").status_code == 401
    time.sleep(0.2)  # let the access log reach the file
    log = server.log_text()
    assert "GET /v1/chips/H20" in log, "the server's access log was not captured"
    assert len(server.keys) >= 5
    for key in server.keys:
        assert key.key not in log, f"key {key.id} appears in full in the server log"
        assert key.secret not in log, f"the secret of key {key.id} appears in the server log"
    assert "S" * 43 not in log


def test_key_management_is_audited_with_the_calling_key(server: Server, keys: dict[str, Key]) -> None:
    admin = keys["admin"]
    with server.client(admin) as client:
        made = client.post("/v1/keys", json={"role": "viewer", "label": "audited"})
        assert made.status_code == 201, made.text
        key_id = made.json()["id"]
        assert client.delete(f"/v1/keys/{key_id}").status_code == 200
        events = client.get("/v1/ledger/accounts/system/history").json()["events"]
        mine = [(e["op"], e["actor"]) for e in events if e.get("key_id") == key_id]
        assert mine == [("key_create", f"key:{admin.id}"), ("key_revoke", f"key:{admin.id}")]
        assert client.get("/v1/ledger/verify").json()["ok"] is True
