"""The dashboard's architecture-analysis pages: design headroom and inference bounds.

The form (a GET query) is turned into the same calls the CLI and the API make
(`tierline.design.build_design` / `design_answer`, `tierline.inference.build_model` /
`inference_answer`, the charts in `tierline.charts`); nothing is computed here but parsing and
formatting. Every refusal is a `TierlineError` naming the form field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from tierline.catalog import Chip, catalog
from tierline.charts import DesignPoint, bandwidth_tpp_svg, tpp_density_svg
from tierline.design import LINE_CHOICES, build_design, design_answer
from tierline.errors import TierlineError
from tierline.inference import build_model, inference_answer, usable
from tierline.policy import Context
from tierline.tpp import Rate

# Precisions offered on the design form (the catalogue's columns and FP32); the label says what it holds.
DESIGN_RATES = {
    "fp64": "FP64",
    "fp32": "FP32",
    "tf32": "TF32",
    "fp16": "FP16/BF16",
    "fp8": "FP8",
    "int8": "INT8",
    "fp4": "FP4",
}
DESIGN_FIELDS = (
    *(f"rate_{p}" for p in DESIGN_RATES),
    "mac",
    "die_area",
    "planar_die_area",
    "memory_bandwidth",
    "stack_area",
    "interconnect",
    "market",
    "line",
    "name",
)
LINE_LABELS = {
    "a1": "3A090.a.1",
    "a2": "3A090.a.2",
    "b1": "3A090.b.1",
    "b2": "3A090.b.2",
    "note2": "Note 2 (not datacenter)",
    "c": "3A090.c (HBM bandwidth density)",
    "china-tpp": "China 2026 TPP",
    "china-bw": "China 2026 DRAM bandwidth",
}
DESIGN_LABELS = {
    **{f"rate_{p}": f"{label} dense rate (TOPS)" for p, label in DESIGN_RATES.items()},
    "rates": "Dense rates",
    "mac": "MAC units",
    "die_area": "Non-planar logic die area (mm²)",
    "planar_die_area": "Planar logic die area (mm²)",
    "memory_bandwidth": "Memory bandwidth (GB/s)",
    "stack_area": "HBM stack area (mm²)",
    "interconnect": "Interconnect (GB/s)",
    "line": "Line for the rate ceilings",
}
INFERENCE_LABELS = {
    "parameters": "Parameters",
    "active_parameters": "Active parameters",
    "bytes_per_weight": "Bytes per weight",
    "kv_bytes_per_token": "KV-cache bytes per token",
    "context": "Context length (tokens)",
    "batch": "Batch (concurrent sequences)",
    "precision": "Compute precision",
    "chip": "Chips",
}
INFERENCE_DEFAULTS = {
    "parameters": "70e9",
    "active_parameters": "",
    "bytes_per_weight": "1",
    "kv_bytes_per_token": "327680",
    "context": "4096",
    "batch": "1",
    "precision": "",
}
DEFAULT_CHIPS = ("nvidia-h100-sxm5-80gb", "nvidia-h20-hgx-sxm-96gb")
PRECISIONS = ("fp16", "bf16", "fp8", "int8", "fp4", "int4", "fp6", "tf32", "fp32", "fp64")
SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


# ---- parsing -----------------------------------------------------------------------------------------
def first(params: Mapping[str, list[str]], name: str) -> str:
    values = params.get(name) or [""]
    return values[0].strip()[:200]


def number(field: str, text: str, *, suffixes: bool = False) -> float | None:
    """A finite number from a form field ('' is None); thousands separators and, for counts, a
    K/M/B/T suffix are accepted. The error names the field."""
    raw = text.strip().replace(",", "").replace("_", "").replace(" ", "")
    if not raw:
        return None
    scale = 1.0
    if suffixes and raw[-1:].lower() in SUFFIXES:
        scale, raw = SUFFIXES[raw[-1].lower()], raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        raise TierlineError(field, f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise TierlineError(field, f"{text.strip()!r} is not a finite number")
    return value


def whole(field: str, text: str, default: int) -> int:
    value = number(field, text)
    if value is None:
        return default
    if value != int(value):
        raise TierlineError(field, f"{text.strip()!r} is not a whole number")
    return int(value)


def areas(field: str, text: str) -> list[float]:
    """Die areas separated by commas, semicolons, '+' or spaces."""
    out = []
    for part in re.split(r"[,;+\s]+", text.strip()):
        if part:
            value = number(field, part)
            assert value is not None
            out.append(value)
    return out


def error_field(field: str) -> str:
    """The form field a builder's error names (rate.fp8 -> rate_fp8, die_area[1] -> die_area)."""
    name = field.split("[")[0]
    if name.startswith("rate."):
        key = "rate_" + name.split(".", 1)[1]
        return key if key in DESIGN_LABELS else "rates"
    if name in ("rate", "tpp", "pd"):
        return "rates"
    if name == "chips":
        return "chip"
    return name


def _fmt_value(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.6g}"


# ---- design ------------------------------------------------------------------------------------------
def chip_design_form(chip: Chip) -> dict[str, str]:
    """The design form filled in from a catalogue chip."""
    form = {f"rate_{r.precision}": _fmt_value(r.value) for r in chip.rates if r.precision in DESIGN_RATES}
    form["die_area"] = _fmt_value(chip.die_area_mm2) if chip.die_area_mm2 else ""
    if chip.memory_bandwidth_tbs is not None:
        form["memory_bandwidth"] = _fmt_value(chip.memory_bandwidth_tbs * 1000)
    if chip.interconnect_gbs is not None:
        form["interconnect"] = _fmt_value(chip.interconnect_gbs)
    form["market"] = "datacenter" if chip.datacenter else "consumer"
    form["name"] = chip.name
    return form


def design_form(params: Mapping[str, list[str]]) -> tuple[dict[str, str], bool, str | None]:
    """The form's values (a chosen catalogue chip first, then what was typed), whether a design was
    submitted, and a note when the chip is unknown."""
    form: dict[str, str] = {}
    note = None
    chip_id = first(params, "chip")
    if chip_id:
        chip = catalog().get(chip_id)
        if chip is None:
            note = f"unknown catalogue chip {chip_id!r}"
        else:
            form.update(chip_design_form(chip))
    for name in DESIGN_FIELDS:
        if name in params and (first(params, name) or not chip_id):
            form[name] = first(params, name)
    submitted = any(name in params for name in DESIGN_FIELDS) or bool(chip_id and note is None)
    return form, submitted, note


def design_result(form: Mapping[str, str], ctx: Context) -> dict[str, Any]:
    """`design_answer` for the form, with the TPP x density chart highlighting the design."""
    rates = []
    for precision in DESIGN_RATES:
        value = number(f"rate.{precision}", form.get(f"rate_{precision}", ""))
        if value is not None:
            rates.append(Rate(precision, value))
    macs = [m for m in re.split(r"[,;\s]+", form.get("mac", "")) if m]
    line = form.get("line") or "a1"
    if line not in LINE_CHOICES:
        raise TierlineError("line", f"unknown line {line!r}; one of {', '.join(LINE_CHOICES)}")
    name = form.get("name") or None
    design = build_design(
        ctx,
        rates=rates,
        macs=macs,
        die_areas=areas("die_area", form.get("die_area", "")),
        planar_die_areas=areas("planar_die_area", form.get("planar_die_area", "")),
        memory_bandwidth_gbs=number("memory_bandwidth", form.get("memory_bandwidth", "")),
        stack_area_mm2=number("stack_area", form.get("stack_area", "")),
        interconnect_gbs=number("interconnect", form.get("interconnect", "")),
        datacenter=form.get("market", "datacenter") != "consumer",
        name=name,
    )
    data = design_answer(design, ctx, line)
    try:
        point: DesignPoint | None = DesignPoint(data["tpp"], data["performance_density"], (name or "design")[:60])
    except TierlineError as exc:
        point = None
        data["warnings"].append(f"not drawn on the chart: {exc.reason}")
    data["chart"] = tpp_density_svg(ctx, highlight=point)
    return data


# ---- inference ---------------------------------------------------------------------------------------
def inference_chips() -> list[Chip]:
    """Catalogue chips the bounds can be computed for (dense rates and memory bandwidth known)."""
    return sorted((c for c in catalog().values() if usable(c)), key=lambda c: c.name.lower())


def inference_form(params: Mapping[str, list[str]]) -> tuple[dict[str, str], list[str], bool, bool]:
    """The form's values, the chosen chip ids, whether every chip is compared, whether submitted."""
    submitted = "parameters" in params
    form = {k: (first(params, k) if submitted else v) for k, v in INFERENCE_DEFAULTS.items()}
    chips = [c[:200] for c in params.get("chip", []) if c.strip()][:64] if submitted else list(DEFAULT_CHIPS)
    compare = submitted and first(params, "all") in ("1", "on", "yes")
    return form, chips, compare, submitted


def inference_result(form: Mapping[str, str], chips: list[str], compare: bool, ctx: Context) -> dict[str, Any]:
    """`inference_answer` for the form, with the bandwidth x TPP chart of equal decode throughput."""
    parameters = number("parameters", form.get("parameters", ""), suffixes=True)
    if parameters is None:
        raise TierlineError("parameters", "give the model's parameter count (for example 70e9 or 70B)")
    bytes_per_weight = number("bytes_per_weight", form.get("bytes_per_weight", ""))
    if bytes_per_weight is None:
        raise TierlineError("bytes_per_weight", "give the bytes per weight (2, 1 or 0.5)")
    model = build_model(
        parameters=parameters,
        active_parameters=number("active_parameters", form.get("active_parameters", ""), suffixes=True),
        bytes_per_weight=bytes_per_weight,
        kv_bytes_per_token=number("kv_bytes_per_token", form.get("kv_bytes_per_token", "")) or 0,
        context=whole("context", form.get("context", ""), 4096),
        batch=whole("batch", form.get("batch", ""), 1),
    )
    precision = form.get("precision") or None
    data = inference_answer(ctx, model, chips=chips, compare=compare, precision=precision)
    data["chart"] = bandwidth_tpp_svg(ctx, model, precision=precision, highlight=data["highlighted"])
    return data


# ---- formatting --------------------------------------------------------------------------------------
def sig(x: Any) -> str:
    """Six significant figures below 1,000, whole numbers with separators above (as the CLI shows)."""
    if x is None:
        return "—"
    value = float(x)
    return f"{value:,.6g}" if abs(value) < 1000 else f"{value:,.0f}"


def signed(x: Any) -> str:
    if x is None:
        return "—"
    value = float(x)
    return f"{value:+,.6g}" if abs(value) < 1000 else f"{value:+,.0f}"


def count(x: Any) -> str:
    value = float(x)
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if value >= size:
            return f"{value / size:,.4g}{suffix}"
    return f"{value:,.0f}"
