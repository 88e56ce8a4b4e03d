"""ECCN 4E091: parameters of an AI model trained using 10^26 or more operations.

Training operations come from a reported figure or the 6·N·D estimate of Technical Note 2 (N the
active parameters for a mixture-of-experts model, D the training tokens). Technical Note 3 adds the
operations of a single model that generated unpublished synthetic data for more than 10% of
training. Note 1a excludes published weights; Note 1b excludes models derived from published ones
unless the added operations exceed the higher of 2.5x10^25 and 25%; Note 2 excludes models below the
most capable published model's operations (value not published by BIS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierline.policy import Context
from tierline.trace import TraceStep

ECCN = "15 CFR 774 Supp. 1, ECCN 4E091"


class ModelWeights(BaseModel):
    """Parameters of an AI model (ECCN 4E091 candidates) and how it was trained."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    training_operations: float | None = Field(None, ge=0)
    parameters: float | None = Field(None, gt=0)
    active_parameters: float | None = Field(None, gt=0)
    tokens: float | None = Field(None, gt=0)
    published: bool = False
    derived_from_published: bool = False
    additional_operations: float | None = Field(None, ge=0)
    synthetic_data_fraction: float = Field(0.0, ge=0, le=1)
    generator_operations: float = Field(0.0, ge=0)
    generator_published: bool = True
    generator_training_operations: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _operations_known(self) -> ModelWeights:
        if self.training_operations is None and (self.parameters is None or self.tokens is None):
            raise ValueError("give training_operations, or parameters and tokens")
        if self.derived_from_published and self.additional_operations is None:
            raise ValueError("a derived model needs additional_operations")
        return self


@dataclass
class WeightsClassification:
    """The 4E091 answer for one model, with its trace."""

    operations: Fraction
    controlled: bool
    estimated: bool
    warnings: list[str] = field(default_factory=list)
    trace: list[TraceStep] = field(default_factory=list)

    @property
    def eccn(self) -> str | None:
        return "4E091" if self.controlled else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "training_operations": float(self.operations),
            "estimated": self.estimated,
            "eccn": self.eccn,
            "controlled": self.controlled,
            "warnings": self.warnings,
            "trace": [s.as_dict() for s in self.trace],
        }


def _f(x: float | int) -> Fraction:
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


def training_operations(weights: ModelWeights, trace: list[TraceStep]) -> tuple[Fraction, bool]:
    """Operations of Technical Note 2: reported, or 6 x (active) parameters x tokens."""
    if weights.training_operations is not None:
        ops = _f(weights.training_operations)
        trace.append(
            TraceStep(
                "Training operations (reported)",
                f"{ECCN}, Technical Note 2",
                "reported figure",
                f"{float(ops):.3e}",
                {"training_operations": float(ops)},
            )
        )
        return ops, False
    assert weights.parameters is not None and weights.tokens is not None
    n = _f(weights.active_parameters or weights.parameters)
    ops = 6 * n * _f(weights.tokens)
    trace.append(
        TraceStep(
            "Training operations (estimated)",
            f"{ECCN}, Technical Note 2 (6 operations per parameter per data point)",
            "6 x N x D" + (" with N the active parameters (mixture of experts)" if weights.active_parameters else ""),
            f"{float(ops):.3e}",
            {"parameters": float(n), "tokens": weights.tokens},
        )
    )
    return ops, True


def classify_weights(weights: ModelWeights, ctx: Context) -> WeightsClassification:
    """Classify model weights under 4E091 on the context's date."""
    trace: list[TraceStep] = []
    warnings: list[str] = []
    ops, estimated = training_operations(weights, trace)
    if not ctx.vintage.has("eccn_4e091"):
        trace.append(TraceStep("4E091", ECCN, f"ECCN 4E091 is part of vintage {ctx.vintage.name}", False))
        warnings.append(f"ECCN 4E091 is not applied under vintage {ctx.vintage.name} (not enforced)")
        return WeightsClassification(ops, False, estimated, warnings, trace)
    synthetic = ctx.use("eccn_4e091.synthetic_data_fraction")
    if weights.synthetic_data_fraction > synthetic.value:
        added = _f(weights.generator_operations)
        if not weights.generator_published:
            added += _f(weights.generator_training_operations)
        ops += added
        trace.append(
            TraceStep(
                "Synthetic data",
                f"{ECCN}, Technical Note 3",
                "more than the TN3 share of training on unpublished data from one model: add its operations"
                + ("" if weights.generator_published else " and, its weights unpublished, its training operations"),
                True,
                {
                    "synthetic_data_fraction": weights.synthetic_data_fraction,
                    "operations_added": float(added),
                    "total_operations": float(ops),
                },
                [synthetic],
            )
        )
    else:
        trace.append(
            TraceStep(
                "Synthetic data",
                f"{ECCN}, Technical Note 3",
                "more than the TN3 share of training on one model's unpublished data",
                False,
                {"synthetic_data_fraction": weights.synthetic_data_fraction},
                [synthetic],
            )
        )
    line = ctx.use("eccn_4e091.operations_min")
    over = ops >= _f(line.value)
    trace.append(
        TraceStep(
            "4E091 threshold",
            ECCN,
            "training operations >= 4E091 line (inclusive)",
            over,
            {"training_operations": float(ops)},
            [line],
        )
    )
    controlled = over
    if controlled and weights.published:
        controlled = False
        trace.append(
            TraceStep(
                "Note 1a (published)",
                f"{ECCN}, Note 1.a; 15 CFR 734.7(a)",
                "weights are published",
                True,
                {"published": True},
            )
        )
    if controlled and weights.derived_from_published:
        floor = ctx.use("eccn_4e091.derived_extra_operations_floor")
        share = ctx.use("eccn_4e091.derived_extra_operations_fraction")
        extra = _f(weights.additional_operations or 0)
        limit = max(_f(floor.value), _f(share.value) * ops)
        excluded = extra <= limit
        controlled = not excluded
        trace.append(
            TraceStep(
                "Note 1b (derived from a published model)",
                f"{ECCN}, Note 1.b",
                "excluded unless additional operations exceed the higher of the floor and the share of training operations",
                excluded,
                {"additional_operations": float(extra), "limit": float(limit)},
                [floor, share],
            )
        )
        warnings.append(
            "4E091 Note 1b: whether the 25% is of the derived model's or the base model's operations "
            "is ambiguous; the derived model's total was used"
        )
    if controlled:
        dynamic = ctx.maybe("eccn_4e091.most_capable_open_model_operations")
        if dynamic is None or dynamic.value is None:
            trace.append(
                TraceStep(
                    "Note 2 (most capable published model)",
                    f"{ECCN}, Note 2",
                    "operations below those needed to match the most capable published model",
                    "not evaluated",
                    {},
                    [dynamic] if dynamic else [],
                )
            )
            warnings.append(
                "4E091 Note 2 exclusion not evaluated: BIS has not published the operations of the "
                "most capable published model (unconfirmed parameter)"
            )
        elif ops < _f(dynamic.value):
            controlled = False
            trace.append(
                TraceStep(
                    "Note 2 (most capable published model)",
                    f"{ECCN}, Note 2",
                    "operations below the most capable published model's",
                    True,
                    {"training_operations": float(ops)},
                    [dynamic],
                )
            )
    return WeightsClassification(ops, controlled, estimated, warnings, trace)
