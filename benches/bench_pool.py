"""pyperf benchmark: pool scheduling (stealing vs static vs ThreadPoolExecutor), asyncio and uvloop.

Run through ``benches/run.py`` (``make bench``).  Each value is seconds per
unit of work (see `pool_cases` for what a unit is in each shape).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyperf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pool_cases import CASES, run_case


def time_func(loops: int, key: str, loop_name: str) -> float:
    return run_case(key, loop_name, loops) * loops


def pass_only_to_workers(cmd: list[str], args: object) -> None:
    """pyperf re-runs this script for each worker with its own options only; the workers must
    filter the same way, or their task numbers name other benchmarks."""
    only = getattr(args, "only", "")
    if only:
        cmd.extend(("--only", only))


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=pass_only_to_workers)
    runner.argparser.add_argument("--only", default="", help="run only benchmarks whose name contains this")
    args = runner.parse_args()
    for key in CASES:
        if args.only and args.only not in key:
            continue
        for loop_name in ("asyncio", "uvloop"):
            runner.bench_time_func(f"{key}/{loop_name}", time_func, key, loop_name)


if __name__ == "__main__":
    main()
