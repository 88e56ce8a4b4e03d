"""Total processing performance (Technical Note to ECCN 3A090): TPP = 2 x MacTOPS x bit length,
i.e. the dense datasheet rate (TOPS/TFLOPS) times the bit length, the maximum over precisions."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

from tierline.errors import TierlineError
from tierline.policy import Context
from tierline.policy.vintages import ParameterUse

TPP_CITATION = "15 CFR 774 Supp. 1, ECCN 3A090, Technical Notes (TPP; Technical Note 3: dense rates)"


def exact(value: float | int | str | Fraction) -> Fraction:
    """An exact rational from a decimal figure, so thresholds compare without float error."""
    return value if isinstance(value, Fraction) else _exact(value)


@functools.lru_cache(maxsize=65536)
def _exact(value: float | int | str) -> Fraction:
    return Fraction(str(value))


@dataclass(frozen=True)
class Rate:
    """A peak rate at one precision, in TOPS or TFLOPS; `sparse` marks a sparsity figure."""

    precision: str
    value: float
    sparse: bool = False


def parse_rate(text: str, sparse: bool = False) -> Rate:
    """Parse ``PRECISION=VALUE`` (e.g. ``fp8=1979``); the error names the field."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise TierlineError("rate", f"{text!r} is not PRECISION=VALUE (for example fp8=1979)")
    try:
        value = float(raw)
    except ValueError:
        raise TierlineError(f"rate.{name.strip().lower()}", f"{raw!r} is not a number") from None
    return Rate(name.strip().lower(), value, sparse)


@dataclass(frozen=True)
class TppResult:
    """TPP with the precision that sets it and every precision's contribution."""

    tpp: Fraction
    precision: str
    bit_length: int
    dense_rate: Fraction
    per_precision: dict[str, Fraction]
    sparse_halved: tuple[str, ...]
    parameters: tuple[ParameterUse, ...]


def bit_lengths(ctx: Context, alternative_tf32: bool = False) -> tuple[dict[str, int], list[ParameterUse]]:
    """Bit length per precision in force, TF32 by the chosen convention."""
    table = ctx.use("tpp.bit_length")
    tf32 = ctx.use("tpp.tf32_alternative_bit_length" if alternative_tf32 else "tpp.tf32_bit_length")
    return {**table.value, **tf32.value}, [table, tf32]


def total_processing_performance(rates: list[Rate], ctx: Context, alternative_tf32: bool = False) -> TppResult:
    """TPP of one IC from its per-precision rates (Technical Notes to 3A090)."""
    if not rates:
        raise TierlineError("rate", "at least one rate is needed (for example fp8=1979)")
    bits, used = bit_lengths(ctx, alternative_tf32)
    sparse_use = ctx.use("tpp.sparse_factor")
    per: dict[str, Fraction] = {}
    dense: dict[str, Fraction] = {}
    halved = []
    for rate in rates:
        field = f"rate.{rate.precision}"
        if rate.precision not in bits:
            raise TierlineError(field, f"unknown precision; one of {', '.join(sorted(bits))}")
        if not rate.value == rate.value or rate.value in (float("inf"), float("-inf")):
            raise TierlineError(field, "must be a finite number")
        if rate.value < 0:
            raise TierlineError(field, f"{rate.value:g} is negative; a rate is 0 or more")
        value = exact(rate.value)
        if rate.sparse:
            value *= exact(sparse_use.value)
            halved.append(rate.precision)
        dense[rate.precision] = max(dense.get(rate.precision, Fraction(0)), value)
        per[rate.precision] = dense[rate.precision] * bits[rate.precision]
    best = max(per, key=lambda p: (per[p], bits[p]))
    if halved:
        used.append(sparse_use)
    return TppResult(
        tpp=per[best],
        precision=best,
        bit_length=bits[best],
        dense_rate=dense[best],
        per_precision=per,
        sparse_halved=tuple(halved),
        parameters=tuple(used),
    )
