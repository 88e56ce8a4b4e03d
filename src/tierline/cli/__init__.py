"""The ``tierline`` command line."""

from __future__ import annotations

import os
import sys

import typer

from tierline.cli import (
    analysis,
    check,
    classify,
    compare,
    countries,
    design,
    ledger,
    policy,
    report,
    scenario,
    screen,
    serve,
)
from tierline.errors import TierlineError

app = typer.Typer(
    name="tierline",
    help="The US AI Diffusion framework and EAR advanced-computing controls, explained.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("classify")(classify.classify_command)
app.add_typer(classify.chips_app, name="chips")
app.command("design")(design.design_command)
app.command("inference")(design.inference_command)
app.command("country")(countries.country_command)
app.command("tiers")(countries.tiers_command)
app.add_typer(policy.policy_app, name="policy")
app.command("check")(check.check_command)
app.command("weights")(check.weights_command)
app.add_typer(ledger.ledger_app, name="ledger")
app.command("screen")(screen.screen_command)
app.command("compare")(compare.compare_command)
app.command("sample-orders")(screen.sample_orders_command)
app.command("serve")(serve.serve_command)
app.add_typer(serve.keys_app, name="keys")
app.add_typer(scenario.scenario_app, name="scenario")
app.add_typer(report.report_app, name="report")
analysis.register(app)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except TierlineError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - last resort: no traceback unless asked for
        if os.environ.get("TIERLINE_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc} (set TIERLINE_DEBUG=1 for details)\n")
        sys.exit(1)
