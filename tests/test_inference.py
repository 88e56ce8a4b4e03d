"""Roofline bounds on inference (tierline.inference) against the formulas worked by hand.

Decode step for a batch B at context L (active parameters A, w bytes per weight, kv bytes per token):
    FLOPs = 2·A·B;  bytes = A·w + B·L·kv;  time = max(FLOPs / peak, bytes / bandwidth);  tokens/s = B / time
Prefill: FLOPs = 2·A·B·L; bytes = A·w + B·L·kv; tokens/s = B·L / time.
The chips' dense rates and bandwidths are read from the catalogue in the test; everything else is
arithmetic written out below (chips-notes.md §5 has the H20/H100 comparison these tests repeat).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from tierline.catalog import catalog, find_chip
from tierline.errors import TierlineError
from tierline.inference import build_model, chip_bounds, inference_answer
from tierline.policy import Context

A = 70 * 10**9  # a 70B dense model
KV = 327_680  # bytes per token (80 layers x 8 KV heads x 128 dims x 2 (K and V) x 2 bytes)
H100_TPP = 1979 * 8  # ai-diffusion-rule.md §10.3: the reference H100 = 15,832 TPP


@pytest.fixture(scope="module")
def ctx26() -> Context:
    return Context.make("ai-diffusion", "2026-06-01")


def chip(name: str):
    return find_chip(name).chip


def rate(c, precision: str) -> Fraction:
    return Fraction(str(next(r.value for r in c.rates if r.precision == precision))) * 10**12


def bandwidth(c) -> Fraction:
    return Fraction(str(c.memory_bandwidth_tbs)) * 10**12


def decode_by_hand(peak: Fraction, bw: Fraction, batch: int, context: int, w: Fraction = Fraction(1)) -> Fraction:
    compute = Fraction(2 * A * batch) / peak
    memory = (A * w + batch * context * KV) / bw
    return batch / max(compute, memory)


def test_batch_one_decode_ratio_is_the_bandwidth_ratio(ctx26):
    h20, h100 = chip("H20"), chip("H100 SXM5")
    assert (h20.memory_bandwidth_tbs, h100.memory_bandwidth_tbs) == (4.0, 3.35)  # chips-notes.md §5
    model = build_model(parameters=70e9, bytes_per_weight=1, kv_bytes_per_token=KV, context=4096, batch=1)
    a, b = chip_bounds(h20, model, ctx26), chip_bounds(h100, model, ctx26)
    assert a["precision"] == b["precision"] == "fp8"
    assert a["decode"]["binding"] == b["decode"]["binding"] == "memory bandwidth"
    # both memory-bound: tokens/s = 1 / ((A + 4096·KV) / bandwidth), so the ratio is 4.0 / 3.35
    assert math.isclose(a["decode"]["tokens_per_s"] / b["decode"]["tokens_per_s"], 4.0 / 3.35, rel_tol=1e-12)
    for got, c in ((a, h20), (b, h100)):
        expected = decode_by_hand(rate(c, "fp8"), bandwidth(c), 1, 4096)
        assert math.isclose(got["decode"]["tokens_per_s"], float(expected), rel_tol=1e-12)
    # about 57 tok/s on the H20 without KV traffic (chips-notes.md §5): 4.0e12 / 70e9 = 57.1
    no_kv = build_model(parameters=70e9, bytes_per_weight=1, context=4096, batch=1)
    assert math.isclose(chip_bounds(h20, no_kv, ctx26)["decode"]["tokens_per_s"], 4.0e12 / 70e9, rel_tol=1e-12)


def test_large_batch_decode_ratio_is_the_dense_rate_ratio(ctx26):
    h20, h100 = chip("H20"), chip("H100 SXM5")
    context = 128
    # compute-bound once 2·A·B / peak > (A·w + B·L·kv) / bw, i.e. B > (A·w / bw) / (2·A / peak - L·kv / bw)
    batches = []
    for c in (h20, h100):
        peak, bw = rate(c, "fp8"), bandwidth(c)
        per_sequence = Fraction(2 * A) / peak - Fraction(context * KV) / bw
        assert per_sequence > 0
        batches.append(math.floor(Fraction(A) / bw / per_sequence) + 1)
    batch = max(batches)
    model = build_model(parameters=70e9, bytes_per_weight=1, kv_bytes_per_token=KV, context=context, batch=batch)
    a, b = chip_bounds(h20, model, ctx26), chip_bounds(h100, model, ctx26)
    assert a["decode_compute_bound_from_batch"] == batches[0]
    assert b["decode_compute_bound_from_batch"] == batches[1]
    assert a["decode"]["binding"] == b["decode"]["binding"] == "compute"
    ratio = rate(h20, "fp8") / rate(h100, "fp8")  # 296 / 1978.9
    assert ratio == Fraction(296, 1) / Fraction(19789, 10)
    assert math.isclose(a["decode"]["tokens_per_s"] / b["decode"]["tokens_per_s"], float(ratio), rel_tol=1e-12)
    # one batch less, the H100 is still bandwidth-bound
    smaller = build_model(
        parameters=70e9, bytes_per_weight=1, kv_bytes_per_token=KV, context=context, batch=batches[1] - 1
    )
    assert chip_bounds(h100, smaller, ctx26)["decode"]["binding"] == "memory bandwidth"


def test_long_context_kv_keeps_the_h100_bandwidth_bound(ctx26):
    # per sequence: 2·A / peak = 140e9 / 1978.9e12 = 70.7 µs < L·kv / bw = 4096 x 327680 / 3.35e12 = 400.6 µs,
    # so the KV traffic grows faster than the compute: never compute-bound
    h100 = chip("H100 SXM5")
    assert Fraction(2 * A) / rate(h100, "fp8") < Fraction(4096 * KV) / bandwidth(h100)
    model = build_model(parameters=70e9, bytes_per_weight=1, kv_bytes_per_token=KV, context=4096, batch=10_000)
    got = chip_bounds(h100, model, ctx26)
    assert got["decode_compute_bound_from_batch"] is None
    assert got["decode"]["binding"] == "memory bandwidth"


def test_prefill_by_hand(ctx26):
    h100 = chip("H100 SXM5")
    model = build_model(parameters=70e9, bytes_per_weight=1, kv_bytes_per_token=KV, context=4096, batch=2)
    got = chip_bounds(h100, model, ctx26)["prefill"]
    compute = Fraction(2 * A * 2 * 4096) / rate(h100, "fp8")
    memory = (A + 2 * 4096 * KV) / bandwidth(h100)
    assert compute > memory and got["binding"] == "compute"
    assert math.isclose(got["tokens_per_s"], float(2 * 4096 / compute), rel_tol=1e-12)
    assert got["flops"] == 2 * A * 2 * 4096 and got["bytes"] == A + 2 * 4096 * KV


def test_per_tpp_and_per_h100_equivalent(ctx26):
    h20 = chip("H20")
    model = build_model(parameters=70e9, bytes_per_weight=1, context=4096, batch=1)
    got = chip_bounds(h20, model, ctx26)
    tpp = 296 * 8  # chips-notes.md §1: 2,368
    assert got["tpp"] == tpp
    decode = got["decode"]["tokens_per_s"]
    assert math.isclose(got["per_tpp"]["decode_tokens_per_s"], decode / tpp, rel_tol=1e-12)
    assert math.isclose(got["h100_equivalents"], tpp / H100_TPP, rel_tol=1e-12)
    assert math.isclose(got["per_h100_equivalent"]["decode_tokens_per_s"], decode * H100_TPP / tpp, rel_tol=1e-12)
    # chips-notes.md §5: 4,000 GB/s / 2,368 TPP = 1.69 GB/s per TPP point
    assert round(got["bandwidth_gbs_per_tpp"], 2) == 1.69


def test_precision_follows_bytes_per_weight(ctx26):
    h100, b200, h20 = chip("H100 SXM5"), chip("B200"), chip("H20")
    two = build_model(parameters=8e9, bytes_per_weight=2)
    assert chip_bounds(h100, two, ctx26)["dense_rate_tflops"] == 989.4  # fp16/bf16 column
    half = build_model(parameters=8e9, bytes_per_weight=0.5)
    assert chip_bounds(b200, half, ctx26)["precision"] == "fp4"
    assert chip_bounds(b200, half, ctx26)["dense_rate_tflops"] == 9000
    # the H20 has no fp4 rate: the narrowest wider one (fp8), with a note
    fell_back = chip_bounds(h20, half, ctx26)
    assert fell_back["precision"] == "fp8" and "fp4" in fell_back["notes"][0]
    # an explicit precision is kept to
    one = build_model(parameters=8e9, bytes_per_weight=1)
    assert chip_bounds(h100, one, ctx26, "int8")["precision"] == "int8"
    with pytest.raises(TierlineError) as err:
        chip_bounds(h20, one, ctx26, "fp4")
    assert err.value.field == "precision"


def test_mixture_of_experts_reads_active_weights(ctx26):
    h20 = chip("H20")
    model = build_model(parameters=671e9, active_parameters=37e9, bytes_per_weight=1, context=1, batch=1)
    got = chip_bounds(h20, model, ctx26)
    assert got["decode"]["bytes"] == 37e9 and got["decode"]["flops"] == 2 * 37e9
    assert got["fits_in_memory"] is False and got["memory_needed_gb"] == 671  # 671e9 bytes on a 96 GB part


def test_compare_covers_every_usable_chip(ctx26):
    model = build_model(parameters=70e9, bytes_per_weight=1, kv_bytes_per_token=KV, context=4096, batch=1)
    data = inference_answer(ctx26, model, compare=True)
    usable = {
        c.id
        for c in catalog().values()
        if c.memory_bandwidth_tbs is not None
        and any(r.precision in ("fp8", "int8", "fp16", "tf32", "fp64") and r.value > 0 for r in c.rates)
    }
    got = [row["chip"] for row in data["chips"]]
    assert set(got) == usable
    speeds = [row["decode"]["tokens_per_s"] for row in data["chips"]]
    assert speeds == sorted(speeds, reverse=True)
    assert "formulas" in data and "attention FLOPs are ignored" in " ".join(data["assumptions"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch": 0}, "batch"),
        ({"batch": -1}, "batch"),
        ({"context": 0}, "context"),
        ({"parameters": 0}, "parameters"),
        ({"active_parameters": 80e9}, "active_parameters"),
        ({"active_parameters": 0}, "active_parameters"),
        ({"bytes_per_weight": 0}, "bytes_per_weight"),
        ({"kv_bytes_per_token": -1}, "kv_bytes_per_token"),
        ({"parameters": float("nan")}, "parameters"),
    ],
)
def test_model_refusals_name_the_field(kwargs, field):
    args = {"parameters": 70e9, "bytes_per_weight": 1, "context": 4096, "batch": 1, **kwargs}
    with pytest.raises(TierlineError) as err:
        build_model(**args)
    assert err.value.field == field


def test_answer_refusals(ctx26):
    model = build_model(parameters=70e9, bytes_per_weight=1)
    with pytest.raises(TierlineError) as err:
        inference_answer(ctx26, model, chips=["H100"], precision="fp7")
    assert err.value.field == "precision"
    with pytest.raises(TierlineError) as err:
        inference_answer(ctx26, model)
    assert err.value.field == "chip"
    odd = build_model(parameters=70e9, bytes_per_weight=0.3)
    with pytest.raises(TierlineError) as err:
        inference_answer(ctx26, odd, chips=["H100"])
    assert err.value.field == "bytes_per_weight"
    with pytest.raises(TierlineError) as err:
        inference_answer(ctx26, model, chips=["Cerebras WSE-3"])
    assert err.value.field == "chip"
