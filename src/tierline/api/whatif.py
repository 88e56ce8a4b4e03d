"""What-if analysis over HTTP (docs/api.md, "What-if"): scenarios (reforms as data), comparisons of a
transaction or an order book under two or more sides (a vintage, optionally with a scenario), the
pathway calculator, demand projections, and each of them as an HTML or PDF report.

Everything here reads the ledger (usage as allowance state) and records nothing in it; the only write
is storing a scenario under ``$TIERLINE_HOME/scenarios``. Order-book comparisons run synchronously
(books up to the upload limit) and are kept in this process, with their changed lines on disk under
``$TIERLINE_HOME/comparisons/<id>/`` for download.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import polars as pl
import yaml
from fastapi import APIRouter, Body, Depends, File, Form, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from tierline.api import keys as api_keys
from tierline.api.problems import PROBLEM, PROBLEM_SCHEMA, TITLES, problem
from tierline.compare import Side, compare_book, compare_transaction, comparison_report, parse_side
from tierline.determination import Transaction
from tierline.errors import TierlineError
from tierline.ledger import Ledger, LedgerAllowances
from tierline.reforms import (
    NAME_PATTERN,
    bundled_dir,
    get_reform,
    list_reforms,
    parse_reform,
    reform_origin,
    scenarios_dir,
)
from tierline.reports.html import render_html
from tierline.reports.model import Report
from tierline.reports.pdf import render_pdf
from tierline.screen.read import FORMATS

VERSION = "v1"
UPLOAD_PATHS = (f"/{VERSION}/compare/orders", "/dashboard/compare/orders")  # order books: the upload limit
PROBLEMS_SHOWN = 100  # invalid lines an order-book comparison lists
BOOK_SUFFIXES = tuple(FORMATS)  # the order-book file types (screen.read)
BOOK_MEDIA = {".csv": "text/csv", ".parquet": "application/octet-stream"}
KEEP_COMPARISONS = 50
MAX_DEMAND_ROWS = 10_000
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)
REPORT_MEDIA = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


# ---- OpenAPI helpers ------------------------------------------------------------------------------
def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"description": TITLES.get(c, "Error"), "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}} for c in codes}


READ_ERRORS = _problems(400, 401, 403, 404, 413, 422)
WRITE_ERRORS = _problems(400, 401, 403, 404, 409, 413, 422)


def _ok(schema: dict[str, Any], example: Any, description: str, status: int = 200) -> dict[int | str, Any]:
    return {
        status: {"description": description, "content": {"application/json": {"schema": schema, "example": example}}}
    }


def _report_ok(what: str) -> dict[int | str, Any]:
    return {
        200: {
            "description": f"The {what} as a report: one self-contained HTML file or a PDF (Content-Disposition "
            "names the file)",
            "content": {
                "text/html": {"schema": {"type": "string"}, "example": '<!doctype html><html lang="en">…</html>'},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}, "example": "%PDF-1.4 …"},
            },
        }
    }


def _nullable(kind: str | list[str]) -> dict[str, Any]:
    kinds = [kind] if isinstance(kind, str) else list(kind)
    return {"type": [*kinds, "null"]}


STR, INT, NUM, BOOL = ({"type": t} for t in ("string", "integer", "number", "boolean"))
OBJ: dict[str, Any] = {"type": "object"}
STRS: dict[str, Any] = {"type": "array", "items": STR}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


SIDE_SCHEMA = _object({"label": STR, "vintage": STR, "reform": _nullable("string")})
SCENARIO_SCHEMA = _object(
    {
        "name": STR,
        "description": STR,
        "parameters": _array(_object({"path": STR, "from": STR, "value": {}})),
        "countries": _array(
            _object(
                {"country": STR, "group": STR, "change": {"type": "string", "enum": ["added", "removed"]}, "from": STR}
            )
        ),
        "origin": {"type": "string", "enum": ["bundled", "stored"]},
        "digest": STR,
        "citation": STR,
    }
)
SCENARIO_LIST_SCHEMA = _object(
    {
        "scenarios": _array(
            _object({"name": STR, "origin": {"type": "string", "enum": ["bundled", "stored"]}, "description": STR})
        )
    }
)
OUTCOME_SCHEMA = _object(
    {
        "license_required": BOOL,
        "authorization": STR,
        "review_policy": _nullable("string"),
        "draw_account": _nullable("string"),
        "draw_tpp": _nullable("number"),
        "rule": STR,
        "citation": STR,
    }
)
STEP_SCHEMA = {
    "anyOf": [_object({"rule": STR, "citation": STR, "test": {}, "result": {}}), {"type": "null"}],
}
COMPARE_SCHEMA = _object(
    {
        "kind": {"type": "string", "enum": ["transaction"]},
        "as_of": STR,
        "baseline": STR,
        "sides": _array(SIDE_SCHEMA),
        "changed_lines": INT,
        "lines": _array(
            _object(
                {
                    "index": INT,
                    "item": {},
                    "outcomes": {"type": "object", "additionalProperties": OUTCOME_SCHEMA},
                    "changed": BOOL,
                    "changes": _array(
                        _object(
                            {
                                "side": STR,
                                "fields": {"type": "object", "additionalProperties": {"type": "array"}},
                                "difference": {
                                    "anyOf": [
                                        _object({"step": INT, "from": STEP_SCHEMA, "to": STEP_SCHEMA}),
                                        {"type": "null"},
                                    ]
                                },
                            }
                        )
                    ),
                }
            )
        ),
        "determinations": {"type": "object", "additionalProperties": OBJ},
    }
)
BOOK_SCHEMA = _object(
    {
        "id": STR,
        "created_by": STR,
        "created_at": STR,
        "file": STR,
        "skip_invalid": BOOL,
        "changed_url": _nullable("string"),
        "report_url": STR,
        "problems": _array(_object({"line": INT, "column": STR, "value": _nullable("string"), "reason": STR})),
        "comparison": _object(
            {
                "kind": {"type": "string", "enum": ["order_book"]},
                "baseline": STR,
                "sides": _array(SIDE_SCHEMA),
                "starting_state_as_of": _nullable("string"),
                "lines": INT,
                "compared_from": _nullable("string"),
                "outside_window": INT,
                "screened": INT,
                "rejected": INT,
                "changed_lines": INT,
                "per_side": _array(OBJ),
                "by_country": _array(OBJ),
                "transitions": _array(OBJ),
                "by_rule": _array(OBJ),
                "changed": _array(OBJ),
            }
        ),
    }
)
PATHWAY_ROW_SCHEMA = _object(
    {
        "pathway": STR,
        "label": STR,
        "available": BOOL,
        "why_not": _nullable("string"),
        "unlimited": BOOL,
        "limit_tpp": _nullable("number"),
        "used_tpp": _nullable("number"),
        "remaining_tpp": _nullable("number"),
        "units": _nullable("integer"),
        "h100_equivalents": _nullable("number"),
        "citations": STRS,
        "parameters": _array(OBJ),
        "notes": STRS,
        "details": OBJ,
    }
)
PATHWAYS_SCHEMA = _object(
    {
        "destination": STR,
        "destination_name": STR,
        "tier": INT,
        "tier_reason": STR,
        "tier_citation": STR,
        "tiers_apply": BOOL,
        "chip": _object(
            {"name": STR, "id": _nullable("string"), "tpp": NUM, "level": _nullable("string"), "source": STR}
        ),
        "h100_tpp": NUM,
        "entity": _nullable("string"),
        "headquarters": _nullable("string"),
        "consignees": {"anyOf": [INT, STRS]},
        "pathways": _array(PATHWAY_ROW_SCHEMA),
        "notes": STRS,
        "vintage": STR,
        "reform": _nullable("string"),
        "as_of": STR,
        "usage_source": STR,
    }
)
PROJECTION_SCHEMA = _object(
    {
        "sides": _array(SIDE_SCHEMA),
        "countries": STRS,
        "projections": _array(
            _object(
                {
                    "country": STR,
                    "country_name": STR,
                    "vintage": STR,
                    "reform": _nullable("string"),
                    "label": STR,
                    "side": STR,
                    "status": {"type": "string", "enum": ["runs_out", "fits", "never", "no_pathway", "no_allocation"]},
                    "headline": STR,
                    "binding": STR,
                    "tiers": _array(INT),
                    "runs_out_on": _nullable("string"),
                    "runs_out_line": _nullable("integer"),
                    "period_start": _nullable("string"),
                    "period_end": _nullable("string"),
                    "g2g_since": _nullable("string"),
                    "starting_usage_tpp": NUM,
                    "drawn_tpp": NUM,
                    "cap_at_period_end_tpp": _nullable("number"),
                    "used_at_period_end_tpp": _nullable("number"),
                    "fraction_used_at_period_end": _nullable("number"),
                    "cap_steps": _array(_object({"from": STR, "cap_tpp": _nullable("number")})),
                    "points": _array(
                        _object(
                            {
                                "line": INT,
                                "date": STR,
                                "tier": INT,
                                "tpp": NUM,
                                "drawn": BOOL,
                                "reason": _nullable("string"),
                                "cumulative_tpp": NUM,
                                "cap_tpp": _nullable("number"),
                                "fits": _nullable("boolean"),
                            }
                        )
                    ),
                    "parameters": _array(OBJ),
                    "citations": STRS,
                    "notes": STRS,
                }
            )
        ),
        "rows": INT,
        "as_of": STR,
        "until": _nullable("string"),
        "vintages": STRS,
        "reforms": _array(_nullable("string")),
        "notes": STRS,
        "usage_source": STR,
    }
)

SCENARIO_EXAMPLE = {
    "name": "poland-tier1",
    "description": "Move Poland to Tier 1 (supp. no. 5(a)) from 2025-07-01",
    "parameters": [],
    "countries": [{"country": "PL", "group": "SUPP5A", "change": "added", "from": "2025-07-01"}],
    "origin": "bundled",
    "digest": "5b0e…",
    "citation": "reform poland-tier1 (scenario, not law)",
}
SIDES_EXAMPLE = ["ai-diffusion", "ai-diffusion+poland-tier1"]
PL_TX = {
    "date": "2025-08-01",
    "destination": "PL",
    "items": [{"chip": "H100 SXM5", "quantity": 2000}],
    "ultimate_consignee": {"id": "acme-pl", "name": "Acme Polska", "country": "PL", "headquarters": "PL"},
    "end_use": "data_center",
}
COMPARE_EXAMPLE = {
    "kind": "transaction",
    "as_of": "2025-08-01",
    "baseline": "ai-diffusion",
    "sides": [
        {"label": "ai-diffusion", "vintage": "ai-diffusion", "reform": None},
        {"label": "ai-diffusion+poland-tier1", "vintage": "ai-diffusion", "reform": "poland-tier1"},
    ],
    "changed_lines": 1,
    "lines": [
        {
            "index": 0,
            "item": "H100 SXM5",
            "outcomes": {
                "ai-diffusion": {
                    "license_required": True,
                    "authorization": "LICENSE",
                    "review_policy": "presumption_of_approval",
                    "draw_account": "allocation:PL",
                    "draw_tpp": 31662400.0,
                    "rule": "Tier 2 country allocation",
                    "citation": "15 CFR 742.6(b)(10)",
                },
                "ai-diffusion+poland-tier1": {
                    "license_required": True,
                    "authorization": "LICENSE",
                    "review_policy": "case_by_case",
                    "draw_account": None,
                    "draw_tpp": None,
                    "rule": "Review: Tier 1 destination, licence needed (AIA not available)",
                    "citation": "15 CFR 742.6(b)(10)",
                },
            },
            "changed": True,
            "changes": [
                {
                    "side": "ai-diffusion+poland-tier1",
                    "fields": {
                        "review_policy": ["presumption_of_approval", "case_by_case"],
                        "draw_account": ["allocation:PL", None],
                    },
                    "difference": {
                        "step": 13,
                        "from": {
                            "rule": "Tier 2 country allocation",
                            "citation": "15 CFR 742.6(b)(10)",
                            "test": "cumulative licensed TPP with this line within the country allocation",
                            "result": True,
                        },
                        "to": {
                            "rule": "Review: Tier 1 destination, licence needed (AIA not available)",
                            "citation": "15 CFR 742.6(b)(10)",
                            "test": "case-by-case (unconfirmed)",
                            "result": "case_by_case",
                        },
                    },
                }
            ],
        }
    ],
    "determinations": {"ai-diffusion": {"authorization": "LICENSE", "tier": 2}, "ai-diffusion+poland-tier1": {}},
}
BOOK_EXAMPLE = {
    "id": "7c0d4e2a9b1f4a33",
    "created_by": "key:9f3c2a1b",
    "created_at": "2026-11-24T21:00:00+00:00",
    "file": "orders.csv",
    "skip_invalid": False,
    "changed_url": "/v1/compare/orders/7c0d4e2a9b1f4a33/changed",
    "report_url": "/v1/compare/orders/7c0d4e2a9b1f4a33/report",
    "problems": [],
    "comparison": {
        "kind": "order_book",
        "baseline": "ai-diffusion",
        "sides": COMPARE_EXAMPLE["sides"],
        "starting_state_as_of": "2025-08-01",
        "lines": 2,
        "compared_from": "2025-01-13",
        "outside_window": 0,
        "screened": 2,
        "rejected": 0,
        "changed_lines": 1,
        "per_side": [
            {
                "authorization": "LICENSE",
                "review_policy": "case_by_case",
                "lines": 1,
                "side": "ai-diffusion+poland-tier1",
            }
        ],
        "by_country": [{"destination": "PL", "side": "ai-diffusion+poland-tier1", "lines": 1, "changed": 1}],
        "transitions": [
            {
                "side": "ai-diffusion+poland-tier1",
                "from_authorization": "LICENSE",
                "to_authorization": "LICENSE",
                "from_review_policy": "presumption_of_approval",
                "to_review_policy": "case_by_case",
                "lines": 1,
            }
        ],
        "by_rule": [],
        "changed": [{"line": 1, "line_id": "L1", "destination": "PL", "side": "ai-diffusion+poland-tier1"}],
    },
}
PATHWAYS_EXAMPLE = {
    "destination": "BR",
    "destination_name": "Brazil",
    "tier": 2,
    "tier_reason": "Brazil is neither in supp. no. 5(a) nor D:5/Macau",
    "tier_citation": "15 CFR 740 Supp. 1 (Country Groups)",
    "tiers_apply": True,
    "chip": {
        "name": "H100 reference",
        "id": None,
        "tpp": 15832.0,
        "level": "a",
        "source": "parameter reference_chip.h100_tpp",
    },
    "h100_tpp": 15832.0,
    "entity": None,
    "headquarters": None,
    "consignees": 1,
    "pathways": [
        {
            "pathway": "allocation",
            "label": "Country allocation",
            "available": True,
            "why_not": None,
            "unlimited": False,
            "limit_tpp": 790000000.0,
            "used_tpp": 31662400.0,
            "remaining_tpp": 758337600.0,
            "units": 47899,
            "h100_equivalents": 47899.04,
            "citations": ["15 CFR 742.6(b)(10)"],
            "parameters": [{"parameter": "allocation.tier2_cumulative_tpp", "value": 790000000}],
            "notes": ["only licensed a-level exports draw the allocation; LPP and Data Center VEU shipments do not"],
            "details": {"account": "allocation:BR", "g2g_since": None, "g2g_doubled": False},
        }
    ],
    "notes": ["no entity given: NVEU and UVEU rows need --entity"],
    "vintage": "ai-diffusion",
    "reform": None,
    "as_of": "2025-06-01",
    "usage_source": "ledger",
}
PROJECTION_EXAMPLE = {
    "sides": [{"vintage": "ai-diffusion", "reform": None, "label": "ai-diffusion"}],
    "countries": ["BR"],
    "projections": [
        {
            "country": "BR",
            "country_name": "Brazil",
            "vintage": "ai-diffusion",
            "reform": None,
            "label": "ai-diffusion",
            "side": "ai-diffusion",
            "status": "runs_out",
            "headline": "runs out on 2026-03-01 (line 3)",
            "binding": "Tier 2 country allocation",
            "tiers": [2],
            "runs_out_on": "2026-03-01",
            "runs_out_line": 3,
            "period_start": "2025-01-01",
            "period_end": "2027-12-31",
            "g2g_since": None,
            "starting_usage_tpp": 0.0,
            "drawn_tpp": 949872000.0,
            "cap_at_period_end_tpp": 790000000.0,
            "used_at_period_end_tpp": 949872000.0,
            "fraction_used_at_period_end": 1.2,
            "cap_steps": [{"from": "2025-01-01", "cap_tpp": 790000000.0}],
            "points": [],
            "parameters": [],
            "citations": ["15 CFR 742.6(b)(10)"],
            "notes": [],
        }
    ],
    "rows": 3,
    "as_of": "2026-03-01",
    "until": None,
    "vintages": ["ai-diffusion"],
    "reforms": [None],
    "notes": [],
    "usage_source": "ledger",
}
DEMAND_EXAMPLE = [
    {"date": "2025-09-01", "country": "BR", "chip": "H100 SXM5", "quantity": 20000},
    {"date": "2026-01-01", "country": "BR", "chip": "H100 SXM5", "quantity": 20000},
    {"date": "2026-03-01", "country": "BR", "chip": "H100 SXM5", "quantity": 20000},
    {"date": "2025-09-01", "country": "PL", "chip": "H100 SXM5", "quantity": 30000},
]


# ---- request bodies --------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ParameterChangeIn(_Body):
    """A new value of one parameter from a date (replaces the base values dated on or after it)."""

    path: str = Field(..., min_length=1, max_length=200, examples=["lpp.annual_tpp_per_consignee"])
    from_: dt.date = Field(..., alias="from", examples=["2026-01-01"])
    value: Any = Field(..., examples=[10_000_000])
    unit: str | None = Field(None, max_length=40, examples=["tpp"])


class CountryChangeIn(_Body):
    """A dated change of a country's group (SUPP5A = supp. no. 5(a), Tier 1; or a Country Group)."""

    country: str = Field(..., min_length=1, max_length=100, examples=["PL"])
    group: str = Field(..., min_length=1, max_length=20, examples=["SUPP5A"])
    change: Literal["added", "removed"] = Field(..., examples=["added"])
    from_: dt.date = Field(..., alias="from", examples=["2025-07-01"])


class ScenarioRequest(_Body):
    """A reform: a named patch over the dated parameters and the country lists (docs/scenarios.md)."""

    name: str = Field(..., pattern=NAME_PATTERN.pattern, examples=["lpp-20m"])
    description: str = Field("", max_length=2000, examples=["Lower the LPP annual limit to 20,000,000 TPP from 2026"])
    parameters: list[ParameterChangeIn] = Field([], max_length=200)
    countries: list[CountryChangeIn] = Field([], max_length=500)


SideText = Annotated[str, Field(min_length=1, max_length=120)]
SidesField = Field(..., min_length=2, max_length=6, examples=[SIDES_EXAMPLE])


class CompareRequest(_Body):
    """A transaction (as for POST /v1/determinations) and the sides to determine it under; the first is
    the baseline."""

    transaction: Transaction
    sides: list[SideText] = SidesField


class DemandRowIn(_Body):
    """One planned delivery: `quantity` chips of `chip` (catalogue name, or H100e) to `country` on `date`."""

    date: dt.date = Field(..., examples=["2025-09-01"])
    country: str = Field(..., min_length=1, max_length=100, examples=["BR"])
    chip: str = Field(..., min_length=1, max_length=200, examples=["H100 SXM5"])
    quantity: int = Field(..., ge=0, le=10**12, examples=[20000])


class ProjectionRequest(_Body):
    """A demand series and the sides to project it under (default: the AI Diffusion rule as enacted)."""

    demand: list[DemandRowIn] = Field(..., min_length=1, max_length=MAX_DEMAND_ROWS)
    sides: list[SideText] = Field(["ai-diffusion"], min_length=1, max_length=6, examples=[SIDES_EXAMPLE])
    until: dt.date | None = Field(None, examples=["2027-12-31"])


ComparisonId = Annotated[str, PathParam(max_length=40, examples=["7c0d4e2a9b1f4a33"])]
ScenarioName = Annotated[str, PathParam(max_length=64, examples=["poland-tier1"])]
COMPARE_EXAMPLES = {
    "A Polish order, with and without Poland in Tier 1": {"value": {"transaction": PL_TX, "sides": SIDES_EXAMPLE}}
}
PROJECTION_EXAMPLES = {
    "Brazil and Poland, with and without Poland in Tier 1": {
        "value": {"demand": DEMAND_EXAMPLE, "sides": SIDES_EXAMPLE}
    }
}
ReportFormat = Annotated[
    Literal["html", "pdf"],
    Query(alias="format", description="html (one self-contained file) or pdf.", examples=["pdf"]),
]


# ---- errors --------------------------------------------------------------------------------------------
_INPUT_FILE = re.compile(r"^<request>: ")
_VALUE_NOTE = re.compile(r"^(.*\.value) \(.*\)$")
_DEMAND_LINE = re.compile(r"^demand: line (\d+), column (\w+)$")


def _scenario_field(field_name: str) -> str:
    """A reform validator's field (``<request>: parameters[0].value (lpp.x)``) as the body path."""
    name = _INPUT_FILE.sub("", field_name)
    name = _VALUE_NOTE.sub(r"\1", name)
    return "body" if name in ("<root>", "<file>") else name


def _within(day: dt.date | None, name: str) -> dt.date | None:
    if day is not None and not EARLIEST <= day <= LATEST:
        raise TierlineError(name, f"{day.isoformat()} is outside {EARLIEST.isoformat()}..{LATEST.isoformat()}")
    return day


def sides_of(texts: Sequence[str], field_name: str = "sides") -> list[Side]:
    """``VINTAGE`` or ``VINTAGE+SCENARIO`` each, checked; an error names ``sides[i]``."""
    return [parse_side(text, f"{field_name}[{i}]") for i, text in enumerate(texts)]


def report_response(report: Report, fmt: str, stem: str) -> Response:
    """A report as a download: HTML (self-contained) or PDF, with its file name."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "-", stem).strip("-") or "report"
    data = render_pdf(report) if fmt == "pdf" else render_html(report).encode()
    return Response(
        data,
        media_type=REPORT_MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{safe}.{fmt}"', "Cache-Control": "no-store"},
    )


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload, default=str), status_code=status, media_type="application/json")


# ---- usage read from the ledger -------------------------------------------------------------------------
class CachedUsage:
    """The ledger as of each date asked (committed plus live holds dated on or before it, as
    ``tierline pathways`` and ``tierline project`` read it), each (account, date) read once."""

    def __init__(self, ledger: Ledger) -> None:
        from tierline.pathways import LedgerUsage

        self.usage = LedgerUsage(ledger)
        self._used: dict[tuple[str, dt.date], Fraction] = {}
        self._g2g: dict[str, dt.date | None] = {}

    def used(self, account: str, on: dt.date) -> Fraction:
        key = (account, on)
        if key not in self._used:
            self._used[key] = self.usage.used(account, on)
        return self._used[key]

    def accounts(self, prefix: str, on: dt.date) -> dict[str, Fraction]:
        return self.usage.accounts(prefix, on)

    def g2g_since(self, country: str) -> dt.date | None:
        if country not in self._g2g:
            self._g2g[country] = self.usage.g2g_since(country)
        return self._g2g[country]


# ---- the analyses, shared with the dashboard ---------------------------------------------------------
def scenario_answer(name: str) -> dict[str, Any]:
    """A stored or bundled scenario's validated changes, its origin, digest and citation."""
    reform = get_reform(name)
    origin = reform_origin(name) or "stored"
    return {**reform.as_dict(), "origin": origin, "digest": reform.digest, "citation": reform.citation()}


def scenarios_answer() -> dict[str, Any]:
    return {
        "scenarios": [
            {"name": r["name"], "origin": r["origin"], "description": r["description"]} for r in list_reforms()
        ]
    }


def store_scenario(data: Mapping[str, Any], replace: bool = False) -> tuple[dict[str, Any], bool]:
    """Validate a reform and store it as ``$TIERLINE_HOME/scenarios/NAME.yaml`` (atomically). A name that
    is already stored is a conflict unless `replace`; a bundled example's name is never taken over."""
    try:
        reform = parse_reform(dict(data), "<request>")
    except TierlineError as exc:
        raise TierlineError(_scenario_field(exc.field), exc.reason) from None
    if (bundled_dir() / f"{reform.name}.yaml").exists():
        raise ScenarioConflict(f"{reform.name!r} is a bundled example scenario; choose another name")
    target = scenarios_dir() / f"{reform.name}.yaml"
    existed = target.exists()
    if existed and not replace:
        raise ScenarioConflict(f"a scenario {reform.name!r} is already stored; send replace=true to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, suffix=".tmp", delete=False) as handle:
        handle.write(text)
    try:
        if replace:
            os.replace(handle.name, target)
        else:
            os.link(handle.name, target)  # never over one stored meanwhile by another request
    except FileExistsError:
        raise ScenarioConflict(
            f"a scenario {reform.name!r} is already stored; send replace=true to replace it"
        ) from None
    finally:
        Path(handle.name).unlink(missing_ok=True)
    return scenario_answer(reform.name), existed


def transaction_comparison(tx: Transaction, sides: Sequence[str], ledger: Ledger) -> dict[str, Any]:
    """compare_transaction against the ledger's usage; an error from the engine names ``transaction.*``."""
    chosen = sides_of(sides)
    try:
        return compare_transaction(tx, chosen, LedgerAllowances(ledger))
    except TierlineError as exc:
        if exc.field == "sides" or exc.field.startswith("sides["):
            raise
        raise TierlineError(f"transaction.{exc.field}", exc.reason) from None


def pathway_result(
    ledger: Ledger,
    destination: str,
    as_of: dt.date | None,
    vintage: str,
    scenario: str | None,
    entity: str | None,
    headquarters: str | None,
    consignees: str,
    chip: str | None,
) -> Any:
    """The pathway calculator on the ledger's usage (tierline.pathways.pathways); errors name the query
    parameter (``as_of`` for the date)."""
    from tierline.pathways import parse_consignees, pathways

    day = _within(as_of, "as_of") or dt.date.today()
    reform = get_reform(scenario) if scenario else None
    try:
        return pathways(
            destination,
            day,
            vintage=vintage,
            reform=reform,
            entity=entity or None,
            headquarters=headquarters or None,
            consignees=parse_consignees(consignees),
            chip=chip or None,
            state=CachedUsage(ledger),
        )
    except TierlineError as exc:
        raise TierlineError("as_of" if exc.field == "on" else exc.field, exc.reason) from None


def demand_frame(rows: Sequence[DemandRowIn]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [r.date.isoformat() for r in rows],
            "country": [r.country for r in rows],
            "chip": [r.chip for r in rows],
            "quantity": [str(r.quantity) for r in rows],
        },
        schema=dict.fromkeys(("date", "country", "chip", "quantity"), pl.String),
    )


def projection_result(
    ledger: Ledger,
    demand: pl.DataFrame,
    sides: Sequence[str],
    until: dt.date | None,
    field_of_line: Any = None,
) -> Any:
    """The projection on the ledger's usage (tierline.projection.project). A bad demand row is named
    by `field_of_line(line, column)` (default ``demand[i].column``, i counting from 0)."""
    from tierline.projection import project, read_demand

    def row_field(line: int, column: str) -> str:
        return f"demand[{line - 2}].{column}"

    name_of = field_of_line or row_field
    chosen = sides_of(sides)
    try:
        rows = read_demand(demand, name="demand")
    except TierlineError as exc:
        found = _DEMAND_LINE.match(exc.field)
        if found:
            raise TierlineError(name_of(int(found.group(1)), found.group(2)), exc.reason) from None
        raise
    return project(
        rows,
        chosen,
        state=CachedUsage(ledger),
        until=_within(until, "until"),
    )


class PathwayQuery:
    """The pathway calculator's query parameters (GET /v1/pathways and its report)."""

    def __init__(
        self,
        destination: Annotated[
            str, Query(min_length=1, max_length=100, description="ISO2, ISO3 or name.", examples=["BR"])
        ],
        as_of: Annotated[dt.date | None, Query(description="Date (default today).", examples=["2025-06-01"])] = None,
        vintage: Annotated[str, Query(max_length=40, description="Rule vintage.", examples=["ai-diffusion"])] = (
            "ai-diffusion"
        ),
        scenario: Annotated[
            str | None, Query(max_length=64, description="A stored or bundled scenario.", examples=["double-tier2"])
        ] = None,
        entity: Annotated[
            str | None,
            Query(
                max_length=200, description="Data Center VEU entity: adds its NVEU and UVEU rows.", examples=["dc-op"]
            ),
        ] = None,
        headquarters: Annotated[
            str | None, Query(max_length=100, description="The entity's headquarters.", examples=["US"])
        ] = None,
        consignees: Annotated[
            str,
            Query(max_length=2000, description="LPP consignees: a number, or comma-separated ids.", examples=["1"]),
        ] = "1",
        chip: Annotated[
            str | None,
            Query(
                max_length=200,
                description="Catalogue chip the counts are in (default the H100).",
                examples=["H100 SXM5"],
            ),
        ] = None,
    ) -> None:
        self.destination, self.as_of, self.vintage, self.scenario = destination, as_of, vintage, scenario
        self.entity, self.headquarters, self.consignees, self.chip = entity, headquarters, consignees, chip

    def result(self, ledger: Ledger) -> Any:
        return pathway_result(
            ledger,
            self.destination,
            self.as_of,
            self.vintage,
            self.scenario,
            self.entity,
            self.headquarters,
            self.consignees,
            self.chip,
        )


# ---- order-book comparisons ----------------------------------------------------------------------------
@dataclass
class BookRun:
    """One order book compared: who asked, the comparison (without server paths) and its files."""

    id: str
    created_by: str
    file: str
    skip_invalid: bool
    folder: Path
    payload: dict[str, Any]
    changed: Path | None
    problems: list[dict[str, Any]]
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    def as_dict(self) -> dict[str, Any]:
        base = f"/{VERSION}/compare/orders/{self.id}"
        return {
            "id": self.id,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "file": self.file,
            "skip_invalid": self.skip_invalid,
            "changed_url": f"{base}/changed" if self.changed else None,
            "report_url": f"{base}/report",
            "problems": self.problems,
            "comparison": self.payload,
        }


class Comparisons:
    """The order-book comparisons of this service process (the last `keep`; files on disk)."""

    def __init__(self, root: Path, keep: int = KEEP_COMPARISONS) -> None:
        self.root, self.keep = root, keep
        self.runs: dict[str, BookRun] = {}
        self.lock = threading.Lock()

    def get(self, run_id: str) -> BookRun | None:
        return self.runs.get(run_id)

    def run(
        self,
        ledger: Ledger,
        upload: Path,
        filename: str,
        sides: list[Side],
        skip_invalid: bool,
        actor: str,
    ) -> BookRun:
        """Compare the uploaded book under `sides` from the ledger's usage as of its first date. Invalid
        lines refuse the book (422 listing them) unless `skip_invalid`."""
        from tierline.screen.run import first_date, ledger_snapshot

        run_id = uuid.uuid4().hex[:16]
        folder = self.root / run_id
        folder.mkdir(parents=True)
        suffix = upload.suffix.lower()
        orders = folder / f"orders{suffix}"
        shutil.move(str(upload), orders)
        try:
            try:
                first = first_date(orders)
                start = ledger_snapshot(ledger, first) if first is not None else None
                comparison = compare_book(
                    orders, sides, out=folder / f"changed{suffix}", start=start, skip_invalid=True
                )
            except TierlineError as exc:
                raise TierlineError("file", exc.reason.replace(str(orders), filename)) from None
            problems = [b.as_dict() for b in comparison.result.bad[:PROBLEMS_SHOWN]]
            if comparison.result.bad_count and not skip_invalid:
                raise InvalidBook(comparison.result.bad_count, problems)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        payload = comparison.as_dict(rows=100)
        payload.pop("out", None)
        payload.pop("rejects", None)
        found = BookRun(run_id, actor, filename, skip_invalid, folder, payload, comparison.out, problems)
        with self.lock:
            self.runs[run_id] = found
            while len(self.runs) > self.keep:
                oldest = next(iter(self.runs))
                shutil.rmtree(self.runs.pop(oldest).folder, ignore_errors=True)
        return found


class InvalidBook(Exception):
    """An order book with invalid lines, compared without skip_invalid: nothing is compared."""

    def __init__(self, count: int, problems: list[dict[str, Any]]) -> None:
        super().__init__(f"{count} invalid line(s)")
        self.count, self.problems = count, problems

    def response(self) -> Response:
        """A 422 problem naming the file and, for each of the first 50 bad lines, its line and column."""
        errors = [{"field": "file", "reason": f"{self.count} invalid line(s)"}]
        errors += [
            {"field": f"file: line {p['line']}, column {p['column']}", "reason": f"{p['value']!r}: {p['reason']}"}
            for p in self.problems[:50]
        ]
        detail = (
            f"file: {self.count} invalid line(s); nothing compared (send skip_invalid=true to compare the valid lines)"
        )
        return problem(422, detail, errors)


class ScenarioConflict(Exception):
    """A scenario name that is taken."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def response(self) -> Response:
        return problem(409, f"name: {self.reason}", [{"field": "name", "reason": self.reason}])


# ---- the router ------------------------------------------------------------------------------------------
def whatif_router(ledger: Ledger, roles: Mapping[str, Any], comparisons: Comparisons) -> APIRouter:
    """The /v1 what-if operations; `roles` maps viewer/analyst/... to the service's key dependencies."""
    viewer, analyst = roles["viewer"], roles["analyst"]
    router = APIRouter(prefix=f"/{VERSION}")

    # ---- scenarios ---------------------------------------------------------------------------------
    @router.get(
        "/scenarios",
        tags=["what-if"],
        responses=READ_ERRORS
        | _ok(
            SCENARIO_LIST_SCHEMA,
            {"scenarios": [{"name": "poland-tier1", "origin": "bundled", "description": "Move Poland to Tier 1"}]},
            "Stored scenarios and the bundled examples (a stored one shadows a bundled one of the same name)",
        ),
    )
    def list_scenarios(who: api_keys.Caller = viewer) -> Response:
        """Every scenario this service knows: stored ($TIERLINE_HOME/scenarios) and bundled examples."""
        return _json(scenarios_answer())

    @router.get(
        "/scenarios/{name}",
        tags=["what-if"],
        responses=READ_ERRORS | _ok(SCENARIO_SCHEMA, SCENARIO_EXAMPLE, "The scenario's validated changes"),
    )
    def scenario(name: ScenarioName, who: api_keys.Caller = viewer) -> Response:
        """One scenario: its dated parameter values and country-group changes, validated against the
        parameter tree in use."""
        try:
            return _json(scenario_answer(name))
        except TierlineError as exc:
            if exc.field == "scenario":
                raise HTTPException(404, f"name: {exc.reason}") from None
            raise

    @router.post(
        "/scenarios",
        tags=["what-if"],
        status_code=201,
        responses=WRITE_ERRORS | _ok(SCENARIO_SCHEMA, {**SCENARIO_EXAMPLE, "origin": "stored"}, "Stored", 201),
    )
    def create_scenario(
        body: Annotated[
            ScenarioRequest,
            Body(
                openapi_examples={
                    "LPP at 20M TPP from 2026": {
                        "value": {
                            "name": "lpp-20m",
                            "description": "Lower the LPP annual limit to 20,000,000 TPP from 2026-01-01",
                            "parameters": [
                                {
                                    "path": "lpp.annual_tpp_per_consignee",
                                    "from": "2026-01-01",
                                    "value": 20000000,
                                    "unit": "tpp",
                                }
                            ],
                        }
                    },
                    "Mexico to Tier 1": {
                        "value": {
                            "name": "mexico-tier1",
                            "countries": [
                                {"country": "MX", "group": "SUPP5A", "change": "added", "from": "2025-07-01"}
                            ],
                        }
                    },
                }
            ),
        ],
        replace: Annotated[
            bool, Query(description="Replace a stored scenario of the same name.", examples=[False])
        ] = False,
        who: api_keys.Caller = analyst,
    ) -> Response:
        """Validate a reform (unknown parameter path, wrong unit, a date before the parameter exists, an
        unknown country or group are refused naming the entry) and store it for every user of the
        service. A scenario is not law: nothing under it reaches the ledger."""
        try:
            answer, _ = store_scenario(body.model_dump(by_alias=True, exclude_none=True), replace)
        except ScenarioConflict as exc:
            return exc.response()
        return _json(answer, 201)

    # ---- comparisons ---------------------------------------------------------------------------------
    @router.post(
        "/compare",
        tags=["what-if"],
        responses=READ_ERRORS
        | _ok(COMPARE_SCHEMA, COMPARE_EXAMPLE, "Each side's outcome per line, what changed and where the traces part"),
    )
    def compare_route(
        body: Annotated[CompareRequest, Body(openapi_examples=COMPARE_EXAMPLES)], who: api_keys.Caller = viewer
    ) -> Response:
        """A transaction determined under each side (the transaction's own vintage is replaced by the
        side's), against the ledger's current usage: per line each side's outcome, the fields that change
        against the first side and the first step where the explanations part, with citations."""
        return _json(transaction_comparison(body.transaction, body.sides, ledger))

    @router.post("/compare/report", tags=["what-if"], responses=READ_ERRORS | _report_ok("comparison"))
    def compare_report_route(
        body: Annotated[CompareRequest, Body(openapi_examples=COMPARE_EXAMPLES)],
        fmt: ReportFormat = "html",
        who: api_keys.Caller = viewer,
    ) -> Response:
        """The comparison of a transaction as a report (HTML or PDF)."""
        answer = transaction_comparison(body.transaction, body.sides, ledger)
        return report_response(comparison_report(answer), fmt, f"comparison-{answer['as_of']}")

    @router.post(
        "/compare/orders",
        tags=["what-if"],
        responses=WRITE_ERRORS | _problems(415) | _ok(BOOK_SCHEMA, BOOK_EXAMPLE, "The book's comparison"),
    )
    def compare_orders(
        file: Annotated[UploadFile, File(description="Order book: .csv, .parquet or .jsonl (docs/screening.md).")],
        sides: Annotated[
            list[str], Form(description="Two or more sides, the first the baseline.", examples=[SIDES_EXAMPLE])
        ],
        skip_invalid: Annotated[bool, Form(description="Compare the valid lines of a book with invalid ones.")] = False,
        who: api_keys.Caller = analyst,
    ) -> Response:
        """Screen an order book under every side from the same starting allowances (the ledger's usage as of
        the book's first date) and report the lines whose outcome changes: transitions, the rules that
        decided them, countries, the first 100 changed lines; every changed line is downloadable."""
        name = Path(file.filename or "").name
        suffix = Path(name).suffix.lower()
        if suffix not in BOOK_SUFFIXES:
            raise HTTPException(415, "upload a .csv, .parquet or .jsonl file")
        chosen = sides_of([s for s in sides if s.strip()] if len(sides) > 1 else _split(sides))
        with tempfile.NamedTemporaryFile(delete=False, suffix=suffix) as handle:
            while chunk := file.file.read(1 << 20):
                handle.write(chunk)
        try:
            found = comparisons.run(ledger, Path(handle.name), name, chosen, skip_invalid, who.actor)
        except InvalidBook as exc:
            return exc.response()
        finally:
            Path(handle.name).unlink(missing_ok=True)
        return _json(found.as_dict())

    def _run(comparison_id: str) -> BookRun:
        found = comparisons.get(comparison_id)
        if found is None:
            raise HTTPException(404, f"no comparison {comparison_id!r}")
        return found

    @router.get(
        "/compare/orders/{comparison_id}",
        tags=["what-if"],
        responses=READ_ERRORS | _ok(BOOK_SCHEMA, BOOK_EXAMPLE, "The book's comparison"),
    )
    def comparison(comparison_id: ComparisonId, who: api_keys.Caller = viewer) -> Response:
        """An order-book comparison made on this service (the last 50 are kept)."""
        return _json(_run(comparison_id).as_dict())

    @router.get(
        "/compare/orders/{comparison_id}/changed",
        tags=["what-if"],
        responses=READ_ERRORS
        | _problems(409)
        | {
            200: {
                "description": "Every changed line (a row per side that differs), in the upload's format",
                "content": {
                    "text/csv": {"example": "line,line_id,date,destination,chip,quantity,baseline,side,...\n"},
                    "application/octet-stream": {},
                    "application/x-ndjson": {},
                },
            }
        },
    )
    def comparison_changed(comparison_id: ComparisonId, who: api_keys.Caller = viewer) -> FileResponse:
        """Download every changed line: the baseline's and the side's outcome, rule and citation."""
        found = _run(comparison_id)
        if found.changed is None or not found.changed.exists():
            raise HTTPException(409, f"comparison {comparison_id} has no changed-lines file")
        media = BOOK_MEDIA.get(found.changed.suffix, "application/x-ndjson")
        return FileResponse(
            found.changed, media_type=media, filename=f"{Path(found.file).stem}.changed{found.changed.suffix}"
        )

    @router.get(
        "/compare/orders/{comparison_id}/report",
        tags=["what-if"],
        responses=READ_ERRORS | _report_ok("book comparison"),
    )
    def comparison_report_route(
        comparison_id: ComparisonId, fmt: ReportFormat = "html", who: api_keys.Caller = viewer
    ) -> Response:
        """An order-book comparison as a report (HTML or PDF)."""
        found = _run(comparison_id)
        return report_response(comparison_report(found.payload), fmt, f"comparison-{Path(found.file).stem}")

    # ---- pathways ------------------------------------------------------------------------------------
    @router.get(
        "/pathways",
        tags=["what-if"],
        responses=READ_ERRORS
        | _ok(PATHWAYS_SCHEMA, PATHWAYS_EXAMPLE, "Every pathway: open or not, limit, usage, what remains"),
    )
    def pathways_route(who: api_keys.Caller = viewer, query: PathwayQuery = Depends()) -> Response:
        """What can still reach a destination on a date, per pathway (Tier 2 country allocation, LPP, NVEU,
        UVEU, Tier 1/3), in TPP, whole chips and H100-equivalents, from the ledger's usage on that date."""
        return _json({**query.result(ledger).as_dict(), "usage_source": "ledger"})

    @router.get("/pathways/report", tags=["what-if"], responses=READ_ERRORS | _report_ok("pathway analysis"))
    def pathways_report_route(
        who: api_keys.Caller = viewer, query: PathwayQuery = Depends(), fmt: ReportFormat = "html"
    ) -> Response:
        """The pathway analysis as a report (HTML or PDF): table, chart, parameters and citations."""
        from tierline.pathways import pathways_report

        result = query.result(ledger)
        return report_response(pathways_report(result), fmt, f"pathways-{result.destination}-{result.on.isoformat()}")

    # ---- projections -----------------------------------------------------------------------------------
    def _projection(body: ProjectionRequest) -> Any:
        return projection_result(ledger, demand_frame(body.demand), body.sides, body.until)

    @router.post(
        "/projections",
        tags=["what-if"],
        responses=READ_ERRORS
        | _ok(PROJECTION_SCHEMA, PROJECTION_EXAMPLE, "Per country and side: when the allocation runs out"),
    )
    def projections_route(
        body: Annotated[ProjectionRequest, Body(openapi_examples=PROJECTION_EXAMPLES)], who: api_keys.Caller = viewer
    ) -> Response:
        """When a demand series exhausts each Tier 2 country allocation, per side, counting the ledger's
        recorded usage on each row's date."""
        return _json({**_projection(body).as_dict(), "usage_source": "ledger"})

    @router.post("/projections/report", tags=["what-if"], responses=READ_ERRORS | _report_ok("projection"))
    def projections_report_route(
        body: Annotated[ProjectionRequest, Body(openapi_examples=PROJECTION_EXAMPLES)],
        fmt: ReportFormat = "html",
        who: api_keys.Caller = viewer,
    ) -> Response:
        """The projection as a report (HTML or PDF): a table and a chart per country."""
        from tierline.projection import projection_report

        result = _projection(body)
        return report_response(projection_report(result), fmt, f"projection-{result.as_of.isoformat()}")

    return router


def _split(sides: list[str]) -> list[str]:
    """One form field may carry every side, comma-separated."""
    return [s.strip() for s in (sides[0] if sides else "").split(",") if s.strip()]


__all__ = [
    "UPLOAD_PATHS",
    "BookRun",
    "CachedUsage",
    "Comparisons",
    "InvalidBook",
    "whatif_router",
]
