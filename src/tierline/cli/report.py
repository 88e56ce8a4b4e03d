"""``tierline report``: a comparison, a pathway analysis or a projection as REPORT.html and REPORT.pdf.

Each subcommand is the analysis command of the same name with its ``--report`` made the point: it
takes the same arguments and writes the report (default ``tierline-KIND-report``) besides printing
the answer.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import typer

from tierline.cli.analysis import pathways_command, project_command
from tierline.cli.compare import compare_command

report_app = typer.Typer(
    help="Write a self-contained HTML report and a PDF (charts, citations; vintage, reform and as-of "
    "date on every page).",
    no_args_is_help=True,
)


def _reporting(command: Callable[..., None], kind: str) -> Callable[..., None]:
    """`command` with ``--report`` defaulting to ``tierline-KIND-report``."""
    signature = inspect.signature(command)
    default = typer.Option(
        f"tierline-{kind}-report", "--report", "--out", "-o", help="Report path: writes PATH.html and PATH.pdf."
    )
    parameters = [p.replace(default=default) if p.name == "report" else p for p in signature.parameters.values()]

    @functools.wraps(command)
    def run(**kwargs: Any) -> None:
        command(**kwargs)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return run


report_app.command("compare")(_reporting(compare_command, "comparison"))
report_app.command("pathways")(_reporting(pathways_command, "pathways"))
report_app.command("projection")(_reporting(project_command, "projection"))
