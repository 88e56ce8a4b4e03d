"""Classification throughput: the whole chip catalogue, repeatedly, on one context.

Prints classifications per second; run with ``.venv/bin/python benchmarks/classify.py``.
"""

from __future__ import annotations

import time

from tierline.catalog import catalog
from tierline.classification import classify
from tierline.policy import Context


def main(rounds: int = 50) -> None:
    ctx = Context.make("ai-diffusion", "2025-06-01")
    specs = [chip.spec() for chip in catalog().values() if chip.rates]
    start = time.perf_counter()
    for _ in range(rounds):
        for spec in specs:
            classify(spec, ctx)
    elapsed = time.perf_counter() - start
    count = rounds * len(specs)
    print(f"classified {count} items in {elapsed:.3f} s: {count / elapsed:,.0f} per second (scalar engine)")


if __name__ == "__main__":
    main()
