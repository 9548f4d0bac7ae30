"""The pyperf entry point the bench scripts share: one benchmark per case and loop, ``--only`` filtering."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyperf

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

LOOPS = ("asyncio", "uvloop")


def _pass_only_to_workers(cmd: list[str], args: object) -> None:
    """pyperf re-runs the script for each worker with its own options only; the workers must
    filter the same way, or their task numbers name other benchmarks."""
    only = getattr(args, "only", "")
    if only:
        cmd.extend(("--only", only))


def main(
    keys: Iterable[str],
    time_func: Callable[[int, str, str], float],
    metadata: Callable[[str], dict[str, Any]] = lambda _key: {},
) -> None:
    """Run ``time_func(loops, key, loop_name)`` (seconds for ``loops`` units) for every key on both loops."""
    runner = pyperf.Runner(add_cmdline_args=_pass_only_to_workers)
    runner.argparser.add_argument(
        "--only", default="", help="run only benchmarks whose name contains this (or one of these, comma-separated)"
    )
    args = runner.parse_args()
    wanted = [part for part in args.only.split(",") if part]
    for key in keys:
        if wanted and not any(part in key for part in wanted):
            continue
        for loop_name in LOOPS:
            runner.bench_time_func(f"{key}/{loop_name}", time_func, key, loop_name, metadata=metadata(key))
