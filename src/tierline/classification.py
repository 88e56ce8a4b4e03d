"""Classification of advanced-computing items: ECCN 3A090.a/.b (with Note 2), 4A090 for items
containing such ICs, the nine .z paragraphs, and 3A090.c for stand-alone HBM.

The paragraphs are tested in the order of the Commerce Control List, .a.1 -> .a.2 -> .b.1 -> .b.2;
the first that matches classifies the IC (.a is the more restrictive paragraph).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tierline.errors import TierlineError
from tierline.policy import Context
from tierline.policy.vintages import ParameterUse
from tierline.tpp import TPP_CITATION, Rate, TppResult, exact, total_processing_performance
from tierline.trace import TraceStep

CCL = "15 CFR 774 Supp. 1"
PD_CITATION = f"{CCL}, ECCN 3A090, Technical Note 4 (performance density; non-planar logic dies only)"
NOTE2_CITATION = f"{CCL}, ECCN 3A090, Note 2"
C4A090 = f"{CCL}, ECCN 4A090"
Z_CITATION = f"{CCL}, .z paragraphs of 3A001, 4A003, 4A004, 4A005, 5A002, 5A004, 5A992, 5D002, 5D992"
HBM_CITATION = f"{CCL}, ECCN 3A090.c (89 FR 96790)"
NAC_CITATION = "15 CFR 740.8; ECCN 3A090 License Exceptions paragraph (NAC/ACA)"
# .z paragraphs numbered z.1 (a-level) / z.2 (b-level); the others split each sub-paragraph in .a/.b.
Z_NUMBERED = {"5A992", "5D992", "4A004", "4A005"}


@dataclass(frozen=True)
class Die:
    """A logic die: area in mm2; only dies on a non-planar (FinFET/GAA) process count."""

    area_mm2: float
    planar: bool = False


@dataclass(frozen=True)
class StandaloneHBM:
    """Stand-alone high bandwidth memory: bandwidth (GB/s) and package or stack area (mm2)."""

    bandwidth_gbs: float
    area_mm2: float


@dataclass(frozen=True)
class ItemSpec:
    """What is being classified: an IC's rates and dies, or a system of `ic_count` such ICs."""

    rates: tuple[Rate, ...] = ()
    dies: tuple[Die, ...] = ()
    datacenter: bool = True
    base_eccn: str | None = None
    system: bool = False
    ic_count: int = 1
    hbm: StandaloneHBM | None = None
    name: str | None = None


@dataclass
class Classification:
    """The answer, with its trace."""

    tpp: Fraction
    tpp_precision: str | None
    performance_density: Fraction | None
    applicable_die_area: Fraction | None
    paragraph: str | None
    eccn: str | None
    level: str | None
    status: str
    datacenter: bool
    nac_aca_eligible: bool
    total_tpp: Fraction
    h100_equivalents: Fraction
    stamp: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    trace: list[TraceStep] = field(default_factory=list)
    name: str | None = None
    memory_bandwidth_density: Fraction | None = None

    @property
    def controlled(self) -> bool | None:
        return None if self.status == "needs_review" else self.status == "controlled"

    def as_dict(self) -> dict[str, Any]:
        def num(x: Fraction | None) -> float | None:
            return None if x is None else float(x)

        return {
            **({"name": self.name} if self.name else {}),
            "tpp": num(self.tpp),
            "tpp_precision": self.tpp_precision,
            "performance_density": num(self.performance_density),
            "applicable_die_area": num(self.applicable_die_area),
            **(
                {"memory_bandwidth_density": num(self.memory_bandwidth_density)}
                if self.memory_bandwidth_density is not None
                else {}
            ),
            "eccn": self.eccn,
            "paragraph": self.paragraph,
            "level": self.level,
            "controlled": self.controlled,
            "status": self.status,
            "datacenter": self.datacenter,
            "nac_aca_eligible": self.nac_aca_eligible,
            "total_tpp": num(self.total_tpp),
            "h100_equivalents": num(self.h100_equivalents),
            "warnings": self.warnings,
            **self.stamp,
            "trace": [s.as_dict() for s in self.trace],
        }


MAX_RATE_TOPS = 1e9  # a million times today's fastest parts: beyond it the unit is wrong, not the chip
MIN_AREA_MM2 = 1e-3
MAX_HBM_GBS = 1e9


def _validate(spec: ItemSpec) -> None:
    for rate in spec.rates:
        if not 0 <= rate.value <= MAX_RATE_TOPS:
            raise TierlineError(
                f"rate.{rate.precision}",
                f"{rate.value:g} is not a rate from 0 to {MAX_RATE_TOPS:,.0f} TOPS (check the unit)",
            )
    for i, die in enumerate(spec.dies):
        if not die.area_mm2 > 0:
            raise TierlineError(f"die_area[{i}]", f"{die.area_mm2:g} mm2 is not a positive area")
        if die.area_mm2 < MIN_AREA_MM2:
            raise TierlineError(
                f"die_area[{i}]", f"{die.area_mm2:g} mm2 is smaller than any die ({MIN_AREA_MM2:g} mm2)"
            )
    if spec.ic_count < 1:
        raise TierlineError("ic_count", f"{spec.ic_count} is not a positive count")
    if spec.hbm is not None:
        if not spec.hbm.bandwidth_gbs > 0:
            raise TierlineError("hbm_bandwidth", f"{spec.hbm.bandwidth_gbs:g} GB/s is not a positive bandwidth")
        if not spec.hbm.area_mm2 > 0:
            raise TierlineError("hbm_area", f"{spec.hbm.area_mm2:g} mm2 is not a positive area")
        if spec.hbm.area_mm2 < MIN_AREA_MM2 or spec.hbm.bandwidth_gbs > MAX_HBM_GBS:
            raise TierlineError(
                "hbm_area" if spec.hbm.area_mm2 < MIN_AREA_MM2 else "hbm_bandwidth",
                f"{spec.hbm.bandwidth_gbs:g} GB/s over {spec.hbm.area_mm2:g} mm2 is outside any memory part (check the units)",
            )


@dataclass(frozen=True)
class _Lines:
    """The 3A090 lines in force, read once per answer."""

    uses: dict[str, ParameterUse]

    def __getitem__(self, key: str) -> Fraction:
        return exact(self.uses[key].value)

    def of(self, *keys: str) -> list[ParameterUse]:
        return [self.uses[k] for k in keys]


def _lines(ctx: Context) -> _Lines:
    keys = [
        "a1.tpp_min",
        "a2.tpp_min",
        "a2.pd_min",
        "b1.tpp_min",
        "b1.tpp_max",
        "b1.pd_min",
        "b1.pd_max",
        "b2.tpp_min",
        "b2.pd_min",
        "b2.pd_max",
        "note2.tpp_min",
    ]
    return _Lines({k: ctx.use(f"eccn_3a090.{k}") for k in keys})


def paragraph_3a090(
    tpp: Fraction, pd: Fraction | None, datacenter: bool, lines: _Lines, trace: list[TraceStep] | None = None
) -> str | None:
    """3A090 paragraph of an IC, "review" when density is needed but unknown, None if outside.

    Note 2: an item not designed or marketed for datacenters is outside 3A090 unless TPP >= 4800.
    """
    steps = trace if trace is not None else []
    if not datacenter:
        caught = tpp >= lines["note2.tpp_min"]
        steps.append(
            TraceStep(
                "Note 2 to 3A090 (not designed or marketed for datacenters)",
                NOTE2_CITATION,
                "not a datacenter item: controlled only if TPP >= Note 2 line",
                caught,
                {"tpp": float(tpp), "datacenter": False},
                lines.of("note2.tpp_min"),
            )
        )
        if not caught:
            return None
    a1 = tpp >= lines["a1.tpp_min"]
    steps.append(
        TraceStep(
            "3A090.a.1", f"{CCL}, ECCN 3A090.a.1", "TPP >= a.1 line", a1, {"tpp": float(tpp)}, lines.of("a1.tpp_min")
        )
    )
    if a1:
        return "3A090.a.1"
    if tpp < lines["a2.tpp_min"] and tpp < lines["b2.tpp_min"] and tpp < lines["b1.tpp_min"]:
        steps.append(
            TraceStep(
                "3A090.a.2 / .b.1 / .b.2",
                f"{CCL}, ECCN 3A090.a.2, .b.1, .b.2",
                "TPP below every density paragraph's TPP floor",
                False,
                {"tpp": float(tpp)},
                lines.of("a2.tpp_min", "b1.tpp_min", "b2.tpp_min"),
            )
        )
        return None
    if pd is None:
        steps.append(
            TraceStep(
                "Performance density",
                PD_CITATION,
                "applicable (non-planar logic) die area is known",
                "needs review",
                {"tpp": float(tpp)},
                [],
            )
        )
        return "review"
    tests = [
        (
            "3A090.a.2",
            "TPP >= a.2 TPP line and PD >= a.2 PD line",
            tpp >= lines["a2.tpp_min"] and pd >= lines["a2.pd_min"],
            ("a2.tpp_min", "a2.pd_min"),
        ),
        (
            "3A090.b.1",
            "b.1 TPP floor <= TPP < b.1 TPP ceiling and b.1 PD floor <= PD < b.1 PD ceiling",
            lines["b1.tpp_min"] <= tpp < lines["b1.tpp_max"] and lines["b1.pd_min"] <= pd < lines["b1.pd_max"],
            ("b1.tpp_min", "b1.tpp_max", "b1.pd_min", "b1.pd_max"),
        ),
        (
            "3A090.b.2",
            "TPP >= b.2 TPP line and b.2 PD floor <= PD < b.2 PD ceiling",
            tpp >= lines["b2.tpp_min"] and lines["b2.pd_min"] <= pd < lines["b2.pd_max"],
            ("b2.tpp_min", "b2.pd_min", "b2.pd_max"),
        ),
    ]
    for para, test, hit, keys in tests:
        steps.append(
            TraceStep(
                para,
                f"{CCL}, ECCN {para}",
                test,
                hit,
                {"tpp": float(tpp), "performance_density": float(pd)},
                lines.of(*keys),
            )
        )
        if hit:
            return para
    return None


def _near_lines(tpp: Fraction, pd: Fraction | None, lines: _Lines, ctx: Context) -> list[str]:
    tol = exact(ctx.value("review.near_threshold_fraction"))
    out = []
    tpp_lines = {"a1.tpp_min": "a.1/Note 2 TPP", "b1.tpp_min": "b.1 TPP", "a2.tpp_min": "a.2/b.2 TPP"}
    pd_lines = {"a2.pd_min": "a.2 density", "b2.pd_min": "b.2 density", "b1.pd_min": "b.1 density"}
    for key, label in tpp_lines.items():
        line = lines[key]
        if abs(tpp - line) <= tol * line:
            out.append(
                f"TPP {float(tpp):,.2f} is within {float(tol):.0%} of the {label} line {float(line):,g}: check the datasheet figure"
            )
    if pd is not None:
        for key, label in pd_lines.items():
            line = lines[key]
            if abs(pd - line) <= tol * line:
                out.append(
                    f"performance density {float(pd):.4f} is within {float(tol):.0%} of the {label} line {float(line):g}: check die area and rates"
                )
    return out


def _z_paragraph(base: str, level: str) -> str:
    if base in Z_NUMBERED:
        return f"{base}.z.{1 if level == 'a' else 2}"
    return f"{base}.z.*.{level}"


def _classify_hbm(spec: ItemSpec, ctx: Context, stamp: dict[str, Any]) -> Classification:
    assert spec.hbm is not None
    mbd = exact(spec.hbm.bandwidth_gbs) / exact(spec.hbm.area_mm2)
    trace: list[TraceStep] = []
    param = ctx.parameter("eccn_3a090c.mbd_min")
    if ctx.as_of < param.values[0][0]:
        trace.append(
            TraceStep(
                "3A090.c",
                HBM_CITATION,
                "3A090.c in force on the as-of date",
                False,
                {"in_force_from": param.values[0][0].isoformat()},
            )
        )
        controlled = False
    else:
        line = ctx.use("eccn_3a090c.mbd_min")
        controlled = mbd > exact(line.value)
        trace.append(
            TraceStep(
                "3A090.c",
                HBM_CITATION,
                "memory bandwidth density > 3A090.c line (strict)",
                controlled,
                {"memory_bandwidth_density": float(mbd)},
                [line],
            )
        )
    if controlled:
        hbm = ctx.use("license_exception_hbm.mbd_max")
        eligible = mbd < exact(hbm.value)
        trace.append(
            TraceStep(
                "License Exception HBM",
                "15 CFR 740.25",
                "memory bandwidth density < HBM exception line (strict)",
                eligible,
                {"memory_bandwidth_density": float(mbd)},
                [hbm],
            )
        )
    return Classification(
        tpp=Fraction(0),
        tpp_precision=None,
        performance_density=None,
        applicable_die_area=None,
        paragraph="3A090.c" if controlled else None,
        eccn="3A090.c" if controlled else None,
        level="c" if controlled else None,
        status="controlled" if controlled else "not_controlled",
        datacenter=spec.datacenter,
        nac_aca_eligible=False,
        total_tpp=Fraction(0),
        h100_equivalents=Fraction(0),
        stamp=stamp,
        trace=trace,
        name=spec.name,
        memory_bandwidth_density=mbd,
    )


def classify(spec: ItemSpec, ctx: Context) -> Classification:
    """Classify an item under the vintage and as-of date of `ctx`, with its trace."""
    _validate(spec)
    stamp = ctx.stamp()
    if spec.hbm is not None and not spec.rates:
        return _classify_hbm(spec, ctx, stamp)
    lines = _lines(ctx)
    result: TppResult = total_processing_performance(list(spec.rates), ctx)
    tpp = result.tpp
    trace = [
        TraceStep(
            "Total processing performance",
            TPP_CITATION,
            "TPP = dense rate x bit length, maximum over precisions",
            f"{float(tpp):,.2f}",
            {
                "precision": result.precision,
                "dense_rate": float(result.dense_rate),
                "bit_length": result.bit_length,
                "per_precision": {p: float(v) for p, v in result.per_precision.items()},
                **({"sparse_rates_halved": list(result.sparse_halved)} if result.sparse_halved else {}),
            },
            list(result.parameters),
        )
    ]
    warnings = []
    if result.sparse_halved:
        warnings.append(
            f"rates given as sparse were halved to dense ({', '.join(result.sparse_halved)}); "
            "not every sparse figure is exactly twice the dense one"
        )
    area = sum((exact(d.area_mm2) for d in spec.dies if not d.planar), Fraction(0))
    pd = tpp / area if area > 0 else None
    if spec.dies:
        trace.append(
            TraceStep(
                "Performance density",
                PD_CITATION,
                "PD = TPP / applicable die area (non-planar logic dies)",
                None if pd is None else f"{float(pd):.4f}",
                {"applicable_die_area": float(area), "planar_dies_excluded": sum(1 for d in spec.dies if d.planar)},
            )
        )
    paragraph = paragraph_3a090(tpp, pd, spec.datacenter, lines, trace)
    # Technical Note (bit length of TF32) is contested: flag a result the other reading would change.
    if any(r.precision == "tf32" for r in spec.rates):
        alt = total_processing_performance(list(spec.rates), ctx, alternative_tf32=True).tpp
        alt_pd = alt / area if area > 0 else None
        alt_para = paragraph_3a090(alt, alt_pd, spec.datacenter, lines)
        if alt != tpp and alt_para != paragraph:
            warnings.append(
                f"TF32 bit length is contested: counting TF32 at the other convention gives TPP "
                f"{float(alt):,.0f} and {alt_para or 'not 3A090'}; needs review"
            )
    warnings += _near_lines(tpp, pd if spec.datacenter else None, lines, ctx)
    status = {"review": "needs_review", None: "not_controlled"}.get(paragraph, "controlled")  # type: ignore[call-overload]
    level = paragraph.split(".")[1] if status == "controlled" and paragraph else None
    eccn = f"3A090.{level}" if level else None
    para_out = paragraph if status == "controlled" else None
    if level and spec.system:
        eccn = para_out = f"4A090.{level}"
        trace.append(
            TraceStep(
                "4A090",
                C4A090,
                f"computer/assembly containing an IC meeting 3A090.{level}",
                True,
                {"ic_count": spec.ic_count},
            )
        )
    families = ctx.value("eccn_3a090.z_families")
    if level and spec.base_eccn:
        base = spec.base_eccn.upper()
        if base in families:
            eccn, para_out = f"{base}.z", _z_paragraph(base, level)
            trace.append(
                TraceStep(
                    ".z routing",
                    Z_CITATION,
                    "base ECCN has a .z paragraph",
                    True,
                    {"base_eccn": base, "level": level},
                    [ctx.use("eccn_3a090.z_families")],
                )
            )
    nac = bool(level) and ((level == "a" and not spec.datacenter) or (level == "b" and spec.datacenter))
    if level:
        trace.append(
            TraceStep(
                "NAC/ACA eligibility",
                NAC_CITATION,
                "eligible: 3A090.a not designed for datacenters, or 3A090.b designed for datacenters",
                nac,
                {"level": level, "datacenter": spec.datacenter},
            )
        )
    total = tpp * spec.ic_count
    ref = ctx.use("reference_chip.h100_tpp")
    trace.append(
        TraceStep(
            "H100-equivalents",
            "analyst convention (not in the rule)",
            "total TPP / reference H100 TPP",
            f"{float(total / exact(ref.value)):,.4f}",
            {"total_tpp": float(total)},
            [ref],
        )
    )
    if status == "needs_review":
        warnings.append(
            "no applicable (non-planar logic) die area: performance density cannot be computed, "
            "so 3A090.a.2/.b cannot be decided; needs review"
        )
    return Classification(
        tpp=tpp,
        tpp_precision=result.precision,
        performance_density=pd,
        applicable_die_area=area if spec.dies else None,
        paragraph=para_out,
        eccn=eccn,
        level=level,
        status=status,
        datacenter=spec.datacenter,
        nac_aca_eligible=nac,
        total_tpp=total,
        h100_equivalents=total / exact(ref.value),
        stamp=stamp,
        warnings=warnings,
        trace=trace,
        name=spec.name,
    )
