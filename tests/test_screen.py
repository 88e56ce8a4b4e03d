"""Bulk screening through the Python API (`tierline.screen.run.screen_file`): allowances accumulate
line after line in file order, exactly at, below and above each limit.

Expected values are hand arithmetic from the regulation and the reference notes, never from running
tierline:
- H100 SXM5: 1,978.9 dense FP8 TFLOPS x 8 bits = 15,831.2 TPP per unit (chips.csv, chips-notes.md §1).
- LPP: 26,900,000 TPP per ultimate consignee (or the operating entity a Tier-1-headquartered consignee
  designates) per calendar year, 15 CFR 740.29(a) (ai-diffusion-rule.md §5.3).
- Tier 2 country allocation: 790,000,000 TPP cumulative 2025-2027, doubled (1,580,000,000) from the
  date a government-to-government arrangement is recorded (ai-diffusion-rule.md §6).
- UVEU shares, supp. no. 10 to part 748 para. 6: >= 75% in supp. no. 5(a), <= 7% in any single
  other country, >= 50% in the United States for a US-headquartered UVEU (ai-diffusion-rule.md §7.2).
- NVEU: the cumulative allowance per destination from the policy data's schedule (§7.3, unconfirmed).
The line-by-line agreement of the vectorized and the scalar engine is tests/test_screen_properties.py.
"""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from helpers import PROJECT, write_book
from tierline.allowances import InMemoryAllowances
from tierline.errors import TierlineError
from tierline.screen.orders import DECISION_COLUMNS
from tierline.screen.run import Result, screen_file
from tierline.screen.sample import write_sample

VINTAGE = "ai-diffusion"
H100 = "H100 SXM5"
H100_TPP = Fraction("1978.9") * 8  # 15,831.2 TPP per unit
LPP_LIMIT = Fraction(26_900_000)  # 15 CFR 740.29(a), per consignee per calendar year
ALLOCATION = Fraction(790_000_000)  # Tier 2, cumulative 2025-2027
ALLOCATION_G2G = 2 * ALLOCATION  # 1,580,000,000 with a g2g arrangement
DAY = "2025-06-01"
APPROVAL, DENIAL = "presumption_of_approval", "presumption_of_denial"

POLICY_YAML = PROJECT / "src" / "tierline" / "policy" / "data" / "parameters" / "ai_diffusion.yaml"


def test_h100_arithmetic() -> None:
    assert Fraction("1978.9") * 8 == H100_TPP == Fraction("15831.2")
    assert 1699 * H100_TPP == Fraction("26897208.8") <= LPP_LIMIT  # 1,699 H100s fit one year's LPP
    assert 1700 * H100_TPP == Fraction(26_913_040) > LPP_LIMIT  # 1,700 do not


def policy_value(group: str, name: str) -> Any:
    """The value in force from 13 January 2025 of a parameter in the bundled AI Diffusion policy data."""
    data = yaml.safe_load(POLICY_YAML.read_text(encoding="utf-8"))
    values = data[group][name]["values"]
    return next(v for k, v in values.items() if str(k) == "2025-01-13")


def line(
    quantity: int,
    *,
    date: str = DAY,
    consignee: str = "acme-br",
    destination: str = "BR",
    hq: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An H100 line for data center deployment (AIA, ACM and NAC/ACA do not apply to it)."""
    row = {
        "date": date,
        "chip": H100,
        "quantity": quantity,
        "destination": destination,
        "consignee_id": consignee,
        "consignee_headquarters": hq or destination,
        "end_use": "data_center",
    }
    row.update(extra)
    return row


_books = 0


def screen(
    tmp_path: Path,
    rows: list[dict[str, Any]],
    used: dict[str, Fraction] | None = None,
    g2g: dict[str, dt.date] | None = None,
    **options: Any,
) -> tuple[Result, list[dict[str, Any]]]:
    """Screen `rows` from a starting usage; the result and the decisions, one dict per line."""
    global _books
    _books += 1
    orders = write_book(tmp_path / f"book{_books}.csv", rows)
    out = tmp_path / f"book{_books}.decisions.parquet"
    state = InMemoryAllowances(used or {}, g2g or {})
    result = screen_file(orders, out, state=state, vintage=VINTAGE, **options)
    assert result.bad_count == 0, result.bad
    assert result.out == out
    decisions = pl.read_parquet(out)
    assert decisions.columns == list(DECISION_COLUMNS)
    return result, decisions.to_dicts()


def drew(decision: dict[str, Any]) -> tuple[str | None, str | None, str | None, float | None]:
    return decision["authorization"], decision["review_policy"], decision["draw_account"], decision["draw_tpp"]


def lpp(decision: dict[str, Any], account: str, units: int) -> None:
    """The line went under LPP and drew `units` H100s from `account`."""
    assert drew(decision) == ("LPP", None, account, float(units * H100_TPP)), decision
    assert decision["license_required"] is True and decision["needs_license"] is False
    assert "lpp_notification" in decision["obligations"].split(";")


def licence(decision: dict[str, Any], policy: str, account: str | None, units: int) -> None:
    """The line needs a licence reviewed under `policy`, drawing `units` H100s from `account` (or nothing)."""
    tpp = float(units * H100_TPP) if account else None
    assert drew(decision) == ("LICENSE", policy, account, tpp), decision
    assert decision["needs_license"] is True
    assert "LPP" in decision["exceptions_considered"].split(";")


# ---- 1. LPP: room for exactly k units -----------------------------------------------------------

K = 3  # units of room left
LPP_ROOM = {"lpp:acme-br:2025": LPP_LIMIT - K * H100_TPP}  # 26,900,000 - 47,493.6 = 26,852,506.4


def test_lpp_room_arithmetic() -> None:
    assert LPP_ROOM["lpp:acme-br:2025"] == Fraction("26852506.4")
    assert LPP_ROOM["lpp:acme-br:2025"] + 3 * H100_TPP == LPP_LIMIT


@pytest.mark.parametrize("units", [K - 1, K], ids=["below", "at"])
def test_lpp_within_room(tmp_path: Path, units: int) -> None:
    result, [d] = screen(tmp_path, [line(units)], LPP_ROOM)
    lpp(d, "lpp:acme-br:2025", units)
    assert d["tpp"] == float(units * H100_TPP)
    assert result.summary["drawn"]["lpp"] == {"lpp:acme-br:2025": float(units * H100_TPP)}
    assert result.summary["drawn"]["allocation"] == {}


def test_lpp_one_unit_over_room_needs_licence(tmp_path: Path) -> None:
    # 26,852,506.4 + 4 x 15,831.2 = 26,915,831.2 > 26,900,000: a licence, drawing the Tier 2 allocation
    result, [d] = screen(tmp_path, [line(K + 1)], LPP_ROOM)
    licence(d, APPROVAL, "allocation:BR", K + 1)
    assert result.summary["drawn"]["lpp"] == {}
    assert result.summary["drawn"]["allocation"] == {"allocation:BR": float(4 * H100_TPP)}  # 63,324.8


def test_lpp_accumulates_within_the_file(tmp_path: Path) -> None:
    rows = [line(1000), line(699), line(1)]
    result, decisions = screen(tmp_path, rows)
    lpp(decisions[0], "lpp:acme-br:2025", 1000)  # 15,831,200
    lpp(decisions[1], "lpp:acme-br:2025", 699)  # total 1,699 x 15,831.2 = 26,897,208.8 <= 26,900,000
    licence(decisions[2], APPROVAL, "allocation:BR", 1)  # 26,897,208.8 + 15,831.2 = 26,913,040 > 26.9M
    assert [d["line"] for d in decisions] == [1, 2, 3]
    assert result.summary["drawn"]["lpp"] == {"lpp:acme-br:2025": float(Fraction("26897208.8"))}
    assert result.summary["drawn"]["allocation"] == {"allocation:BR": float(H100_TPP)}


def test_lpp_is_per_consignee(tmp_path: Path) -> None:
    # another consignee in the same country has its own 26.9M: 1,699 each fit
    rows = [line(1699), line(1699, consignee="other-br"), line(1, consignee="other-br")]
    _, decisions = screen(tmp_path, rows)
    lpp(decisions[0], "lpp:acme-br:2025", 1699)
    lpp(decisions[1], "lpp:other-br:2025", 1699)
    licence(decisions[2], APPROVAL, "allocation:BR", 1)


# ---- 2. the calendar year ------------------------------------------------------------------------


def test_lpp_resets_on_1_january(tmp_path: Path) -> None:
    # one unit of room left in 2025: the first 31 December line uses it, the second does not fit;
    # 1 January 2026 starts a fresh 26.9M (1,699 units fit), whatever 2025 used.
    used = {"lpp:acme-br:2025": LPP_LIMIT - H100_TPP}
    rows = [line(1, date="2025-12-31"), line(1, date="2025-12-31"), line(1699, date="2026-01-01")]
    result, decisions = screen(tmp_path, rows, used)
    lpp(decisions[0], "lpp:acme-br:2025", 1)
    licence(decisions[1], APPROVAL, "allocation:BR", 1)
    lpp(decisions[2], "lpp:acme-br:2026", 1699)
    assert result.summary["drawn"]["lpp"] == {
        "lpp:acme-br:2025": float(H100_TPP),
        "lpp:acme-br:2026": float(1699 * H100_TPP),
    }


def test_exhausted_2025_does_not_block_2026(tmp_path: Path) -> None:
    used = {"lpp:acme-br:2025": LPP_LIMIT, "lpp:acme-br:2026": LPP_LIMIT - 2 * H100_TPP}
    rows = [line(1, date="2025-12-31"), line(2, date="2026-01-01"), line(1, date="2026-01-01")]
    _, decisions = screen(tmp_path, rows, used)
    licence(decisions[0], APPROVAL, "allocation:BR", 1)
    lpp(decisions[1], "lpp:acme-br:2026", 2)  # exactly the 2026 room
    licence(decisions[2], APPROVAL, "allocation:BR", 1)


# ---- 3. the Tier 2 country allocation -------------------------------------------------------------

# The consignee's 2025 LPP is used up, so every line below needs a licence.
NO_LPP = {"lpp:acme-br:2025": LPP_LIMIT}


def test_after_exhaustion_policy_is_denial_in_the_policy_data() -> None:
    assert policy_value("allocation_policy", "after_exhaustion") == DENIAL
    assert policy_value("allocation", "tier2_cumulative_tpp") == ALLOCATION
    assert policy_value("allocation", "g2g_multiplier") == 2


@pytest.mark.parametrize(("units", "fits"), [(K - 1, True), (K, True), (K + 1, False)], ids=["below", "at", "above"])
def test_allocation_room(tmp_path: Path, units: int, fits: bool) -> None:
    # 790,000,000 - 3 x 15,831.2 = 789,952,506.4 used: 3 units fit exactly, 4 do not
    used = {**NO_LPP, "allocation:BR": ALLOCATION - K * H100_TPP}
    assert used["allocation:BR"] == Fraction("789952506.4")
    result, [d] = screen(tmp_path, [line(units)], used)
    if fits:
        licence(d, APPROVAL, "allocation:BR", units)
        assert result.summary["drawn"]["allocation"] == {"allocation:BR": float(units * H100_TPP)}
    else:
        after = policy_value("allocation_policy", "after_exhaustion")
        licence(d, after, None, units)
        assert "allocation exhausted" in d["warnings"]
        assert result.summary["drawn"]["allocation"] == {}
    assert result.summary["needs_license"] == 1


def test_allocation_accumulates_within_the_file(tmp_path: Path) -> None:
    # room for 3 units: 2 + 1 fit, the next 1 does not, and a later line needing no allocation still
    # goes through for another consignee under its own LPP
    used = {**NO_LPP, "allocation:BR": ALLOCATION - K * H100_TPP}
    rows = [line(2), line(1), line(1), line(5, consignee="other-br")]
    result, decisions = screen(tmp_path, rows, used)
    licence(decisions[0], APPROVAL, "allocation:BR", 2)
    licence(decisions[1], APPROVAL, "allocation:BR", 1)
    licence(decisions[2], DENIAL, None, 1)
    lpp(decisions[3], "lpp:other-br:2025", 5)
    assert result.summary["drawn"]["allocation"] == {"allocation:BR": float(3 * H100_TPP)}


def test_allocation_is_per_country(tmp_path: Path) -> None:
    used = {**NO_LPP, "lpp:acme-in:2025": LPP_LIMIT, "allocation:BR": ALLOCATION}
    rows = [line(1), line(1, destination="IN", consignee="acme-in")]
    _, decisions = screen(tmp_path, rows, used)
    licence(decisions[0], DENIAL, None, 1)
    licence(decisions[1], APPROVAL, "allocation:IN", 1)


@pytest.mark.parametrize(("units", "fits"), [(K, True), (K + 1, False)], ids=["at", "above"])
def test_g2g_doubles_the_allocation_from_its_date(tmp_path: Path, units: int, fits: bool) -> None:
    # used 1,580,000,000 - 3 x 15,831.2: far above 790M, so before the arrangement's date nothing fits;
    # from it the cap is 1,580,000,000 and exactly 3 units fit
    used = {**NO_LPP, "allocation:BR": ALLOCATION_G2G - K * H100_TPP}
    since = dt.date(2025, 6, 1)
    rows = [line(1, date="2025-05-31"), line(units, date="2025-06-01")]
    result, decisions = screen(tmp_path, rows, used, g2g={"BR": since})
    licence(decisions[0], DENIAL, None, 1)
    if fits:
        licence(decisions[1], APPROVAL, "allocation:BR", units)
    else:
        licence(decisions[1], DENIAL, None, units)
    drawn = {"allocation:BR": float(units * H100_TPP)} if fits else {}
    assert result.summary["drawn"]["allocation"] == drawn


def test_g2g_certification_on_the_line_doubles_the_allocation(tmp_path: Path) -> None:
    used = {**NO_LPP, "allocation:BR": ALLOCATION}
    rows = [line(1), line(1, certifications="g2g_arrangement")]
    _, decisions = screen(tmp_path, rows, used)
    licence(decisions[0], DENIAL, None, 1)
    licence(decisions[1], APPROVAL, "allocation:BR", 1)


# ---- 4. the LPP operating entity ------------------------------------------------------------------


@pytest.mark.parametrize("hq", ["DE", "JP", "US"])
def test_tier1_headquartered_consignee_draws_its_operating_entity(tmp_path: Path, hq: str) -> None:
    # the operator has room for exactly one unit; the consignee's own account is empty, yet a second
    # unit does not fit: the operator's limit is the one that counts (15 CFR 740.29(a))
    used = {"lpp:ops-1:2025": LPP_LIMIT - H100_TPP}
    rows = [
        line(1, consignee="sub-a", hq=hq, lpp_operating_entity="ops-1"),
        line(1, consignee="sub-b", hq=hq, lpp_operating_entity="ops-1"),
    ]
    result, decisions = screen(tmp_path, rows, used)
    lpp(decisions[0], "lpp:ops-1:2025", 1)
    licence(decisions[1], APPROVAL, "allocation:BR", 1)
    assert result.summary["drawn"]["lpp"] == {"lpp:ops-1:2025": float(H100_TPP)}


def test_consignees_of_one_operating_entity_share_its_limit(tmp_path: Path) -> None:
    rows = [
        line(1000, consignee="sub-a", hq="DE", lpp_operating_entity="ops-1"),
        line(699, consignee="sub-b", hq="FR", lpp_operating_entity="ops-1"),  # 1,699 units: 26,897,208.8
        line(1, consignee="sub-c", hq="JP", lpp_operating_entity="ops-1"),  # 26,913,040 > 26.9M
        line(1, consignee="sub-c", hq="JP"),  # without an operator: sub-c's own account
    ]
    _, decisions = screen(tmp_path, rows)
    lpp(decisions[0], "lpp:ops-1:2025", 1000)
    lpp(decisions[1], "lpp:ops-1:2025", 699)
    licence(decisions[2], APPROVAL, "allocation:BR", 1)
    lpp(decisions[3], "lpp:sub-c:2025", 1)


def test_tier2_headquartered_consignee_keeps_its_own_account(tmp_path: Path) -> None:
    # a BR-headquartered consignee cannot count toward another entity's limit: its own account, a warning
    used = {"lpp:ops-1:2025": LPP_LIMIT}
    _, [d] = screen(tmp_path, [line(5, hq="BR", lpp_operating_entity="ops-1")], used)
    lpp(d, "lpp:acme-br:2025", 5)
    assert "operating entity is ignored" in d["warnings"]


# ---- 5. Data Center VEUs --------------------------------------------------------------------------

# A US-headquartered UVEU with 93 H100s installed in the United States. A BR line of q units makes
# BR's share q / (93 + q): 7 / 100 = 7% exactly (allowed, para. 6(ii) "at most 7%"), 8 / 101 = 7.92%
# is over. The US keeps 93 / 100 = 93% >= 50% and supp. no. 5(a) 93% >= 75%.
UVEU_BASE = {"uveu:hyper:US": 93 * H100_TPP}  # 1,472,301.6


def uveu_line(quantity: int, destination: str = "BR", hq: str = "US", **extra: Any) -> dict[str, Any]:
    return line(quantity, consignee="hyper", destination=destination, hq=hq, consignee_veu="UVEU", **extra)


@pytest.mark.parametrize(("units", "share"), [(6, Fraction(6, 99)), (7, Fraction(7, 100))], ids=["below", "at"])
def test_uveu_single_country_share_within_7_percent(tmp_path: Path, units: int, share: Fraction) -> None:
    assert units * H100_TPP / (93 * H100_TPP + units * H100_TPP) == share <= Fraction(7, 100)
    result, [d] = screen(tmp_path, [uveu_line(units)], UVEU_BASE)
    assert drew(d) == ("UVEU", None, "uveu:hyper:BR", float(units * H100_TPP))
    assert d["needs_license"] is False
    assert result.summary["drawn"]["uveu"] == {"uveu:hyper:BR": float(units * H100_TPP)}


def test_uveu_single_country_share_above_7_percent_falls_to_lpp(tmp_path: Path) -> None:
    assert Fraction(8, 101) > Fraction(7, 100)
    result, [d] = screen(tmp_path, [uveu_line(8)], UVEU_BASE)
    # UVEU refused; no NVEU; LPP (a US-headquartered consignee without an operator: its own account)
    lpp(d, "lpp:hyper:2025", 8)
    assert "UVEU" in d["exceptions_considered"].split(";")
    assert result.summary["drawn"]["uveu"] == {}


def test_uveu_shares_accumulate_within_the_file(tmp_path: Path) -> None:
    # 6 units: 6/99; then 1 more: 7/100 exactly; then 1 more: 8/101 > 7%
    result, decisions = screen(tmp_path, [uveu_line(6), uveu_line(1), uveu_line(1)], UVEU_BASE)
    assert drew(decisions[0]) == ("UVEU", None, "uveu:hyper:BR", float(6 * H100_TPP))
    assert drew(decisions[1]) == ("UVEU", None, "uveu:hyper:BR", float(H100_TPP))
    lpp(decisions[2], "lpp:hyper:2025", 1)
    assert result.summary["drawn"]["uveu"] == {"uveu:hyper:BR": float(7 * H100_TPP)}


@pytest.mark.parametrize(("units", "fits"), [(1, True), (2, False)], ids=["at", "above"])
def test_uveu_us_headquartered_keeps_half_in_the_us(tmp_path: Path, units: int, fits: bool) -> None:
    # 50 H100s in the US and 49 in Germany: 1 more in Germany leaves the US 50/100 = 50% (allowed),
    # 2 more leave 50/101 < 50%. Germany is supp. no. 5(a), so the 75% and 7% limits hold throughout.
    used = {"uveu:hyper:US": 50 * H100_TPP, "uveu:hyper:DE": 49 * H100_TPP}
    _, [d] = screen(tmp_path, [uveu_line(units, destination="DE")], used)
    if fits:
        assert drew(d) == ("UVEU", None, "uveu:hyper:DE", float(units * H100_TPP))
    else:
        lpp(d, "lpp:hyper:2025", units)


def test_uveu_tier1_share_at_least_75_percent(tmp_path: Path) -> None:
    # A German UVEU (no US minimum): 75 units in DE and 6 in each of BR, IN, MX, ZA (24): 75/99 >= 75%
    # and every other country 6/99 <= 7%. One more in BR: 75/100 = 75% exactly, BR 7/100 = 7% exactly
    # (allowed). Then one in IN: 75/101 < 75% (refused, while IN's 7/101 alone would be within 7%).
    used = {"uveu:hyper:DE": 75 * H100_TPP} | {f"uveu:hyper:{c}": 6 * H100_TPP for c in ("BR", "IN", "MX", "ZA")}
    rows = [uveu_line(1, hq="DE"), uveu_line(1, destination="IN", hq="DE")]
    _, decisions = screen(tmp_path, rows, used)
    assert drew(decisions[0]) == ("UVEU", None, "uveu:hyper:BR", float(H100_TPP))
    lpp(decisions[1], "lpp:hyper:2025", 1)


def nveu_cap(on: dt.date) -> Fraction:
    """The cumulative NVEU allowance per destination on `on`: the first step of the schedule in the
    policy data (nveu.cumulative_cap_schedule, ~100k / 270k / 320k H100-equivalents at year ends,
    unconfirmed) whose `through` date is on or after `on`."""
    schedule = policy_value("nveu", "cumulative_cap_schedule")
    return Fraction(next(s["tpp"] for s in schedule if on <= s["through"]))


def nveu_line(quantity: int, date: str = DAY, destination: str = "BR") -> dict[str, Any]:
    return line(
        quantity,
        date=date,
        consignee="nv",
        destination=destination,
        consignee_veu="NVEU",
        consignee_veu_destinations="BR",
    )


def test_nveu_schedule_values() -> None:
    # ~100,000 H100e by end-2025 at 15,832 TPP, ~270,000 by end-2026 (ai-diffusion-rule.md §7.3)
    assert nveu_cap(dt.date(2025, 6, 1)) == 1_580_000_000
    assert nveu_cap(dt.date(2026, 6, 1)) == 4_270_000_000


@pytest.mark.parametrize(("units", "fits"), [(K - 1, True), (K, True), (K + 1, False)], ids=["below", "at", "above"])
def test_nveu_within_and_over_its_allowance(tmp_path: Path, units: int, fits: bool) -> None:
    cap = nveu_cap(dt.date(2025, 6, 1))
    used = {"nveu:nv:BR": cap - K * H100_TPP}  # room for exactly 3 H100s
    result, [d] = screen(tmp_path, [nveu_line(units)], used)
    if fits:
        assert drew(d) == ("NVEU", None, "nveu:nv:BR", float(units * H100_TPP))
        assert result.summary["drawn"]["nveu"] == {"nveu:nv:BR": float(units * H100_TPP)}
    else:
        lpp(d, "lpp:nv:2025", units)  # the NVEU is full; LPP still has room
        assert "NVEU" in d["exceptions_considered"].split(";")
        assert result.summary["drawn"]["nveu"] == {}


def test_nveu_allowance_grows_with_the_schedule(tmp_path: Path) -> None:
    # usage at the 2025 cap: nothing more in 2025, room again in 2026 (the cumulative cap rises)
    cap_2025 = nveu_cap(dt.date(2025, 12, 31))
    assert nveu_cap(dt.date(2026, 1, 1)) > cap_2025 + H100_TPP
    used = {"nveu:nv:BR": cap_2025}
    _, decisions = screen(tmp_path, [nveu_line(1, "2025-12-31"), nveu_line(1, "2026-01-01")], used)
    lpp(decisions[0], "lpp:nv:2025", 1)
    assert drew(decisions[1]) == ("NVEU", None, "nveu:nv:BR", float(H100_TPP))


def test_nveu_only_for_its_destinations(tmp_path: Path) -> None:
    _, [d] = screen(tmp_path, [nveu_line(1, destination="IN")])
    lpp(d, "lpp:nv:2025", 1)


# ---- 6. the summary -------------------------------------------------------------------------------


def boundary_book() -> list[dict[str, Any]]:
    """LPP, allocation, operator, UVEU and NVEU lines reaching their limits, across a year end."""
    return [
        line(1000),
        line(699),
        line(1),
        line(1700, consignee="big-br"),
        line(3, consignee="sub-a", hq="DE", lpp_operating_entity="ops-1"),
        uveu_line(6),
        uveu_line(1),
        uveu_line(1),
        nveu_line(2),
        line(2, destination="CN", consignee="cn-1"),  # Tier 3: denial, no draw
        line(4, destination="DE", consignee="de-1", certifications="aia_certification;approved_designer"),  # AIA
        line(1699, date="2025-12-31", consignee="late"),
        line(1, date="2025-12-31", consignee="late"),
        line(1699, date="2026-01-01", consignee="late"),
        line(2, date="2026-01-02", consignee="late", hq="BR", lpp_operating_entity="ops-1"),
    ]


def check_summary(result: Result, decisions: list[dict[str, Any]]) -> None:
    s = result.summary
    assert s["lines"] == s["screened"] == len(decisions) == result.lines == result.screened
    assert s["rejected"] == 0
    assert sum(o["lines"] for o in s["by_outcome"]) == s["screened"]
    counted: dict[tuple[str, str | None], int] = {}
    for d in decisions:
        counted[(d["authorization"], d["review_policy"])] = counted.get((d["authorization"], d["review_policy"]), 0) + 1
    assert {(o["authorization"], o["review_policy"]): o["lines"] for o in s["by_outcome"]} == counted
    assert s["needs_license"] == sum(d["needs_license"] for d in decisions)
    assert s["needs_license"] == sum(n for (a, _p), n in counted.items() if a == "LICENSE")
    assert s["with_warnings"] == sum(d["warnings"] is not None for d in decisions)
    totals: dict[str, float] = {}
    for d in decisions:
        if d["draw_account"] is not None:
            totals[d["draw_account"]] = totals.get(d["draw_account"], 0.0) + d["draw_tpp"]
    drawn = {a: v for kind in ("allocation", "lpp", "nveu", "uveu") for a, v in s["drawn"][kind].items()}
    assert drawn.keys() == totals.keys()
    for account, value in totals.items():
        assert drawn[account] == pytest.approx(value, rel=1e-12), account
    assert s["vintage"] == VINTAGE


def test_summary_of_a_boundary_book(tmp_path: Path) -> None:
    result, decisions = screen(tmp_path, boundary_book(), UVEU_BASE)
    check_summary(result, decisions)
    s = result.summary
    # hand totals: acme-br 1,699 units; ops-1 3; late 1,699 (2025) and 1,699 (2026) plus late's 2 units
    # on 2026-01-02 (BR-headquartered: the operator is ignored) = 1,701 units in 2026, of which the
    # 1,700th and 1,701st do not fit -> allocation. Allocation:BR: acme-br's 1 + big-br's 1,700 +
    # late's 1 on 2025-12-31 + 2 on 2026-01-02 = 1,704 units.
    assert s["drawn"]["lpp"] == {
        "lpp:acme-br:2025": float(1699 * H100_TPP),
        "lpp:late:2025": float(1699 * H100_TPP),
        "lpp:late:2026": float(1699 * H100_TPP),
        "lpp:ops-1:2025": float(3 * H100_TPP),
        "lpp:hyper:2025": float(1 * H100_TPP),
    }
    assert s["drawn"]["allocation"] == {"allocation:BR": float(1704 * H100_TPP)}
    assert s["drawn"]["uveu"] == {"uveu:hyper:BR": float(7 * H100_TPP)}
    assert s["drawn"]["nveu"] == {"nveu:nv:BR": float(2 * H100_TPP)}
    outcomes = {(o["authorization"], o["review_policy"]): o["lines"] for o in s["by_outcome"]}
    assert outcomes == {
        ("LPP", None): 6,
        ("LICENSE", APPROVAL): 4,
        ("LICENSE", DENIAL): 1,
        ("UVEU", None): 2,
        ("NVEU", None): 1,
        ("AIA", None): 1,
    }
    assert s["needs_license"] == 5
    assert s["starting_state_as_of"] == DAY


def test_summary_of_a_sample_book(tmp_path: Path) -> None:
    orders = tmp_path / "sample.csv"
    write_sample(400, orders, seed=7)
    out = tmp_path / "sample.decisions.parquet"
    result = screen_file(orders, out, state=InMemoryAllowances(), vintage=VINTAGE)
    decisions = pl.read_parquet(out).to_dicts()
    check_summary(result, decisions)
    assert len({d["authorization"] for d in decisions}) >= 4


# ---- 7. streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("book", ["boundary", "sample"])
def test_chunk_size_does_not_change_the_decisions(tmp_path: Path, book: str) -> None:
    if book == "boundary":
        orders = write_book(tmp_path / "book.csv", boundary_book() * 3)  # the limits are met across chunks
    else:
        orders = tmp_path / "book.csv"
        write_sample(300, orders, seed=11)
    runs = {}
    for chunk in (3, 1_000_000):
        out = tmp_path / f"chunk{chunk}.parquet"
        state = InMemoryAllowances(UVEU_BASE)
        runs[chunk] = screen_file(orders, out, state=state, vintage=VINTAGE, chunk_size=chunk, collect_draws=True)
    small, large = (pl.read_parquet(tmp_path / f"chunk{c}.parquet") for c in (3, 1_000_000))
    assert small.height == large.height > 3
    assert small.equals(large, null_equal=True)
    assert runs[3].summary == runs[1_000_000].summary
    assert runs[3].draws == runs[1_000_000].draws
    assert runs[3].lines == runs[1_000_000].lines == small.height


def test_collected_draws_are_dated_per_account(tmp_path: Path) -> None:
    # the draws `--apply` records: per account and shipment date, exact fractions
    rows = [line(1000), line(699), line(1), line(2, date="2025-06-02")]
    orders = write_book(tmp_path / "book.csv", rows)
    result = screen_file(orders, None, state=InMemoryAllowances(), vintage=VINTAGE, collect_draws=True)
    june1, june2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)
    assert result.draws == {
        ("lpp:acme-br:2025", june1): 1699 * H100_TPP,
        ("allocation:BR", june1): 1 * H100_TPP,
        ("allocation:BR", june2): 2 * H100_TPP,
    }
    assert result.out is None and result.screened == 4


# ---- invalid rows through the API -----------------------------------------------------------------


def test_invalid_rows_refuse_the_file(tmp_path: Path) -> None:
    rows = [line(1), line(0), line(1, date="2025-02-30"), line(1, destination="Atlantis"), line(1, chip="X9")]
    orders = write_book(tmp_path / "bad.csv", rows)
    out = tmp_path / "bad.decisions.csv"
    result = screen_file(orders, out, state=InMemoryAllowances(), vintage=VINTAGE)
    assert result.refused and result.out is None and not out.exists()
    assert result.bad_count == 4 and result.lines == 5 and result.screened == 0
    assert [(b.line, b.column) for b in result.bad] == [(2, "quantity"), (3, "date"), (4, "destination"), (5, "chip")]
    assert result.rejects == tmp_path / "bad.decisions.rejects.csv"
    assert result.summary == {} and result.draws == {}


def test_skip_invalid_screens_the_valid_rows(tmp_path: Path) -> None:
    rows = [line(1000), line(0), line(699), line(1, date="2025-02-30"), line(1)]
    orders = write_book(tmp_path / "bad.csv", rows)
    out = tmp_path / "bad.decisions.parquet"
    result = screen_file(orders, out, state=InMemoryAllowances(), vintage=VINTAGE, skip_invalid=True)
    assert (result.lines, result.screened, result.bad_count) == (5, 3, 2)
    decisions = pl.read_parquet(out).to_dicts()
    assert [d["line"] for d in decisions] == [1, 3, 5]
    lpp(decisions[0], "lpp:acme-br:2025", 1000)
    lpp(decisions[1], "lpp:acme-br:2025", 699)
    licence(decisions[2], APPROVAL, "allocation:BR", 1)
    assert result.rejects is not None and result.rejects.exists()


# ---- JSON Lines: keys that first appear late ----------------------------------------------------


def late_key_book(path: Path, extra: dict[str, Any]) -> Path:
    """1,200 plain lines, then one with `extra` keys the earlier lines do not have."""
    base = {"date": DAY, "chip": H100, "quantity": 1, "destination": "BR", "consignee_id": "acme-br"}
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(1200):
            handle.write(json.dumps(base) + "\n")
        handle.write(json.dumps({**base, "consignee_id": "dev-br", **extra}) + "\n")
    return path


def test_jsonl_optional_key_first_used_after_line_1000_counts(tmp_path: Path) -> None:
    # H100 to a BR-headquartered commercial consignee for development: License Exception ACM
    # (15 CFR 740.28(a): development, production or storage before onward shipment; no TPP cap)
    orders = late_key_book(tmp_path / "late.jsonl", {"end_use": "development"})
    out = tmp_path / "late.decisions.parquet"
    result = screen_file(orders, out, state=InMemoryAllowances(), vintage=VINTAGE)
    last = pl.read_parquet(out).row(-1, named=True)
    assert result.lines == 1201 and last["line"] == 1201
    assert (last["authorization"], last["draw_account"]) == ("ACM", None)


def test_jsonl_unknown_key_after_line_1000_is_refused(tmp_path: Path) -> None:
    orders = late_key_book(tmp_path / "late.jsonl", {"colour": "red"})
    out = tmp_path / "late.decisions.csv"
    with pytest.raises(TierlineError, match="colour"):
        screen_file(orders, out, state=InMemoryAllowances(), vintage=VINTAGE)
    assert not out.exists()


def test_plans_built_by_worker_processes_give_the_same_decisions(tmp_path: Path, monkeypatch: Any) -> None:
    """The pool of plan-building processes (screen.workers) answers exactly as the screening
    process itself: same decisions, line by line, on a book with hundreds of kinds of line."""
    import tierline.screen.workers as workers

    orders = tmp_path / "book.csv"
    write_sample(3000, orders, seed=7)
    outs = {}
    monkeypatch.setattr(workers, "_pool", None)
    for n, minimum in ((1, 10**9), (2, 1)):
        monkeypatch.setenv(workers.WORKERS_ENV, str(n))
        monkeypatch.setattr(workers, "MIN_PARALLEL", minimum)
        outs[n] = tmp_path / f"out{n}.parquet"
        result = screen_file(orders, outs[n], state=InMemoryAllowances(), vintage=VINTAGE)
        assert result.screened == 3000
        assert (workers._pool is None) == (n == 1)  # n=2: the plans were built by the pool
    pool = workers._pool
    assert pool is not None
    pool.shutdown()
    assert pl.read_parquet(outs[1]).equals(pl.read_parquet(outs[2]))


def test_a_dead_plan_worker_does_not_lose_the_screening(tmp_path: Path, monkeypatch: Any) -> None:
    """A worker killed mid-run (out of memory, say) breaks the pool: the plans are built in the
    screening process instead and the decisions are the same; the next screening gets a new pool."""
    import os
    import signal

    import tierline.screen.workers as workers

    orders = tmp_path / "book.csv"
    write_sample(2000, orders, seed=11)
    monkeypatch.setenv(workers.WORKERS_ENV, "1")
    expected = tmp_path / "expected.parquet"
    screen_file(orders, expected, state=InMemoryAllowances(), vintage=VINTAGE)
    monkeypatch.setenv(workers.WORKERS_ENV, "2")
    monkeypatch.setattr(workers, "MIN_PARALLEL", 1)
    monkeypatch.setattr(workers, "_pool", None)
    pool = workers._pool_for(2)
    assert pool.submit(os.getpid).result() != os.getpid()  # a live worker
    for pid in list(pool._processes):  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    out = tmp_path / "out.parquet"
    screen_file(orders, out, state=InMemoryAllowances(), vintage=VINTAGE)
    assert pl.read_parquet(out).equals(pl.read_parquet(expected))
    assert workers._pool is None  # dropped; a new one is made on next use


def test_kinds_of_line_group_on_both_halves_of_the_key() -> None:
    """Lines are grouped by a 128-bit key (two 64-bit hashes), in order of first appearance; two
    kinds that share the first half are still told apart."""
    import numpy as np

    from tierline.screen.engine import _kinds

    k1 = np.array([5, 3, 5, 9, 3, 7], dtype=np.uint64)
    first, kind = _kinds(k1, np.array([1, 2, 1, 4, 2, 6], dtype=np.uint64))
    assert first.tolist() == [0, 1, 3, 5] and kind.tolist() == [0, 1, 0, 2, 1, 3]
    first, kind = _kinds(k1, np.array([1, 2, 8, 4, 2, 6], dtype=np.uint64))  # lines 0 and 2 differ in k2
    assert first.tolist() == [0, 1, 2, 3, 5] and kind.tolist() == [0, 1, 2, 3, 1, 4]


def test_plan_workers_exit_when_the_screening_process_is_killed(tmp_path: Path) -> None:
    """A screening process killed with SIGKILL never shuts its pool down: its plan workers notice
    their parent is gone and exit (a server restarted that way leaves nothing behind)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "fork.py"
    script.write_text(
        "import os, sys, time\n"
        "os.environ['TIERLINE_WORKERS'] = '2'\n"
        "import tierline.screen.workers as w\n"
        "w.start_workers()\n"
        "pool = w._pool\n"
        "while len(getattr(pool, '_processes', {}) or {}) < 2: time.sleep(0.05)\n"
        "print(' '.join(str(p) for p in pool._processes), flush=True)\n"
        "time.sleep(60)\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:  # a zombie has exited
            return stat.read().split(") ")[1][0] != "Z"

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    assert not [p for p in pids if alive(p)]


# ---- policy epochs: a Country Group change starts one only for the lines naming its country ----------
def twin_lines(
    tmp_path: Path, codes: tuple[str, ...], days: tuple[str, str], reform: Any = None
) -> tuple[int, list[dict[str, Any]]]:
    """Ten H100s to each of `codes` on each of `days`, identical otherwise: the plans the vectorized
    engine builds for them, and its decisions (checked equal to the scalar engine's)."""
    from tierline.screen.engine import Screener, Snapshot, screen_scalar
    from tierline.screen.plans import build
    from tierline.screen.read import batches, parse

    rows = [
        {
            "date": day,
            "chip": H100,
            "quantity": 10,
            "destination": code,
            "consignee_id": f"{code}-1",
            "end_use": "data_center",
        }
        for code in codes
        for day in days
    ]
    batch, bad = parse(next(batches(write_book(tmp_path / "book.csv", rows), 100)))
    assert len(bad) == 0
    screener = Screener(Snapshot(as_of=dt.date.fromisoformat(days[0])), VINTAGE, reform=reform)
    planning = screener.new_plans(batch)
    pid, none = screener.planned(batch, planning, build(planning.tasks))
    assert none == []
    got = screener.screen(batch, pid).to_dicts()
    expected, _ = screen_scalar(batch, InMemoryAllowances(), VINTAGE, reform)
    assert got == expected
    return len(planning.tasks), got


def test_a_country_group_change_splits_only_the_lines_naming_its_country(tmp_path: Path) -> None:
    from tierline.reforms import parse_reform

    # a scenario takes China out of Country Group D:5 on 2026-04-01; Hong Kong is treated as China
    reform = parse_reform(
        {
            "name": "china-out-of-d5",
            "countries": [{"country": "CN", "group": "D:5", "change": "removed", "from": "2026-04-01"}],
        }
    )
    plans, got = twin_lines(tmp_path, ("BR", "CN", "HK"), ("2026-03-31", "2026-04-01"), reform)
    # one plan for the Brazilian lines (nothing they read changes), one per side of the date for
    # China and for Hong Kong
    assert plans == 5
    # Tier 3 is D:5 and Macau (90 FR 4544): China and Hong Kong leave it with the scenario, Brazil is Tier 2
    assert [(r["destination"], r["date"].isoformat(), r["tier"]) for r in got] == [
        ("BR", "2026-03-31", 2),
        ("BR", "2026-04-01", 2),
        ("CN", "2026-03-31", 3),
        ("CN", "2026-04-01", 2),
        ("CN", "2026-03-31", 3),
        ("CN", "2026-04-01", 2),
    ]


def test_a_country_list_parameter_splits_only_the_lines_naming_a_country_it_adds(tmp_path: Path) -> None:
    from tierline.groups import country_groups
    from tierline.policy.epochs import change_dates, country_changes

    # policy data: b_level.named_destinations is [AE] from 2026-07-10 (91 FR 43034, when the UAE moved
    # into A:5); china_2026.destinations is [CN, MO] from 2026-01-15
    changes = country_changes(country_groups().changes, VINTAGE)
    assert {(dt.date(2026, 7, 10), "AE"), (dt.date(2026, 1, 15), "CN"), (dt.date(2026, 1, 15), "MO")} <= set(changes)
    assert dt.date(2026, 7, 10) not in change_dates((), VINTAGE)  # not a new epoch for every line
    assert dt.date(2026, 1, 15) in change_dates((), VINTAGE)  # the China ceilings start that day for all
    plans, _ = twin_lines(tmp_path, ("BR", "AE"), ("2026-07-09", "2026-07-10"))
    assert plans == 3  # Brazil: one plan; the UAE: one per side of 2026-07-10


def test_lines_naming_their_own_vintage_get_its_policy_dates(tmp_path: Path) -> None:
    # screened under ear-2023, lines that name ai-diffusion follow its 15 January 2026 China rule:
    # H200 (TPP 15,831.2 < 21,000; DRAM 4,800 < 6,500 GB/s) to China is reviewed case by case from
    # that day, with a presumption of denial the day before (China is in D:5)
    rows = [
        {"date": day, "chip": "H200", "quantity": 10, "destination": "CN", "consignee_id": "cn-1", "vintage": VINTAGE}
        for day in ("2026-01-14", "2026-01-15")
    ]
    out = tmp_path / "decisions.csv"
    screen_file(write_book(tmp_path / "book.csv", rows), out, vintage="ear-2023", state=InMemoryAllowances())
    got = pl.read_csv(out).select("date", "vintage", "authorization", "review_policy").rows()
    assert got == [
        ("2026-01-14", VINTAGE, "LICENSE", DENIAL),
        ("2026-01-15", VINTAGE, "LICENSE", "case_by_case"),
    ]
