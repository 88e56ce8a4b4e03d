"""Plain helpers shared by the tests (fixtures are in conftest.py).

Expected values never come from running tierline: they come from the reference files in
../shared/reference/ (cited in each case's ``source``) or from hand arithmetic written out in the
case itself ("1979 x 8"). Case tables a non-programmer can read live in tests/cases/*.yaml.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
CASES = TESTS / "cases"
PROJECT = TESTS.parent
REFERENCE = PROJECT.parent / "shared" / "reference"
TIERLINE = Path(sys.executable).with_name("tierline")

# The as-of date most tests use: after the AI Diffusion compliance date (15 May 2025).
AS_OF = "2025-06-01"
# The date the reference country table describes (README.md "Conventions in the CSV files").
TABLE_DATE = dt.date(2025, 1, 15)

needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is not available")


def load_cases(name: str) -> Any:
    """A case table from tests/cases/ (YAML)."""
    return yaml.safe_load((CASES / name).read_text(encoding="utf-8"))


def case_id(case: dict[str, Any]) -> str:
    return str(case.get("name") or case.get("case") or case.get("parameter") or case.get("query"))


def params(cases: list[dict[str, Any]]) -> list[Any]:
    """pytest parameters for a list of cases, each with a readable id."""
    return [pytest.param(c, id=case_id(c)) for c in cases]


def num(value: Any) -> Fraction:
    """An exact number from a case value: 4800, "4799.99", or hand arithmetic "1979 x 8" / "26900000 / 15832"."""
    if isinstance(value, Fraction):
        return value
    text = str(value).replace(",", "").replace("×", "x").replace("*", "x").strip()
    if "/" in text:
        top, bottom = text.split("/", 1)
        return num(top) / num(bottom)
    result = Fraction(1)
    for factor in text.split("x"):
        result *= Fraction(factor.strip())
    return result


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run the real ``tierline`` console script in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("TIERLINE_POLICY_DIR", "TIERLINE_DEBUG")}
    full_env.update(env or {})
    full_env.setdefault("COLUMNS", "200")
    proc = subprocess.run([str(TIERLINE), *args], capture_output=True, text=True, env=full_env, timeout=60, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def free_port() -> int:
    """A loopback port free right now (a server started on it may still race for it: retry then)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process, killing it if it does not stop within ten seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_ready(
    folder: Path, env: dict[str, str], startup_seconds: float = 60.0
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start `tierline serve` on a free loopback port with `env` and wait for /readyz: (process, base
    URL, log file). Tries three ports (one can be taken between choosing and binding it)."""
    import time

    import httpx

    failures = []
    for attempt in range(3):
        port = free_port()
        log_path = folder / f"server-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(TIERLINE), "serve", "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup_seconds
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    return process, base_url, log_path
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        stop_process(process)
        failures.append(f"port {port}: exit {process.returncode}\n{log_path.read_text(errors='replace')[-3000:]}")
    raise AssertionError("the server never became ready:\n" + "\n".join(failures))


def write_book(path: Path, rows: list[dict[str, Any]]) -> Path:
    """An order book as CSV: the union of the rows' columns, None written as an empty cell."""
    import csv

    names = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in names})
    return path


# 2,000 H100 SXM5 (15,831.2 TPP each: 31,662,400 TPP, over LPP's 26,900,000) to a Kenyan data centre on
# 2025-06-01: a licence that draws Kenya's Tier 2 allocation when recorded
KENYA_H100 = {
    "date": "2025-06-01",
    "destination": "KE",
    "items": [{"chip": "H100 SXM5", "quantity": 2000}],
    "ultimate_consignee": {"id": "acme-ke", "name": "Acme Kenya", "country": "KE", "headquarters": "KE"},
    "end_use": "data_center",
}
