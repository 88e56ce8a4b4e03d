"""What the dashboard pages show, computed from the same answers, ledger reads and jobs the API uses.

Nothing here writes: every write goes through the HTTP API (``/v1``), where roles are checked and
the actor is recorded."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select

from tierline.answers import country_answer
from tierline.countries import all_countries, lookup
from tierline.errors import TierlineError
from tierline.groups import country_groups, ear_destination
from tierline.ledger import Ledger
from tierline.ledger.accounts import LEDGER_VINTAGE, MICRO, limit_micro, parse_account
from tierline.ledger.schema import ENTRIES, HOLDS
from tierline.policy import Context
from tierline.policy.vintages import load_vintages
from tierline.reforms import Reform
from tierline.tiers import tier_of
from tierline.web.svg import Period, Step, burndown_svg, fmt_tpp, gauge_svg, timeline_svg

TIMELINE_START, TIMELINE_END = dt.date(2023, 1, 1), dt.date(2026, 12, 31)
COMMITTING_OPS = ("commit", "direct", "adjust")


def h100_tpp(day: dt.date) -> float:
    """TPP of one H100 (the unit of H100-equivalents) on `day`."""
    return float(Context.make(LEDGER_VINTAGE, day).value("reference_chip.h100_tpp"))


# ---- country ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def change_dates() -> tuple[dt.date, ...]:
    """Every date on which a Country Group, supp. no. 5(a) or a vintage changes, inside the timeline."""
    days = {c.effective for c in country_groups().changes}
    for v in load_vintages().values():
        days.add(v.in_force_from)
        if v.compliance_from:
            days.add(v.compliance_from)
    return tuple(sorted(d for d in days if TIMELINE_START < d <= TIMELINE_END))


def tier_periods(iso2: str, vintage: str, reform: Reform | None = None) -> list[Period]:
    """The destination's tier and groups from 2023 to 2026 under `vintage` (and a scenario), as
    periods of no change."""
    more = [d for d in reform.dates() if TIMELINE_START < d <= TIMELINE_END] if reform is not None else []
    starts = sorted({TIMELINE_START, *change_dates(), *more})
    periods: list[Period] = []
    for i, start in enumerate(starts):
        ctx = Context.make(vintage, start, reform)
        dest = ear_destination(iso2, start)
        tier = tier_of(iso2, ctx).tier if ctx.vintage.has("tiers") else 0
        groups = tuple(country_groups().groups_of(dest.ear.iso2, start, reform))
        end = starts[i + 1] - dt.timedelta(days=1) if i + 1 < len(starts) else TIMELINE_END
        if periods and periods[-1].tier == tier and periods[-1].groups == groups:
            periods[-1] = Period(periods[-1].start, end, tier, groups)
        else:
            periods.append(Period(start, end, tier, groups))
    return periods


@dataclass
class Allowance:
    """One account's use against its limit on a date, in TPP and H100-equivalents."""

    account: str
    kind: str
    used: float
    held: float
    limit: float | None
    h100: float
    note: str | None = None
    entity: str | None = None
    gauge: str = ""
    burndown: str = ""
    linked_by: list[str] = field(default_factory=list)

    @property
    def headroom(self) -> float | None:
        return None if self.limit is None else self.limit - self.used - self.held

    def eq(self, value: float | None) -> str:
        return "—" if value is None else f"{value / self.h100:,.1f}"

    def tpp(self, value: float | None) -> str:
        return fmt_tpp(value)


def allowance(ledger: Ledger, account: str, day: dt.date, h100: float) -> Allowance:
    """An account's status as of `day` (the ledger's own arithmetic: committed, live holds, limit)."""
    ref = parse_account(account)
    committed, held = ledger.used(account, day)
    note = None
    try:
        micro = limit_micro(ref, day, ledger.g2g_since(ref.country) if ref.country else None)
        limit = None if micro is None else micro / MICRO
    except TierlineError as exc:
        limit, note = None, exc.reason
    if ref.kind == "uveu":
        note = "limited by UVEU shares of the installed base, not by an amount"
    out = Allowance(account, ref.kind, float(committed), float(held), limit, h100, note, ref.entity)
    out.gauge = gauge_svg(out.used, out.held, limit, account)
    return out


def allocation_burndown(ledger: Ledger, account: str, today: dt.date) -> str:
    """Remaining Tier 2 allocation over the allocation period, by shipment date."""
    ctx = Context.make(LEDGER_VINTAGE, today)
    start, end = ctx.value("allocation.period_start"), ctx.value("allocation.period_end")
    ref = parse_account(account)
    g2g = ledger.g2g_since(ref.country) if ref.country else None
    moves: dict[dt.date, int] = {}
    for event in ledger.history(account):
        if event.get("op") in COMMITTING_OPS and event.get("effective_date"):
            day = dt.date.fromisoformat(event["effective_date"])
            moves[day] = moves.get(day, 0) + int(event["amount_micro"])
    days = sorted({start, *moves, *([g2g] if g2g and start < g2g <= end else [])})
    steps, used = [], 0
    for day in days:
        used += moves.get(day, 0)
        on = min(max(day, start, ctx.vintage.in_force_from), end)
        try:
            limit = (limit_micro(ref, on, g2g) or 0) / MICRO
        except TierlineError:
            continue
        steps.append(Step(day, used / MICRO, limit))
    title = f"{account}: remaining allocation by shipment date, {start.isoformat()} to {end.isoformat()}"
    return burndown_svg(steps, start, end, today, title)


def lpp_links(ledger: Ledger, jobs: Any) -> dict[str, set[str]]:
    """LPP entities linked to a destination: by determinations recorded from the service (their entries
    say ``check <destination>``) and by the service's screenings (a decision line names the
    destination and the LPP account it drew). The ledger itself keys LPP accounts by entity only."""
    links: dict[str, set[str]] = {}
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(ENTRIES.c.account_id, ENTRIES.c.reason)
            .where(ENTRIES.c.account_id.startswith("lpp:"), ENTRIES.c.reason.startswith("check "))
            .distinct()
        )
        for account, reason in rows:
            try:
                country = ear_destination(str(reason)[6:], dt.date.today()).ear.iso2
            except TierlineError:
                continue
            links.setdefault(country, set()).add(parse_account(account).entity or "")
    for job in list(getattr(jobs, "jobs", {}).values()):
        result = getattr(job, "result", None)
        if result is None or result.out is None:
            continue
        for country, entities in _job_lpp(job.id, str(result.out)).items():
            links.setdefault(country, set()).update(entities)
    return links


@functools.lru_cache(maxsize=64)
def _job_lpp(job_id: str, path: str) -> dict[str, set[str]]:
    try:
        frame = read_table(Path(path), ["destination", "draw_account"])
    except Exception:  # noqa: BLE001 - a job whose file is gone links nothing
        return {}
    out: dict[str, set[str]] = {}
    for dest, account in frame.filter(pl.col("draw_account").cast(pl.Utf8).str.starts_with("lpp:")).unique().rows():
        out.setdefault(str(dest), set()).add(parse_account(str(account)).entity or "")
    return out


def country_view(code: str, ctx: Context, ledger: Ledger, jobs: Any) -> dict[str, Any]:
    """Everything the country page shows."""
    answer = country_answer(code, ctx)
    iso2, ear = answer["iso2"], answer.get("treated_as") or answer["iso2"]
    day = ctx.as_of
    h100 = h100_tpp(day)
    periods = tier_periods(iso2, ctx.vintage.name, ctx.reform)
    history = [c.as_dict() for c in country_groups().history(iso2)]
    if ear != iso2:
        history += [c.as_dict() for c in country_groups().history(ear)]
    history.sort(key=lambda c: c["effective"])
    ledger_tier = tier_of(iso2, Context.make(LEDGER_VINTAGE, day)).tier
    account = f"allocation:{ear}"
    allocation = None
    if ledger_tier == 2 or account in ledger.account_ids("allocation:"):
        allocation = allowance(ledger, account, day, h100)
        allocation.burndown = allocation_burndown(ledger, account, day)
    veu = [
        allowance(ledger, row["account"], day, h100)
        for row in ledger.status(country=ear, as_of=day)
        if row["kind"] in ("uveu", "nveu")
    ]
    linked = lpp_links(ledger, jobs).get(ear, set())
    lpp = [
        allowance(ledger, a, day, h100)
        for a in ledger.account_ids("lpp:")
        if parse_account(a).year == day.year and parse_account(a).entity in linked
    ]
    return {
        "answer": answer,
        "periods": periods,
        "timeline": timeline_svg(
            periods, TIMELINE_START, TIMELINE_END, f"{answer['name']}: tier from 2023 to 2026 under {ctx.vintage.name}"
        ),
        "history": history,
        "allocation": allocation,
        "ledger_tier": ledger_tier,
        "lpp": lpp,
        "veu": veu,
        "h100": h100,
    }


# ---- ledger --------------------------------------------------------------------------------------
def ledger_rows(
    ledger: Ledger, day: dt.date, *, country: str | None, consignee: str | None, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of accounts (the filters of ``Ledger.status``) with usage, holds, limit and headroom:
    only the page's accounts are read, so a ledger with many accounts still loads fast."""
    ids = [
        a
        for a in ledger.account_ids()
        if (not country or parse_account(a).country == country)
        and (not consignee or parse_account(a).entity == consignee)
    ]
    h100 = h100_tpp(day)
    rows = []
    for account in ids[offset : offset + limit]:
        ref = parse_account(account)
        if ref.kind == "license":  # the ledger reads the licence's amount itself
            found = [r for r in ledger.status(consignee=ref.entity, as_of=day) if r["account"] == account]
            row = found[0]
        else:
            al = allowance(ledger, account, day, h100)
            row = {
                "account": account,
                "kind": ref.kind,
                "used": al.used,
                "held": al.held,
                "limit": al.limit,
                "headroom": al.headroom,
                **({"note": al.note} if al.note else {}),
            }
        row["gauge"] = gauge_svg(row["used"], row["held"], row["limit"], account)
        row["headroom_h100"] = None if row["headroom"] is None else row["headroom"] / h100
        rows.append(row)
    return rows, len(ids)


def live_holds(ledger: Ledger, account: str) -> list[dict[str, Any]]:
    """The account's holds that still count: held and not expired."""
    now = dt.datetime.now(dt.UTC)
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(HOLDS).where(HOLDS.c.account_id == account, HOLDS.c.status == "held").order_by(HOLDS.c.created_at)
        ).all()
    out = []
    for r in rows:
        expires = r.expires_at if r.expires_at.tzinfo else r.expires_at.replace(tzinfo=dt.UTC)
        if expires > now:
            out.append(
                {
                    "id": r.id,
                    "tpp": r.amount_micro / MICRO,
                    "effective_date": str(r.effective_date),
                    "expires_at": expires.isoformat(timespec="seconds"),
                }
            )
    return out


# ---- screening results ----------------------------------------------------------------------------
def read_table(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """A decisions file in the format of its suffix."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pl.read_parquet(path, columns=columns)
    if suffix in (".jsonl", ".ndjson"):
        frame = pl.read_ndjson(path)
        return frame.select(columns) if columns else frame
    return pl.read_csv(path, columns=columns, infer_schema_length=0)


@functools.lru_cache(maxsize=4)
def _decisions(path: str, mtime: float) -> pl.DataFrame:
    return read_table(Path(path))


def decision_rows(
    path: Path, *, q: str = "", filters: Mapping[str, str] | None = None, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    """A page of decisions matching a text search and exact column filters, with the choices per filter."""
    frame = _decisions(str(path), path.stat().st_mtime)
    choices = {
        c: sorted(str(v) for v in frame.get_column(c).cast(pl.Utf8).fill_null("").unique().to_list())[:300]
        for c in ("authorization", "destination", "tier", "review_policy")
        if c in frame.columns
    }
    view = frame
    for column, value in (filters or {}).items():
        if value and column in frame.columns:
            view = view.filter(pl.col(column).cast(pl.Utf8).fill_null("") == value)
    if q:
        text = q.lower()
        searchable = [c for c in ("line_id", "chip", "destination", "draw_account", "rule") if c in frame.columns]
        condition = pl.lit(False)
        for c in searchable:
            condition = condition | pl.col(c).cast(pl.Utf8).fill_null("").str.to_lowercase().str.contains(
                text, literal=True
            )
        view = view.filter(condition)
    total = view.height
    page = view.slice(offset, limit)
    return {
        "columns": page.columns,
        "rows": [[_cell(v) for v in row] for row in page.rows()],
        "total": total,
        "offset": offset,
        "all": frame.height,
        "choices": choices,
    }


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


# ---- determination form ---------------------------------------------------------------------------
PARTY_FIELDS = ("id", "name", "country", "headquarters", "ultimate_parent_headquarters", "kind")


def transaction_from_query(params: Mapping[str, list[str]]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The transaction a determination form (its URL query) describes, and the item rows to show."""

    def one(name: str) -> str:
        values = params.get(name) or [""]
        return values[0].strip()

    chips, qtys = params.get("item_chip", []), params.get("item_qty", [])
    systems, ics = params.get("item_system", []), params.get("item_ics", [])
    rows = []
    items: list[dict[str, Any]] = []
    for i, chip in enumerate(chips):
        row = {
            "chip": chip.strip(),
            "qty": qtys[i].strip() if i < len(qtys) else "",
            "system": systems[i] if i < len(systems) else "no",
            "ics": ics[i].strip() if i < len(ics) else "",
        }
        rows.append(row)
        if not row["chip"]:
            continue
        item: dict[str, Any] = {"chip": row["chip"], "quantity": _int(row["qty"], f"items[{len(items)}].quantity")}
        if row["system"] == "yes":
            item["system"] = True
            if row["ics"]:
                item["ics_per_unit"] = _int(row["ics"], f"items[{len(items)}].ics_per_unit")
        items.append(item)
    tx: dict[str, Any] = {
        "date": one("date"),
        "vintage": one("vintage") or "ai-diffusion",
        "destination": one("destination"),
        "export_from": one("export_from") or "US",
        "end_use": one("end_use") or "other",
        "items": items,
        "certifications": [c for c in params.get("cert", []) if c],
    }
    if one("kind"):
        tx["kind"] = one("kind")
    consignee: dict[str, Any] = {}
    for name in PARTY_FIELDS:
        value = one(f"c_{name}")
        if value:
            consignee[name] = value
    consignee.setdefault("country", tx["destination"])
    consignee.setdefault("name", consignee.get("id") or "")
    if one("c_veu"):
        consignee["veu"] = one("c_veu")
        dests = [d.strip() for d in one("c_veu_destinations").split(",") if d.strip()]
        if dests:
            consignee["veu_destinations"] = dests
    if one("c_lpp_operating_entity"):
        consignee["lpp_operating_entity"] = one("c_lpp_operating_entity")
    tx["ultimate_consignee"] = consignee
    end_user = {n: one(f"u_{n}") for n in PARTY_FIELDS if one(f"u_{n}")}
    if end_user.get("name") or end_user.get("country"):
        end_user.setdefault("name", end_user.get("id") or end_user.get("country", ""))
        end_user.setdefault("country", tx["destination"])
        tx["end_user"] = end_user
    while len(rows) < 2 or rows[-1]["chip"]:
        rows.append({"chip": "", "qty": "", "system": "no", "ics": ""})
    return tx, rows


def _int(text: str, name: str) -> int:
    try:
        return int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise TierlineError(name, f"{text!r} is not a whole number") from None


def determination_key(tx: Mapping[str, Any]) -> str:
    """The idempotency key the dashboard sends when an officer records a determination: the
    transaction's hash, so the same transaction is never recorded twice by a double click."""
    return "dashboard:" + hashlib.sha256(json.dumps(tx, sort_keys=True, default=str).encode()).hexdigest()[:40]


def exceptions_of(line: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The licence exceptions tried for a line, in order, with their conditions and whether they applied."""
    tried = set(line.get("exceptions_considered") or [])
    out = []
    for step in line.get("trace", []):
        if step.get("rule") in tried:
            conditions = (step.get("values") or {}).get("conditions") or []
            out.append(
                {
                    "name": step["rule"],
                    "citation": step.get("citation", ""),
                    "applied": bool(step.get("result")),
                    "test": step.get("test", ""),
                    "failed": [c for c in conditions if not c.get("met")],
                    "conditions": conditions,
                }
            )
    return out


def destinations() -> list[tuple[str, str]]:
    return [(c.iso2, c.name) for c in all_countries().values()]


def country_code(query: str) -> str:
    return lookup(query).iso2


def values_text(values: Any) -> str:
    """Trace values as compact text."""
    if values in (None, {}, []):
        return ""
    if isinstance(values, Mapping):
        return "; ".join(f"{k}: {values_text(v) if isinstance(v, Mapping | list) else v}" for k, v in values.items())
    if isinstance(values, list):
        return ", ".join(values_text(v) if isinstance(v, Mapping | list) else str(v) for v in values)
    return str(values)


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
