"""pyperf benchmark: hot paths moved into the pool vs the same code inline on the service loop and in
``asyncio.to_thread``, plus the service loop's ticker lag meanwhile; asyncio and uvloop.  Run through
``benches/run.py``.  Each value is seconds per unit of work; for ``service_loop_lag_*`` it is the p99 lag
of a 1 ms ticker in seconds (one measurement per value, repeated ``loops`` times in the total)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyperf_main
from hotpath_cases import CASES, run_case


def time_func(loops: int, key: str, loop_name: str) -> float:
    if CASES[key].lag:
        return run_case(key, loop_name, 0) * loops  # pyperf divides by loops: the value is the p99 lag
    return run_case(key, loop_name, loops) * loops


if __name__ == "__main__":
    pyperf_main.main(CASES, time_func, lambda key: {"qd": CASES[key].qd})
