"""The dashboard's pages under ``/dashboard`` (server-rendered HTML, no third-party code).

Pages read through the same answers, ledger and screening jobs as the API; every write the
dashboard makes is a ``fetch`` to ``/v1`` carrying the session cookie and its CSRF token, so the
API's roles and audit apply unchanged (docs/dashboard.md)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlparse

import jinja2
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from markupsafe import Markup

from tierline.api.jobs import Jobs
from tierline.api.keys import ROLES, authenticate
from tierline.catalog import catalog, classify_chip
from tierline.charts import tpp_density_svg
from tierline.determination import Transaction, determine
from tierline.errors import TierlineError
from tierline.ledger import Ledger, LedgerAllowances
from tierline.ledger.accounts import parse_account
from tierline.policy import Context
from tierline.policy.vintages import load_vintages
from tierline.reforms import Reform, get_reform, reform_names
from tierline.web import analysis, views, whatif
from tierline.web.sessions import COOKIE, MAX_AGE, Session, Sessions, session_of
from tierline.web.svg import TIER_FILL, fmt_tpp
from tierline.web.worldmap import STATIC, TIER_NAMES, map_entries, map_svg, month_dates, page_query

PREFIX = "/dashboard"
LEDGER_PAGE = 200
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("tierline.web", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["tpp"] = fmt_tpp
ENV.filters["values_text"] = views.values_text
ENV.filters.update(sig=analysis.sig, signed=analysis.signed, count=analysis.count)
ENV.globals.update(TIER_NAMES=TIER_NAMES, TIER_FILL=TIER_FILL, PREFIX=PREFIX)


class SignInNeeded(Exception):
    """The page needs a session: send the browser to the sign-in page."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def _day(text: str | None, default: dt.date | None = None) -> tuple[dt.date, str | None]:
    if not text:
        return default or dt.date.today(), None
    try:
        return dt.date.fromisoformat(text), None
    except ValueError:
        return default or dt.date.today(), f"{text!r} is not a date (YYYY-MM-DD); showing today"


def _vintage(name: str | None) -> tuple[str, str | None]:
    names = list(load_vintages())
    if not name:
        return "ai-diffusion", None
    if name not in names:
        return "ai-diffusion", f"unknown vintage {name!r}; one of {', '.join(names)}"
    return name, None


def _scenario(name: str | None) -> tuple[Reform | None, str | None]:
    """The scenario a page is shown under (none: the law)."""
    if not name:
        return None, None
    try:
        return get_reform(name[:64]), None
    except TierlineError as exc:
        return None, f"{exc.reason}; showing the law"


def _same_origin(request: Request) -> bool:
    """A form post from this site (browsers send Origin on POST; tools that send none are let through)."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    return urlparse(origin).netloc == request.headers.get("host", "")


def _local(target: str | None) -> str:
    """A redirect target inside the dashboard (never another site)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"


def dashboard_router(ledger: Ledger, jobs: Jobs, sessions: Sessions) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    def signed_in(request: Request) -> Session:
        session = session_of(request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInNeeded(target)
        return session

    def page(
        request: Request, template: str, session: Session | None, http_status: int = 200, **context: Any
    ) -> Response:
        body = ENV.get_template(template).render(
            session=session,
            role=session.role if session else None,
            can_screen=bool(session and session.caller.may("analyst")),
            can_write=bool(session and session.caller.may("officer")),
            csrf=session.csrf if session else "",
            path=request.url.path,
            vintages=list(load_vintages()),
            **context,
        )
        return _html(request, body, http_status)

    # ---- sign-in --------------------------------------------------------------------------------
    @router.get("/login")
    def login_form(request: Request, next: str | None = None) -> Response:
        return page(request, "login.html", None, next=_local(next), error=None)

    @router.post("/login")
    def login(request: Request, key: str = Form("", max_length=300), next: str = Form("", max_length=2000)) -> Response:
        if not _same_origin(request):
            return page(request, "login.html", None, 403, next=PREFIX + "/", error="Sign in from this site's own page.")
        caller = authenticate(ledger.engine, key.strip()) if key.strip() else None
        if caller is None:
            return page(
                request, "login.html", None, 401, next=_local(next), error="That API key is unknown or revoked."
            )
        old = request.cookies.get(COOKIE)
        if old:
            sessions.end(old)
        session = sessions.create(caller)
        response = RedirectResponse(_local(next), status_code=303)
        response.set_cookie(
            COOKIE,
            session.id,
            max_age=int(MAX_AGE),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    def logout(request: Request, csrf: str = Form("", max_length=200)) -> Response:
        session = session_of(request)
        if (
            session is not None
            and _same_origin(request)
            and secrets.compare_digest(csrf.encode(), session.csrf.encode())
        ):
            sessions.end(session.id)
        response = RedirectResponse(PREFIX + "/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @router.get("/")
    def home(request: Request) -> Response:
        signed_in(request)
        return RedirectResponse(PREFIX + "/map", status_code=303)

    # ---- map ------------------------------------------------------------------------------------
    @router.get("/map")
    def world(
        request: Request, date: str | None = None, vintage: str | None = None, scenario: str | None = None
    ) -> Response:
        session = signed_in(request)
        day, error = _day(date)
        name, verror = _vintage(vintage)
        reform, serror = _scenario(scenario)
        ctx = Context.make(name, day, reform)
        entries = map_entries(ctx)
        counts = {t: sum(1 for e in entries if e.tier == t) for t in (1, 2, 3, 0)}
        months = month_dates()
        month = dt.date(day.year, day.month, 1)
        index = months.index(month) if month in months else (0 if day < months[0] else len(months) - 1)
        by_tier = {t: [e for e in entries if e.tier == t] for t in (1, 2, 3)}
        return page(
            request,
            "map.html",
            session,
            day=day,
            vintage=name,
            scenario=reform.name if reform else "",
            scenarios=reform_names(),
            errors=[e for e in (error, verror, serror) if e],
            svg=Markup(map_svg(ctx, PREFIX + "/country/")),
            counts=counts,
            by_tier=by_tier,
            tiers_apply=ctx.vintage.has("tiers"),
            stamp=ctx.stamp(),
            months=months,
            month_index=index,
            month_values=",".join(m.isoformat() for m in months),
            destinations=views.destinations(),
            query=page_query(ctx),
        )

    # ---- country --------------------------------------------------------------------------------
    @router.get("/country/")
    def find_country(
        request: Request,
        code: str = Query("", max_length=100),
        date: str = "",
        vintage: str = "",
        scenario: str = Query("", max_length=64),
    ) -> Response:
        signed_in(request)
        query = urlencode({k: v for k, v in (("date", date), ("vintage", vintage), ("scenario", scenario)) if v})
        return RedirectResponse(f"{PREFIX}/country/{quote(code, safe='')}" + (f"?{query}" if query else ""), 303)

    @router.get("/country/{code}")
    def country(
        request: Request, code: str, date: str | None = None, vintage: str | None = None, scenario: str | None = None
    ) -> Response:
        session = signed_in(request)
        day, error = _day(date)
        name, verror = _vintage(vintage)
        reform, serror = _scenario(scenario)
        ctx = Context.make(name, day, reform)
        try:
            data = views.country_view(code[:100], ctx, ledger, jobs)
        except TierlineError as exc:
            return page(request, "error.html", session, 404, title="Unknown destination", message=exc.reason)
        return page(
            request,
            "country.html",
            session,
            day=day,
            vintage=name,
            scenario=reform.name if reform else "",
            scenarios=reform_names(),
            errors=[e for e in (error, verror, serror) if e],
            query=page_query(ctx),
            **data,
        )

    # ---- determination ----------------------------------------------------------------------------
    @router.get("/determine")
    def determination(request: Request) -> Response:
        session = signed_in(request)
        params = parse_qs(request.url.query, keep_blank_values=True)
        submitted = "destination" in params
        answer = tx_data = error = None
        if not params.get("date"):
            params["date"] = [dt.date.today().isoformat()]
        rows: list[dict[str, str]] = []
        if submitted:
            try:
                tx_dict, rows = views.transaction_from_query(params)
                tx = Transaction.model_validate(tx_dict)
                answer = determine(tx, LedgerAllowances(ledger)).as_dict()
                tx_data = tx.model_dump(mode="json", exclude_defaults=True)
            except TierlineError as exc:
                error = f"{exc.field}: {exc.reason}"
        if not rows:
            rows = [{"chip": "", "qty": "", "system": "no", "ics": ""} for _ in range(2)]
        form = {k: (v[0] if v else "") for k, v in params.items()}
        return page(
            request,
            "determine.html",
            session,
            form=form,
            certs=params.get("cert", []),
            rows=rows,
            answer=answer,
            error=error,
            tx_json=json.dumps(tx_data) if tx_data else "",
            idempotency_key=views.determination_key(tx_data) if tx_data else "",
            share=str(request.url) if submitted else "",
            chips=sorted(c.name for c in catalog().values()),
            destinations=views.destinations(),
            exceptions_of=views.exceptions_of,
        )

    # ---- screening ------------------------------------------------------------------------------
    @router.get("/screenings")
    def screenings(request: Request) -> Response:
        session = signed_in(request)
        listed = sorted(jobs.jobs.values(), key=lambda j: j.created_at, reverse=True)
        return page(request, "screenings.html", session, jobs=[j.as_dict() for j in listed[:50]], job=None)

    @router.get("/screenings/{job_id}")
    def screening(request: Request, job_id: str) -> Response:
        session = signed_in(request)
        job = jobs.jobs.get(job_id[:40])
        if job is None:
            return page(
                request, "error.html", session, 404, title="No such screening", message=f"no screening {job_id!r}"
            )
        listed = sorted(jobs.jobs.values(), key=lambda j: j.created_at, reverse=True)
        return page(request, "screenings.html", session, jobs=[j.as_dict() for j in listed[:50]], job=job.as_dict())

    @router.get("/screenings/{job_id}/rows")
    def screening_rows(
        request: Request,
        job_id: str,
        q: str = Query("", max_length=200),
        authorization: str = Query("", max_length=40),
        destination: str = Query("", max_length=10),
        tier: str = Query("", max_length=4),
        offset: int = Query(0, ge=0, le=10**9),
        limit: int = Query(100, ge=1, le=500),
    ) -> Response:
        if session_of(request) is None:
            return JSONResponse({"detail": "sign in"}, status_code=401)
        job = jobs.jobs.get(job_id[:40])
        if job is None or job.result is None or job.result.out is None:
            return JSONResponse({"detail": "no decisions for this screening"}, status_code=404)
        filters = {"authorization": authorization, "destination": destination, "tier": tier}
        data = views.decision_rows(job.result.out, q=q, filters=filters, offset=offset, limit=limit)
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    # ---- ledger ---------------------------------------------------------------------------------
    @router.get("/ledger")
    def ledger_page(
        request: Request,
        date: str | None = None,
        country: str = Query("", max_length=100),
        consignee: str = Query("", max_length=200),
        offset: int = Query(0, ge=0, le=10**9),
    ) -> Response:
        session = signed_in(request)
        day, error = _day(date)
        errors = [error] if error else []
        code = None
        if country:
            try:
                code = views.country_code(country)
            except TierlineError as exc:
                errors.append(exc.reason)
        rows, total = views.ledger_rows(
            ledger, day, country=code, consignee=consignee or None, offset=offset, limit=LEDGER_PAGE
        )
        for row in rows:
            row["gauge"] = Markup(row["gauge"])
        base = {"date": day.isoformat(), "country": country, "consignee": consignee}
        return page(
            request,
            "ledger.html",
            session,
            day=day,
            rows=rows,
            total=total,
            offset=offset,
            prev_link=urlencode({**base, "offset": max(offset - LEDGER_PAGE, 0)}) if offset else "",
            next_link=urlencode({**base, "offset": offset + LEDGER_PAGE}) if offset + LEDGER_PAGE < total else "",
            errors=errors,
            country=country,
            consignee=consignee,
            h100=views.h100_tpp(day),
            new_key=secrets.token_hex(12),
        )

    @router.get("/ledger/account/{account:path}")
    def account_page(request: Request, account: str, date: str | None = None) -> Response:
        session = signed_in(request)
        day, error = _day(date)
        try:
            parse_account(account[:200])
        except TierlineError as exc:
            return page(request, "error.html", session, 404, title="Unknown account", message=exc.reason)
        ref = parse_account(account)
        status = next(
            (r for r in ledger.status(country=ref.country, consignee=ref.entity, as_of=day) if r["account"] == account),
            None,
        )
        from tierline.web.svg import gauge_svg

        gauge = Markup(gauge_svg(status["used"], status["held"], status["limit"], account)) if status else ""
        burndown = Markup(views.allocation_burndown(ledger, account, day)) if ref.kind == "allocation" else ""
        return page(
            request,
            "account.html",
            session,
            account=account,
            kind=ref.kind,
            day=day,
            errors=[error] if error else [],
            status=status,
            gauge=gauge,
            burndown=burndown,
            history=list(reversed(ledger.history(account))),
            holds=views.live_holds(ledger, account),
            h100=views.h100_tpp(day),
            new_key=secrets.token_hex(12),
        )

    # ---- chips ----------------------------------------------------------------------------------
    @router.get("/chips")
    def chips(
        request: Request,
        vendor: str = Query("", max_length=60),
        year_from: str = Query("", max_length=4),
        year_to: str = Query("", max_length=4),
        date: str | None = None,
        vintage: str | None = None,
    ) -> Response:
        session = signed_in(request)
        day, error = _day(date)
        name, verror = _vintage(vintage)
        ctx = Context.make(name, day)
        every = list(catalog().values())
        lo = int(year_from) if year_from.isdigit() else None
        hi = int(year_to) if year_to.isdigit() else None
        chosen = [
            c
            for c in every
            if (not vendor or c.vendor == vendor)
            and (lo is None or (c.release_year or 0) >= lo)
            and (hi is None or (c.release_year or 9999) <= hi)
        ]
        table = []
        for c in chosen:
            result = classify_chip(c, ctx)[0] if c.rates else None
            table.append(
                {
                    "name": c.name,
                    "vendor": c.vendor,
                    "year": c.release_year,
                    "tpp": float(result.tpp) if result else None,
                    "pd": float(result.performance_density)
                    if result and result.performance_density is not None
                    else None,
                    "eccn": (result.eccn if result else "") or "",
                    "paragraph": (result.paragraph if result else "") or "",
                    "datacenter": c.datacenter,
                }
            )
        return page(
            request,
            "chips.html",
            session,
            day=day,
            vintage=name,
            errors=[e for e in (error, verror) if e],
            svg=Markup(tpp_density_svg(ctx, chips=chosen)),
            table=table,
            vendors=sorted({c.vendor for c in every}),
            years=sorted({c.release_year for c in every if c.release_year}),
            vendor=vendor,
            year_from=year_from,
            year_to=year_to,
        )

    # ---- architecture analysis: design headroom and inference bounds ------------------------------
    @router.get("/design")
    def design_page(request: Request) -> Response:
        session = signed_in(request)
        params = parse_qs(request.url.query, keep_blank_values=True)
        day, derror = _day(analysis.first(params, "date"))
        name, verror = _vintage(analysis.first(params, "vintage"))
        form, submitted, note = analysis.design_form(params)
        answer = error = None
        field = ""
        if submitted:
            try:
                answer = analysis.design_result(form, Context.make(name, day))
            except TierlineError as exc:
                field, error = analysis.error_field(exc.field), exc.reason
        return page(
            request,
            "design.html",
            session,
            day=day,
            vintage=name,
            errors=[e for e in (derror, verror, note) if e],
            form=form,
            chip=analysis.first(params, "chip"),
            chips=sorted((c for c in catalog().values() if c.rates), key=lambda c: c.name.lower()),
            rates=analysis.DESIGN_RATES,
            lines=analysis.LINE_LABELS,
            answer=answer,
            chart=Markup(answer["chart"]) if answer else "",
            error=error,
            error_field=field,
            error_label=analysis.DESIGN_LABELS.get(field, field),
            share=str(request.url) if answer else "",
        )

    @router.get("/inference")
    def inference_page(request: Request) -> Response:
        session = signed_in(request)
        params = parse_qs(request.url.query, keep_blank_values=True)
        day, derror = _day(analysis.first(params, "date"))
        name, verror = _vintage(analysis.first(params, "vintage"))
        form, chosen, compare, submitted = analysis.inference_form(params)
        answer = error = None
        field = ""
        if submitted:
            try:
                answer = analysis.inference_result(form, chosen, compare, Context.make(name, day))
            except TierlineError as exc:
                field, error = analysis.error_field(exc.field), exc.reason
        return page(
            request,
            "inference.html",
            session,
            day=day,
            vintage=name,
            errors=[e for e in (derror, verror) if e],
            form=form,
            chosen=chosen,
            compare=compare,
            chips=analysis.inference_chips(),
            precisions=analysis.PRECISIONS,
            answer=answer,
            chart=Markup(answer["chart"]) if answer else "",
            error=error,
            error_field=field,
            error_label=analysis.INFERENCE_LABELS.get(field, field),
            share=str(request.url) if answer else "",
        )

    whatif.register(router, ledger, page, signed_in)  # scenarios, compare, pathways, projection
    return router


def _html(request: Request, body: str, status: int = 200) -> Response:
    """An HTML page, gzipped when the browser accepts it, never cached, framed by nobody."""
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "Vary": "Accept-Encoding",
    }
    data = body.encode()
    if len(data) > 1400 and "gzip" in request.headers.get("accept-encoding", ""):
        data = gzip.compress(data, 6)
        headers["Content-Encoding"] = "gzip"
    return Response(data, status_code=status, media_type="text/html; charset=utf-8", headers=headers)


def mount_dashboard(app: FastAPI, ledger: Ledger, jobs: Jobs) -> None:
    """Serve the dashboard at /dashboard (static files at /dashboard/static) on the service's ledger
    and screening jobs; sessions are kept in this process (``app.state.web_sessions``)."""
    from fastapi.staticfiles import StaticFiles

    sessions = Sessions(ledger.engine)
    app.state.web_sessions = sessions
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.include_router(dashboard_router(ledger, jobs, sessions))

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': exc.target})}", status_code=303)


__all__ = ["ROLES", "mount_dashboard"]
