"""pyperf benchmark: spargio.net against the loop's own transports and rloop, asyncio and uvloop,
on loopback.  Run through ``benches/run.py``.  Each value is seconds per round (frame)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyperf_main
from net_cases import CASES, run_case


def time_func(loops: int, key: str, loop_name: str) -> float:
    return run_case(key, loop_name, loops)


if __name__ == "__main__":
    pyperf_main.main(CASES, time_func, lambda key: {"qd": CASES[key].qd})
