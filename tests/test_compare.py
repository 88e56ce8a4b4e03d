"""Comparing a transaction or an order book under two or more sides (`tierline.compare`).

Every expected value is hand arithmetic from the regulation, the reference notes and the bundled reform
files, written out below; none comes from running tierline:

- H100 SXM5: 1,978.9 dense FP8 TFLOPS x 8 bits = 15,831.2 TPP per unit (chips.csv; as stated in
  tests/test_screen_properties.py). 2,000 H100 = 31,662,400 TPP; 500 = 7,915,600.
- An H100 is a 3A090.a (a-level) item: under ai-diffusion a licence is required to every destination
  (15 CFR 742.6(a)(6)(iii)(A)), so a line's `license_required` (the general requirement, before the
  exceptions) is true on every ai-diffusion side, whichever exception then authorizes it.
- AIA, 15 CFR 740.27: destination, consignee headquarters and ultimate parent headquarters in supp. no.
  5(a), an (a)(1) item by an approved designer, the (b)(2) certification. Poland is Tier 2 in the law
  (country-groups.csv); the poland-tier1 reform adds PL to supp. no. 5(a) from 2025-07-01.
- ACM (15 CFR 740.28) is for development, production or storage: never for a data_center end use.
- LPP, 15 CFR 740.29(a): 26,900,000 TPP per consignee per calendar year; 1,699 H100 = 26,897,208.8 fit,
  1,700 do not. lpp-10m lowers it to 10,000,000 from 2026-01-01: 631 H100 = 9,989,487.2 fit,
  632 = 10,005,318.4 do not. LPP does not draw the country allocation (ai-diffusion-rule.md §5.3, §6).
- Tier 2 country allocation, 15 CFR 742.6(b)(10): 790,000,000 TPP cumulative 2025-2027, presumption of
  approval while the line fits, presumption of denial once exhausted (ai-diffusion-rule.md §4.2, §6;
  the after-exhaustion policy is an unconfirmed parameter). double-tier2 makes it 1,580,000,000.
- Vintages in force: ear-2023 from 2023-11-17, ai-diffusion from 2025-01-13, enforcement-posture from
  2025-05-13 (policy/data/vintages.yaml; ai-diffusion-rule.md §1). Under ear-2023 and
  enforcement-posture (October 2023 scope) Brazil, outside D:1/D:4/D:5, needs no licence for an H100
  to a Brazilian-headquartered consignee.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from helpers import TIERLINE, run_cli, write_book
from tierline.allowances import InMemoryAllowances
from tierline.compare import (
    BookComparison,
    Side,
    compare_book,
    compare_transaction,
    comparison_chart_svg,
    comparison_report,
    parse_side,
)
from tierline.determination.model import Transaction
from tierline.errors import TierlineError
from tierline.reforms import get_reform
from tierline.screen.engine import screen_scalar
from tierline.screen.read import batches, parse

H100 = "H100 SXM5"
H100_TPP = Fraction("1978.9") * 8  # 15,831.2 TPP per unit
LPP_LIMIT = Fraction(26_900_000)  # 15 CFR 740.29(a)
LPP_10M = Fraction(10_000_000)  # reform lpp-10m, from 2026-01-01
ALLOCATION = Fraction(790_000_000)  # Tier 2, cumulative 2025-2027
DOUBLED = Fraction(1_580_000_000)  # reform double-tier2

LAW = "ai-diffusion"
POLAND = "ai-diffusion+poland-tier1"
LPP10 = "ai-diffusion+lpp-10m"
DOUBLE = "ai-diffusion+double-tier2"

AIA_CITE = "15 CFR 740.27"
LPP_CITE = "15 CFR 740.29"
REVIEW_CITE = "15 CFR 742.6(b)(10)"
HQ_CITE = "15 CFR 742.6(a)(6)(iii) (headquarters rule, formerly 15 CFR 744.23(a)(3))"
ALLOCATION_RULE = "Tier 2 country allocation"  # the review step of a Tier 2 a-level licence
APPROVAL, DENIAL = "presumption_of_approval", "presumption_of_denial"
CERTIFIED = "aia_certification;approved_designer"

# the changed-lines file: line identity, then each outcome field from the baseline and to the side
CHANGED_COLUMNS = [
    "line", "line_id", "date", "destination", "chip", "quantity", "baseline", "side",
    "from_tier", "to_tier", "from_license_required", "to_license_required",
    "from_authorization", "to_authorization", "from_review_policy", "to_review_policy",
    "from_draw_account", "to_draw_account", "from_draw_tpp", "to_draw_tpp",
    "from_rule", "to_rule", "from_citation", "to_citation",
]  # fmt: skip
TRANSITION = ("side", "from_authorization", "to_authorization", "from_review_policy", "to_review_policy")
RULE = ("side", "from_rule", "from_citation", "to_rule", "to_citation")
OUTCOME = ("side", "authorization", "review_policy")
AS_DICT_KEYS = {
    "kind", "baseline", "sides", "starting_state_as_of", "lines", "compared_from", "outside_window", "screened",
    "rejected", "changed_lines", "per_side", "by_country", "transitions", "by_rule", "changed", "out", "rejects",
}  # fmt: skip


def test_hand_arithmetic() -> None:
    assert Fraction("15831.2") == H100_TPP
    assert 2000 * H100_TPP == 31_662_400 > LPP_LIMIT  # 2,000 H100 need more than LPP allows
    assert 1699 * H100_TPP <= LPP_LIMIT < 1700 * H100_TPP
    assert 500 * H100_TPP == 7_915_600
    # lpp-10m: 10,000,000 / 15,831.2 = 631.66...
    assert 631 * H100_TPP == Fraction("9989487.2") <= LPP_10M < 632 * H100_TPP == Fraction("10005318.4")
    assert 600 * H100_TPP + 31 * H100_TPP == 631 * H100_TPP
    assert Fraction("9968337.6") == LPP_10M - 2 * H100_TPP
    # the allocation: 49,901 H100 fit 790M, 7,288.8 TPP of room is left, less than one H100
    assert 40_000 * H100_TPP + 9_901 * H100_TPP == Fraction("789992711.2") <= ALLOCATION
    assert ALLOCATION - 49_901 * H100_TPP == Fraction("7288.8") < H100_TPP
    assert Fraction("821655111.2") == 49_901 * H100_TPP + 2_000 * H100_TPP
    assert Fraction("821655111.2") + 47_901 * H100_TPP == Fraction("1579985422.4") <= DOUBLED
    assert Fraction("1579985422.4") + 2_000 * H100_TPP > DOUBLED
    assert DOUBLED - 4_000 * H100_TPP == 1_516_675_200
    assert 1_516_675_200 + 4_000 * H100_TPP == DOUBLED  # exactly at the doubled allocation


# ---- building books ---------------------------------------------------------------------------------
def h100(
    date: str,
    quantity: int,
    destination: str,
    consignee: str,
    line_id: str,
    *,
    certified: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """H100s for a data centre, consignee and parent headquartered in the destination."""
    row = {
        "line_id": line_id,
        "date": date,
        "chip": H100,
        "quantity": quantity,
        "destination": destination,
        "consignee_id": consignee,
        "consignee_headquarters": destination,
        "consignee_parent_headquarters": destination,
        "end_use": "data_center",
        "certifications": CERTIFIED if certified else None,
    }
    row.update(extra)
    return row


def sides(*labels: str) -> list[Side]:
    return [parse_side(label) for label in labels]


def read_changed(path: Path) -> list[dict[str, Any]]:
    """The changed-lines file (any format) as dicts, its columns checked."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            assert next(csv.reader(handle)) == CHANGED_COLUMNS
        frame = pl.read_csv(path, schema_overrides={"date": pl.Date, "line_id": pl.String})
    elif path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    else:
        frame = pl.read_ndjson(path, schema_overrides={"date": pl.Date})
    assert frame.columns == CHANGED_COLUMNS
    return frame.to_dicts()


def counted(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], Any]:
    """Aggregate rows keyed by `keys`, the value the remaining non-key fields (or the line count)."""
    out = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        assert key not in out, f"{key} twice"
        rest = {k: v for k, v in r.items() if k not in keys}
        out[key] = rest["lines"] if set(rest) == {"lines"} else rest
    return out


def change(
    line: int,
    line_id: str,
    date: str,
    destination: str,
    quantity: int,
    side: str,
    baseline: str = LAW,
    **fields: Any,
) -> dict[str, Any]:
    """A row of the changed-lines file: `fields` as from_X=..., to_X=..."""
    return {
        "line": line,
        "line_id": line_id,
        "date": dt.date.fromisoformat(date),
        "destination": destination,
        "chip": H100,
        "quantity": quantity,
        "baseline": baseline,
        "side": side,
        **fields,
    }


def allocation_to_aia(units: int, country: str = "PL") -> dict[str, Any]:
    """Baseline: a licence with presumption of approval drawing the allocation; side: AIA, no draw."""
    return {
        "from_tier": 2,
        "to_tier": 1,
        "from_license_required": True,
        "to_license_required": True,
        "from_authorization": "LICENSE",
        "to_authorization": "AIA",
        "from_review_policy": APPROVAL,
        "to_review_policy": None,
        "from_draw_account": f"allocation:{country}",
        "to_draw_account": None,
        "from_draw_tpp": float(units * H100_TPP),
        "to_draw_tpp": None,
        "from_rule": ALLOCATION_RULE,
        "to_rule": "AIA",
        "from_citation": REVIEW_CITE,
        "to_citation": AIA_CITE,
    }


# ---- 1. poland-tier1: Tier 2 -> Tier 1 turns licences (and LPP) into AIA from 2025-07-01 -----------------
def poland_book() -> list[dict[str, Any]]:
    return [
        h100("2025-06-30", 2000, "PL", "wisla-pl", "pl-1", certified=True),  # Tier 2 both sides: licence
        h100("2025-06-30", 2000, "PL", "wisla-pl", "pl-2", certified=True),  # same profile, same day
        h100("2025-07-01", 2000, "PL", "wisla-pl", "pl-3", certified=True),  # same profile, reform date: AIA
        h100("2025-07-01", 2000, "PL", "wisla-pl", "pl-4", certified=True),
        h100("2025-07-01", 2000, "CZ", "praha-cz", "cz-5", certified=True),  # Czechia stays Tier 2
        h100("2025-09-15", 500, "PL", "wisla-pl", "pl-6", certified=True),  # LPP in the law, AIA reformed
    ]


# Hand analysis, both sides starting from no usage:
# 1, 2 (2025-06-30): PL Tier 2 on both sides -> AIA fails; ACM not for data_center; LPP fails
#    (31,662,400 > 26,900,000) -> LICENSE, presumption of approval, allocation:PL 31,662,400 each.
# 3, 4 (2025-07-01): law: as 1-2 (allocation:PL 63.3M -> 126.6M of 790M); reform: AIA, no draw.
# 5 (CZ): LICENSE, approval, allocation:CZ 31,662,400 on both sides.
# 6 (500 H100): law: LPP, lpp:wisla-pl:2025 0 + 7,915,600 <= 26.9M (licences do not draw LPP); reform: AIA.
POLAND_CHANGED = [
    change(3, "pl-3", "2025-07-01", "PL", 2000, POLAND, **allocation_to_aia(2000)),
    change(4, "pl-4", "2025-07-01", "PL", 2000, POLAND, **allocation_to_aia(2000)),
    change(
        6,
        "pl-6",
        "2025-09-15",
        "PL",
        500,
        POLAND,
        **{
            **allocation_to_aia(500),
            "from_authorization": "LPP",
            "from_review_policy": None,
            "from_draw_account": "lpp:wisla-pl:2025",
            "from_rule": "LPP",
            "from_citation": LPP_CITE,
        },
    ),
]


@pytest.mark.parametrize("chunk_size", [1, 2, 4, 250_000])
def test_poland_to_tier1_turns_licences_into_aia(tmp_path: Path, chunk_size: int) -> None:
    orders = write_book(tmp_path / "book.csv", poland_book())
    out = tmp_path / "book.changed.csv"
    comparison = compare_book(orders, sides(LAW, POLAND), out=out, state=InMemoryAllowances(), chunk_size=chunk_size)
    assert comparison.out == out and comparison.rejects is None
    assert read_changed(out) == POLAND_CHANGED  # exactly lines 3, 4 and 6; lines 1 and 2 (2025-06-30) do not change
    assert comparison.changed.to_dicts() == POLAND_CHANGED
    p = comparison.as_dict()
    assert set(p) == AS_DICT_KEYS
    assert (p["lines"], p["screened"], p["outside_window"], p["rejected"], p["changed_lines"]) == (6, 6, 0, 0, 3)
    assert p["compared_from"] == "2025-01-13"  # both sides are ai-diffusion
    assert p["starting_state_as_of"] == "2025-06-30"
    assert p["baseline"] == LAW
    assert p["sides"] == [
        {"label": LAW, "vintage": LAW, "reform": None},
        {"label": POLAND, "vintage": LAW, "reform": "poland-tier1"},
    ]
    assert counted(p["transitions"], *TRANSITION) == {
        (POLAND, "LICENSE", "AIA", APPROVAL, None): 2,
        (POLAND, "LPP", "AIA", None, None): 1,
    }
    assert counted(p["by_rule"], *RULE) == {
        (POLAND, ALLOCATION_RULE, REVIEW_CITE, "AIA", AIA_CITE): 2,
        (POLAND, "LPP", LPP_CITE, "AIA", AIA_CITE): 1,
    }
    assert counted(p["per_side"], *OUTCOME) == {
        (LAW, "LICENSE", APPROVAL): 5,  # lines 1-5
        (LAW, "LPP", None): 1,  # line 6
        (POLAND, "LICENSE", APPROVAL): 3,  # lines 1, 2, 5
        (POLAND, "AIA", None): 3,  # lines 3, 4, 6
    }
    by_country = counted(p["by_country"], "destination", "side")
    assert set(by_country) == {("PL", LAW), ("PL", POLAND), ("CZ", LAW), ("CZ", POLAND)}
    # law PL: 4 licences of 31,662,400 + LPP 7,915,600 = 134,565,200; reformed PL: 2 licences = 63,324,800
    expected = {
        ("PL", LAW): (5, 0, 4, 4 * 31_662_400 + 7_915_600),
        ("PL", POLAND): (5, 3, 2, 2 * 31_662_400),
        ("CZ", LAW): (1, 0, 1, 31_662_400),
        ("CZ", POLAND): (1, 0, 1, 31_662_400),
    }
    for key, (lines, changed, licences, drawn) in expected.items():
        row = by_country[key]
        assert (row["lines"], row["changed"], row["needs_license"]) == (lines, changed, licences), key
        assert row["draw_tpp"] == pytest.approx(drawn, abs=1e-6), key


def test_the_changed_lines_stream_to_the_file_and_only_keep_are_returned(tmp_path: Path) -> None:
    orders = write_book(tmp_path / "book.csv", poland_book())
    for suffix in (".parquet", ".jsonl"):
        out = tmp_path / f"changed{suffix}"
        comparison = compare_book(orders, sides(LAW, POLAND), out=out, state=InMemoryAllowances(), keep=1)
        assert read_changed(out) == POLAND_CHANGED
        assert comparison.changed.to_dicts() == POLAND_CHANGED[:1]  # `keep` bounds what stays in memory
        assert comparison.changed_lines == 3
        assert [r["line"] for r in comparison.as_dict(rows=1)["changed"]] == [3]


def wisla_transaction(day: str, quantities: list[int]) -> Transaction:
    """H100 lines to a Polish consignee (and parent) headquartered in Poland, data centre, AIA
    certification and approved designer attested."""
    return Transaction.model_validate(
        {
            "date": day,
            "destination": "PL",
            "items": [{"chip": H100, "quantity": q} for q in quantities],
            "ultimate_consignee": {
                "id": "wisla-pl",
                "name": "Wisla Compute",
                "country": "PL",
                "headquarters": "PL",
                "ultimate_parent_headquarters": "PL",
            },
            "end_use": "data_center",
            "certifications": ["aia_certification", "approved_designer"],
        }
    )


def test_poland_transaction_names_the_first_step_that_parts() -> None:
    tx = wisla_transaction("2025-07-01", [2000])
    answer = compare_transaction(tx, sides(LAW, POLAND))
    assert answer["kind"] == "transaction" and answer["as_of"] == "2025-07-01" and answer["baseline"] == LAW
    assert answer["changed_lines"] == 1
    line = answer["lines"][0]
    assert line["changed"] is True and line["item"] == H100
    assert line["outcomes"][LAW] == {
        "license_required": True,
        "authorization": "LICENSE",
        "review_policy": APPROVAL,
        "draw_account": "allocation:PL",
        "draw_tpp": 31_662_400.0,
        "rule": ALLOCATION_RULE,
        "citation": REVIEW_CITE,
    }
    assert line["outcomes"][POLAND] == {
        "license_required": True,
        "authorization": "AIA",
        "review_policy": None,
        "draw_account": None,
        "draw_tpp": None,
        "rule": "AIA",
        "citation": AIA_CITE,
    }
    [moved] = line["changes"]
    assert moved["side"] == POLAND
    # the general requirement (a-level, worldwide) is the same: license_required is not a change
    assert moved["fields"] == {
        "authorization": ["LICENSE", "AIA"],
        "review_policy": [APPROVAL, None],
        "draw_account": ["allocation:PL", None],
    }
    diff = moved["difference"]
    # classification and the licence requirement agree; AIA is the first exception tried and answers
    # "no" in the law (PL not in supp. no. 5(a)) and "yes" under the reform
    assert diff["from"]["rule"] == diff["to"]["rule"] == "AIA"
    assert diff["from"]["citation"] == diff["to"]["citation"] == AIA_CITE
    assert (diff["from"]["result"], diff["to"]["result"]) == (False, True)
    assert "supp. no. 5(a)" in diff["from"]["test"] and diff["to"]["test"] == "all conditions met"
    law_trace = answer["determinations"][LAW]["trace"]
    reformed_trace = answer["determinations"][POLAND]["trace"]
    aia_step = next(i for i, s in enumerate(law_trace) if s["rule"] == "AIA")
    assert diff["step"] == aia_step + 1  # steps count from 1
    assert [(s["rule"], s["result"]) for s in law_trace[:aia_step]] == [
        (s["rule"], s["result"]) for s in reformed_trace[:aia_step]
    ]
    assert any(s["rule"] == "a-level worldwide licence requirement" for s in law_trace[:aia_step])
    # a day earlier the reform is not in force: nothing changes
    before = compare_transaction(tx.model_copy(update={"date": dt.date(2025, 6, 30)}), sides(LAW, POLAND))
    assert before["changed_lines"] == 0 and before["lines"][0]["changes"] == []


def test_transaction_lines_draw_as_they_go_on_each_side() -> None:
    """Two lines of one transaction: in the law 1,500 H100 (23,746,800) fit LPP and the next 500 bring the
    consignee-year to 31,662,400 > 26,900,000, so the second needs a licence; under the reform both are AIA."""
    assert 1500 * H100_TPP == 23_746_800 <= LPP_LIMIT < 2000 * H100_TPP
    tx = wisla_transaction("2025-08-01", [1500, 500])
    answer = compare_transaction(tx, sides(LAW, POLAND), InMemoryAllowances())
    assert answer["changed_lines"] == 2
    first, second = answer["lines"]
    assert first["changes"][0]["fields"] == {
        "authorization": ["LPP", "AIA"],
        "draw_account": ["lpp:wisla-pl:2025", None],
    }
    assert second["changes"][0]["fields"] == {
        "authorization": ["LICENSE", "AIA"],
        "review_policy": [APPROVAL, None],
        "draw_account": ["allocation:PL", None],
    }
    assert second["outcomes"][LAW]["draw_tpp"] == 7_915_600.0


# ---- 2. lpp-10m: the first line that no longer fits a 10,000,000 TPP consignee-year ------------------------
def lpp_book() -> list[dict[str, Any]]:
    return [
        h100("2025-12-31", 1000, "BR", "acme-br", "br-1"),  # 15,831,200: fits 26.9M; would not fit 10M
        h100("2026-01-01", 600, "BR", "acme-br", "br-2"),  # 9,498,720 <= 10M
        h100("2026-01-01", 31, "BR", "acme-br", "br-3"),  # 631 H100 = 9,989,487.2 <= 10M
        h100("2026-01-01", 1, "BR", "acme-br", "br-4"),  # 632 H100 = 10,005,318.4 > 10M: the first that no longer fits
        h100("2026-01-02", 1, "BR", "acme-br", "br-5"),  # reformed LPP usage still 9,989,487.2: one over again
        h100("2026-03-02", 2, "BR", "exact-br", "br-6"),  # 9,968,337.6 + 31,662.4 = 10,000,000 exactly: fits
        h100("2026-03-02", 1, "BR", "exact-br", "br-7"),  # 10,015,831.2: one over
    ]


def lpp_to_licence(line: int, line_id: str, date: str, account: str) -> dict[str, Any]:
    return change(
        line,
        line_id,
        date,
        "BR",
        1,
        LPP10,
        from_tier=2,
        to_tier=2,
        from_license_required=True,
        to_license_required=True,
        from_authorization="LPP",
        to_authorization="LICENSE",
        from_review_policy=None,
        to_review_policy=APPROVAL,
        from_draw_account=account,
        to_draw_account="allocation:BR",
        from_draw_tpp=float(H100_TPP),
        to_draw_tpp=float(H100_TPP),
        from_rule="LPP",
        to_rule=ALLOCATION_RULE,
        from_citation=LPP_CITE,
        to_citation=REVIEW_CITE,
    )


def test_lpp_10m_from_2026(tmp_path: Path) -> None:
    orders = write_book(tmp_path / "book.csv", lpp_book())
    out = tmp_path / "changed.parquet"
    state = InMemoryAllowances({"lpp:exact-br:2026": LPP_10M - 2 * H100_TPP})  # room for exactly 2 H100
    comparison = compare_book(orders, sides(LAW, LPP10), out=out, state=state)
    changed = read_changed(out)
    assert changed == [
        lpp_to_licence(4, "br-4", "2026-01-01", "lpp:acme-br:2026"),
        lpp_to_licence(5, "br-5", "2026-01-02", "lpp:acme-br:2026"),
        lpp_to_licence(7, "br-7", "2026-03-02", "lpp:exact-br:2026"),
    ]
    assert min(r["line"] for r in changed) == 4
    p = comparison.as_dict()
    assert p["changed_lines"] == 3 and p["screened"] == 7
    assert counted(p["per_side"], *OUTCOME) == {
        (LAW, "LPP", None): 7,  # 1,636 H100 in all, each consignee-year under 26.9M
        (LPP10, "LPP", None): 4,  # lines 1 (a 2025 line: the old limit), 2, 3 and 6 (exactly at 10M)
        (LPP10, "LICENSE", APPROVAL): 3,
    }
    assert counted(p["transitions"], *TRANSITION) == {(LPP10, "LPP", "LICENSE", None, APPROVAL): 3}
    assert counted(p["by_rule"], *RULE) == {(LPP10, "LPP", LPP_CITE, ALLOCATION_RULE, REVIEW_CITE): 3}
    br = counted(p["by_country"], "destination", "side")
    assert (br[("BR", LAW)]["needs_license"], br[("BR", LPP10)]["needs_license"]) == (0, 3)
    assert (br[("BR", LAW)]["changed"], br[("BR", LPP10)]["changed"]) == (0, 3)
    # every line draws something on both sides: 1,636 H100 = 25,899,843.2 TPP
    assert Fraction("25899843.2") == 1636 * H100_TPP
    assert br[("BR", LAW)]["draw_tpp"] == pytest.approx(25_899_843.2)
    assert br[("BR", LPP10)]["draw_tpp"] == pytest.approx(25_899_843.2)


# ---- 3. double-tier2: allocation draws above 790M that fit 1,580M -----------------------------------------
def double_book() -> list[dict[str, Any]]:
    return [
        h100("2025-06-02", 40_000, "IN", "bharat-in", "in-1"),  # 633,248,000: approval on both sides
        h100("2025-06-03", 9_901, "IN", "bharat-in", "in-2"),  # 789,992,711.2 <= 790M: approval on both
        h100("2025-06-04", 2_000, "IN", "bharat-in", "in-3"),  # 821,655,111.2: law exhausted, reform approval
        h100("2025-06-05", 47_901, "IN", "bharat-in", "in-4"),  # reform 1,579,985,422.4 <= 1,580M
        h100("2025-06-06", 2_000, "IN", "bharat-in", "in-5"),  # over 1,580M on both: denial
        h100("2025-06-02", 2_000, "MX", "monterrey-mx", "mx-6"),  # 1,548,337,600: over 790M, within 1,580M
        h100("2025-06-03", 2_000, "MX", "monterrey-mx", "mx-7"),  # 1,580,000,000 exactly
        h100("2025-06-04", 1, "MX", "monterrey-mx", "mx-8"),  # LPP full; one H100 over 1,580M: denial on both
    ]


def denial_to_approval(line: int, line_id: str, date: str, country: str, units: int) -> dict[str, Any]:
    return change(
        line,
        line_id,
        date,
        country,
        units,
        DOUBLE,
        from_tier=2,
        to_tier=2,
        from_license_required=True,
        to_license_required=True,
        from_authorization="LICENSE",
        to_authorization="LICENSE",
        from_review_policy=DENIAL,
        to_review_policy=APPROVAL,
        from_draw_account=None,
        to_draw_account=f"allocation:{country}",
        from_draw_tpp=None,
        to_draw_tpp=float(units * H100_TPP),
        from_rule=ALLOCATION_RULE,
        to_rule=ALLOCATION_RULE,
        from_citation=REVIEW_CITE,
        to_citation=REVIEW_CITE,
    )


def test_double_tier2_allocation(tmp_path: Path) -> None:
    orders = write_book(tmp_path / "book.csv", double_book())
    out = tmp_path / "changed.jsonl"
    state = InMemoryAllowances(
        {
            "allocation:MX": DOUBLED - 4_000 * H100_TPP,  # 1,516,675,200: room for exactly 4,000 H100 at 1,580M
            "lpp:monterrey-mx:2025": LPP_LIMIT,  # LPP used up: even one H100 goes to the allocation
        }
    )
    comparison = compare_book(orders, sides(LAW, DOUBLE), out=out, state=state)
    assert read_changed(out) == [
        denial_to_approval(3, "in-3", "2025-06-04", "IN", 2_000),
        denial_to_approval(4, "in-4", "2025-06-05", "IN", 47_901),
        denial_to_approval(6, "mx-6", "2025-06-02", "MX", 2_000),
        denial_to_approval(7, "mx-7", "2025-06-03", "MX", 2_000),
    ]
    p = comparison.as_dict()
    assert p["changed_lines"] == 4
    assert counted(p["per_side"], *OUTCOME) == {
        (LAW, "LICENSE", APPROVAL): 2,  # in-1, in-2
        (LAW, "LICENSE", DENIAL): 6,
        (DOUBLE, "LICENSE", APPROVAL): 6,
        (DOUBLE, "LICENSE", DENIAL): 2,  # in-5, mx-8
    }
    assert counted(p["transitions"], *TRANSITION) == {(DOUBLE, "LICENSE", "LICENSE", DENIAL, APPROVAL): 4}
    countries = counted(p["by_country"], "destination", "side")
    drawn = {
        ("IN", LAW): 789_992_711.2,
        ("IN", DOUBLE): 1_579_985_422.4,
        ("MX", LAW): 0.0,
        ("MX", DOUBLE): 4_000 * 15_831.2,
    }
    for key, tpp in drawn.items():
        assert countries[key]["draw_tpp"] == pytest.approx(tpp, abs=1e-3), key
    assert {k: v["changed"] for k, v in countries.items()} == {
        ("IN", LAW): 0,
        ("IN", DOUBLE): 2,
        ("MX", LAW): 0,
        ("MX", DOUBLE): 2,
    }


# ---- 4. three vintages: the comparison window ---------------------------------------------------------------
def test_three_vintages_count_earlier_lines_outside_the_window(tmp_path: Path) -> None:
    rows = [
        h100("2025-02-01", 100, "BR", "rio-br", "br-1"),  # before enforcement-posture (2025-05-13): outside
        h100("2025-05-12", 100, "BR", "rio-br", "br-2", vintage="enforcement-posture"),  # outside, not rejected
        h100("2025-05-13", 100, "BR", "rio-br", "br-3", vintage="ear-2023"),  # a line's own vintage is ignored
        h100("2025-08-01", 100, "BR", "rio-br", "br-4"),
    ]
    orders = write_book(tmp_path / "book.csv", rows)
    out = tmp_path / "changed.parquet"
    comparison = compare_book(
        orders, sides("ear-2023", "ai-diffusion", "enforcement-posture"), out=out, state=InMemoryAllowances()
    )
    p = comparison.as_dict()
    assert p["compared_from"] == "2025-05-13"  # the latest vintage's entry into force
    assert (p["lines"], p["outside_window"], p["screened"], p["rejected"]) == (4, 2, 2, 0)
    assert p["rejects"] is None and not out.with_name("changed.rejects.csv").exists()
    assert p["starting_state_as_of"] == "2025-02-01"  # the book's first date
    # October 2023 scope: BR is not a licence destination, no Macau/D:5 party -> NLR (the headquarters
    # rule is the last test). ai-diffusion: a-level worldwide licence; 100 H100 = 1,583,120 fit LPP.
    lpp_fields = {
        "from_tier": None,  # ear-2023 has no tiers
        "to_tier": 2,
        "from_license_required": False,
        "to_license_required": True,
        "from_authorization": "NLR",
        "to_authorization": "LPP",
        "from_review_policy": None,
        "to_review_policy": None,
        "from_draw_account": None,
        "to_draw_account": "lpp:rio-br:2025",
        "from_draw_tpp": None,
        "to_draw_tpp": float(100 * H100_TPP),
        "from_rule": "Headquarters rule",
        "to_rule": "LPP",
        "from_citation": HQ_CITE,
        "to_citation": LPP_CITE,
    }
    assert read_changed(out) == [
        change(3, "br-3", "2025-05-13", "BR", 100, "ai-diffusion", "ear-2023", **lpp_fields),
        change(4, "br-4", "2025-08-01", "BR", 100, "ai-diffusion", "ear-2023", **lpp_fields),
    ]
    assert p["changed_lines"] == 2
    assert counted(p["per_side"], *OUTCOME) == {
        ("ear-2023", "NLR", None): 2,
        ("ai-diffusion", "LPP", None): 2,
        ("enforcement-posture", "NLR", None): 2,  # same as the baseline: no change
    }
    assert {r["side"] for r in p["transitions"]} == {"ai-diffusion"}


def test_a_transaction_dated_before_a_sides_vintage_is_an_error() -> None:
    tx = Transaction.model_validate(
        {
            "date": "2025-03-01",
            "destination": "BR",
            "items": [{"chip": H100, "quantity": 100}],
            "ultimate_consignee": {"id": "rio-br", "name": "Rio", "country": "BR", "headquarters": "BR"},
            "end_use": "data_center",
        }
    )
    with pytest.raises(TierlineError, match=r"2025-03-01.*enforcement-posture") as err:
        compare_transaction(tx, sides("ai-diffusion", "enforcement-posture"))
    assert err.value.field == "date"
    early = tx.model_copy(update={"date": dt.date(2024, 12, 1)})
    with pytest.raises(TierlineError, match=r"2024-12-01.*ai-diffusion") as err:
        compare_transaction(early, sides("ear-2023", POLAND))
    assert err.value.field == "date"


# ---- 5. bad input --------------------------------------------------------------------------------------------
def test_sides_are_checked(tmp_path: Path) -> None:
    with pytest.raises(TierlineError, match="unknown vintage 'ear-2099'") as err:
        parse_side("ear-2099")
    assert err.value.field == "side"
    with pytest.raises(TierlineError, match="unknown scenario 'no-such-reform'") as err:
        parse_side("ai-diffusion+no-such-reform", "--side")
    assert err.value.field == "--side"
    assert parse_side(" ai-diffusion+lpp-10m ") == Side("ai-diffusion", get_reform("lpp-10m"))
    orders = write_book(tmp_path / "book.csv", poland_book())
    with pytest.raises(TierlineError, match="at least two sides"):
        compare_book(orders, sides(LAW), state=InMemoryAllowances())
    with pytest.raises(TierlineError, match="listed twice"):
        compare_book(orders, sides(POLAND, LAW, POLAND), state=InMemoryAllowances())
    tx = Transaction.model_validate(
        {
            "date": "2025-07-01",
            "destination": "PL",
            "items": [{"chip": H100, "quantity": 1}],
            "ultimate_consignee": {"id": "w", "name": "W", "country": "PL"},
        }
    )
    with pytest.raises(TierlineError, match="at least two sides"):
        compare_transaction(tx, [])


def bad_book() -> list[dict[str, Any]]:
    return [
        *poland_book(),
        h100("2025-07-02", 10, "PL", "wisla-pl", "bad-7", chip="H999 Imaginary"),  # unknown chip
        h100("2025-07-02", -5, "PL", "wisla-pl", "bad-8"),  # not a quantity
        h100("2025-13-01", 10, "PL", "wisla-pl", "bad-9"),  # not a date
    ]


def test_a_book_with_invalid_lines_is_refused(tmp_path: Path) -> None:
    orders = write_book(tmp_path / "book.csv", bad_book())
    out = tmp_path / "changed.csv"
    with pytest.raises(TierlineError, match=r"3 invalid line\(s\); nothing compared") as err:
        compare_book(orders, sides(LAW, POLAND), out=out, state=InMemoryAllowances())
    assert err.value.field == "orders"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tierline-")] == []  # no temporary left
    rejects = tmp_path / "changed.rejects.csv"
    with rejects.open(newline="", encoding="utf-8") as handle:
        report = list(csv.DictReader(handle))
    assert [(int(r["line"]), r["column"], r["value"]) for r in report] == [
        (7, "chip", "H999 Imaginary"),
        (8, "quantity", "-5"),
        (9, "date", "2025-13-01"),
    ]
    # --skip-invalid: the six valid lines are compared, the three others reported
    comparison = compare_book(orders, sides(LAW, POLAND), out=out, state=InMemoryAllowances(), skip_invalid=True)
    assert read_changed(out) == POLAND_CHANGED
    p = comparison.as_dict()
    assert (p["lines"], p["screened"], p["rejected"], p["changed_lines"]) == (9, 6, 3, 3)
    assert p["rejects"] == str(rejects)


# ---- 6. the vectorized comparison agrees with the scalar engine ---------------------------------------------
def random_book(seed: int, n: int) -> list[dict[str, Any]]:
    """Lines around the LPP and allocation limits, both reform dates and a new year."""
    rng = random.Random(seed)
    dates = ["2025-05-13", "2025-06-30", "2025-07-01", "2025-09-01", "2025-12-31", "2026-01-01", "2026-02-15"]
    quantities = [1, 2, 100, 600, 631, 632, 1000, 1699, 1700, 2000, 20_000, 49_901]
    rows = []
    for i in range(n):
        destination = rng.choice(["PL", "PL", "BR", "IN", "DE", "CZ", "CN"])
        hq = rng.choice([destination, destination, "US"])
        rows.append(
            h100(
                rng.choice(dates),
                rng.choice(quantities),
                destination,
                f"{destination.lower()}-{rng.randrange(2)}",
                f"r{i + 1}",
                certified=rng.random() < 0.8,
                consignee_headquarters=hq,
                consignee_parent_headquarters=hq,
                end_use=rng.choice(["data_center", "data_center", "development", "other"]),
            )
        )
    return rows


def by_side_and_line(row: dict[str, Any]) -> tuple[str, int]:
    return row["side"], row["line"]


OUTCOME_FIELDS = ("license_required", "authorization", "review_policy", "draw_account")
COMPARED = (*OUTCOME_FIELDS, "tier", "draw_tpp", "rule", "citation")


@pytest.mark.parametrize("seed", [7, 2025])
def test_vectorized_comparison_equals_the_scalar_engine(tmp_path: Path, seed: int) -> None:
    rows = random_book(seed, 80)
    orders = write_book(tmp_path / "book.csv", rows)
    out = tmp_path / "changed.parquet"
    used = {
        "allocation:IN": Fraction(700_000_000),
        "allocation:PL": Fraction(760_000_000),
        "lpp:pl-0:2025": Fraction(20_000_000),
        "lpp:br-1:2026": LPP_10M - 3 * H100_TPP,
    }
    labels = [LAW, POLAND, LPP10, DOUBLE, "enforcement-posture"]
    compared = sides(*labels)
    comparison = compare_book(orders, compared, out=out, state=InMemoryAllowances(used), chunk_size=9)
    # the reference: the scalar engine, line by line in order, each side drawing into its own copy
    [batch] = list(batches(orders, 10_000))
    typed, bad = parse(batch)
    assert len(bad) == 0
    scalar: dict[str, list[dict[str, Any]]] = {}
    for side in compared:
        decided, refused = screen_scalar(typed, InMemoryAllowances(used), side.vintage, side.reform)
        assert refused == []
        scalar[side.label] = decided
    expected = []
    any_change = set()
    for side in labels[1:]:
        for base, other in zip(scalar[LAW], scalar[side], strict=True):
            if any(base[k] != other[k] for k in OUTCOME_FIELDS):
                any_change.add(base["line"])
                expected.append(
                    {
                        "line": base["line"],
                        "side": side,
                        **{f"from_{k}": base[k] for k in COMPARED},
                        **{f"to_{k}": other[k] for k in COMPARED},
                    }
                )
    got = [{k: r[k] for k in expected[0]} for r in read_changed(out)] if expected else read_changed(out)
    assert sorted(got, key=by_side_and_line) == sorted(expected, key=by_side_and_line)
    assert comparison.changed_lines == len(any_change)
    for side in labels[1:]:  # the book exercises every side
        assert any(r["side"] == side for r in expected), side
    per_side = Counter((s, r["authorization"], r["review_policy"]) for s in labels for r in scalar[s])
    assert counted(comparison.as_dict()["per_side"], *OUTCOME) == dict(per_side)


# ---- 7. the report --------------------------------------------------------------------------------------------
def poland_comparison(tmp_path: Path) -> BookComparison:
    orders = write_book(tmp_path / "book.csv", poland_book())
    return compare_book(orders, sides(LAW, POLAND), out=tmp_path / "changed.csv", state=InMemoryAllowances())


def bars(svg: str) -> dict[str, float]:
    """Each bar's tooltip -> its height."""
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    out = {}
    for rect in root.iter(f"{ns}rect"):
        title = rect.find(f"{ns}title")
        if rect.get("class") == "bar":
            assert title is not None
            out[title.text or ""] = float(rect.get("height", "nan"))
    return out


def assert_self_contained(svg: str) -> None:
    root = ET.fromstring(svg)
    for el in root.iter():
        name = el.tag.rpartition("}")[2]
        assert name not in ("script", "foreignObject", "image", "a", "iframe", "use"), name
        for attr, value in el.attrib.items():
            assert not attr.rpartition("}")[2].lower().startswith("on"), attr
            assert "href" not in attr, attr
            assert "url(" not in value and "http" not in value.replace("http://www.w3.org/2000/svg", ""), value
    assert "<!DOCTYPE" not in svg and "@import" not in svg


def test_comparison_report_of_a_book(tmp_path: Path) -> None:
    report = comparison_report(poland_comparison(tmp_path))
    assert report.kind == "comparison"
    assert report.stamp.vintages == (LAW, LAW)
    assert report.stamp.reforms == (None, "poland-tier1")
    assert report.stamp.as_of == dt.date(2025, 6, 30)  # the book's starting allowances
    assert report.stamp.line() == "Vintage ai-diffusion · reform poland-tier1 · as of 2025-06-30"
    summary = " ".join(report.summary)
    assert "3 of 6 line(s) change outcome" in summary
    assert "Lines needing a licence: ai-diffusion 5; ai-diffusion+poland-tier1 3." in summary
    assert "LICENSE (approval) → AIA (2 line(s))" in summary
    tables = {t.caption: t for s in report.sections for t in s.tables}
    assert set(tables["Transitions against the baseline"].rows) == {
        (POLAND, "LICENSE (approval)", "AIA", 2),
        (POLAND, "LPP", "AIA", 1),
    }
    assert set(tables["Rules that decided the changed lines"].rows) == {
        (POLAND, ALLOCATION_RULE, REVIEW_CITE, "AIA", AIA_CITE, 2),
        (POLAND, "LPP", LPP_CITE, "AIA", AIA_CITE, 1),
    }
    countries = tables["Countries with changed lines (every side)"]
    assert [r[:5] for r in countries.rows] == [("PL", LAW, 5, 0, 4), ("PL", POLAND, 5, 3, 2)]  # no CZ: unchanged
    assert set(tables["Lines by outcome on each side"].rows) == {
        ("AIA", 0, 3),
        ("LPP", 1, 0),
        ("LICENSE (approval)", 5, 3),
    }
    first = tables["The first 3 changed line(s)"]
    assert [r[0] for r in first.rows] == [3, 4, 6]
    assert [r[first.columns.index("line id")] for r in first.rows] == ["pl-3", "pl-4", "pl-6"]
    assert first.rows[0][first.columns.index("side's rule")] == f"AIA ({AIA_CITE})"
    for table in tables.values():  # every row fits its header, every cell is plain data
        assert all(len(r) == len(table.columns) for r in table.rows)
        assert all(c is None or type(c) in (str, int, float) for r in table.rows for c in r)
    cites = {c.cite: c.used_for for c in report.citations}
    assert {AIA_CITE, LPP_CITE, REVIEW_CITE, "reform poland-tier1 (scenario, not law)"} <= set(cites)
    assert any("90 FR 4544" in c for c in cites)  # the ai-diffusion vintage's reference
    assert len(cites) == 5  # three rules, one vintage, one reform
    [chart] = [c for s in report.sections for c in s.charts]
    assert_self_contained(chart.svg)
    heights = bars(chart.svg)
    assert set(heights) == {
        f"{LAW}: AIA: 0 lines",
        f"{POLAND}: AIA: 3 lines",
        f"{LAW}: LPP: 1 lines",
        f"{POLAND}: LPP: 0 lines",
        f"{LAW}: LICENSE (approval): 5 lines",
        f"{POLAND}: LICENSE (approval): 3 lines",
    }
    assert heights[f"{LAW}: AIA: 0 lines"] == 0
    unit = heights[f"{LAW}: LPP: 1 lines"]
    assert unit > 0
    assert heights[f"{LAW}: LICENSE (approval): 5 lines"] == pytest.approx(5 * unit)
    assert heights[f"{POLAND}: AIA: 3 lines"] == pytest.approx(3 * unit)


def test_comparison_report_renders_as_html(tmp_path: Path) -> None:
    from tierline.reports.html import render_html

    html = render_html(comparison_report(poland_comparison(tmp_path)))
    assert "Vintage ai-diffusion · reform poland-tier1 · as of 2025-06-30" in html
    assert AIA_CITE in html and "reform poland-tier1 (scenario, not law)" in html
    assert "<script" not in html.lower()


def test_comparison_report_of_a_transaction_and_of_a_payload(tmp_path: Path) -> None:
    tx = yaml.safe_load(POLAND_TX)
    answer = compare_transaction(Transaction.model_validate(tx), sides(LAW, POLAND))
    report = comparison_report(answer)
    assert report.kind == "comparison"
    assert report.stamp.as_of == dt.date(2025, 7, 1) and report.stamp.reforms == (None, "poland-tier1")
    tables = {t.caption: t for s in report.sections for t in s.tables}
    [row] = tables["Changed lines"].rows
    columns = tables["Changed lines"].columns
    assert row[columns.index("first different step")].endswith(f": AIA ({AIA_CITE})")
    assert "line id" not in columns  # a transaction's lines have no references of their own
    assert set(tables["Transitions against the baseline"].rows) == {(POLAND, "LICENSE (approval)", "AIA", 1)}
    assert AIA_CITE in {c.cite for c in report.citations}
    assert any("AIA (15 CFR 740.27)" in s for s in report.summary)
    # the JSON payload of a book (what `tierline compare --json` prints) gives the same report
    comparison = poland_comparison(tmp_path)
    payload = json.loads(json.dumps(comparison.as_dict(), default=str))
    del payload["out"], payload["rejects"]  # a payload may leave out where the files are
    from_payload = comparison_report(payload)
    assert from_payload.summary == comparison_report(comparison).summary
    with pytest.raises(TierlineError, match="compare_transaction"):
        comparison_report({"kind": "something else"})


def test_comparison_report_without_changes() -> None:
    tx = yaml.safe_load(POLAND_TX)
    answer = compare_transaction(Transaction.model_validate(tx), sides(LAW, LPP10))  # 2025: lpp-10m not yet
    report = comparison_report(answer)
    assert any(s.startswith("No line changes outcome") for s in report.summary)
    assert [s.heading for s in report.sections] == ["What changed", "Lines by outcome"]
    cites = [c.cite for c in report.citations]  # no rule decided a changed line: the vintage and the reform
    assert len(cites) == 2 and "90 FR 4544" in cites[0] and cites[1] == "reform lpp-10m (scenario, not law)"


def test_chart_with_three_sides_and_no_lines() -> None:
    svg = comparison_chart_svg(
        [
            {"side": "a", "authorization": "LICENSE", "review_policy": DENIAL, "lines": 40},
            {"side": "b", "authorization": "LICENSE", "review_policy": DENIAL, "lines": 10},
            {"side": "c", "authorization": "NLR", "review_policy": None, "lines": 50},
        ],
        ["a", "b", "c"],
    )
    assert_self_contained(svg)
    heights = bars(svg)
    assert heights["c: NLR: 50 lines"] == pytest.approx(5 * heights["b: LICENSE (denial): 10 lines"])
    assert heights["a: LICENSE (denial): 40 lines"] == pytest.approx(4 * heights["b: LICENSE (denial): 10 lines"])
    assert heights["a: NLR: 0 lines"] == 0
    empty = comparison_chart_svg([], ["a", "b"])
    assert_self_contained(empty)
    assert bars(empty) == {} and "no lines compared" in empty


# ---- 8. the command line --------------------------------------------------------------------------------------
POLAND_TX = """
date: 2025-07-01
destination: PL
items:
  - chip: H100 SXM5
    quantity: 2000
ultimate_consignee:
  id: wisla-pl
  name: Wisla Compute
  country: PL
  headquarters: PL
  ultimate_parent_headquarters: PL
end_use: data_center
certifications: [aia_certification, approved_designer]
"""

cli = pytest.mark.skipif(not TIERLINE.exists(), reason="the tierline console script is not installed")


def home(tmp_path: Path) -> dict[str, str]:
    """TIERLINE_HOME of its own: the ledger is the default SQLite file in it."""
    path = tmp_path / "home"
    path.mkdir(exist_ok=True)
    return {"TIERLINE_HOME": str(path), "TIERLINE_DATABASE_URL": ""}


def run_compare(*args: str, env: dict[str, str]) -> Any:
    return run_cli("compare", *args, "--no-progress", env=env)


@cli
def test_cli_book_table_and_json(tmp_path: Path) -> None:
    env = home(tmp_path)
    orders = write_book(tmp_path / "book.csv", poland_book())
    shown = run_compare(str(orders), "--side", LAW, "--side", POLAND, env=env)
    assert shown.code == 0, shown.stderr
    text = re.sub(r"\s+", " ", shown.stdout)
    assert "Compared 6 lines dated from 2025-01-13" in text and "3 change outcome" in text
    for needle in ("Changes against the baseline", "LICENSE presumption_of_approval", "AIA", AIA_CITE, "PL"):
        assert needle in text, needle
    assert read_changed(tmp_path / "book.changed.csv") == POLAND_CHANGED  # the default output beside the book
    out = tmp_path / "elsewhere" / "changed.parquet"
    payload = run_compare(str(orders), "--side", LAW, "--side", POLAND, "--json", "--out", str(out), env=env)
    assert payload.code == 0, payload.stderr
    p = payload.json()
    assert set(p) == AS_DICT_KEYS
    assert (p["changed_lines"], p["screened"], p["baseline"]) == (3, 6, LAW)
    assert [r["line"] for r in p["changed"]] == [3, 4, 6]
    assert p["out"] == str(out) and read_changed(out) == POLAND_CHANGED


@cli
def test_cli_book_starts_from_the_ledger(tmp_path: Path) -> None:
    """allocation:PL holds 790,000,000 - 3 x 31,662,400 = 695,012,800 on 2025-06-01: in the law lines 1, 2
    and 3 fit (line 3 exactly at 790M), line 4 is refused (denial); the CZ line draws allocation:CZ."""
    assert ALLOCATION - 3 * 2000 * H100_TPP == 695_012_800
    env = home(tmp_path)
    seeded = run_cli("ledger", "direct", "allocation:PL", "695012800", "--date", "2025-06-01", "--key", "s", env=env)
    assert seeded.code == 0, seeded.stderr
    orders = write_book(tmp_path / "book.csv", poland_book())
    result = run_compare(str(orders), "--side", LAW, "--side", POLAND, "--json", env=env)
    assert result.code == 0, result.stderr
    p = result.json()
    assert counted(p["transitions"], *TRANSITION) == {
        (POLAND, "LICENSE", "AIA", APPROVAL, None): 1,  # line 3
        (POLAND, "LICENSE", "AIA", DENIAL, None): 1,  # line 4
        (POLAND, "LPP", "AIA", None, None): 1,  # line 6
    }


@cli
def test_cli_transaction_file(tmp_path: Path) -> None:
    env = home(tmp_path)
    file = tmp_path / "tx.yaml"
    file.write_text(POLAND_TX, encoding="utf-8")
    result = run_compare(str(file), "--side", LAW, "--side", POLAND, "--json", env=env)
    assert result.code == 0, result.stderr
    answer = result.json()
    assert set(answer) == {"kind", "as_of", "baseline", "sides", "changed_lines", "lines", "determinations"}
    assert answer["kind"] == "transaction" and answer["changed_lines"] == 1
    [moved] = answer["lines"][0]["changes"]
    assert moved["fields"]["authorization"] == ["LICENSE", "AIA"]
    assert moved["difference"]["to"]["citation"] == AIA_CITE
    shown = run_compare(str(file), "--side", LAW, "--side", POLAND, env=env)
    assert shown.code == 0, shown.stderr
    text = re.sub(r"\s+", " ", shown.stdout)
    assert "authorization: LICENSE → AIA" in text and f"AIA = False [{AIA_CITE}] → AIA = True [{AIA_CITE}]" in text
    assert not list(tmp_path.glob("*.changed.*"))  # a transaction writes no file


@cli
@pytest.mark.parametrize(
    ("side_args", "named"),
    [
        pytest.param(("--side", LAW, "--side", "ai-diffusion+no-such-reform"), "no-such-reform", id="scenario"),
        pytest.param(("--side", "ear-2099", "--side", LAW), "ear-2099", id="vintage"),
        pytest.param(("--side", LAW), "at least two sides", id="one side"),
        pytest.param(("--side", LAW, "--side", LAW), "listed twice", id="twice"),
    ],
)
def test_cli_bad_side_is_a_one_line_error(tmp_path: Path, side_args: tuple[str, ...], named: str) -> None:
    orders = write_book(tmp_path / "book.csv", poland_book())
    result = run_compare(str(orders), *side_args, env=home(tmp_path))
    assert result.code == 2
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "book.changed.csv").exists()


@cli
def test_cli_invalid_book_refused_then_skipped(tmp_path: Path) -> None:
    env = home(tmp_path)
    orders = write_book(tmp_path / "book.csv", bad_book())
    refused = run_compare(str(orders), "--side", LAW, "--side", POLAND, env=env)
    assert refused.code == 2 and "3 invalid line(s)" in refused.stderr
    assert not (tmp_path / "book.changed.csv").exists()
    assert (tmp_path / "book.changed.rejects.csv").exists()
    skipped = run_compare(str(orders), "--side", LAW, "--side", POLAND, "--skip-invalid", "--json", env=env)
    assert skipped.code == 0, skipped.stderr
    assert (skipped.json()["rejected"], skipped.json()["changed_lines"]) == (3, 3)
    assert read_changed(tmp_path / "book.changed.csv") == POLAND_CHANGED
