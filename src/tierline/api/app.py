"""The HTTP service (``tierline serve``): the CLI's answers over HTTP under ``/v1``, authenticated by
API key, role-checked, errors as problem+json, OpenAPI at ``/v1/openapi.json`` with interactive docs
at ``/v1/docs`` served from the package (no CDN)."""

from __future__ import annotations

import datetime as dt
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from tierline.answers import (
    chip_answer,
    chips_answer,
    classify_item,
    country_answer,
    parameter_answer,
    parameters_answer,
    tiers_answer,
    vintages_answer,
)
from tierline.api import keys as api_keys
from tierline.api.jobs import Jobs
from tierline.api.problems import PROBLEM, PROBLEM_SCHEMA, TITLES, BodyLimit, CatchAll, install, problem
from tierline.api.whatif import BOOK_SUFFIXES, UPLOAD_PATHS, Comparisons, whatif_router
from tierline.charts import DesignPoint, tpp_density_svg
from tierline.design import build_design, design_answer
from tierline.determination import Transaction, determine
from tierline.errors import TierlineError
from tierline.inference import build_model, inference_answer
from tierline.ledger import Ledger, LedgerAllowances
from tierline.ledger.applying import apply_determination
from tierline.ledger.db import current_revision
from tierline.ledger.export import write_entries_csv
from tierline.policy import Context
from tierline.reforms import get_reform
from tierline.tpp import parse_rate
from tierline.web import mount_dashboard, session_caller

VERSION = "v1"
MAX_BODY = int(os.environ.get("TIERLINE_MAX_BODY", 1 << 20))  # 1 MiB for JSON requests
MAX_UPLOAD = int(os.environ.get("TIERLINE_MAX_UPLOAD", 1 << 30))  # 1 GiB for order books

DATE_EXAMPLE = "2025-06-01"
TX_EXAMPLE = {
    "date": "2025-06-01",
    "destination": "BR",
    "items": [{"chip": "H100 SXM5", "quantity": 2000}],
    "ultimate_consignee": {"id": "acme-br", "name": "Acme Brasil", "country": "BR", "headquarters": "BR"},
    "end_use": "data_center",
}


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"description": TITLES.get(c, "Error"), "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}} for c in codes}


def _example(example: Any, media: str = "application/json") -> dict[int | str, dict[str, Any]]:
    return {200: {"description": "Successful Response", "content": {media: {"example": example}}}}


VINTAGES_EXAMPLE = {
    "vintages": [
        {
            "name": "ai-diffusion",
            "title": "Framework for Artificial Intelligence Diffusion (interim final rule)",
            "in_force_from": "2025-01-13",
            "compliance_from": "2025-05-15",
            "provisions": ["aia", "country_allocations", "lpp", "tiers"],
            "confidence": "primary",
        }
    ]
}
EXPORT_EXAMPLE = (
    "id,account_id,op,amount_micro,effective_date,hold_id,reason,actor,idempotency_key,recorded_at,tpp\n"
    "1,allocation:BR,direct,31662400000000,2025-06-01,,check BR,key:9f3c2a1b,check:5e1d...,2025-06-01 10:00:00,31662400.0\n"
)
KEYS_EXAMPLE = {
    "keys": [
        {
            "id": "9f3c2a1b",
            "role": "officer",
            "label": "ERP order hook",
            "created_at": "2026-11-24T21:00:00+00:00",
            "created_by": "cli",
            "revoked": False,
        }
    ]
}
METRICS_EXAMPLE = 'tierline_http_requests_total{method="GET",route="/v1/tiers",status="200"} 3.0\n'
ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The determination with its trace (docs/determinations.md)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _answer(payload: dict[str, Any]) -> Response:
    """A large answer (a determination and its trace) encoded once, by orjson."""
    return Response(orjson.dumps(payload, default=str), media_type="application/json")


READ_ERRORS = _problems(400, 401, 403, 404, 413, 422)
WRITE_ERRORS = _problems(400, 401, 403, 404, 409, 413, 422)


# ---- request models ----------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifyRequest(_Body):
    """A catalogue chip, or a design by its dense rates and dies, or stand-alone HBM."""

    chip: str | None = Field(None, max_length=200, examples=["H100 SXM5"])
    rates: list[str] = Field([], max_length=16, examples=[["fp8=1979", "fp16=989.5"]])
    die_areas_mm2: list[Annotated[float, Field(gt=0, le=100_000)]] = Field([], max_length=64, examples=[[814]])
    planar_die_areas_mm2: list[Annotated[float, Field(gt=0, le=100_000)]] = Field([], max_length=64)
    sparse: bool = False
    datacenter: bool | None = None
    system: bool = False
    ic_count: int = Field(1, ge=1, le=1_000_000)
    base_eccn: str | None = Field(None, max_length=20)
    hbm_bandwidth_gbs: float | None = Field(None, gt=0, le=1e9)
    hbm_area_mm2: float | None = Field(None, gt=0, le=1e6)
    as_of: dt.date | None = Field(None, examples=[DATE_EXAMPLE])
    vintage: str = Field("ai-diffusion", max_length=40, examples=["ai-diffusion"])


class DesignRequest(_Body):
    """A chip design for threshold headroom: dense rates or MAC units, dies, memory, interconnect."""

    rates: list[str] = Field([], max_length=16, examples=[["fp8=598.75"]])
    macs: list[str] = Field([], max_length=16, examples=[["540672@1.83:8"]])
    die_areas_mm2: list[Annotated[float, Field(gt=0, le=100_000)]] = Field([], max_length=64, examples=[[798.5]])
    planar_die_areas_mm2: list[Annotated[float, Field(gt=0, le=100_000)]] = Field([], max_length=64)
    memory_bandwidth_gbs: float | None = Field(None, gt=0, le=1e9, examples=[4000])
    stack_area_mm2: float | None = Field(None, gt=0, le=1e6, examples=[1000])
    interconnect_gbs: float | None = Field(None, gt=0, le=1e9, examples=[900])
    datacenter: bool = True
    line: str = Field("a1", pattern="^(a1|a2|b1|b2|note2|c|china-tpp|china-bw)$", examples=["a1"])
    name: str | None = Field(None, max_length=200, examples=["next-gen accelerator"])
    as_of: dt.date | None = Field(None, examples=[DATE_EXAMPLE])
    vintage: str = Field("ai-diffusion", max_length=40, examples=["ai-diffusion"])


class InferenceRequest(_Body):
    """A model and the catalogue chips to bound its prefill and decode throughput on."""

    chips: list[Annotated[str, Field(max_length=200)]] = Field([], max_length=64, examples=[["H100 SXM5", "H20"]])
    compare: bool = False
    parameters: float = Field(..., gt=0, le=1e15, examples=[70e9])
    active_parameters: float | None = Field(None, gt=0, le=1e15, examples=[70e9])
    bytes_per_weight: float = Field(..., gt=0, le=8, examples=[1])
    kv_bytes_per_token: float = Field(0, ge=0, le=1e10, examples=[327680])
    context: int = Field(4096, ge=1, le=100_000_000, examples=[4096])
    batch: int = Field(1, ge=1, le=1_000_000, examples=[1])
    precision: str | None = Field(None, max_length=20, examples=["fp8"])
    as_of: dt.date | None = Field(None, examples=[DATE_EXAMPLE])
    vintage: str = Field("ai-diffusion", max_length=40, examples=["ai-diffusion"])


class ReserveRequest(_Body):
    account: str = Field(..., max_length=200, examples=["allocation:BR"])
    tpp: float = Field(..., ge=1e-6, le=1e12, examples=[15832000], description="TPP (the ledger counts micro-TPP)")
    effective_date: dt.date = Field(..., examples=[DATE_EXAMPLE])
    ttl_seconds: float = Field(86_400, gt=0, le=366 * 86_400)
    headquarters: str | None = Field(None, max_length=60, examples=["US"])


class AdjustRequest(_Body):
    account: str = Field(..., max_length=200, examples=["lpp:acme-br:2025"])
    tpp: float = Field(..., ge=-1e12, le=1e12, examples=[-15832])
    reason: str = Field(..., min_length=1, max_length=2000, examples=["shipment SO-1042 cancelled by the customer"])
    effective_date: dt.date = Field(..., examples=[DATE_EXAMPLE])


class KeyRequest(_Body):
    role: str = Field(..., examples=["viewer"], pattern="^(viewer|analyst|officer|admin)$")
    label: str = Field("", max_length=200, examples=["ERP order hook"])


CLASSIFY_FIELDS = {
    "--chip": "chip",
    "--rate": "rates",
    "--hbm-area": "hbm_area_mm2",
    "--hbm-bandwidth": "hbm_bandwidth_gbs",
    "ic_count": "ic_count",
}
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=150,
        description="Makes the write safe to retry: the same key with the same request returns the first answer.",
        examples=["order-1042-reserve"],
    ),
]
BEARER = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer tl_...`")
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key in an X-API-Key header")
JobId = Annotated[str, PathParam(max_length=40, examples=["3f2a9c1e5b7d4e60"])]
HoldId = Annotated[str, PathParam(max_length=64, examples=["0b6c3a52-8f61-4d55-9a8e-2f1d0c4b7e90"])]
AsOf = Annotated[
    dt.date | None, Query(description="Date the answer is computed for (default today).", examples=[DATE_EXAMPLE])
]
Vintage = Annotated[str, Query(max_length=40, description="Rule vintage.", examples=["ai-diffusion"])]


def _ctx(vintage: str, as_of: dt.date | None) -> Context:
    return Context.make(vintage, as_of)


def _not_found(exc: TierlineError, looked_up: str) -> Exception:
    """The thing named in the path does not exist: a 404; any other error stays what it is (a 422)."""
    return HTTPException(404, f"{exc.field}: {exc.reason}") if exc.field == looked_up else exc


# ---- the application -------------------------------------------------------------------------------
def create_app(database_url: str | None = None, home: Path | None = None) -> FastAPI:
    """The service on the given database (default: the configured one)."""
    ledger = Ledger(database_url)
    engine = ledger.engine
    root = home or Path(os.environ.get("TIERLINE_HOME") or Path.home() / ".tierline")
    jobs = Jobs(ledger, root / "screenings")
    app = FastAPI(
        title="tierline",
        version="1",
        summary="The US AI Diffusion framework and EAR advanced-computing controls, explained.",
        description=(
            "Classifications, licence determinations with their full trace, bulk screening, the allocation "
            "ledger and the dated policy data. Authenticate with `Authorization: Bearer <key>` (create keys with "
            "`tierline keys create --role ROLE`). Roles: "
            + "; ".join(f"**{r}**: {t}" for r, t in api_keys.ROLE_CAN.items())
            + ". Errors are RFC 9457 problem details."
        ),
        openapi_url=f"/{VERSION}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    install(app)
    app.add_middleware(CatchAll)
    app.add_middleware(
        BodyLimit, limit=MAX_BODY, upload_limit=MAX_UPLOAD, upload_paths=(f"/{VERSION}/screenings", *UPLOAD_PATHS)
    )
    registry = CollectorRegistry()
    requests = Counter("tierline_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("tierline_http_request_seconds", "HTTP request latency", ["route"], registry=registry)

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        requests.labels(request.method, name, str(response.status_code)).inc()
        latency.labels(name).observe(time.perf_counter() - start)
        return response

    def caller(role: str) -> Any:
        async def check(
            request: Request,
            bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
            header_key: Annotated[str | None, Depends(API_KEY_HEADER)] = None,
        ) -> api_keys.Caller:
            presented = bearer.credentials if bearer is not None else header_key
            session = None if presented else session_caller(request)  # the dashboard's session cookie
            if not presented and session is None:
                raise HTTPException(401, "send an API key: Authorization: Bearer <key>", {"WWW-Authenticate": "Bearer"})
            found = session or api_keys.authenticate(engine, presented or "")
            if found is None:
                raise HTTPException(401, "the API key is unknown or revoked", {"WWW-Authenticate": "Bearer"})
            if not found.may(role):
                raise HTTPException(403, f"this needs the {role} role; the key has {found.role}")
            return found

        return Depends(check)

    viewer, analyst, officer, admin = (caller(r) for r in api_keys.ROLES)
    v1 = APIRouter(prefix=f"/{VERSION}")

    # ---- reference data --------------------------------------------------------------------------
    @v1.get("/countries/{query}", tags=["reference"], responses=READ_ERRORS | _problems(404))
    def country(
        query: Annotated[str, PathParam(max_length=100, examples=["HK"])],
        as_of: AsOf = None,
        vintage: Vintage = "ai-diffusion",
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """A destination's Country Groups and AI Diffusion tier on a date, with its dated changes."""
        ctx = _ctx(vintage, as_of)
        try:
            return country_answer(query, ctx)
        except TierlineError as exc:
            raise _not_found(exc, "country") from None

    @v1.get("/tiers", tags=["reference"], responses=READ_ERRORS)
    def tiers(
        as_of: AsOf = None,
        vintage: Vintage = "ai-diffusion",
        tier: Annotated[int | None, Query(ge=1, le=3, examples=[1])] = None,
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """Tier counts and members on a date."""
        return tiers_answer(_ctx(vintage, as_of), tier)

    @v1.get("/chips", tags=["reference"], responses=READ_ERRORS)
    def chips(
        vendor: Annotated[str | None, Query(max_length=60, examples=["NVIDIA"])] = None,
        as_of: AsOf = None,
        vintage: Vintage = "ai-diffusion",
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """The chip catalogue with tierline's TPP, density and ECCN next to the reported figures."""
        return chips_answer(_ctx(vintage, as_of), vendor)

    @v1.get("/chips/{name}", tags=["reference"], responses=READ_ERRORS | _problems(404))
    def chip(
        name: Annotated[str, PathParam(max_length=200, examples=["H20"])],
        as_of: AsOf = None,
        vintage: Vintage = "ai-diffusion",
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """One chip with its sources, classification and any disagreement with the sources."""
        ctx = _ctx(vintage, as_of)
        try:
            return chip_answer(name, ctx)
        except TierlineError as exc:
            raise _not_found(exc, "chip") from None

    @v1.get("/policy/vintages", tags=["policy"], responses=READ_ERRORS | _example(VINTAGES_EXAMPLE))
    def vintages(who: api_keys.Caller = viewer) -> dict[str, Any]:
        """The named rule vintages and the provisions each applies."""
        return vintages_answer()

    @v1.get("/policy/parameters", tags=["policy"], responses=READ_ERRORS)
    def parameters(
        prefix: Annotated[str | None, Query(max_length=100, examples=["lpp"])] = None,
        as_of: AsOf = None,
        vintage: Vintage = "ai-diffusion",
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """The parameters in force with their value, date, unit, reference and confidence."""
        return parameters_answer(_ctx(vintage, as_of), prefix)

    @v1.get("/policy/parameters/{path}", tags=["policy"], responses=READ_ERRORS | _problems(404))
    def parameter(
        path: Annotated[str, PathParam(max_length=100, examples=["lpp.annual_tpp_per_consignee"])],
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """Every dated value of one parameter, with its reference."""
        try:
            return parameter_answer(path)
        except TierlineError as exc:
            raise _not_found(exc, "parameter") from None

    # ---- classification and determinations ------------------------------------------------------
    @v1.post("/classify", tags=["determinations"], responses=READ_ERRORS)
    def classify_route(
        body: Annotated[
            ClassifyRequest,
            Body(
                openapi_examples={
                    "catalogue chip": {"value": {"chip": "H100 SXM5", "as_of": DATE_EXAMPLE}},
                    "design": {"value": {"rates": ["fp8=1979"], "die_areas_mm2": [814]}},
                    "stand-alone HBM": {"value": {"hbm_bandwidth_gbs": 819, "hbm_area_mm2": 110}},
                }
            ),
        ],
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """3A090 / 4A090 / .z / 3A090.c classification with every paragraph tested."""
        ctx = _ctx(body.vintage, body.as_of)
        try:
            result, notes = _classify(ctx, body)
        except TierlineError as exc:  # the shared builder names CLI options: name the body fields
            field = CLASSIFY_FIELDS.get(exc.field, "rates" if exc.field.startswith("rate") else exc.field)
            raise TierlineError(field, exc.reason) from None
        return {**result.as_dict(), **({"notes": notes} if notes else {})}

    def _classify(ctx: Context, body: ClassifyRequest) -> Any:
        return classify_item(
            ctx,
            chip=body.chip,
            rates=[parse_rate(r, body.sparse) for r in body.rates],
            die_areas=body.die_areas_mm2,
            planar_die_areas=body.planar_die_areas_mm2,
            datacenter=body.datacenter,
            system=body.system,
            ic_count=body.ic_count,
            base_eccn=body.base_eccn,
            hbm_bandwidth=body.hbm_bandwidth_gbs,
            hbm_area=body.hbm_area_mm2,
        )

    def _body_field(field: str) -> str:
        """The request-body path of a field the design and inference builders name (die_area[0] ->
        die_areas_mm2[0], memory_bandwidth -> memory_bandwidth_gbs, mac[1] -> macs[1], rate.fp8 -> rates)."""
        name, bracket, rest = field.partition("[")
        renamed = {
            "die_area": "die_areas_mm2",
            "planar_die_area": "planar_die_areas_mm2",
            "memory_bandwidth": "memory_bandwidth_gbs",
            "stack_area": "stack_area_mm2",
            "interconnect": "interconnect_gbs",
            "mac": "macs",
            "chip": "chips",
        }.get(name, "rates" if name == "rate" or name.startswith("rate.") else name)
        return f"{renamed}{bracket}{rest}"

    @v1.post("/design", tags=["analysis"], responses=READ_ERRORS)
    def design_route(
        body: Annotated[
            DesignRequest,
            Body(
                openapi_examples={
                    "just below 3A090.a.1": {"value": {"rates": ["fp8=598.75"], "die_areas_mm2": [798.5]}},
                    "MAC units and HBM": {
                        "value": {
                            "macs": ["540672@1.83:8"],
                            "die_areas_mm2": [814],
                            "memory_bandwidth_gbs": 3350,
                            "stack_area_mm2": 550,
                            "line": "china-tpp",
                        }
                    },
                }
            ),
        ],
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """Threshold headroom of a design: classification per vintage, distance to every line, the largest
        rate below a line and the smallest change that flips the classification."""
        ctx = _ctx(body.vintage, body.as_of)
        try:
            design = build_design(
                ctx,
                rates=[parse_rate(r) for r in body.rates],
                macs=body.macs,
                die_areas=body.die_areas_mm2,
                planar_die_areas=body.planar_die_areas_mm2,
                memory_bandwidth_gbs=body.memory_bandwidth_gbs,
                stack_area_mm2=body.stack_area_mm2,
                interconnect_gbs=body.interconnect_gbs,
                datacenter=body.datacenter,
                name=body.name,
            )
            return design_answer(design, ctx, body.line)
        except TierlineError as exc:
            raise TierlineError(_body_field(exc.field), exc.reason) from None

    @v1.post("/inference", tags=["analysis"], responses=READ_ERRORS)
    def inference_route(
        body: Annotated[
            InferenceRequest,
            Body(
                openapi_examples={
                    "H20 vs H100, 70B FP8": {
                        "value": {
                            "chips": ["H100 SXM5", "H20"],
                            "parameters": 70e9,
                            "bytes_per_weight": 1,
                            "kv_bytes_per_token": 327680,
                            "context": 4096,
                            "batch": 1,
                        }
                    },
                    "every catalogue chip": {"value": {"compare": True, "parameters": 8e9, "bytes_per_weight": 2}},
                }
            ),
        ],
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """Roofline upper bounds on prefill and decode tokens/s of a model on catalogue chips, with the
        binding resource, per unit of TPP and per H100-equivalent."""
        ctx = _ctx(body.vintage, body.as_of)
        try:
            model = build_model(
                parameters=body.parameters,
                active_parameters=body.active_parameters,
                bytes_per_weight=body.bytes_per_weight,
                kv_bytes_per_token=body.kv_bytes_per_token,
                context=body.context,
                batch=body.batch,
            )
            return inference_answer(ctx, model, chips=body.chips, compare=body.compare, precision=body.precision)
        except TierlineError as exc:
            raise TierlineError(_body_field(exc.field), exc.reason) from None

    @v1.get(
        "/charts/tpp-density.svg",
        tags=["analysis"],
        responses=READ_ERRORS | {200: {"content": {"image/svg+xml": {}}}},
    )
    def tpp_density_chart(
        as_of: AsOf = None,
        vintage: Vintage = "ai-diffusion",
        tpp: Annotated[float | None, Query(ge=1e-3, le=1e9, description="Design point TPP.", examples=[4790])] = None,
        pd: Annotated[float | None, Query(ge=1e-6, le=1e6, description="Design point density.", examples=[6.0])] = None,
        label: Annotated[str, Query(max_length=60, examples=["design"])] = "design",
        who: api_keys.Caller = viewer,
    ) -> Response:
        """The TPP x performance-density plane with the 3A090 regions, the catalogue chips and an
        optional design point, as SVG."""
        point = DesignPoint(tpp, pd, label) if tpp is not None else None
        return Response(tpp_density_svg(_ctx(vintage, as_of), highlight=point), media_type="image/svg+xml")

    @v1.post("/determinations", tags=["determinations"], responses=READ_ERRORS | ANSWER)
    async def determine_route(
        tx: Annotated[Transaction, Body(openapi_examples={"H100s to Brazil": {"value": TX_EXAMPLE}})],
        scenario: Annotated[
            str | None,
            Query(max_length=64, description="Answer under a scenario (not law).", examples=["poland-tier1"]),
        ] = None,
        who: api_keys.Caller = viewer,
    ) -> Response:
        """Licence requirement, authorization, review policy, draws, obligations and the full trace,
        against the ledger's current usage (nothing is recorded); under a scenario the answer names it."""
        return _answer(determine(tx, LedgerAllowances(ledger), get_reform(scenario) if scenario else None).as_dict())

    @v1.post("/determinations/apply", tags=["determinations"], responses=WRITE_ERRORS | ANSWER)
    def apply_route(
        tx: Annotated[Transaction, Body(openapi_examples={"H100s to Brazil": {"value": TX_EXAMPLE}})],
        idempotency_key: IdempotencyKey,
        who: api_keys.Caller = officer,
    ) -> Response:
        """Determine against the ledger and record the draws atomically (idempotent on the key)."""
        return _answer(apply_determination(tx, idempotency_key, who.actor, ledger))

    # ---- screening -------------------------------------------------------------------------------
    @v1.post("/screenings", tags=["screening"], status_code=202, responses=WRITE_ERRORS | _problems(415))
    def screen_route(
        file: Annotated[UploadFile, File(description="Order book: .csv, .parquet or .jsonl (docs/screening.md).")],
        vintage: Annotated[str, Form(max_length=40, examples=["ai-diffusion"])] = "ai-diffusion",
        skip_invalid: Annotated[bool, Form()] = False,
        who: api_keys.Caller = analyst,
    ) -> dict[str, Any]:
        """Upload an order book and screen it in the background; poll the returned job."""
        suffix = Path(file.filename or "").suffix.lower()
        if suffix not in BOOK_SUFFIXES:
            raise HTTPException(415, "upload a .csv, .parquet or .jsonl file")
        from tierline.policy.vintages import get_vintage

        get_vintage(vintage)
        with tempfile.NamedTemporaryFile(delete=False, suffix=suffix) as handle:
            while chunk := file.file.read(1 << 20):
                handle.write(chunk)
        job = jobs.submit(Path(handle.name), suffix, vintage, skip_invalid, who.actor)
        return job.as_dict()

    def _job(job_id: str) -> Any:
        job = jobs.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no screening {job_id!r}")
        return job

    @v1.get("/screenings/{job_id}", tags=["screening"], responses=READ_ERRORS | _problems(404))
    def screening(job_id: JobId, who: api_keys.Caller = viewer) -> dict[str, Any]:
        """A screening's status, progress (lines done), summary and first problems."""
        return _job(job_id).as_dict()  # type: ignore[no-any-return]

    @v1.get(
        "/screenings/{job_id}/decisions",
        tags=["screening"],
        responses=READ_ERRORS
        | _problems(404, 409)
        | {200: {"content": {"text/csv": {}, "application/octet-stream": {}}}},
    )
    def screening_decisions(job_id: JobId, who: api_keys.Caller = viewer) -> FileResponse:
        """Download the decisions (same format as the upload)."""
        job = _job(job_id)
        if job.result is None or job.result.out is None:
            raise HTTPException(409, f"screening {job_id} has no decisions ({job.status})")
        return FileResponse(job.result.out, filename=job.result.out.name)

    @v1.get(
        "/screenings/{job_id}/rejects",
        tags=["screening"],
        responses=READ_ERRORS | _problems(404, 409) | {200: {"content": {"text/csv": {}}}},
    )
    def screening_rejects(job_id: JobId, who: api_keys.Caller = viewer) -> FileResponse:
        """Download the report of invalid lines (line, column, value, reason)."""
        job = _job(job_id)
        if job.result is None or job.result.rejects is None:
            raise HTTPException(409, f"screening {job_id} has no rejects ({job.status})")
        return FileResponse(job.result.rejects, filename="rejects.csv", media_type="text/csv")

    @v1.post("/screenings/{job_id}/apply", tags=["screening"], responses=WRITE_ERRORS | _problems(404))
    def screening_apply(job_id: JobId, who: api_keys.Caller = officer) -> dict[str, Any]:
        """Record a finished screening's draws in the ledger, all or none, once."""
        return jobs.apply(_job(job_id), who.actor)

    # ---- ledger ----------------------------------------------------------------------------------
    @v1.get("/ledger/accounts", tags=["ledger"], responses=READ_ERRORS)
    def accounts(
        country: Annotated[str | None, Query(max_length=2, examples=["BR"])] = None,
        consignee: Annotated[str | None, Query(max_length=200, examples=["acme-br"])] = None,
        as_of: AsOf = None,
        who: api_keys.Caller = viewer,
    ) -> dict[str, Any]:
        """Usage, live holds, limit and headroom per account as of a date."""
        day = as_of or dt.date.today()
        return {"accounts": ledger.status(country=country, consignee=consignee, as_of=day), "as_of": day.isoformat()}

    @v1.get("/ledger/accounts/{account}/history", tags=["ledger"], responses=READ_ERRORS)
    def history(
        account: Annotated[str, PathParam(max_length=200, examples=["allocation:BR"])], who: api_keys.Caller = viewer
    ) -> dict[str, Any]:
        """Every audited event on an account, oldest first, with its hash."""
        return {"account": account, "events": ledger.history(account)}

    @v1.get(
        "/ledger/verify", tags=["ledger"], responses=READ_ERRORS | _example({"ok": True, "rows": 1623, "problems": []})
    )
    def verify(who: api_keys.Caller = viewer) -> dict[str, Any]:
        """Verify the hash-chained audit trail and reconcile balances: problems are listed."""
        return ledger.verify()

    @v1.get("/ledger/export", tags=["ledger"], responses=READ_ERRORS | _example(EXPORT_EXAMPLE, "text/csv"))
    def export(who: api_keys.Caller = viewer) -> PlainTextResponse:
        """Every ledger entry as CSV."""
        buffer = io.StringIO()
        write_entries_csv(ledger, buffer)
        return PlainTextResponse(buffer.getvalue(), media_type="text/csv")

    @v1.post("/ledger/reserve", tags=["ledger"], responses=WRITE_ERRORS)
    def reserve(
        body: ReserveRequest, idempotency_key: IdempotencyKey, who: api_keys.Caller = officer
    ) -> dict[str, Any]:
        """Hold TPP on an account until it is committed, released or expires."""
        return ledger.reserve(
            body.account,
            body.tpp,
            effective_date=body.effective_date,
            idempotency_key=idempotency_key,
            ttl=dt.timedelta(seconds=body.ttl_seconds),
            actor=who.actor,
            headquarters=body.headquarters,
        )

    @v1.post("/ledger/holds/{hold_id}/commit", tags=["ledger"], responses=WRITE_ERRORS)
    def commit(hold_id: HoldId, idempotency_key: IdempotencyKey, who: api_keys.Caller = officer) -> dict[str, Any]:
        """Turn a live hold into a committed draw."""
        return ledger.commit(hold_id, idempotency_key=idempotency_key, actor=who.actor)

    @v1.post("/ledger/holds/{hold_id}/release", tags=["ledger"], responses=WRITE_ERRORS)
    def release(hold_id: HoldId, idempotency_key: IdempotencyKey, who: api_keys.Caller = officer) -> dict[str, Any]:
        """Give a live hold back."""
        return ledger.release(hold_id, idempotency_key=idempotency_key, actor=who.actor)

    @v1.post("/ledger/adjust", tags=["ledger"], responses=WRITE_ERRORS)
    def adjust(body: AdjustRequest, idempotency_key: IdempotencyKey, who: api_keys.Caller = officer) -> dict[str, Any]:
        """Correct an account by a signed amount; the reason is mandatory and audited."""
        return ledger.adjust(
            body.account,
            body.tpp,
            reason=body.reason,
            effective_date=body.effective_date,
            idempotency_key=idempotency_key,
            actor=who.actor,
        )

    # ---- keys ------------------------------------------------------------------------------------
    @v1.get("/keys", tags=["keys"], responses=READ_ERRORS | _example(KEYS_EXAMPLE))
    def list_keys(who: api_keys.Caller = admin) -> dict[str, Any]:
        """API keys (never their secrets)."""
        return {"keys": api_keys.list_keys(engine)}

    @v1.post("/keys", tags=["keys"], status_code=201, responses=WRITE_ERRORS)
    def create_key(body: KeyRequest, who: api_keys.Caller = admin) -> dict[str, Any]:
        """Create a key; the secret is in this response only."""
        return api_keys.create_key(ledger, body.role, body.label, created_by=who.actor)

    @v1.delete("/keys/{key_id}", tags=["keys"], responses=WRITE_ERRORS | _problems(404))
    def revoke_key(
        key_id: Annotated[str, PathParam(max_length=16, examples=["9f3c2a1b"])], who: api_keys.Caller = admin
    ) -> dict[str, Any]:
        """Revoke a key: it stops working at once."""
        try:
            return api_keys.revoke_key(ledger, key_id, revoked_by=who.actor)
        except TierlineError as exc:
            raise _not_found(exc, "key_id") from None

    app.include_router(v1)
    app.state.comparisons = Comparisons(root / "comparisons")  # what-if: scenarios, compare, pathways, projections
    app.include_router(whatif_router(ledger, {"viewer": viewer, "analyst": analyst}, app.state.comparisons))

    # ---- health, metrics, docs -------------------------------------------------------------------
    @app.get("/healthz", tags=["health"], responses=_example({"status": "ok"}))
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses=_problems(503) | _example({"status": "ready", "schema": "0002"}))
    def readyz() -> Any:
        """The database is reachable and its schema is current."""
        try:
            database, code = current_revision(engine)
        except Exception:  # noqa: BLE001 - not ready, whatever the reason
            return problem(503, "the database is not reachable")
        if database != code:
            return problem(503, f"the database schema is at {database}, the code needs {code}")
        return {"status": "ready", "schema": database}

    @app.get("/metrics", tags=["health"], responses=_example(METRICS_EXAMPLE, "text/plain"))
    def metrics() -> Response:
        """Prometheus metrics: requests by route and status, latency."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    import swagger_ui_bundle

    app.mount(f"/{VERSION}/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get(f"/{VERSION}/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"/{VERSION}/openapi.json",
            title="tierline API",
            swagger_js_url=f"/{VERSION}/docs/static/swagger-ui-bundle.js",
            swagger_css_url=f"/{VERSION}/docs/static/swagger-ui.css",
            swagger_favicon_url=f"/{VERSION}/docs/static/favicon-32x32.png",
        )

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/dashboard/", status_code=303)

    mount_dashboard(app, ledger, jobs)

    return app
