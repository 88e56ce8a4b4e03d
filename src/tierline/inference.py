"""Inference performance bounds under the controls: a roofline for prefill and decode of a model on
a chip, with the binding resource named, and comparisons per chip, per unit of TPP and per
H100-equivalent of allowance used.

The controls measure arithmetic (TPP, density); the decode step of large-model inference is bound by
memory bandwidth. The bounds here are upper bounds: peak dense rate and peak bandwidth, no efficiency
factors, attention FLOPs ignored (only the 2 x active-parameter matmul FLOPs per token are counted).

Decode step for a batch of B sequences at context length L:
    FLOPs = 2 x active_params x B
    bytes = active_params x bytes_per_weight + B x L x kv_bytes_per_token
    time  = max(FLOPs / peak, bytes / bandwidth);  tokens/s = B / time
Prefill of B sequences of L tokens:
    FLOPs = 2 x active_params x B x L
    bytes = active_params x bytes_per_weight + B x L x kv_bytes_per_token (KV written)
    time  = max(FLOPs / peak, bytes / bandwidth);  tokens/s = B x L / time
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tierline.catalog import Chip, catalog, find_chip
from tierline.errors import TierlineError
from tierline.policy import Context
from tierline.tpp import bit_lengths, exact, total_processing_performance

TERA, GIGA = 10**12, 10**9
# The catalogue's "fp16" column holds FP16/BF16 rates.
CATALOGUE_ALIASES = {"bf16": "fp16"}
FORMULAS = {
    "decode": (
        "FLOPs = 2 × active_params × B; bytes = active_params × bytes_per_weight + B × L × kv_bytes_per_token; "
        "time = max(FLOPs / peak, bytes / bandwidth); tokens/s = B / time"
    ),
    "prefill": (
        "FLOPs = 2 × active_params × B × L; bytes = active_params × bytes_per_weight + B × L × kv_bytes_per_token "
        "(KV written); time = max(FLOPs / peak, bytes / bandwidth); tokens/s = B × L / time"
    ),
}
ASSUMPTIONS = [
    "upper bounds: peak dense rate and peak memory bandwidth, no efficiency factors",
    "attention FLOPs are ignored (only 2 FLOPs per active parameter per token)",
    "weights are read once per decode step; the KV cache of every sequence is read once per step",
    "for mixture-of-experts models only the active parameters are read per step (optimistic for large batches)",
    "one chip with its own memory; a model that does not fit is assumed sharded with the same bandwidth per chip",
    "peak is the chip's dense rate at the precision matching bytes per weight (2 → fp16/bf16, 1 → fp8/int8, "
    "0.5 → fp4), or the narrowest wider precision the chip has",
]
LIMITS = {
    "parameters": (Fraction(1), Fraction(10**15)),
    "bytes_per_weight": (Fraction(1, 8), Fraction(8)),
    "kv_bytes_per_token": (Fraction(0), Fraction(10**10)),
}


@dataclass(frozen=True)
class ModelSpec:
    """What runs: parameters, active parameters per token, weight bytes, KV bytes per token, context, batch."""

    parameters: Fraction
    active_parameters: Fraction
    bytes_per_weight: Fraction
    kv_bytes_per_token: Fraction
    context_length: int
    batch: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "parameters": float(self.parameters),
            "active_parameters": float(self.active_parameters),
            "bytes_per_weight": float(self.bytes_per_weight),
            "kv_bytes_per_token": float(self.kv_bytes_per_token),
            "context_length": self.context_length,
            "batch": self.batch,
            "weight_bytes": float(self.parameters * self.bytes_per_weight),
        }


def _number(field: str, value: float | int | None) -> Fraction:
    if value is None or not isinstance(value, (int, float)) or value != value or value in (math.inf, -math.inf):
        raise TierlineError(field, f"{value!r} is not a finite number")
    got = exact(value)
    if field in LIMITS:
        low, high = LIMITS[field]
        if not low <= got <= high:
            raise TierlineError(field, f"{value:g} is outside {float(low):g} .. {float(high):g}")
    return got


def _count(field: str, value: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise TierlineError(field, f"{value!r} is not a whole number from 1 to {high:,}")
    return value


def build_model(
    *,
    parameters: float,
    bytes_per_weight: float,
    kv_bytes_per_token: float = 0,
    context: int = 1,
    batch: int = 1,
    active_parameters: float | None = None,
) -> ModelSpec:
    """A validated model; each refusal names the field."""
    params = _number("parameters", parameters)
    active = params if active_parameters is None else _number("active_parameters", active_parameters)
    if active <= 0:
        raise TierlineError("active_parameters", f"{active_parameters:g} is not a positive count")
    if active > params:
        raise TierlineError("active_parameters", f"{float(active):g} exceeds the model's {float(params):g} parameters")
    return ModelSpec(
        parameters=params,
        active_parameters=active,
        bytes_per_weight=_number("bytes_per_weight", bytes_per_weight),
        kv_bytes_per_token=_number("kv_bytes_per_token", kv_bytes_per_token),
        context_length=_count("context", context, 100_000_000),
        batch=_count("batch", batch, 1_000_000),
    )


# ---- precision -----------------------------------------------------------------------------------
def _preference(name: str) -> tuple[int, str]:
    return (0 if name.startswith("fp") else 1 if name.startswith("bf") else 2, name)


def model_precisions(model: ModelSpec, ctx: Context, explicit: str | None = None) -> list[str]:
    """Precisions matching the weight width (fp first), or the one asked for."""
    bits, _ = bit_lengths(ctx)
    if explicit is not None:
        name = explicit.strip().lower()
        if name not in bits:
            raise TierlineError("precision", f"unknown precision {explicit!r}; one of {', '.join(sorted(bits))}")
        return [name]
    width = model.bytes_per_weight * 8
    names = sorted((p for p, b in bits.items() if b == width), key=_preference)
    if not names:
        widths = ", ".join(f"{Fraction(b, 8)}" for b in sorted(set(bits.values())) if b != 19)
        raise TierlineError(
            "bytes_per_weight",
            f"{float(model.bytes_per_weight):g} bytes ({float(width):g} bits) matches no precision "
            f"(bytes per weight one of {widths}); give the precision explicitly",
        )
    return names


def _chip_rates(chip: Chip) -> dict[str, Fraction]:
    return {r.precision: exact(r.value) for r in chip.rates if r.value > 0}


def pick_rate(chip: Chip, model: ModelSpec, ctx: Context, explicit: str | None) -> tuple[str, Fraction, str | None]:
    """The precision and dense rate the model runs at on `chip`, with a note when it fell back."""
    rates = _chip_rates(chip)
    bits, _ = bit_lengths(ctx)
    wanted = model_precisions(model, ctx, explicit)
    for name in wanted:
        key = CATALOGUE_ALIASES.get(name, name)
        if key in rates:
            return name, rates[key], None
    if explicit is not None:
        have = ", ".join(sorted(rates)) or "none"
        raise TierlineError("precision", f"{chip.name} has no dense {wanted[0]} rate in the catalogue (it has {have})")
    width = bits[wanted[0]]
    wider = sorted((bits[p], _preference(p), p) for p in rates if p in bits and bits[p] > width)
    if not wider:
        raise TierlineError("precision", f"{chip.name} has no dense rate at {wanted[0]} or any wider precision")
    name = wider[0][2]
    note = f"{chip.name} has no {'/'.join(wanted)} rate: computed at {name}, the narrowest wider precision it has"
    return name, rates[name], note


# ---- the roofline ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Phase:
    """One roofline step: work, bytes, the two times and the bound."""

    flops: Fraction
    bytes: Fraction
    compute_s: Fraction
    memory_s: Fraction
    tokens: Fraction

    @property
    def time_s(self) -> Fraction:
        return max(self.compute_s, self.memory_s)

    @property
    def tokens_per_s(self) -> Fraction:
        return self.tokens / self.time_s

    @property
    def binding(self) -> str:
        if self.compute_s == self.memory_s:
            return "balanced"
        return "compute" if self.compute_s > self.memory_s else "memory bandwidth"

    def as_dict(self) -> dict[str, Any]:
        return {
            "tokens_per_s": float(self.tokens_per_s),
            "binding": self.binding,
            "flops": float(self.flops),
            "bytes": float(self.bytes),
            "compute_time_s": float(self.compute_s),
            "memory_time_s": float(self.memory_s),
            "step_time_s": float(self.time_s),
            "arithmetic_intensity": float(self.flops / self.bytes) if self.bytes else None,
        }


def _phase(flops: Fraction, data: Fraction, tokens: Fraction, peak_tflops: Fraction, bandwidth_gbs: Fraction) -> Phase:
    return Phase(flops, data, flops / (peak_tflops * TERA), data / (bandwidth_gbs * GIGA), tokens)


def decode_step(model: ModelSpec, peak_tflops: Fraction, bandwidth_gbs: Fraction) -> Phase:
    """One decode step for the batch: every sequence produces one token."""
    b, ctx_len = model.batch, model.context_length
    flops = 2 * model.active_parameters * b
    data = model.active_parameters * model.bytes_per_weight + b * ctx_len * model.kv_bytes_per_token
    return _phase(flops, data, Fraction(b), peak_tflops, bandwidth_gbs)


def prefill(model: ModelSpec, peak_tflops: Fraction, bandwidth_gbs: Fraction) -> Phase:
    """Prefill of the batch: B sequences of L tokens, weights read once, KV written."""
    b, ctx_len = model.batch, model.context_length
    flops = 2 * model.active_parameters * b * ctx_len
    data = model.active_parameters * model.bytes_per_weight + b * ctx_len * model.kv_bytes_per_token
    return _phase(flops, data, Fraction(b * ctx_len), peak_tflops, bandwidth_gbs)


def compute_bound_batch(model: ModelSpec, peak_tflops: Fraction, bandwidth_gbs: Fraction) -> int | None:
    """Smallest batch at which decode is compute-bound (FLOPs/peak > bytes/bandwidth); None if never.

    2 x A x B / peak > (A x w + B x L x kv) / bw  <=>  B x (2A/peak - L x kv/bw) > A x w / bw.
    """
    peak, bw = peak_tflops * TERA, bandwidth_gbs * GIGA
    per_seq = 2 * model.active_parameters / peak - model.context_length * model.kv_bytes_per_token / bw
    if per_seq <= 0:
        return None
    return math.floor(model.active_parameters * model.bytes_per_weight / bw / per_seq) + 1


# ---- per chip and the answer -------------------------------------------------------------------------
def bandwidth_gbs(chip: Chip) -> Fraction:
    if chip.memory_bandwidth_tbs is None:
        raise TierlineError("chip", f"{chip.name} has no memory bandwidth in the catalogue")
    return exact(chip.memory_bandwidth_tbs) * 1000


def usable(chip: Chip) -> bool:
    """A catalogue chip the comparison can bound: dense rates and memory bandwidth known."""
    return bool(_chip_rates(chip)) and chip.memory_bandwidth_tbs is not None


def chip_bounds(chip: Chip, model: ModelSpec, ctx: Context, precision: str | None = None) -> dict[str, Any]:
    """Prefill and decode bounds of `model` on `chip`, per chip, per TPP and per H100-equivalent."""
    if not chip.rates:
        raise TierlineError("chip", f"{chip.name} has no published dense rates in the catalogue")
    bw = bandwidth_gbs(chip)
    name, rate, note = pick_rate(chip, model, ctx, precision)
    tpp = total_processing_performance(list(chip.rates), ctx).tpp
    h100 = exact(ctx.value("reference_chip.h100_tpp"))
    dec, pre = decode_step(model, rate, bw), prefill(model, rate, bw)
    h100_eq = tpp / h100
    need = (
        model.parameters * model.bytes_per_weight + model.batch * model.context_length * model.kv_bytes_per_token
    ) / GIGA
    ridge = compute_bound_batch(model, rate, bw)
    out: dict[str, Any] = {
        "chip": chip.id,
        "name": chip.name,
        "precision": name,
        "dense_rate_tflops": float(rate),
        "memory_bandwidth_gbs": float(bw),
        "memory_gb": chip.memory_gb,
        "memory_needed_gb": float(need),
        "fits_in_memory": None if chip.memory_gb is None else need <= exact(chip.memory_gb),
        "tpp": float(tpp),
        "h100_equivalents": float(h100_eq),
        "ridge_flop_per_byte": float(rate * TERA / (bw * GIGA)),
        "bandwidth_gbs_per_tpp": float(bw / tpp) if tpp else None,
        "decode": dec.as_dict(),
        "prefill": pre.as_dict(),
        "decode_compute_bound_from_batch": ridge,
        "per_tpp": {
            "decode_tokens_per_s": float(dec.tokens_per_s / tpp) if tpp else None,
            "prefill_tokens_per_s": float(pre.tokens_per_s / tpp) if tpp else None,
        },
        "per_h100_equivalent": {
            "decode_tokens_per_s": float(dec.tokens_per_s / h100_eq) if tpp else None,
            "prefill_tokens_per_s": float(pre.tokens_per_s / h100_eq) if tpp else None,
        },
        "notes": [note] if note else [],
    }
    if out["fits_in_memory"] is False:
        out["notes"].append(
            f"needs {float(need):,.1f} GB (weights + KV) against {chip.memory_gb:g} GB on the chip: "
            "the bound assumes the model is sharded"
        )
    return out


def inference_answer(
    ctx: Context,
    model: ModelSpec,
    *,
    chips: list[str] | None = None,
    compare: bool = False,
    precision: str | None = None,
) -> dict[str, Any]:
    """Roofline bounds of the model on the chips asked for (or every usable catalogue chip)."""
    model_precisions(model, ctx, precision)  # an unknown precision or width fails before any chip
    names = chips or []
    if not names and not compare:
        raise TierlineError("chip", "give at least one chip (--chip H100) or compare every catalogue chip (--compare)")
    notes: list[str] = []
    picked: list[Chip] = []
    for query in names:
        match = find_chip(query)
        if match.note:
            notes.append(match.note)
        if match.chip not in picked:
            picked.append(match.chip)
    rows = [chip_bounds(chip, model, ctx, precision) for chip in picked]
    if compare:
        skipped = []
        for chip in catalog().values():
            if chip in picked:
                continue
            if not usable(chip):
                skipped.append(chip.name)
                continue
            try:
                rows.append(chip_bounds(chip, model, ctx, precision))
            except TierlineError:
                skipped.append(f"{chip.name} (no dense rate at the precision or wider)")
        rows.sort(key=lambda r: -r["decode"]["tokens_per_s"])
        if skipped:
            notes.append(f"not compared (no dense rate at the precision, or no memory bandwidth): {', '.join(skipped)}")
    h100 = ctx.use("reference_chip.h100_tpp")
    _, bit_uses = bit_lengths(ctx)
    return {
        "model": model.as_dict(),
        "precision": precision,
        "chips": rows,
        "highlighted": [c.id for c in picked],
        "formulas": FORMULAS,
        "assumptions": ASSUMPTIONS,
        "parameters": [h100.as_dict(), *(u.as_dict() for u in bit_uses)],
        "notes": notes,
        **ctx.stamp(),
    }
