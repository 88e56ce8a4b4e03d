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
import tempfile
import time
from pathlib import Path

VINTAGES = ("ear-2023", "ai-diffusion", "enforcement-posture")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    from tierline.allowances import InMemoryAllowances
    from tierline.compare import Side, compare_book
    from tierline.screen.run import screen_file
    from tierline.screen.sample import write_sample
    from tierline.screen.workers import workers

    with tempfile.TemporaryDirectory() as tmp:
        orders = Path(tmp) / "orders.csv"
        write_sample(args.rows, orders)
        start = time.perf_counter()
        result = compare_book(
            orders, [Side(v) for v in VINTAGES], out=Path(tmp) / "changed.parquet", state=InMemoryAllowances()
        )
        compare_s = time.perf_counter() - start
        start = time.perf_counter()
        screen_file(orders, None, state=InMemoryAllowances(), vintage="ai-diffusion")
        screen_s = time.perf_counter() - start
    lines = result.result.lines + result.outside
    print(
        f"compare {' / '.join(VINTAGES)} on {lines:,} lines ({result.result.screened:,} dated from "
        f"{result.window_start}, {result.outside:,} before): {compare_s:.2f} s (target < 10 s); "
        f"{result.changed_lines:,} lines change outcome; plan workers: {workers()}"
    )
    print(
        f"screening the same book once (ai-diffusion): {screen_s:.2f} s; "
        f"comparison / one screening = {compare_s / screen_s:.2f}x"
    )


if __name__ == "__main__":
    main()
