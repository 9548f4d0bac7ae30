"""pyperf benchmark: boundary round trips (spargio.boundary vs run_in_executor, run_coroutine_threadsafe,
janus), asyncio and uvloop.  Run through ``benches/run.py``.  Each value is seconds per round trip."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyperf_main
from boundary_cases import CASES, run_case


def time_func(loops: int, key: str, loop_name: str) -> float:
    return run_case(key, loop_name, loops) * loops


if __name__ == "__main__":
    pyperf_main.main(CASES, time_func, lambda key: {"qd": CASES[key].qd})
