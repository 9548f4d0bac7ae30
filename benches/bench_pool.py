"""pyperf benchmark: pool scheduling (stealing vs static vs ThreadPoolExecutor), asyncio and uvloop.

Run through ``benches/run.py`` (``make bench``).  Each value is seconds per
unit of work (see `pool_cases` for what a unit is in each shape).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyperf_main
from pool_cases import CASES, run_case


def time_func(loops: int, key: str, loop_name: str) -> float:
    return run_case(key, loop_name, loops) * loops


if __name__ == "__main__":
    pyperf_main.main(CASES, time_func)
