"""The dashboard's what-if pages (docs/dashboard.md): scenarios, comparisons (a transaction or an order
book under two or three sides), the pathway calculator and demand projections, with their reports.

They compute through the same functions as the API's what-if operations (``tierline.api.whatif``),
against the same ledger, and record nothing. Forms that only read are GET (the address reproduces
the answer); the two uploads (an order book, a demand series) are POST forms carrying the session's
CSRF token, answered by a redirect to the result's own page.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import polars as pl
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from tierline.api.whatif import (
    BOOK_SUFFIXES,
    Comparisons,
    InvalidBook,
    pathway_result,
    projection_result,
    report_response,
    scenario_answer,
    sides_of,
    transaction_comparison,
)
from tierline.catalog import catalog
from tierline.compare import comparison_chart_svg, comparison_report, outcome_key, outcome_label
from tierline.countries import lookup
from tierline.determination import Transaction
from tierline.errors import TierlineError
from tierline.ledger import Ledger
from tierline.policy.parameters import load_parameters
from tierline.policy.vintages import load_vintages
from tierline.reforms import list_reforms, reform_names
from tierline.web import views

PREFIX = "/dashboard"
MAX_SIDES = 3
KEEP_PROJECTIONS = 50
BOOK_ROWS = 50
CERTIFICATIONS = (
    ("aia_certification", "§740.27(b)(2) AIA certification submitted"),
    ("approved_designer", "IC by an approved or authorized designer"),
    ("g2g_arrangement", "government-to-government arrangement"),
)
END_USES = ("other", "data_center", "development", "production", "storage", "training_4e091", "iaas_training")
DEMAND_EXAMPLE = (
    "date,country,chip,quantity\n"
    "2025-09-01,BR,H100 SXM5,20000\n"
    "2026-01-01,BR,H100 SXM5,20000\n"
    "2026-03-01,BR,H100 SXM5,20000\n"
    "2025-09-01,PL,H100 SXM5,30000\n"
)
Page = Callable[..., Response]


def side_choices() -> list[tuple[str, str]]:
    """Every side a form offers: each vintage, alone and with each scenario ((value, label) pairs)."""
    scenarios = reform_names()
    out = []
    for vintage in load_vintages():
        out.append((vintage, vintage))
        out += [(f"{vintage}+{name}", f"{vintage} + scenario {name}") for name in scenarios]
    return out


def outcome_text(outcome: Mapping[str, Any]) -> str:
    """``LICENSE (approval)``, ``AIA``: the authorization, with a licence's review policy."""
    return outcome_label(outcome.get("authorization"), outcome.get("review_policy"))


def _first(params: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = params.get(name) or [default]
    return values[0].strip()


def _chosen_sides(params: Mapping[str, list[str]], default: list[str]) -> list[str]:
    given = [s.strip() for s in params.get("side", []) if s.strip()]
    return given if "side" in params else default


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return not origin or urlparse(origin).netloc == request.headers.get("host", "")


def _csrf_ok(request: Request, session: Any, token: str) -> bool:
    return _same_origin(request) and secrets.compare_digest(token.encode(), str(session.csrf).encode())


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


# ---- projections kept for their page and reports -------------------------------------------------------
@dataclass
class ProjectionRun:
    id: str
    created_by: str
    source: str
    sides: list[str]
    result: Any
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())


class ProjectionRuns:
    """The projections made from the dashboard in this process (the last KEEP_PROJECTIONS)."""

    def __init__(self) -> None:
        self.runs: dict[str, ProjectionRun] = {}
        self.lock = threading.Lock()

    def add(self, run: ProjectionRun) -> None:
        with self.lock:
            self.runs[run.id] = run
            while len(self.runs) > KEEP_PROJECTIONS:
                self.runs.pop(next(iter(self.runs)))


def _parameter_rows(reform: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A scenario's parameter changes with the base value each replaces and the parameter's unit."""
    tree = load_parameters()
    rows = []
    for change in reform["parameters"]:
        param = tree.get(change["path"])
        day = dt.date.fromisoformat(change["from"])
        base = [v for d, v in param.values if d <= day]
        rows.append(
            {
                **change,
                "unit": param.unit,
                "description": param.description,
                "base": base[-1] if base else None,
                "reference": param.reference.cfr or param.reference.fr or param.reference.source or "",
            }
        )
    return rows


def _book_view(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The tables of a book comparison's page: lines by outcome per side (pivoted) and the rest as is."""
    sides = [s["label"] for s in payload["sides"]]
    counts: dict[str, dict[str, int]] = {}
    for r in payload["per_side"]:
        label = outcome_label(r["authorization"], r["review_policy"])
        counts.setdefault(label, {})
        counts[label][r["side"]] = counts[label].get(r["side"], 0) + int(r["lines"])

    outcomes = [(label, [counts[label].get(s, 0) for s in sides]) for label in sorted(counts, key=outcome_key)]
    changed_countries = {r["destination"] for r in payload["by_country"] if r.get("changed")}
    return {
        "sides": sides,
        "outcomes": outcomes,
        "countries": [r for r in payload["by_country"] if r["destination"] in changed_countries],
        "chart": Markup(comparison_chart_svg(payload["per_side"], sides)),
        "changed": payload["changed"][:BOOK_ROWS],
        "label": outcome_label,
    }


# ---- the pages ----------------------------------------------------------------------------------------
def register(router: APIRouter, ledger: Ledger, page: Page, signed_in: Callable[[Request], Any]) -> None:
    """Add the what-if pages to the dashboard's router (`page` renders a template for a session)."""
    projections = ProjectionRuns()

    def comparisons(request: Request) -> Comparisons | None:
        found = getattr(request.app.state, "comparisons", None)
        return found if isinstance(found, Comparisons) else None

    def error_page(request: Request, session: Any, status: int, title: str, message: str) -> Response:
        return page(request, "error.html", session, status, title=title, message=message)

    # ---- scenarios ---------------------------------------------------------------------------------
    @router.get("/scenarios")
    def scenarios_page(request: Request) -> Response:
        session = signed_in(request)
        return page(request, "scenarios.html", session, scenarios=list_reforms(), scenario=None)

    @router.get("/scenarios/{name}")
    def scenario_page(request: Request, name: str) -> Response:
        session = signed_in(request)
        try:
            reform = scenario_answer(name[:64])
        except TierlineError as exc:
            return error_page(request, session, 404, "No such scenario", exc.reason)
        return page(
            request,
            "scenarios.html",
            session,
            scenarios=list_reforms(),
            scenario=reform,
            parameters=_parameter_rows(reform),
            names={c: lookup(c).name for c in {g["country"] for g in reform["countries"]}},
            compare_link=urlencode([("side", "ai-diffusion"), ("side", f"ai-diffusion+{reform['name']}")]),
        )

    # ---- compare -------------------------------------------------------------------------------------
    def compare_context(request: Request, session: Any) -> dict[str, Any]:
        return {
            "choices": side_choices(),
            "chips": sorted(c.name for c in catalog().values()),
            "destinations": views.destinations(),
            "certifications": CERTIFICATIONS,
            "end_uses": END_USES,
            "can_compare_books": bool(session and session.caller.may("analyst")),
        }

    @router.get("/compare")
    def compare_page(request: Request) -> Response:
        session = signed_in(request)
        params = parse_qs(request.url.query, keep_blank_values=True)
        submitted = "destination" in params
        sides = _chosen_sides(params, ["ai-diffusion", "ai-diffusion+poland-tier1"])
        if not params.get("date"):
            params["date"] = ["2025-08-01"]
        answer = error = None
        if submitted:
            try:
                tx_dict, _ = views.transaction_from_query(params)
                answer = transaction_comparison(Transaction.model_validate(tx_dict), sides, ledger)
            except TierlineError as exc:
                error = f"{exc.field.removeprefix('transaction.')}: {exc.reason}"
        query = urlencode([(k, v) for k, values in params.items() for v in values])
        return page(
            request,
            "compare.html",
            session,
            form={k: (v[0] if v else "") for k, v in params.items()},
            certs=params.get("cert", []),
            sides=(sides + [""] * MAX_SIDES)[:MAX_SIDES],
            answer=answer,
            error=error,
            outcome_text=outcome_text,
            report_query=query if answer else "",
            share=str(request.url) if answer else "",
            book_error=None,
            **compare_context(request, session),
        )

    @router.get("/compare/report")
    def compare_report_download(request: Request, format: str = "html") -> Response:
        session = signed_in(request)
        params = parse_qs(request.url.query, keep_blank_values=True)
        try:
            tx_dict, _ = views.transaction_from_query(params)
            answer = transaction_comparison(
                Transaction.model_validate(tx_dict), _chosen_sides(params, ["ai-diffusion"]), ledger
            )
        except TierlineError as exc:
            return error_page(request, session, 422, "Cannot make the report", f"{exc.field}: {exc.reason}")
        fmt = "pdf" if format == "pdf" else "html"
        return report_response(comparison_report(answer), fmt, f"comparison-{answer['as_of']}")

    @router.post("/compare/orders")
    def compare_book(
        request: Request,
        file: UploadFile = File(...),
        sides: list[str] = Form([]),
        skip_invalid: str = Form(""),
        csrf: str = Form("", max_length=200),
    ) -> Response:
        session = signed_in(request)
        if not _csrf_ok(request, session, csrf):
            return error_page(request, session, 403, "Not allowed", "This form must be sent from the dashboard.")
        if not session.caller.may("analyst"):
            return error_page(request, session, 403, "Not allowed", "Comparing an order book needs the analyst role.")
        store = comparisons(request)
        name = Path(file.filename or "").name
        suffix = Path(name).suffix.lower()
        error: str | None = None
        problems: list[dict[str, Any]] = []
        if store is None:
            error = "order-book comparisons are not available on this service"
        elif suffix not in BOOK_SUFFIXES:
            error = "file: upload a .csv, .parquet or .jsonl order book"
        else:
            with tempfile.NamedTemporaryFile(delete=False, suffix=suffix) as handle:
                shutil.copyfileobj(file.file, handle, 1 << 20)
            try:
                chosen = sides_of([s for s in sides if s.strip()])
                run = store.run(ledger, Path(handle.name), name, chosen, skip_invalid == "true", session.caller.actor)
                return RedirectResponse(f"{PREFIX}/compare/orders/{run.id}", status_code=303)
            except InvalidBook as exc:
                error = f"file: {exc.count} invalid line(s); nothing compared. Fix them, or tick “skip invalid lines”."
                problems = exc.problems
            except TierlineError as exc:
                error = f"{exc.field}: {exc.reason}"
            finally:
                Path(handle.name).unlink(missing_ok=True)
        return page(
            request,
            "compare.html",
            session,
            422,
            form={"date": "2025-08-01"},
            certs=[],
            sides=([s for s in sides if s.strip()] + [""] * MAX_SIDES)[:MAX_SIDES],
            answer=None,
            error=None,
            outcome_text=outcome_text,
            report_query="",
            share="",
            book_error=error,
            book_problems=problems,
            **compare_context(request, session),
        )

    @router.get("/compare/orders/{comparison_id}")
    def book_page(request: Request, comparison_id: str) -> Response:
        session = signed_in(request)
        store = comparisons(request)
        run = store.get(comparison_id[:40]) if store else None
        if run is None:
            return error_page(request, session, 404, "No such comparison", f"no comparison {comparison_id!r}")
        return page(request, "compare_book.html", session, run=run.as_dict(), view=_book_view(run.payload))

    # ---- pathways ------------------------------------------------------------------------------------
    @router.get("/pathways")
    def pathways_page(request: Request) -> Response:
        session = signed_in(request)
        params = parse_qs(request.url.query, keep_blank_values=True)
        form = {k: _first(params, k) for k in params}
        submitted = bool(form.get("destination"))
        result = error = None
        field_name = ""
        if submitted:
            try:
                day = dt.date.fromisoformat(form["as_of"]) if form.get("as_of") else None
            except ValueError:
                day, error, field_name = None, f"{form['as_of']!r} is not a date (YYYY-MM-DD)", "as_of"
            if error is None:
                try:
                    result = pathway_result(
                        ledger,
                        form["destination"],
                        day,
                        form.get("vintage") or "ai-diffusion",
                        form.get("scenario") or None,
                        form.get("entity") or None,
                        form.get("headquarters") or None,
                        form.get("consignees") or "1",
                        form.get("chip") or None,
                    )
                except TierlineError as exc:
                    field_name, error = exc.field, exc.reason
        query = urlencode({k: v for k, v in form.items() if v})
        from tierline.pathways import pathways_chart_svg

        return page(
            request,
            "pathways.html",
            session,
            form=form,
            result=result,
            answer=result.as_dict() if result else None,
            chart=Markup(pathways_chart_svg(result)) if result else "",
            error=error,
            error_field=field_name,
            report_query=query if result else "",
            share=str(request.url) if result else "",
            scenarios=reform_names(),
            chips=sorted(c.name for c in catalog().values()),
            destinations=views.destinations(),
            today=dt.date.today().isoformat(),
            fmt=_fmt,
        )

    # ---- projections ---------------------------------------------------------------------------------
    def projection_form(request: Request, session: Any, status: int = 200, **context: Any) -> Response:
        defaults: dict[str, Any] = {
            "error": None,
            "error_field": "",
            "demand_text": DEMAND_EXAMPLE,
            "sides": ["ai-diffusion", "ai-diffusion+poland-tier1", ""],
            "until": "",
            "run": None,
        }
        return page(
            request,
            "projection.html",
            session,
            status,
            **(defaults | context),
            choices=side_choices(),
            recent=list(reversed(projections.runs.values()))[:10],
        )

    @router.get("/projection")
    def projection_page(request: Request) -> Response:
        return projection_form(request, signed_in(request))

    @router.post("/projection")
    def projection_submit(
        request: Request,
        file: UploadFile | None = File(None),
        demand: str = Form("", max_length=1 << 20),
        sides: list[str] = Form([]),
        until: str = Form("", max_length=20),
        csrf: str = Form("", max_length=200),
    ) -> Response:
        session = signed_in(request)
        if not _csrf_ok(request, session, csrf):
            return error_page(request, session, 403, "Not allowed", "This form must be sent from the dashboard.")
        chosen = [s.strip() for s in sides if s.strip()] or ["ai-diffusion"]
        raw = file.file.read() if file is not None and file.filename else b""
        source = Path(file.filename or "").name if raw and file is not None else "pasted demand"
        text = raw.decode("utf-8", errors="replace") if raw else demand
        keep = {"demand_text": text if not raw else demand, "sides": (chosen + [""] * MAX_SIDES)[:MAX_SIDES]}
        try:
            day = dt.date.fromisoformat(until) if until.strip() else None
        except ValueError:
            return projection_form(
                request, session, 422, error=f"{until!r} is not a date (YYYY-MM-DD)", error_field="until", **keep
            )
        try:
            frame = _demand_frame(text)
            result = projection_result(ledger, frame, chosen, day, lambda line, column: f"line {line}, column {column}")
        except TierlineError as exc:
            return projection_form(request, session, 422, error=f"{exc.field}: {exc.reason}", until=until, **keep)
        run = ProjectionRun(uuid.uuid4().hex[:16], session.caller.actor, source, chosen, result)
        projections.add(run)
        return RedirectResponse(f"{PREFIX}/projection/{run.id}", status_code=303)

    @router.get("/projection/{run_id}")
    def projection_result_page(request: Request, run_id: str) -> Response:
        session = signed_in(request)
        run = projections.runs.get(run_id[:40])
        if run is None:
            return error_page(request, session, 404, "No such projection", f"no projection {run_id!r}")
        from tierline.projection import projection_chart_svg

        result = run.result
        charts = {code: Markup(projection_chart_svg(result, code)) for code in result.countries}
        return page(
            request,
            "projection.html",
            session,
            run=run,
            answer=result.as_dict(),
            charts=charts,
            error=None,
            error_field="",
            demand_text="",
            sides=(run.sides + [""] * MAX_SIDES)[:MAX_SIDES],
            until="",
            choices=side_choices(),
            recent=list(reversed(projections.runs.values()))[:10],
            fmt=_fmt,
        )

    @router.get("/projection/{run_id}/report")
    def projection_report_download(request: Request, run_id: str, format: str = "html") -> Response:
        session = signed_in(request)
        run = projections.runs.get(run_id[:40])
        if run is None:
            return error_page(request, session, 404, "No such projection", f"no projection {run_id!r}")
        from tierline.projection import projection_report

        fmt = "pdf" if format == "pdf" else "html"
        return report_response(projection_report(run.result), fmt, f"projection-{run.result.as_of.isoformat()}")


def _demand_frame(text: str) -> pl.DataFrame:
    """A pasted or uploaded demand CSV read as text columns (read_demand validates every row)."""
    if not text.strip():
        raise TierlineError("demand", "paste a demand series or choose a CSV file (date,country,chip,quantity)")
    try:
        import io

        return pl.read_csv(io.StringIO(text), infer_schema=False)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TierlineError("demand", f"not a readable CSV ({first})") from None


__all__ = ["register", "side_choices"]
