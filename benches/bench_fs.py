"""pyperf benchmark: every file-I/O case on asyncio and uvloop, one process run.

Run through ``benches/run.py`` (``make bench``); pyperf spawns worker
processes of this script.  Each value is seconds per unit of work.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyperf_main
from fs_cases import CASES, run_case


def time_func(loops: int, key: str, loop_name: str) -> float:
    return run_case(key, loop_name, loops)


if __name__ == "__main__":
    pyperf_main.main(CASES, time_func, lambda key: {"qd": CASES[key].qd})
