"""``tierline classify`` and ``tierline chips``."""

from __future__ import annotations

from typing import Any, Optional

import typer

from tierline.answers import chip_answer, chips_answer, classify_item
from tierline.catalog import classify_chip, find_chip
from tierline.classification import Classification
from tierline.cli.output import AS_OF, JSON, VINTAGE, console, context, emit_json, stamp_line, table
from tierline.tpp import parse_rate

chips_app = typer.Typer(help="The chip catalogue with computed and reported figures.", no_args_is_help=True)


def _fmt(x: Any, digits: int = 2) -> str:
    return "—" if x is None else f"{float(x):,.{digits}f}"


def show_classification(result: Classification, notes: list[str]) -> None:
    data = result.as_dict()
    rows = [
        ["item", data.get("name") or "(rates given)"],
        ["TPP", f"{_fmt(result.tpp)} ({result.tpp_precision})" if result.tpp_precision else _fmt(result.tpp)],
        ["performance density", _fmt(result.performance_density, 4)],
        ["applicable die area (mm²)", _fmt(result.applicable_die_area)],
        ["status", result.status],
        ["paragraph", result.paragraph or "—"],
        ["ECCN", result.eccn or "not 3A090/4A090"],
        ["designed for datacenters", "yes" if result.datacenter else "no"],
        ["NAC/ACA eligible", "yes" if result.nac_aca_eligible else "no"],
        ["H100-equivalents", _fmt(result.h100_equivalents, 3)],
    ]
    if result.memory_bandwidth_density is not None:
        rows.insert(1, ["memory bandwidth density (GB/s/mm²)", _fmt(result.memory_bandwidth_density, 4)])
    console.print(table("Classification", ["", "value"], rows))
    steps = [[s.rule, s.test, s.result, s.citation] for s in result.trace]
    console.print(table("Why", ["rule", "test", "result", "citation"], steps))
    for note in notes + result.warnings:
        console.print(f"[yellow]! {note}[/yellow]")
    console.print(stamp_line(result.stamp))


def classify_command(
    chip: Optional[str] = typer.Option(None, "--chip", help="Catalogue chip (name, model or id; fuzzy)."),
    rate: list[str] = typer.Option([], "--rate", help="Dense peak rate PRECISION=TOPS, e.g. fp8=1979 (repeatable)."),
    die_area: list[float] = typer.Option([], "--die-area", help="Non-planar logic die area in mm² (repeatable)."),
    planar_die_area: list[float] = typer.Option(
        [], "--planar-die-area", help="Planar logic die area in mm² (not counted)."
    ),
    sparse: bool = typer.Option(False, "--sparse", help="The rates given are sparse figures: halve them."),
    datacenter: Optional[bool] = typer.Option(
        None,
        "--datacenter/--consumer",
        help="Designed or marketed for datacenters (default: yes, or the catalogue's value).",
    ),
    system: bool = typer.Option(False, "--system", help="A computer or assembly containing the IC (4A090)."),
    ic_count: int = typer.Option(1, "--ic-count", help="Number of such ICs in the system."),
    base_eccn: Optional[str] = typer.Option(
        None, "--base-eccn", help="The item's ECCN family if it has a .z paragraph (e.g. 5A992)."
    ),
    hbm_bandwidth: Optional[float] = typer.Option(
        None, "--hbm-bandwidth", help="Stand-alone HBM bandwidth in GB/s (3A090.c)."
    ),
    hbm_area: Optional[float] = typer.Option(None, "--hbm-area", help="Stand-alone HBM package or stack area in mm²."),
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
) -> None:
    """Classify a chip or system under 3A090 / 4A090 / .z / 3A090.c, with the paragraphs tested."""
    ctx = context(vintage, as_of)
    result, notes = classify_item(
        ctx,
        chip=chip,
        rates=[parse_rate(r, sparse) for r in rate],
        die_areas=die_area,
        planar_die_areas=planar_die_area,
        datacenter=datacenter,
        system=system,
        ic_count=ic_count,
        base_eccn=base_eccn,
        hbm_bandwidth=hbm_bandwidth,
        hbm_area=hbm_area,
    )
    if as_json:
        emit_json({**result.as_dict(), **({"notes": notes} if notes else {})})
    else:
        show_classification(result, notes)


@chips_app.command("list")
def chips_list(
    vendor: Optional[str] = typer.Option(None, "--vendor", help="Only this vendor (case-insensitive)."),
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
) -> None:
    """Every catalogued chip with tierline's TPP, density and ECCN next to the reported ones."""
    ctx = context(vintage, as_of)
    rows = chips_answer(ctx, vendor)["chips"]
    if as_json:
        emit_json({"chips": rows, **ctx.stamp()})
        return
    out = []
    for e in rows:
        c = e["computed"]
        out.append(
            [
                e["id"],
                e["vendor"],
                f"{e['model']} ({e['variant']})",
                _fmt(c["tpp"], 0) if c else "—",
                _fmt(e["tpp_reported"], 0) if e["tpp_reported"] else "—",
                _fmt(c["performance_density"]) if c else "—",
                (c["paragraph"] or c["status"].replace("_", " ")) if c else "no data",
                "⚑ " + "; ".join(e["disagreements"]) if e["disagreements"] else "",
            ]
        )
    console.print(table("Chip catalogue", ["id", "vendor", "model", "TPP", "reported", "PD", "3A090", "flags"], out))
    console.print(stamp_line(ctx.stamp()))


@chips_app.command("show")
def chips_show(
    name: str = typer.Argument(..., help="Chip name, model or id (fuzzy)."),
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
) -> None:
    """One chip: its data, sources, classification and any disagreement with the sources."""
    ctx = context(vintage, as_of)
    match = find_chip(name)
    chip = match.chip
    result, flags = classify_chip(chip, ctx) if chip.rates else (None, [])
    if as_json:
        emit_json(chip_answer(name, ctx))
        return
    info = [[k, v] for k, v in chip.as_dict().items() if k != "sources"]
    console.print(table(chip.name, ["field", "value"], info))
    console.print("Sources:\n" + "\n".join(f"  • {s}" for s in chip.sources))
    if result is None:
        console.print("[yellow]! no published dense rates: cannot be classified[/yellow]")
        return
    show_classification(result, ([match.note] if match.note else []) + [f"disagreement: {f}" for f in flags])
