"""``tierline design`` (threshold headroom of a chip design) and ``tierline inference`` (roofline
bounds of a model on catalogue chips)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from tierline.charts import DesignPoint, bandwidth_tpp_svg, tpp_density_svg
from tierline.cli.output import AS_OF, JSON, VINTAGE, console, context, emit_json, stamp_line, table
from tierline.design import LINE_CHOICES, build_design, design_answer
from tierline.errors import TierlineError
from tierline.inference import build_model, inference_answer
from tierline.tpp import parse_rate

CHART = typer.Option(None, "--chart", help="Also write an SVG chart to this file.")


def _fmt(x: Any, digits: int = 2) -> str:
    return "—" if x is None else f"{float(x):,.{digits}f}"


def _sig(x: Any) -> str:
    if x is None:
        return "—"
    value = float(x)
    return f"{value:,.6g}" if abs(value) < 1000 else f"{value:,.0f}"


def _signed(x: float) -> str:
    return f"{x:+,.6g}" if abs(x) < 1000 else f"{x:+,.0f}"


def _count(x: float) -> str:
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if x >= size:
            return f"{x / size:,.4g}{suffix}"
    return f"{x:,.0f}"


def write_chart(path: Path, svg: str) -> str:
    try:
        path.write_text(svg, encoding="utf-8")
    except OSError as exc:
        raise TierlineError("chart", f"cannot write {path}: {exc.strerror or exc}") from None
    return str(path)


# ---- design ------------------------------------------------------------------------------------------
def _show_design(data: dict[str, Any]) -> None:
    cls = data["classification"]
    summary = [
        ["TPP", f"{_fmt(data['tpp'])} ({data['tpp_precision']})"],
        ["performance density", _fmt(data["performance_density"], 4)],
        ["applicable die area (mm²)", _fmt(data["applicable_die_area"])],
        ["memory bandwidth density (GB/s/mm²)", _fmt(data["memory_bandwidth_density"], 4)],
        ["H100-equivalents", _fmt(data["h100_equivalents"], 3)],
        ["classification", f"{cls['outcome']} ({cls['eccn'] or 'not 3A090'})"],
    ]
    console.print(table(data.get("name") or "Design", ["", "value"], summary))
    rows = []
    for v in data["by_vintage"]:
        china = v["china_2026"]
        rows.append(
            [
                v["vintage"],
                v["outcome"],
                v["eccn"] or "—",
                "yes" if v["nac_aca_eligible"] else "no",
                v["hbm_3a090c_if_standalone"] or "—",
                (china["review"] or "undecided").replace("_", " ") if china["in_force"] else "not in force",
            ]
        )
    console.print(
        table(
            "Classification by vintage",
            ["vintage", "paragraph", "ECCN", "NAC/ACA", "HBM stacks (3A090.c)", "China 2026 review"],
            rows,
        )
    )
    lines = []
    for ln in data["lines"]:
        if not ln["in_force"]:
            lines.append([ln["label"], "not in force", "", "", "", "", "", ""])
            continue
        if ln.get("value") is None:
            lines.append([ln["label"], ln["condition"], "—", "", "", "", "", ln.get("note", "")])
            continue
        lines.append(
            [
                ln["label"] + ("" if ln["applies"] else " (n/a)"),
                ln["condition"],
                _sig(ln["value"]),
                _signed(ln["difference"]),
                f"{ln['ratio']:.4f}",
                ln["side"],
                "yes" if ln["meets"] else "no",
                ln["confidence"],
            ]
        )
    console.print(
        table(
            "Distance to each line",
            ["line", "condition", "value", "difference", "ratio", "side", "met", "confidence"],
            lines,
        )
    )
    for entry in data["ceilings"]["entries"]:
        if "rates" in entry:
            shown = [r for r in entry["rates"] if "design_rate" in r] or entry["rates"]
            console.print(
                table(
                    f"Largest dense rate strictly below {entry['label']} {entry['threshold']:,g}",
                    ["precision", "bits", "rate below (TOPS)", "exact", "design rate", "margin"],
                    [
                        [
                            r["precision"],
                            r["bits"],
                            _sig(r["rate_below"]),
                            r["exact"],
                            _sig(r.get("design_rate")),
                            _sig(r.get("margin")),
                        ]
                        for r in shown
                    ],
                )
            )
        elif "max_bandwidth_gbs" in entry:
            console.print(f"{entry['label']}: {entry['rule']}: {entry['max_bandwidth_gbs']:,.1f} GB/s")
        elif entry.get("note"):
            console.print(f"[yellow]! {entry['line']}: {entry['note']}[/yellow]")
    for key, title in (
        ("smallest_change", "Smallest change of paragraph"),
        ("smallest_level_change", "Smallest change of control level"),
        ("line_change", f"Smallest change across the {data['ceilings']['line']} line"),
    ):
        change = data[key]
        if change:
            console.print(f"[bold]{title}:[/bold] {change['change']} → {change['after']} (from {change['before']})")
        else:
            console.print(f"[bold]{title}:[/bold] none found")
    flips = [c for c in data["levers"] if c["flips"]]
    console.print(
        table(
            "Levers that flip an outcome (confirmed by recomputing)",
            ["change", "lines", "outcome"],
            [[c["change"], ", ".join(c["lines"]), f"{c['before']} → {c['after']}"] for c in flips],
        )
    )
    for note in data["warnings"]:
        console.print(f"[yellow]! {note}[/yellow]")
    if data.get("chart"):
        console.print(f"chart written to {data['chart']}")
    console.print(stamp_line(data))


def design_command(
    rate: list[str] = typer.Option([], "--rate", help="Dense peak rate PRECISION=TOPS, e.g. fp8=1979 (repeatable)."),
    mac: list[str] = typer.Option(
        [], "--mac", help="MAC units UNITS@CLOCK_GHZ:BITS, e.g. 540672@1.83:8 (rate = 2 x units x clock; repeatable)."
    ),
    die_area: list[float] = typer.Option([], "--die-area", help="Non-planar logic die area in mm² (repeatable)."),
    planar_die_area: list[float] = typer.Option(
        [], "--planar-die-area", help="Planar logic die area in mm² (not counted)."
    ),
    memory_bandwidth: Optional[float] = typer.Option(None, "--memory-bandwidth", help="Memory bandwidth in GB/s."),
    stack_area: Optional[float] = typer.Option(None, "--stack-area", help="Area of the HBM stacks in mm² (3A090.c)."),
    interconnect: Optional[float] = typer.Option(None, "--interconnect", help="Interconnect bandwidth in GB/s."),
    datacenter: bool = typer.Option(
        True, "--datacenter/--consumer", help="Designed or marketed for datacenters (default) or not (Note 2)."
    ),
    line: str = typer.Option("a1", "--line", help=f"Line for the rate ceilings: {'|'.join(LINE_CHOICES)}."),
    name: Optional[str] = typer.Option(None, "--name", help="A name for the design."),
    chart: Optional[Path] = CHART,
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
) -> None:
    """Threshold headroom of a chip design: classification per vintage, distance to every line, the
    largest rate below a line, and the smallest change that flips the classification."""
    ctx = context(vintage, as_of)
    design = build_design(
        ctx,
        rates=[parse_rate(r) for r in rate],
        macs=mac,
        die_areas=die_area,
        planar_die_areas=planar_die_area,
        memory_bandwidth_gbs=memory_bandwidth,
        stack_area_mm2=stack_area,
        interconnect_gbs=interconnect,
        datacenter=datacenter,
        name=name,
    )
    data = design_answer(design, ctx, line)
    if chart is not None:
        point = DesignPoint(data["tpp"], data["performance_density"], name or "design")
        data["chart"] = write_chart(chart, tpp_density_svg(ctx, highlight=point))
    if as_json:
        emit_json(data)
    else:
        _show_design(data)


# ---- inference ---------------------------------------------------------------------------------------
def _show_inference(data: dict[str, Any]) -> None:
    model = data["model"]
    rows = [
        [
            c["name"],
            c["precision"],
            _sig(c["dense_rate_tflops"]),
            _sig(c["memory_bandwidth_gbs"]),
            _sig(c["tpp"]),
            f"{_sig(c['decode']['tokens_per_s'])} ({c['decode']['binding']})",
            f"{_sig(c['prefill']['tokens_per_s'])} ({c['prefill']['binding']})",
            _sig(c["per_tpp"]["decode_tokens_per_s"]),
            _sig(c["per_h100_equivalent"]["decode_tokens_per_s"]),
            {True: "yes", False: "no", None: "?"}[c["fits_in_memory"]],
        ]
        for c in data["chips"]
    ]
    title = (
        f"Upper bounds: {_count(model['parameters'])} parameters ({_count(model['active_parameters'])} active), "
        f"{model['bytes_per_weight']:g} B/weight, batch {model['batch']}, context {model['context_length']:,}"
    )
    console.print(
        table(
            title,
            [
                "chip",
                "precision",
                "dense TFLOPS",
                "GB/s",
                "TPP",
                "decode tok/s (bound)",
                "prefill tok/s (bound)",
                "decode per TPP",
                "decode per H100-eq.",
                "fits",
            ],
            rows,
        )
    )
    console.print(f"decode:  {data['formulas']['decode']}")
    console.print(f"prefill: {data['formulas']['prefill']}")
    console.print("[dim]" + "; ".join(data["assumptions"]) + "[/dim]")
    for chip in data["chips"]:
        for note in chip["notes"]:
            console.print(f"[yellow]! {note}[/yellow]")
    for note in data["notes"]:
        console.print(f"[yellow]! {note}[/yellow]")
    if data.get("chart"):
        console.print(f"chart written to {data['chart']}")
    console.print(stamp_line(data))


def inference_command(
    chip: list[str] = typer.Option([], "--chip", help="Catalogue chip (name, model or id; fuzzy; repeatable)."),
    compare: bool = typer.Option(False, "--compare", help="Every catalogue chip with dense rates and bandwidth."),
    parameters: float = typer.Option(..., "--parameters", help="Model parameters, e.g. 70e9."),
    active_parameters: Optional[float] = typer.Option(
        None, "--active-parameters", help="Parameters active per token (mixture of experts; default all)."
    ),
    bytes_per_weight: float = typer.Option(..., "--bytes-per-weight", help="Bytes per weight: 2, 1 or 0.5."),
    kv_bytes_per_token: float = typer.Option(0, "--kv-bytes-per-token", help="KV-cache bytes per token."),
    context_length: int = typer.Option(4096, "--context", help="Context length in tokens."),
    batch: int = typer.Option(1, "--batch", help="Concurrent sequences."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Compute precision (default from bytes/weight)."),
    chart: Optional[Path] = CHART,
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
) -> None:
    """Roofline upper bounds on prefill and decode tokens/s of a model on catalogue chips, per chip,
    per unit of TPP and per H100-equivalent, with the binding resource named."""
    ctx = context(vintage, as_of)
    model = build_model(
        parameters=parameters,
        active_parameters=active_parameters,
        bytes_per_weight=bytes_per_weight,
        kv_bytes_per_token=kv_bytes_per_token,
        context=context_length,
        batch=batch,
    )
    data = inference_answer(ctx, model, chips=chip, compare=compare, precision=precision)
    if chart is not None:
        data["chart"] = write_chart(
            chart, bandwidth_tpp_svg(ctx, model, precision=precision, highlight=data["highlighted"])
        )
    if as_json:
        emit_json(data)
    else:
        _show_inference(data)
