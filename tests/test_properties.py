"""Properties that must hold for every input, checked with Hypothesis.

1. Raising a chip's rates (any precision, any factor >= 1) never lowers its control level
   (not 3A090 < 3A090.b < 3A090.a). With a fixed positive non-planar die area, PD = TPP / area
   rises with TPP, and every line of classification.md §2.1 is an "X or more" floor, so a higher
   TPP can only move an item up.
2. TPP = the maximum over precisions of dense rate x bit length (classification.md §1.1).
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import AS_OF, load_cases
from tierline.classification import Die, ItemSpec, classify
from tierline.policy import Context
from tierline.tpp import Rate, total_processing_performance

CTX = Context.make(vintage="ai-diffusion", as_of=AS_OF)
BITS = load_cases("bit_lengths.yaml")  # classification.md §1.1; TF32 = 19 (README.md decision 7)
LEVEL_ORDER = {None: 0, "b": 1, "a": 2}

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Each precision's rate is drawn as the TPP it gives divided by its bit length. The TPP is a line of
# classification.md §2.1 (1600, 2400, 4800) plus or minus up to 1,000 in 0.01 steps (Hypothesis
# favours small offsets, so many land right at a line), or anything from 0 to 8,000.
precisions = st.sampled_from(sorted(BITS))
near_a_line = st.builds(
    lambda line, offset: max(line + Fraction(offset, 100), Fraction(0)),
    st.sampled_from([1600, 2400, 4800]),
    st.integers(min_value=-100_000, max_value=100_000),
)
tpp_targets = st.one_of(near_a_line, st.integers(min_value=0, max_value=800_000).map(lambda n: Fraction(n, 100)))
rate_tables = st.dictionaries(precisions, tpp_targets, min_size=1, max_size=4).map(
    lambda table: {p: tpp / BITS[p] for p, tpp in table.items()}
)
rate_values = st.integers(min_value=0, max_value=1_000_000).map(lambda n: Fraction(n, 1000))
# Density targets near 1.6, 3.2 or 5.92 (or anything from 0.5 to 12); the die areas are then fixed.
pd_targets = st.one_of(
    st.builds(
        lambda line, offset: line + Fraction(offset, 10_000),
        st.sampled_from([Fraction("1.6"), Fraction("3.2"), Fraction("5.92")]),
        st.integers(min_value=-5_000, max_value=5_000),
    ),
    st.integers(min_value=50, max_value=1200).map(lambda n: Fraction(n, 100)),
)
die_counts = st.integers(min_value=1, max_value=3)
factors = st.integers(min_value=1000, max_value=3000).map(lambda n: Fraction(n, 1000))  # 1.000 to 3.000


@st.composite
def chips(draw):
    """Rates and a positive non-planar die area (split over 1 to 3 dies) giving a density near the lines."""
    rates = draw(rate_tables)
    tpp = max(v * BITS[p] for p, v in rates.items())
    area = max(tpp, Fraction(1)) / draw(pd_targets)
    n = draw(die_counts)
    return rates, [area / n] * n


def level(rates: dict[str, Fraction], dies: list[Fraction], datacenter: bool) -> str | None:
    spec = ItemSpec(
        rates=tuple(Rate(p, v) for p, v in rates.items()),
        dies=tuple(Die(a) for a in dies),
        datacenter=datacenter,
    )
    result = classify(spec, CTX)
    assert result.status != "needs_review"  # a positive non-planar area always gives a density
    return result.level


@SETTINGS
@given(chip=chips(), datacenter=st.booleans(), data=st.data())
def test_raising_rates_never_lowers_the_level(chip, datacenter, data):
    rates, dies = chip
    raised = {p: v * data.draw(factors, label=f"factor for {p}") for p, v in rates.items()}
    before = level(rates, dies, datacenter)
    after = level(raised, dies, datacenter)
    assert LEVEL_ORDER[after] >= LEVEL_ORDER[before], (before, after)


@SETTINGS
@given(chip=chips(), datacenter=st.booleans(), extra=precisions, value=rate_values)
def test_adding_a_precision_never_lowers_the_level(chip, datacenter, extra, value):
    rates, dies = chip
    more = {**rates, extra: max(value, rates.get(extra, Fraction(0)))}
    assert LEVEL_ORDER[level(more, dies, datacenter)] >= LEVEL_ORDER[level(rates, dies, datacenter)]


@SETTINGS
@given(rates=rate_tables)
def test_tpp_is_max_of_rate_times_bits(rates):
    result = total_processing_performance([Rate(p, v) for p, v in rates.items()], CTX)
    assert result.tpp == max(v * BITS[p] for p, v in rates.items())
    assert result.per_precision[result.precision] == result.tpp


@SETTINGS
@given(rates=rate_tables)
def test_sparse_tpp_is_half_the_dense_tpp(rates):
    # Technical Note 3 with the halving convention (classification.md §1.1).
    dense = total_processing_performance([Rate(p, v) for p, v in rates.items()], CTX).tpp
    sparse = total_processing_performance([Rate(p, v, sparse=True) for p, v in rates.items()], CTX).tpp
    assert sparse * 2 == dense


@SETTINGS
@given(chip=chips())
def test_consumer_parts_are_a_or_nothing(chip):
    rates, dies = chip
    # Note 2 (classification.md §2.1): a non-datacenter item is 3A090.a iff TPP >= 4800.
    spec = ItemSpec(
        rates=tuple(Rate(p, v) for p, v in rates.items()), dies=tuple(Die(a) for a in dies), datacenter=False
    )
    result = classify(spec, CTX)
    tpp = max(v * BITS[p] for p, v in rates.items())
    assert result.level == ("a" if tpp >= 4800 else None)


@SETTINGS
@given(chip=chips())
def test_datacenter_level_matches_the_threshold_table(chip):
    rates, dies = chip
    # The table of classification.md §2.1, written out independently of tierline.
    tpp = max(v * BITS[p] for p, v in rates.items())
    pd = tpp / sum(dies)
    a = tpp >= 4800 or (tpp >= 1600 and pd >= Fraction("5.92"))
    b1 = 2400 <= tpp < 4800 and Fraction("1.6") <= pd < Fraction("5.92")
    b2 = tpp >= 1600 and Fraction("3.2") <= pd < Fraction("5.92")
    expected = "a" if a else "b" if (b1 or b2) else None
    assert level(rates, dies, True) == expected
