"""Comparing the three rule vintages on a generated order book (issue 8).

Prints, in one run on the same generated book: the seconds to compare ear-2023, ai-diffusion and
enforcement-posture (`compare_book`: one pass over the file, each line screened under every
vintage with allowances accumulating per vintage, changed lines written), the changed-line count,
and for scale the seconds to screen the same book once under ai-diffusion. Target: the three-way
comparison of 1,000,000 lines in under 10 seconds.

Run: ``.venv/bin/python benchmarks/compare.py [--rows 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VINTAGES = ("ear-2023", "ai-diffusion", "enforcement-posture")


def child(orders: str, out: str) -> None:
    """The comparison in a fresh process, as `tierline compare` runs it; prints its figures."""
    from tierline.allowances import InMemoryAllowances
    from tierline.compare import Side, compare_book
    from tierline.screen.run import screen_file
    from tierline.screen.workers import workers

    start = time.perf_counter()
    result = compare_book(Path(orders), [Side(v) for v in VINTAGES], out=Path(out), state=InMemoryAllowances())
    compare_s = time.perf_counter() - start
    start = time.perf_counter()
    screen_file(Path(orders), None, state=InMemoryAllowances(), vintage="ai-diffusion")
    screen_s = time.perf_counter() - start
    figures = {
        "lines": result.result.lines + result.outside,
        "screened": result.result.screened,
        "outside": result.outside,
        "window": str(result.window_start),
        "changed": result.changed_lines,
        "compare_s": compare_s,
        "screen_s": screen_s,
        "workers": workers(),
    }
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from tierline.screen.sample import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        orders = Path(tmp) / "orders.csv"
        write_sample(args.rows, orders)
        run = subprocess.run(
            [sys.executable, __file__, "--child", str(orders), str(Path(tmp) / "changed.parquet")],
            capture_output=True,
            text=True,
            check=True,
        )
    f = json.loads(run.stdout.strip().splitlines()[-1])
    print(
        f"compare {' / '.join(VINTAGES)} on {f['lines']:,} lines ({f['screened']:,} dated from "
        f"{f['window']}, {f['outside']:,} before), changed lines written: {f['compare_s']:.2f} s "
        f"(target < 10 s); {f['changed']:,} lines change outcome; plan workers: {f['workers']}"
    )
    print(
        f"screening the same book once (ai-diffusion): {f['screen_s']:.2f} s; "
        f"comparison / one screening = {f['compare_s'] / f['screen_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
