"""Property-based tests of the live HTTP API with Schemathesis.

A real ``tierline serve`` subprocess on a free loopback port (SQLite under a temporary
TIERLINE_HOME), an admin key made with ``tierline keys create``, the schema loaded from the
running server's ``/v1/openapi.json`` and every operation in it called with generated requests
(examples from the schema, positive and negative data, plus positive data on seeded resources so
the hold, screening and key routes are reached past their 404s). Every response must pass:

* ``not_a_server_error``          - no 5xx;
* ``status_code_conformance``     - only documented statuses;
* ``content_type_conformance``    - the documented media type (errors are application/problem+json);
* ``response_schema_conformance`` - the body matches the documented schema.

Deterministic (Hypothesis ``derandomize``, no example database) and bounded (``MAX_EXAMPLES`` per
operation and generation mode, no deadline). Server bugs that are known and not yet fixed are listed
in ``KNOWN_BUGS``: each has minimal reproductions that run as strict xfails (they start failing the
day the bug is fixed, so the entry moves to ``FIXED_BUGS``, whose reproductions must keep passing)
and a narrow symptom the property test tolerates, counts and reports as a warning; any other
failure fails the test.
"""

from __future__ import annotations

import collections
import datetime as dt
import http.client
import json
import os
import re
import socket
import subprocess
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from helpers import TIERLINE, free_port, stop_process

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation and generation mode (positive, negative); raise it for a deeper local run.
MAX_EXAMPLES = int(os.environ.get("TIERLINE_API_FUZZ_EXAMPLES", "25"))
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)

# Every operation of the live schema, on purpose: test_every_operation_is_tested fails when a
# route is added or removed until this list follows, so no operation goes untested silently.
OPERATIONS = (
    "GET /v1/countries/{query}",
    "GET /v1/tiers",
    "GET /v1/chips",
    "GET /v1/chips/{name}",
    "GET /v1/policy/vintages",
    "GET /v1/policy/parameters",
    "GET /v1/policy/parameters/{path}",
    "POST /v1/classify",
    "POST /v1/design",
    "POST /v1/inference",
    "GET /v1/charts/tpp-density.svg",
    "POST /v1/determinations",
    "POST /v1/determinations/apply",
    "POST /v1/screenings",
    "GET /v1/screenings/{job_id}",
    "GET /v1/screenings/{job_id}/decisions",
    "GET /v1/screenings/{job_id}/rejects",
    "POST /v1/screenings/{job_id}/apply",
    "GET /v1/ledger/accounts",
    "GET /v1/ledger/accounts/{account}/history",
    "GET /v1/ledger/verify",
    "GET /v1/ledger/export",
    "POST /v1/ledger/reserve",
    "POST /v1/ledger/holds/{hold_id}/commit",
    "POST /v1/ledger/holds/{hold_id}/release",
    "POST /v1/ledger/adjust",
    "GET /v1/keys",
    "POST /v1/keys",
    "DELETE /v1/keys/{key_id}",
    "GET /v1/scenarios",
    "GET /v1/scenarios/{name}",
    "POST /v1/scenarios",
    "POST /v1/compare",
    "POST /v1/compare/report",
    "POST /v1/compare/orders",
    "GET /v1/compare/orders/{comparison_id}",
    "GET /v1/compare/orders/{comparison_id}/changed",
    "GET /v1/compare/orders/{comparison_id}/report",
    "GET /v1/pathways",
    "GET /v1/pathways/report",
    "POST /v1/projections",
    "POST /v1/projections/report",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
)
PUBLIC = {"GET /healthz", "GET /readyz", "GET /metrics"}  # no key needed

TX = {
    "date": "2025-06-01",
    "destination": "BR",
    "items": [{"chip": "H100 SXM5", "quantity": 2}],
    "ultimate_consignee": {"id": "acme-br", "name": "Acme Brasil", "country": "BR", "headquarters": "BR"},
    "end_use": "data_center",
}
ORDERS_HEADER = "line_id,date,chip,quantity,destination,consignee_id,consignee_name,end_use\n"
ORDERS_OK = (
    ORDERS_HEADER
    + "SO-1,2025-06-02,H100 SXM5,8,BR,acme-br,Acme Brasil,data_center\n"
    + "SO-2,2025-06-03,H20,100,CN,cn-1,China One,other\n"
)
ORDERS_ONE_BAD = ORDERS_OK + "SO-3,2025-06-04,H100 SXM5,0,BR,acme-br,Acme Brasil,data_center\n"
ORDERS_PL = (
    ORDERS_HEADER
    + "PL-1,2025-08-01,H100 SXM5,2000,PL,acme-pl,Acme Polska,data_center\n"
    + ORDERS_OK[len(ORDERS_HEADER) :]
)
SIDES = ("ai-diffusion", "ear-2023", "enforcement-posture", "ai-diffusion+poland-tier1", "ai-diffusion+double-tier2")


# ---- the server ----------------------------------------------------------------------------------
@dataclass
class Server:
    base_url: str
    home: Path
    log: Path
    admin_key: str
    viewer_key: str = ""
    chips: list[str] = field(default_factory=list)  # catalogue chip ids
    fixed: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # operation -> seeded path parameters

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def incident_error(self, body: str) -> str | None:
        """The exception class the server logged for the incident id in a 500 problem body."""
        found = re.search(r"incident ([0-9a-f]{12})", body)
        if not found:
            return None
        for _ in range(20):  # the log line may land just after the response
            logged = re.search(rf"incident {found.group(1)} on \S+ \S+: (\w+)", self.log.read_text(errors="replace"))
            if logged:
                return logged.group(1)
            time.sleep(0.05)
        return None


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIERLINE_DATABASE_URL", "TIERLINE_POLICY_DIR")}
    return {**env, "TIERLINE_HOME": str(home), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("tierline-home")
    env = _env(home)
    made = subprocess.run(
        [str(TIERLINE), "keys", "create", "--role", "admin", "--label", "schemathesis", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    port = free_port()
    log = home / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(TIERLINE), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    srv = Server(f"http://127.0.0.1:{port}", home, log, json.loads(made.stdout)["key"])
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tierline serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{srv.base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tierline serve did not become ready:\n{log.read_text()}")
            time.sleep(0.1)
        _seed(srv)
        yield srv
    finally:
        stop_process(proc)


def _seed(srv: Server) -> None:
    """Resources the path-parameter routes need to answer something other than 404: live holds, a
    screening with decisions and rejects, a refused one, a key to revoke; and LPP usage on
    lpp:acme-br:2025 so the schema's adjust example (-15,832 TPP) is a valid correction."""
    with httpx.Client(base_url=srv.base_url, headers=srv.headers(), timeout=30) as client:

        def ok(response: httpx.Response) -> dict[str, Any]:
            assert response.is_success, f"seeding: {response.request.method} {response.request.url}: {response.text}"
            return response.json()  # type: ignore[no-any-return]

        ok(client.post("/v1/determinations/apply", json=TX, headers={"Idempotency-Key": "seed-lpp"}))
        holds = [
            ok(
                client.post(
                    "/v1/ledger/reserve",
                    json={"account": "allocation:BR", "tpp": 1000, "effective_date": "2025-06-01"},
                    headers={"Idempotency-Key": f"seed-hold-{i}"},
                )
            )["hold_id"]
            for i in range(3)
        ]
        screened = ok(
            client.post("/v1/screenings", files={"file": ("orders.csv", ORDERS_ONE_BAD)}, data={"skip_invalid": "true"})
        )
        refused = ok(client.post("/v1/screenings", files={"file": ("orders.csv", ORDERS_ONE_BAD)}))
        for job in (screened, refused):
            _wait_for_job(client, job["id"])
        viewer = ok(client.post("/v1/keys", json={"role": "viewer", "label": "schemathesis viewer"}))
        srv.chips = [chip["id"] for chip in ok(client.get("/v1/chips"))["chips"]]
        doomed = ok(client.post("/v1/keys", json={"role": "viewer", "label": "to be revoked"}))
        compared = ok(
            client.post(
                "/v1/compare/orders",
                files={"file": ("orders.csv", ORDERS_PL)},
                data={"sides": ["ai-diffusion", "ai-diffusion+poland-tier1"]},
            )
        )
    srv.viewer_key = viewer["key"]
    jobs = [{"job_id": screened["id"]}, {"job_id": refused["id"]}]
    srv.fixed = {
        "POST /v1/ledger/holds/{hold_id}/commit": [{"hold_id": holds[0]}, {"hold_id": holds[2]}],
        "POST /v1/ledger/holds/{hold_id}/release": [{"hold_id": holds[1]}, {"hold_id": holds[2]}],
        "GET /v1/screenings/{job_id}": jobs,
        "GET /v1/screenings/{job_id}/decisions": jobs,
        "GET /v1/screenings/{job_id}/rejects": jobs,
        "POST /v1/screenings/{job_id}/apply": jobs,
        "DELETE /v1/keys/{key_id}": [{"key_id": doomed["id"]}],
        "GET /v1/compare/orders/{comparison_id}": [{"comparison_id": compared["id"]}],
        "GET /v1/compare/orders/{comparison_id}/changed": [{"comparison_id": compared["id"]}],
        "GET /v1/compare/orders/{comparison_id}/report": [{"comparison_id": compared["id"]}],
        "GET /v1/scenarios/{name}": [{"name": "poland-tier1"}, {"name": "double-tier2"}],
    }


def _wait_for_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/screenings/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"screening {job_id} did not finish")


@pytest.fixture(scope="module")
def api_schema(server: Server) -> Any:
    config = schemathesis.Config.from_dict({"headers": server.headers(), "request-timeout": 30})
    return schemathesis.openapi.from_url(f"{server.base_url}/v1/openapi.json", config=config)


# ---- known server bugs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Repro:
    """One minimal request that shows a bug."""

    label: str  # "METHOD /path" of the operation, as in OPERATIONS
    path: str  # the concrete path
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # stream the body (Transfer-Encoding: chunked) instead of a Content-Length
    path_parameters: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)

    def send(self, srv: Server) -> httpx.Response:
        headers = {
            **srv.headers(),
            **self.headers,
            **({"Content-Type": self.content_type} if self.content_type else {}),
        }
        method, url = self.label.split()[0], srv.base_url + self.path
        if not self.chunked:
            return httpx.request(method, url, params=self.query, content=self.body or None, headers=headers, timeout=30)
        chunks = (self.body[i : i + 65_536] for i in range(0, len(self.body), 65_536))
        response = httpx.request(method, url, params=self.query, content=chunks, headers=headers, timeout=30)
        # A streamed request cannot be read back; the checks' report quotes the same request unstreamed.
        response.request = httpx.Request(method, url, params=self.query, content=self.body, headers=headers)
        return response


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


@dataclass(frozen=True)
class KnownBug:
    id: str
    title: str
    operations: frozenset[str]
    symptom: Callable[[Server, httpx.Response | Any], bool]  # does this response show the bug?
    repros: tuple[Repro, ...]


def _problem_detail(response: Any) -> str:
    try:
        return str(json.loads(response.text).get("detail", ""))
    except (ValueError, AttributeError):
        return ""


JSON_BODY_OPERATIONS = frozenset(
    {
        "POST /v1/classify",
        "POST /v1/design",
        "POST /v1/inference",
        "POST /v1/determinations",
        "POST /v1/determinations/apply",
        "POST /v1/ledger/reserve",
        "POST /v1/ledger/adjust",
        "POST /v1/keys",
    }
)
SPEC_TX = {**TX, "items": [{"spec": {"rates": {"fp8": 1e308}}}]}
OVERSIZED = _json({"label": "x" * (1 << 20), "role": "viewer"})  # valid JSON just over 1 MiB
KNOWN_BUGS: tuple[KnownBug, ...] = ()  # none open: every bug found so far is fixed (FIXED_BUGS)


# Bugs this test found that are fixed: their reproductions must keep passing the checks.
FIXED_BUGS = (
    KnownBug(
        "B1",
        "500 (OverflowError in classification.py: float() of a Fraction TPP/density/bandwidth density beyond "
        "the float range) for rates or HBM figures whose product or quotient exceeds ~1.8e308",
        frozenset({"POST /v1/classify", "POST /v1/determinations", "POST /v1/determinations/apply"}),
        lambda srv, r: r.status_code == 500 and srv.incident_error(r.text) == "OverflowError",
        (
            Repro("POST /v1/classify", "/v1/classify", _json({"rates": ["fp8=1e308"]}), "application/json"),
            Repro(
                "POST /v1/classify",
                "/v1/classify",
                _json({"hbm_bandwidth_gbs": 1e9, "hbm_area_mm2": 1e-300}),
                "application/json",
            ),
            Repro("POST /v1/determinations", "/v1/determinations", _json(SPEC_TX), "application/json"),
            Repro(
                "POST /v1/determinations/apply",
                "/v1/determinations/apply",
                _json(SPEC_TX),
                "application/json",
                {"Idempotency-Key": "repro-b1"},
            ),
        ),
    ),
    KnownBug(
        "B2",
        "400 'There was an error parsing the body' (no JSON route documents 400) for a JSON body that is not UTF-8",
        JSON_BODY_OPERATIONS,
        lambda srv, r: r.status_code == 400 and _problem_detail(r) == "There was an error parsing the body",
        (
            Repro("POST /v1/determinations", "/v1/determinations", b"\xff", "application/json"),
            Repro("POST /v1/keys", "/v1/keys", b'{"role": "\xff"}', "application/json"),
        ),
    ),
    KnownBug(
        "B3",
        "400 'Invalid multipart data.' (undocumented: POST /v1/screenings documents 202/401/403/409/413/415/422) "
        "for a multipart body whose part has no headers",
        frozenset({"POST /v1/screenings"}),
        lambda srv, r: r.status_code == 400 and _problem_detail(r) == "Invalid multipart data.",
        (
            Repro(
                "POST /v1/screenings",
                "/v1/screenings",
                b"--xx\r\nzzz\r\n--xx--\r\n",
                "multipart/form-data; boundary=xx",
            ),
        ),
    ),
    KnownBug(
        "B5",
        "413 (undocumented: these routes use READ_ERRORS, 401/403/422) for a JSON body over TIERLINE_MAX_BODY (1 MiB)",
        frozenset({"POST /v1/classify", "POST /v1/design", "POST /v1/inference", "POST /v1/determinations"}),
        lambda srv, r: r.status_code == 413,
        (
            Repro("POST /v1/classify", "/v1/classify", OVERSIZED, "application/json"),
            Repro("POST /v1/determinations", "/v1/determinations", OVERSIZED, "application/json"),
        ),
    ),
    KnownBug(
        "B7",
        "404 (undocumented for these operations) when a path parameter contains an encoded slash (%2F): the path no "
        "longer matches the route",
        frozenset(
            {
                "GET /v1/ledger/accounts/{account}/history",
                "POST /v1/ledger/holds/{hold_id}/commit",
                "POST /v1/ledger/holds/{hold_id}/release",
            }
        ),
        lambda srv, r: r.status_code == 404 and _problem_detail(r) == "Not Found",
        (
            Repro(
                "GET /v1/ledger/accounts/{account}/history",
                "/v1/ledger/accounts/allocation%2FBR/history",
                path_parameters={"account": "allocation/BR"},
            ),
            Repro(
                "POST /v1/ledger/holds/{hold_id}/commit",
                "/v1/ledger/holds/a%2Fb/commit",
                headers={"Idempotency-Key": "b7"},
                path_parameters={"hold_id": "a/b"},
            ),
        ),
    ),
    KnownBug(  # fixed while this test was written: BodyLimit now reads JSON bodies whole
        "B6",
        "400 'There was an error parsing the body' instead of the documented 413 for a streamed (chunked) JSON body "
        "over the limit: BodyLimit's _TooLarge, raised inside receive(), is swallowed by FastAPI's body parsing",
        frozenset(),  # generated bodies are small: shown by the reproductions only
        lambda srv, r: False,
        (
            Repro("POST /v1/keys", "/v1/keys", OVERSIZED, "application/json", chunked=True),
            Repro(
                "POST /v1/ledger/reserve",
                "/v1/ledger/reserve",
                OVERSIZED,
                "application/json",
                {"Idempotency-Key": "b6"},
                True,
            ),
        ),
    ),
    KnownBug(  # fixed while this test was written (charts.py)
        "B8",
        "500 (ValueError: math domain error in charts._LogAxis, log10 of a value that is not positive) for a design "
        "point at the bottom of the float range, e.g. tpp or pd = 5e-324, which the schema allows (> 0)",
        frozenset({"GET /v1/charts/tpp-density.svg"}),
        lambda srv, r: r.status_code == 500 and srv.incident_error(r.text) == "ValueError",
        (
            Repro("GET /v1/charts/tpp-density.svg", "/v1/charts/tpp-density.svg", query={"tpp": "5e-324"}),
            Repro("GET /v1/charts/tpp-density.svg", "/v1/charts/tpp-density.svg", query={"tpp": "1", "pd": "5e-324"}),
        ),
    ),
)


def _known_bug(srv: Server, label: str, response: Any) -> KnownBug | None:
    return next((b for b in KNOWN_BUGS if label in b.operations and b.symptom(srv, response)), None)


# ---- realistic bodies ----------------------------------------------------------------------------
# Schema-driven bodies for the decision routes are mostly refused on their semantics (an unknown
# country, a consignee in another country than the destination, an unknown chip), so the engine
# behind them is rarely reached. These strategies draw from the real vocabularies (catalogue chips,
# countries, precisions, account kinds) with figures over the whole float range.
COUNTRIES = (
    "BR",
    "IN",
    "DE",
    "FR",
    "GB",
    "JP",
    "TW",
    "US",
    "CN",
    "HK",
    "MO",
    "SG",
    "MY",
    "AE",
    "SA",
    "IL",
    "MX",
    "RU",
    "IR",
    "VN",
)
PRECISIONS = ("fp4", "fp6", "fp8", "fp16", "bf16", "tf32", "fp32", "fp64", "int4", "int8", "int16", "int32")
END_USES = ("data_center", "development", "production", "storage", "training_4e091", "iaas_training", "other")
VINTAGES = ("ai-diffusion", "ear-2023", "enforcement-posture")
ENTITIES = ("acme-br", "acme-de", "hyperscale-us", "cn-1")


def _figure(low: float = 0.0, high: float = 1e308) -> st.SearchStrategy[float]:
    """Everyday magnitudes most of the time, the edges of the float range sometimes."""
    return st.one_of(
        st.floats(max(low, 1.0), min(high, 1e5)),
        st.floats(low, high, allow_nan=False, allow_infinity=False, exclude_min=low == 0.0),
    )


def _iso(start: dt.date, end: dt.date) -> st.SearchStrategy[str]:
    return st.dates(start, end).map(dt.date.isoformat)


def _party(country: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=20), "country": country},
        optional={
            "id": st.sampled_from(ENTITIES),
            "headquarters": st.sampled_from(COUNTRIES),
            "ultimate_parent_headquarters": st.sampled_from(COUNTRIES),
            "kind": st.sampled_from(("commercial", "government", "university", "other")),
            "veu": st.sampled_from(("UVEU", "NVEU")),
            "veu_destinations": st.lists(st.sampled_from(COUNTRIES), max_size=3),
            "lpp_operating_entity": st.sampled_from(ENTITIES),
        },
    )


def _transactions(chips: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    catalogue_item = st.fixed_dictionaries(
        {"chip": st.sampled_from(chips), "quantity": st.integers(1, 10**7)},
        optional={
            "system": st.booleans(),
            "ics_per_unit": st.integers(1, 64),
            "base_eccn": st.sampled_from(("5A992", "5A002", "4A994", "EAR99")),
        },
    )
    spec_item = st.fixed_dictionaries(
        {
            "spec": st.fixed_dictionaries(
                {"rates": st.dictionaries(st.sampled_from(PRECISIONS), _figure(), min_size=1, max_size=3)},
                optional={
                    "die_areas": st.lists(_figure(high=1e5), max_size=3),
                    "planar_die_areas": st.lists(_figure(high=1e5), max_size=2),
                    "datacenter": st.booleans(),
                    "sparse": st.booleans(),
                    "memory_bandwidth_gbs": _figure(),
                },
            ),
            "quantity": st.integers(1, 10**6),
        }
    )
    weights_item = st.fixed_dictionaries(
        {
            "model_weights": st.fixed_dictionaries(
                {},
                optional={
                    "training_operations": _figure(),
                    "parameters": _figure(),
                    "tokens": _figure(),
                    "published": st.booleans(),
                    "synthetic_data_fraction": st.floats(0, 1),
                },
            )
        }
    )
    return st.sampled_from(COUNTRIES).flatmap(
        lambda destination: st.fixed_dictionaries(
            {
                "date": _iso(dt.date(2025, 1, 13), dt.date(2027, 12, 31)),
                "destination": st.just(destination),
                "items": st.lists(
                    st.one_of(catalogue_item, catalogue_item, spec_item, weights_item), min_size=1, max_size=3
                ),
                "ultimate_consignee": _party(st.just(destination)),
            },
            optional={
                "end_user": _party(st.sampled_from((destination, *COUNTRIES))),
                "end_use": st.sampled_from(END_USES),
                "certifications": st.lists(
                    st.sampled_from(("aia_certification", "approved_designer", "g2g_arrangement")), unique=True
                ),
                "vintage": st.sampled_from(VINTAGES),
            },
        )
    )


def _classify_bodies(chips: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    area = st.floats(0, 1e5, exclude_min=True)
    rate = st.tuples(st.sampled_from(PRECISIONS), _figure()).map(lambda pv: f"{pv[0]}={pv[1]!r}")
    common = {"as_of": _iso(dt.date(2025, 1, 13), dt.date(2027, 12, 31)), "vintage": st.sampled_from(VINTAGES)}
    design = st.fixed_dictionaries(
        {"rates": st.lists(rate, min_size=1, max_size=4)},
        optional={
            "die_areas_mm2": st.lists(area, max_size=4),
            "planar_die_areas_mm2": st.lists(area, max_size=2),
            "sparse": st.booleans(),
            "datacenter": st.booleans(),
            "system": st.booleans(),
            "ic_count": st.integers(1, 1_000_000),
        }
        | common,
    )
    hbm = st.fixed_dictionaries(
        {"hbm_bandwidth_gbs": st.floats(0, 1e9, exclude_min=True), "hbm_area_mm2": st.floats(0, 1e6, exclude_min=True)},
        optional=common,
    )
    return st.one_of(st.fixed_dictionaries({"chip": st.sampled_from(chips)}, optional=common), design, hbm)


def _design_bodies() -> st.SearchStrategy[dict[str, Any]]:
    rate = st.tuples(st.sampled_from(PRECISIONS), st.floats(1e-6, 1e9)).map(lambda pv: f"{pv[0]}={pv[1]!r}")
    mac = st.tuples(st.integers(1, 10**7), st.floats(0.1, 5), st.sampled_from((4, 8, 16, 32, 64))).map(
        lambda m: f"{m[0]}@{m[1]:.3g}:{m[2]}"
    )
    compute = st.one_of(
        st.fixed_dictionaries({"rates": st.lists(rate, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"macs": st.lists(mac, min_size=1, max_size=2)}),
    )
    return st.tuples(compute, _design_rest()).map(lambda parts: parts[0] | parts[1])


def _design_rest() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "die_areas_mm2": st.lists(st.floats(0.01, 1e5), max_size=3),
            "planar_die_areas_mm2": st.lists(st.floats(0.01, 1e5), max_size=2),
            "memory_bandwidth_gbs": st.floats(1, 1e6),
            "stack_area_mm2": st.floats(1, 1e5),
            "interconnect_gbs": st.floats(1, 1e6),
            "datacenter": st.booleans(),
            "line": st.sampled_from(("a1", "a2", "b1", "b2", "note2", "c", "china-tpp", "china-bw")),
            "as_of": _iso(dt.date(2025, 1, 13), dt.date(2027, 12, 31)),
            "vintage": st.sampled_from(VINTAGES),
        },
    )


def _inference_bodies(chips: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.floats(1, 1e15).flatmap(
        lambda parameters: st.fixed_dictionaries(
            {
                "parameters": st.just(parameters),
                "bytes_per_weight": st.sampled_from((0.5, 1, 2, 4)),
                "chips": st.lists(st.sampled_from(chips), min_size=1, max_size=4),
            },
            optional={
                "compare": st.booleans(),
                "active_parameters": st.floats(1, parameters),
                "kv_bytes_per_token": st.floats(0, 1e7),
                "context": st.integers(1, 10**6),
                "batch": st.integers(1, 10**4),
                "precision": st.sampled_from(("fp8", "fp16", "bf16")),
                "as_of": _iso(dt.date(2025, 1, 13), dt.date(2027, 12, 31)),
            },
        )
    )


def _accounts() -> st.SearchStrategy[str]:
    cc, entity = st.sampled_from(COUNTRIES), st.sampled_from(ENTITIES)
    return st.one_of(
        cc.map("allocation:{}".format),
        st.tuples(entity, st.integers(2024, 2027)).map(lambda e: f"lpp:{e[0]}:{e[1]}"),
        st.tuples(st.sampled_from(("nveu", "uveu")), entity, cc).map(":".join),
        st.text("0123456789ABCDEF-", min_size=1, max_size=12).map("license:{}".format),
    )


def _realistic_bodies(label: str, chips: list[str]) -> st.SearchStrategy[dict[str, Any]] | None:
    date = _iso(dt.date(2024, 1, 1), dt.date(2027, 12, 31))
    if label in ("POST /v1/determinations", "POST /v1/determinations/apply"):
        return _transactions(chips)
    if label == "POST /v1/classify":
        return _classify_bodies(chips)
    if label == "POST /v1/design":
        return _design_bodies()
    if label == "POST /v1/inference":
        return _inference_bodies(chips)
    if label in ("POST /v1/compare", "POST /v1/compare/report"):
        sides = st.lists(st.sampled_from(SIDES), min_size=2, max_size=3, unique=True)
        return st.fixed_dictionaries({"transaction": _transactions(chips), "sides": sides})
    if label in ("POST /v1/projections", "POST /v1/projections/report"):
        row = st.fixed_dictionaries(
            {
                "date": _iso(dt.date(2025, 1, 1), dt.date(2028, 6, 30)),
                "country": st.sampled_from(COUNTRIES),
                "chip": st.sampled_from([*chips, "H100e"]),
                "quantity": st.integers(0, 10**7),
            }
        )
        return st.fixed_dictionaries(
            {"demand": st.lists(row, min_size=1, max_size=8)},
            optional={
                "sides": st.lists(st.sampled_from(SIDES), min_size=1, max_size=3, unique=True),
                "until": _iso(dt.date(2025, 1, 1), dt.date(2028, 6, 30)),
            },
        )
    if label == "POST /v1/scenarios":
        parameter = st.fixed_dictionaries(
            {
                "path": st.sampled_from(
                    (
                        "allocation.tier2_cumulative_tpp",
                        "lpp.annual_tpp_per_consignee",
                        "nveu.cumulative_cap_schedule",
                        "reference_chip.h100_tpp",
                        "eccn_3a090.a1.tpp_min",
                    )
                ),
                "from": _iso(dt.date(2020, 1, 1), dt.date(2030, 12, 31)),
                "value": st.one_of(_figure(high=1e18), st.integers(0, 10**18), st.text(max_size=5)),
            },
            optional={"unit": st.sampled_from(("tpp", "usd", "ratio"))},
        )
        country = st.fixed_dictionaries(
            {
                "country": st.sampled_from(COUNTRIES),
                "group": st.sampled_from(("SUPP5A", "D:5", "A:1", "E:1", "Z:9")),
                "change": st.sampled_from(("added", "removed")),
                "from": _iso(dt.date(2020, 1, 1), dt.date(2030, 12, 31)),
            }
        )
        return st.fixed_dictionaries(
            {"name": st.from_regex(r"\Afuzz-[a-z0-9]{1,12}\Z")},
            optional={"parameters": st.lists(parameter, max_size=2), "countries": st.lists(country, max_size=2)},
        )
    if label == "POST /v1/ledger/reserve":
        return st.fixed_dictionaries(
            {"account": _accounts(), "tpp": _figure(high=1e12), "effective_date": date},
            optional={"ttl_seconds": st.floats(1e-3, 366 * 86_400), "headquarters": st.sampled_from(COUNTRIES)},
        )
    if label == "POST /v1/ledger/adjust":
        return st.fixed_dictionaries(
            {
                "account": _accounts(),
                "tpp": st.one_of(_figure(high=1e12), _figure(high=1e12).map(lambda v: -v), st.floats(-1e12, 1e12)),
                "reason": st.text(min_size=1, max_size=50),
                "effective_date": date,
            }
        )
    return None


# ---- the property test ---------------------------------------------------------------------------
@dataclass
class Tally:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    known: collections.Counter[str] = field(default_factory=collections.Counter)
    known_example: dict[str, str] = field(default_factory=dict)


def _validate(srv: Server, label: str, case: Any, response: Any, tally: Tally) -> None:
    """Run the checks; a failure is re-raised unless the response shows a known bug."""
    __tracebackhide__ = True
    tally.statuses[response.status_code] += 1
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup:
        bug = _known_bug(srv, label, response)
        if bug is None:
            raise
        tally.known[bug.id] += 1
        tally.known_example.setdefault(bug.id, case.as_curl_command())


def _run(
    strategy: st.SearchStrategy[Any], srv: Server, label: str, tally: Tally, fresh_keys: bool, **overrides: Any
) -> None:
    sent = iter(range(1_000_000))

    @given(case=strategy)
    @settings(SETTINGS, **overrides)
    def check(case: Any) -> None:
        __tracebackhide__ = True
        # The key goes on every request: the config's headers do not reach the example cases.
        headers = srv.headers()
        if fresh_keys and case.headers and "Idempotency-Key" in case.headers:
            # Every write operation's example shares one Idempotency-Key; reusing it for another
            # request is (rightly) refused, which would keep the examples from ever succeeding.
            headers["Idempotency-Key"] = f"{label}#{next(sent)}"
        _validate(srv, label, case, case.call(headers=headers), tally)

    check()


def _fixed_path_strategies(operation: Any, srv: Server) -> list[st.SearchStrategy[Any]]:
    """Positive cases on the seeded holds, screenings and keys (random ids only reach the 404)."""
    return [
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=values)
        for values in srv.fixed.get(operation.label, [])
    ]


def _upload_cases() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Explicit uploads for POST /v1/screenings. Generated multipart bodies carry no file name, so
    the route (which reads the format from the name's suffix) answers every one of them 415 and
    never parses an order book; these reach the parser and the job runner. (files, data) pairs."""
    jsonl = "\n".join(
        json.dumps(
            {"date": "2025-06-02", "chip": "H100 SXM5", "quantity": 8, "destination": "BR", "consignee_id": "acme-br"}
        )
        for _ in range(3)
    )
    return [
        ({"file": ("orders.csv", ORDERS_OK, "text/csv")}, {}),
        ({"file": ("orders.csv", ORDERS_ONE_BAD, "text/csv")}, {}),  # refused: one bad line
        ({"file": ("orders.csv", ORDERS_ONE_BAD, "text/csv")}, {"skip_invalid": "true"}),
        ({"file": ("orders.jsonl", jsonl, "application/x-ndjson")}, {"vintage": "ear-2023"}),
        ({"file": ("orders.ndjson", "not json\n", "application/x-ndjson")}, {}),  # job fails
        ({"file": ("orders.parquet", b"PAR1 truncated", "application/octet-stream")}, {}),
        ({"file": ("orders.csv", "nope,columns\n1,2\n", "text/csv")}, {}),
        ({"file": ("orders.csv", b"", "text/csv")}, {}),
        ({"file": ("orders.CSV", ORDERS_OK, "text/csv")}, {"vintage": "no-such-vintage"}),
        ({"file": ("orders.txt", ORDERS_OK, "text/plain")}, {}),  # 415
        ({}, {"vintage": "ai-diffusion"}),  # no file: 422
        ({"file": ("orders.csv", ORDERS_OK, "text/csv")}, {"skip_invalid": "maybe"}),  # 422
    ]


def _explicit_uploads(operation: Any, srv: Server, tally: Tally) -> None:
    for files, data in _upload_cases():
        response = httpx.post(
            f"{srv.base_url}/v1/screenings", files=files, data=data, headers=srv.headers(), timeout=30
        )
        response.request.read()  # the checks may quote the multipart request
        body = {name: part[1] for name, part in files.items()} | data
        case = operation.Case(body=body, media_type="multipart/form-data")
        _validate(srv, operation.label, case, response, tally)
        if response.status_code == 202:  # the job itself must end in a documented state
            with httpx.Client(base_url=srv.base_url, headers=srv.headers(), timeout=30) as client:
                job = _wait_for_job(client, response.json()["id"])
            assert job["status"] in ("done", "refused", "failed"), job


def _explicit_compare_uploads(operation: Any, srv: Server, tally: Tally) -> None:
    """Explicit uploads for POST /v1/compare/orders (generated multipart bodies carry no file name, so
    every one of them is a 415): books that compare, refused books, unreadable files, bad sides."""
    two = {"sides": ["ai-diffusion", "ai-diffusion+poland-tier1"]}
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"file": ("orders.csv", ORDERS_PL, "text/csv")}, two),
        ({"file": ("orders.csv", ORDERS_PL, "text/csv")}, {"sides": "ai-diffusion,ear-2023,ai-diffusion+double-tier2"}),
        ({"file": ("orders.csv", ORDERS_ONE_BAD, "text/csv")}, two),  # refused: one bad line
        ({"file": ("orders.csv", ORDERS_ONE_BAD, "text/csv")}, {**two, "skip_invalid": "true"}),
        ({"file": ("orders.ndjson", "not json\n", "application/x-ndjson")}, two),
        ({"file": ("orders.parquet", b"PAR1 truncated", "application/octet-stream")}, two),
        ({"file": ("orders.csv", "nope,columns\n1,2\n", "text/csv")}, two),
        ({"file": ("orders.csv", b"", "text/csv")}, two),
        ({"file": ("orders.csv", ORDERS_PL, "text/csv")}, {"sides": ["ai-diffusion"]}),
        ({"file": ("orders.csv", ORDERS_PL, "text/csv")}, {"sides": ["ai-diffusion", "ai-diffusion+no-such"]}),
        ({"file": ("orders.txt", ORDERS_PL, "text/plain")}, two),  # 415
        ({}, two),  # no file: 422
    ]
    for files, data in cases:
        response = httpx.post(
            f"{srv.base_url}/v1/compare/orders", files=files, data=data, headers=srv.headers(), timeout=60
        )
        response.request.read()
        body = {name: part[1] for name, part in files.items()} | data
        case = operation.Case(body=body, media_type="multipart/form-data")
        _validate(srv, operation.label, case, response, tally)


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms(api_schema: Any, server: Server, label: str) -> None:
    """Examples, positive and negative generated requests: no 5xx, documented statuses, media types
    and bodies; and at least one success, so the operation was exercised past its validation."""
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the live schema"
    tally = Tally()
    errors: list[str] = []
    runs: list[tuple[str, st.SearchStrategy[Any], dict[str, Any]]] = []  # mode, cases, settings
    own_headers = [h for h in operation.headers if h.name not in ("Authorization", "X-API-Key")]
    examples = operation.get_strategies_from_examples()
    if examples:
        runs.append(("examples", st.one_of(examples), {"max_examples": 5 * len(examples)}))
    runs.append(("positive", operation.as_strategy(GenerationMode.POSITIVE), {}))
    if (bodies := _realistic_bodies(label, server.chips)) is not None:
        idempotent = {"Idempotency-Key": "fresh"} if any(h.name == "Idempotency-Key" for h in own_headers) else None
        cases = bodies.map(lambda body: operation.Case(body=body, media_type="application/json", headers=idempotent))
        runs.append(("realistic bodies", cases, {}))
    if fixed := _fixed_path_strategies(operation, server):
        runs.append(("positive on seeded resources", st.one_of(fixed), {}))
    # Negative data needs something to negate (the security headers are set by the config).
    if operation.path_parameters or operation.query or own_headers or operation.body:
        runs.append(("negative", operation.as_strategy(GenerationMode.NEGATIVE), {}))
    for mode, strategy, overrides in runs:
        try:
            _run(strategy, server, label, tally, mode in ("examples", "realistic bodies"), **overrides)
        except Exception as exc:  # noqa: BLE001 - collect every mode's failure, report them together
            errors.append(f"--- {label} ({mode}) ---\n" + "".join(traceback.format_exception_only(exc)))
    if label == "POST /v1/compare/orders":
        try:
            _explicit_compare_uploads(operation, server, tally)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"--- {label} (explicit uploads) ---\n" + "".join(traceback.format_exception_only(exc)))
    if label == "POST /v1/screenings":
        try:
            _explicit_uploads(operation, server, tally)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"--- {label} (explicit uploads) ---\n" + "".join(traceback.format_exception_only(exc)))
    print(f"{label}: responses by status {dict(sorted(tally.statuses.items()))}")  # shown with -rP / -s
    for bug_id, count in tally.known.items():
        warnings.warn(
            f"{label}: {count} response(s) showed known bug {bug_id}, e.g. {tally.known_example[bug_id]}",
            stacklevel=1,
        )
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
    assert any(200 <= s < 300 for s in tally.statuses), f"{label}: no 2xx among {dict(tally.statuses)}"


def test_every_operation_is_tested(api_schema: Any) -> None:
    live = {result.ok().label for result in api_schema.get_all_operations()}
    assert live == set(OPERATIONS), (
        f"untested: {sorted(live - set(OPERATIONS))}; gone: {sorted(set(OPERATIONS) - live)}"
    )


@pytest.mark.parametrize("label", OPERATIONS)
def test_auth_errors_are_documented_problems(api_schema: Any, server: Server, label: str) -> None:
    """Without a key every /v1 operation answers 401, with a viewer key a documented status; both
    pass the same checks (401 and 403 are documented problem+json)."""
    operation = api_schema.find_operation_by_label(label)
    path = {p.name: "x" for p in operation.path_parameters} | server.fixed.get(label, [{}])[0]
    url = server.base_url + operation.path.format(**path)
    for key, expected in ((None, 200 if label in PUBLIC else 401), (server.viewer_key, None)):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.request(operation.method.upper(), url, headers=headers, timeout=30)
        case = operation.Case(path_parameters=path, headers=headers)
        tally = Tally()
        _validate(server, label, case, response, tally)
        assert not tally.known, f"{label}: known bug shown without a body: {response.text}"
        if expected is not None:
            assert response.status_code == expected, (label, key is not None, response.status_code, response.text)
        elif label not in PUBLIC:
            assert response.status_code != 401, (label, response.text)


# ---- the known bugs, reproduced (none open today: add them here when one is found) ---------------
if KNOWN_BUGS:

    @pytest.mark.parametrize(
        "repro",
        [
            pytest.param(
                repro, id=f"{bug.id}-{i}", marks=pytest.mark.xfail(strict=True, raises=FailureGroup, reason=bug.title)
            )
            for bug in KNOWN_BUGS
            for i, repro in enumerate(bug.repros)
        ],
    )
    def test_known_bug_reproduction(api_schema: Any, server: Server, repro: Repro) -> None:
        """Strict xfail: this starts passing (and so failing the run) when the bug is fixed; then move
        its entry from KNOWN_BUGS to FIXED_BUGS so the property test stops tolerating the symptom."""
        _check_repro(api_schema, server, repro)


@pytest.mark.parametrize(
    "repro", [pytest.param(repro, id=f"{bug.id}-{i}") for bug in FIXED_BUGS for i, repro in enumerate(bug.repros)]
)
def test_fixed_bug_stays_fixed(api_schema: Any, server: Server, repro: Repro) -> None:
    _check_repro(api_schema, server, repro)


def _check_repro(api_schema: Any, server: Server, repro: Repro) -> None:
    operation = api_schema.find_operation_by_label(repro.label)
    response = repro.send(server)
    body = {"body": repro.body, "media_type": repro.content_type} if repro.body else {}
    case = operation.Case(headers=repro.headers, path_parameters=repro.path_parameters, query=repro.query, **body)
    case.validate_response(response, checks=CHECKS)


def test_connection_survives_a_server_error() -> None:
    """B4 (fixed): an unexpected error used to escape to uvicorn, which closed the keep-alive connection
    without ``Connection: close``, so a pooled client got ECONNRESET next. tierline's CatchAll answers
    the 500 problem itself. Shown on a real uvicorn server on loopback with a route that raises."""
    import threading

    import uvicorn

    from tierline.api.problems import PROBLEM, CatchAll

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(CatchAll(failing), host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if srv.started:
                break
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/boom")
        first = conn.getresponse()
        body = first.read().decode()
        assert first.status == 500 and first.getheader("content-type") == PROBLEM
        assert "incident" in body and "Traceback" not in body and "boom" not in body
        conn.request("GET", "/ok")  # the same keep-alive connection
        second = conn.getresponse()
        assert (second.status, second.read()) == (200, b"ok")
        conn.close()
    finally:
        srv.should_exit = True
        thread.join(10)
