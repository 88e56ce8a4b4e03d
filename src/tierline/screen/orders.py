"""Order lines and decisions: the columns of an order book (docs/screening.md), the transaction a line
stands for, and the decision row written for it. The scalar and the vectorized engine share both
mappings, so a line means the same thing to each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from tierline.determination.engine import Determination
from tierline.determination.model import VEU, Certification, EndUse, Kind, PartyKind, Transaction
from tierline.errors import TierlineError

MAX_QUANTITY = 1_000_000_000  # per line: keeps every sum exact in 64-bit integers
LIST_SEPARATOR = ";"


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    kind: str  # text, id, date, int, bool, list
    doc: str
    choices: tuple[str, ...] = ()


def _choices(enum: Any) -> tuple[str, ...]:
    return tuple(e.value for e in enum)


COLUMNS: tuple[Column, ...] = (
    Column("line_id", False, "text", "your reference for the line; echoed in the decision"),
    Column("date", True, "date", "shipment date, YYYY-MM-DD"),
    Column("chip", True, "text", "catalogue chip (tierline chips list)"),
    Column("quantity", True, "int", f"units, a whole number from 1 to {MAX_QUANTITY:,}"),
    Column("destination", True, "text", "destination country (ISO code or name)"),
    Column("consignee_id", True, "id", "ultimate consignee identifier: the LPP and VEU accounts are keyed by it"),
    Column("consignee_name", False, "text", "ultimate consignee name (default: the identifier)"),
    Column("consignee_headquarters", False, "text", "country of the consignee's headquarters (default: destination)"),
    Column("consignee_parent_headquarters", False, "text", "country of the ultimate parent's headquarters"),
    Column("consignee_kind", False, "text", "commercial (default), government, university, other", _choices(PartyKind)),
    Column("consignee_veu", False, "text", "UVEU or NVEU when the consignee holds that authorization", _choices(VEU)),
    Column("consignee_veu_destinations", False, "list", "NVEU destinations, separated by ';'"),
    Column("lpp_operating_entity", False, "id", "entity whose LPP limit counts (Tier-1-headquartered consignees)"),
    Column("end_user_name", False, "text", "end user, when not the consignee"),
    Column("end_user_country", False, "text", "end user's country (gives the line an end user)"),
    Column("end_user_headquarters", False, "text", "end user's headquarters country"),
    Column("end_user_parent_headquarters", False, "text", "end user's ultimate parent headquarters country"),
    Column("end_user_kind", False, "text", "commercial (default), government, university, other", _choices(PartyKind)),
    Column(
        "end_use", False, "text", "data_center, development, production, storage, ... (default other)", _choices(EndUse)
    ),
    Column("certifications", False, "list", "attested certifications, separated by ';'", _choices(Certification)),
    Column("export_from", False, "text", "country shipped from (default US)"),
    Column(
        "kind", False, "text", "export, reexport or in_country_transfer (default: from the countries)", _choices(Kind)
    ),
    Column("system", False, "bool", "true when the line is a system (4A090) rather than a chip"),
    Column("ics_per_unit", False, "int", "ICs per unit for systems (default 1)"),
    Column("base_eccn", False, "text", "base ECCN for .z items (5A992, 5A002, ...)"),
    Column("vintage", False, "text", "rule vintage for the line (default: the --vintage option)"),
)
BY_NAME = {c.name: c for c in COLUMNS}
REQUIRED = tuple(c.name for c in COLUMNS if c.required)
# columns a line's answer does not depend on except through the accounts it names or its amounts
PER_LINE = ("line_id", "date", "quantity", "consignee_id", "consignee_name", "lpp_operating_entity", "end_user_name")
PROFILE = tuple(c.name for c in COLUMNS if c.name not in PER_LINE)
# columns naming countries whose Country Groups the rules read (policy/epochs.py)
COUNTRY_COLUMNS = (
    "destination",
    "consignee_headquarters",
    "consignee_parent_headquarters",
    "consignee_veu_destinations",
    "end_user_country",
    "end_user_headquarters",
    "end_user_parent_headquarters",
    "export_from",
)

DECISION_SCHEMA: dict[str, Any] = {
    "line": pl.Int64,
    "line_id": pl.String,
    "date": pl.Date,
    "vintage": pl.String,
    "reform": pl.String,
    "destination": pl.String,
    "tier": pl.Int64,
    "chip": pl.String,
    "quantity": pl.Int64,
    "eccn": pl.String,
    "level": pl.String,
    "tpp": pl.Float64,
    "license_required": pl.Boolean,
    "authorization": pl.String,
    "review_policy": pl.String,
    "needs_license": pl.Boolean,
    "draw_account": pl.String,
    "draw_tpp": pl.Float64,
    "rule": pl.String,
    "citation": pl.String,
    "exceptions_considered": pl.String,
    "obligations": pl.String,
    "warnings": pl.String,
}


# where a transaction field path points in the order book
FIELD_COLUMNS = {
    "date": "date",
    "vintage": "vintage",
    "kind": "kind",
    "export_from": "export_from",
    "destination": "destination",
    "items[0].chip": "chip",
    "items[0].quantity": "quantity",
    "items[0].system": "system",
    "items[0].ics_per_unit": "ics_per_unit",
    "items[0].base_eccn": "base_eccn",
    "ultimate_consignee.id": "consignee_id",
    "ultimate_consignee.name": "consignee_name",
    "ultimate_consignee.country": "destination",
    "ultimate_consignee.headquarters": "consignee_headquarters",
    "ultimate_consignee.ultimate_parent_headquarters": "consignee_parent_headquarters",
    "ultimate_consignee.kind": "consignee_kind",
    "ultimate_consignee.veu": "consignee_veu",
    "ultimate_consignee.veu_destinations": "consignee_veu_destinations",
    "ultimate_consignee.lpp_operating_entity": "lpp_operating_entity",
    "end_user.name": "end_user_name",
    "end_user.country": "end_user_country",
    "end_user.headquarters": "end_user_headquarters",
    "end_user.ultimate_parent_headquarters": "end_user_parent_headquarters",
    "end_user.kind": "end_user_kind",
    "end_use": "end_use",
    "certifications": "certifications",
}


def column_of(field: str) -> str:
    """The order-book column a transaction field error points at."""
    if field in FIELD_COLUMNS:
        return FIELD_COLUMNS[field]
    for prefix in sorted(FIELD_COLUMNS, key=len, reverse=True):
        if field.startswith(prefix):
            return FIELD_COLUMNS[prefix]
    return field


def _text(row: Mapping[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def split_list(text: str) -> list[str]:
    """The values of a list cell (separated by ';'), trimmed, empty ones dropped."""
    return [part.strip() for part in text.split(LIST_SEPARATOR) if part.strip()]


def _list(row: Mapping[str, Any], name: str) -> list[str]:
    text = _text(row, name)
    return split_list(text) if text else []


def transaction_for(row: Mapping[str, Any], vintage: str) -> Transaction:
    """The one-line transaction an order line stands for (values already parsed: date, int, bool)."""
    destination = _text(row, "destination")
    consignee = _text(row, "consignee_id")
    end_user = None
    if _text(row, "end_user_country"):
        end_user = {
            "name": _text(row, "end_user_name") or "end user",
            "country": _text(row, "end_user_country"),
            "headquarters": _text(row, "end_user_headquarters"),
            "ultimate_parent_headquarters": _text(row, "end_user_parent_headquarters"),
            "kind": _text(row, "end_user_kind") or PartyKind.commercial.value,
        }
    data = {
        "date": row.get("date"),
        "vintage": _text(row, "vintage") or vintage,
        "kind": _text(row, "kind"),
        "export_from": _text(row, "export_from") or "US",
        "destination": destination,
        "items": [
            {
                "chip": _text(row, "chip"),
                "quantity": row.get("quantity"),
                "system": bool(row.get("system") or False),
                "ics_per_unit": row.get("ics_per_unit") or 1,
                "base_eccn": _text(row, "base_eccn"),
            }
        ],
        "ultimate_consignee": {
            "id": consignee,
            "name": _text(row, "consignee_name") or consignee,
            "country": destination,
            "headquarters": _text(row, "consignee_headquarters"),
            "ultimate_parent_headquarters": _text(row, "consignee_parent_headquarters"),
            "kind": _text(row, "consignee_kind") or PartyKind.commercial.value,
            "veu": _text(row, "consignee_veu"),
            "veu_destinations": _list(row, "consignee_veu_destinations"),
            "lpp_operating_entity": _text(row, "lpp_operating_entity"),
        },
        "end_user": end_user,
        "end_use": _text(row, "end_use") or EndUse.other.value,
        "certifications": _list(row, "certifications"),
    }
    for name in REQUIRED:
        if row.get(name) is None or (isinstance(row.get(name), str) and not str(row.get(name)).strip()):
            raise TierlineError(name, "is required")
    return Transaction.model_validate(data)


DECISION_COLUMNS = (
    "line",
    "line_id",
    "date",
    "vintage",
    "reform",
    "destination",
    "tier",
    "chip",
    "quantity",
    "eccn",
    "level",
    "tpp",
    "license_required",
    "authorization",
    "review_policy",
    "needs_license",
    "draw_account",
    "draw_tpp",
    "rule",
    "citation",
    "exceptions_considered",
    "obligations",
    "warnings",
)


def decision_row(det: Determination, line: int, line_id: str | None) -> dict[str, Any]:
    """The decision written for a one-line determination."""
    result = det.lines[0]
    if len(result.draws) > 1:  # every rule draws at most one account per line
        raise AssertionError("a line drew more than one account")
    draw = result.draws[0] if result.draws else None
    c = result.facts.classification
    last = result.trace[-1]
    return {
        "line": line,
        "line_id": line_id,
        "date": det.facts.tx.date,
        "vintage": det.facts.ctx.vintage.name,
        "reform": det.facts.ctx.reform.name if det.facts.ctx.reform is not None else None,
        "destination": det.facts.destination,
        "tier": det.facts.tier if det.facts.ctx.vintage.has("tiers") else None,
        "chip": result.facts.item.chip,
        "quantity": result.facts.item.quantity,
        "eccn": c.eccn if c else None,
        "level": result.facts.level,
        "tpp": float(result.facts.tpp_total),
        "license_required": result.license_required,
        "authorization": result.authorization,
        "review_policy": result.review_policy,
        "needs_license": result.authorization == "LICENSE",
        "draw_account": draw.account if draw else None,
        "draw_tpp": float(draw.tpp) if draw else None,
        "rule": last.rule,
        "citation": last.citation,
        "exceptions_considered": LIST_SEPARATOR.join(result.considered) or None,
        "obligations": LIST_SEPARATOR.join(o.code for o in result.obligations) or None,
        "warnings": " | ".join(dict.fromkeys(det.facts.warnings + result.warnings)) or None,
    }


def parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())
