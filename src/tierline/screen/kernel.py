"""The allowance accumulation kernel: lines in order, each trying its plan's candidate draws in the
rules' order, exactly as the scalar engine would one transaction after another.

Amounts are integers in units of 1/scale TPP, so every comparison is exact. A candidate is either a
cap (``used + line <= cap``, as LPP, NVEU and the country allocation compare) or the UVEU shares
(each `allowances.ShareLimit`: the share of a measure in the installed base at least or at most a
bound, compared as ``value * den >= num * total``). Compiled with numba: a sequential scan over
arrays, the one part of screening that cannot be a column expression.
"""

from __future__ import annotations

import numpy as np
from numba import njit

CAP, SHARES = 0, 1
TIER1, SINGLE_NON_TIER1, US = 0, 1, 2
LIMIT = np.int64(2**62)  # operands stay below this, so sums and products below 2**63 are checked first


@njit(cache=True, nogil=True)
def _shares_ok(
    installed: np.ndarray,
    amount: np.int64,
    dest: np.int64,
    tier1: np.ndarray,
    us: np.int64,
    measures: np.ndarray,
    minimums: np.ndarray,
    nums: np.ndarray,
    dens: np.ndarray,
    count: np.int64,
) -> int:
    """1 when the installed base plus `amount` in `dest` meets every limit, 0 when not, -1 on overflow."""
    total = amount
    in_tier1 = amount if tier1[dest] else np.int64(0)
    largest = amount if not tier1[dest] else np.int64(0)
    for c in range(installed.shape[0]):
        value = installed[c]
        if value == 0:
            continue
        if total > LIMIT - value:
            return -1
        total += value
        if tier1[c]:
            in_tier1 += value
        else:
            here = value + amount if c == dest else value
            if here > largest:
                largest = here
    us_value = installed[us] + (amount if dest == us else np.int64(0))
    for j in range(count):
        measure = measures[j]
        value = in_tier1 if measure == TIER1 else largest if measure == SINGLE_NON_TIER1 else us_value
        if dens[j] > 0 and value > LIMIT // dens[j] or nums[j] > 0 and total > LIMIT // nums[j]:
            return -1
        lhs = value * dens[j]
        rhs = nums[j] * total
        if minimums[j]:
            if lhs < rhs:
                return 0
        elif lhs > rhs:
            return 0
    return 1


@njit(cache=True, nogil=True)
def accumulate(
    profile: np.ndarray,
    amount: np.ndarray,
    slots: np.ndarray,
    uveu_row: np.ndarray,
    ncand: np.ndarray,
    kind: np.ndarray,
    cap: np.ndarray,
    dest: np.ndarray,
    tier1: np.ndarray,
    measures: np.ndarray,
    minimums: np.ndarray,
    nums: np.ndarray,
    dens: np.ndarray,
    nlimits: np.ndarray,
    us: np.int64,
    used: np.ndarray,
    uveu: np.ndarray,
    branch: np.ndarray,
) -> int:
    """Fill `branch` (the candidate each line drew from, or the profile's candidate count when none
    fitted) and update `used` (per account slot) and `uveu` (installed base per entity and country).
    Returns -1 on success, else the index of the first line whose amounts overflow."""
    for i in range(profile.shape[0]):
        p = profile[i]
        a = amount[i]
        chosen = ncand[p]
        for k in range(ncand[p]):
            s = slots[i, k]
            if kind[p, k] == CAP:
                if used[s] > LIMIT or a > LIMIT:
                    return i
                if used[s] + a <= cap[p, k]:
                    chosen = k
                    break
            else:
                ok = _shares_ok(
                    uveu[uveu_row[i]], a, dest[p], tier1[p], us, measures[p], minimums[p], nums[p], dens[p], nlimits[p]
                )
                if ok < 0:
                    return i
                if ok == 1:
                    chosen = k
                    break
        branch[i] = chosen
        if chosen < ncand[p]:
            used[slots[i, chosen]] += a
            if kind[p, chosen] == SHARES:
                uveu[uveu_row[i], dest[p]] += a
    return -1
