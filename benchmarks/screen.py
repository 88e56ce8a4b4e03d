"""Bulk screening throughput on a generated order book (issue 5).

Prints, in one run on the same file: lines per second of the vectorized screening (classification,
determination and allowance accumulation, decisions written, no ledger writes) and its peak memory
(measured in a child process); the scalar engine on a 100,000-line sample of the same file; and a
floor: Polars streaming the same file in the same batches and evaluating one trivial expression per
line. Targets: >= 1,000,000 lines/s, <= 3x the floor, peak memory < 2 GB.

Run: ``.venv/bin/python benchmarks/screen.py [--rows 10000000] [--format csv|parquet]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

CHUNK = 250_000  # the screening's own batch size (tierline.screen.run.CHUNK)
SAMPLE = 100_000


def _pss_kb(pid: int) -> int:
    """Proportional set size of a process (pages shared with its forked workers counted once)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def child(orders: str, out: str) -> None:
    """Screen in this process and print the figures: peak RSS of this process and of the plan
    workers, and the peak of their summed PSS (sampled every 50 ms: the memory they use together)."""
    import os
    import resource
    import threading

    from tierline.allowances import InMemoryAllowances
    from tierline.screen import workers
    from tierline.screen.run import screen_file

    peak_pss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_pss
        while not done.wait(0.05):
            pool = workers._pool
            pids = [os.getpid(), *(getattr(pool, "_processes", None) or {})] if pool else [os.getpid()]
            peak_pss = max(peak_pss, sum(_pss_kb(pid) for pid in pids))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = screen_file(Path(orders), Path(out), state=InMemoryAllowances(), vintage="ai-diffusion")
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    pool = workers._pool
    if pool is not None:
        pool.shutdown()  # its processes' peak memory is then in RUSAGE_CHILDREN
    print(
        json.dumps(
            {
                "lines": result.lines,
                "seconds": seconds,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "workers": workers.workers() if pool is not None else 0,
                "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "total_pss_mb": peak_pss / 1024,
            }
        )
    )


def floor(orders: Path) -> float:
    """Seconds for Polars to stream the file in the screening's batches, one trivial expression per line."""
    from tierline.screen.read import scan

    start = time.perf_counter()
    total = 0
    for batch in scan(orders).collect_batches(chunk_size=CHUNK):
        total += int(batch.select(pl.col("quantity").is_not_null().sum()).item())
    return time.perf_counter() - start


def scalar(orders: Path) -> tuple[int, float]:
    """The scalar engine, line after line, on the first 100,000 lines of the file."""
    from tierline.allowances import InMemoryAllowances
    from tierline.screen.engine import screen_scalar
    from tierline.screen.read import parse, scan

    sample = scan(orders).head(SAMPLE).collect().with_row_index("line", offset=1)
    typed, _bad = parse(sample.with_columns(pl.col("line").cast(pl.Int64)))
    start = time.perf_counter()
    rows, _ = screen_scalar(typed, InMemoryAllowances(), "ai-diffusion")
    return len(rows), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from tierline.screen.sample import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        orders = Path(tmp) / f"orders.{args.format}"
        start = time.perf_counter()
        write_sample(args.rows, orders)
        size = orders.stat().st_size / 1e6
        print(f"generated {args.rows:,} lines ({size:,.0f} MB {args.format}) in {time.perf_counter() - start:.1f} s")
        floor_s = floor(orders)
        out = Path(tmp) / "decisions.parquet"
        run = subprocess.run(
            [sys.executable, __file__, "--child", str(orders), str(out)], capture_output=True, text=True, check=True
        )
        figures = json.loads(run.stdout.strip().splitlines()[-1])
        sample_lines, sample_s = scalar(orders)
    vector_rate = figures["lines"] / figures["seconds"]
    scalar_rate = sample_lines / sample_s
    floor_rate = args.rows / floor_s
    print(
        f"vectorized screening: {figures['lines']:,} lines in {figures['seconds']:.2f} s = {vector_rate:,.0f} lines/s "
        f"(target >= 1,000,000); peak memory (RSS) {figures['peak_mb']:,.0f} MB in the screening process, "
        f"{figures['worker_peak_mb']:,.0f} MB in the largest of {figures['workers']} plan workers; "
        f"together (peak summed PSS, shared pages once) {figures['total_pss_mb']:,.0f} MB (target < 2,048)"
    )
    print(f"floor (Polars stream + one expression per line): {floor_s:.2f} s = {floor_rate:,.0f} lines/s")
    print(f"scalar engine on a {SAMPLE:,}-line sample: {sample_s:.2f} s = {scalar_rate:,.0f} lines/s")
    print(
        f"ratios: vectorized / scalar = {vector_rate / scalar_rate:,.1f}x faster; "
        f"vectorized time / floor time = {figures['seconds'] / floor_s:,.2f}x (target <= 3)"
    )


if __name__ == "__main__":
    main()
