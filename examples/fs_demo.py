"""spargio.fs next to asyncio.to_thread and aiofiles, on asyncio and uvloop.

Runs the same file work through each (4 KiB random reads one at a time and
32 at once, whole small files, 4 KiB write + fsync with 32 writers) and
prints ops/s with spargio's ratio to each.  About a minute.  For the full
pyperf suite with every anchor, run ``make bench``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

import fs_cases  # noqa: E402

import spargio  # noqa: E402

WORK = [
    ("fs_read_rtt_4k", "4 KiB random read, one at a time", 20_000),
    ("fs_read_throughput_4k_qd32", "4 KiB random read, 32 in flight", 40_000),
    ("fs_small_files_read", "read a whole 4 KiB file (open+read+close)", 5_000),
    ("fs_write_fsync_4k_qd32", "4 KiB write + fsync, 32 writers", 2_000),
]
IMPLS = ("spargio", "to_thread", "aiofiles")


def main() -> None:
    info = spargio.backend_info()
    print(f"spargio {spargio.__version__} on {info.name} ({info.reason}); kernel {info.kernel}")
    print("preparing a 64 MiB file and 1000 small files in benches/.data ...", flush=True)
    fs_cases.prepare_data()
    rows = []
    for bench, label, n in WORK:
        for loop_name in ("asyncio", "uvloop"):
            result = {}
            for impl in IMPLS:
                count = n if impl == "spargio" else max(n // 8, 500)
                best = min(fs_cases.run_case(f"{bench}/{impl}", loop_name, count) for _ in range(3))
                result[impl] = count / best
                print(f"  {label:45s} {loop_name:8s} {impl:10s} {result[impl]:>10,.0f} ops/s", flush=True)
            rows.append((label, loop_name, result))
    print()
    header = f"| {'work':45s} | loop    | spargio ops/s | to_thread | aiofiles | vs to_thread | vs aiofiles |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for label, loop_name, r in rows:
        print(
            f"| {label:45s} | {loop_name:7s} | {r['spargio']:>13,.0f} "
            f"| {r['to_thread']:>9,.0f} | {r['aiofiles']:>8,.0f} "
            f"| {r['spargio'] / r['to_thread']:>11.1f}x | {r['spargio'] / r['aiofiles']:>10.1f}x |"
        )


if __name__ == "__main__":
    start = time.monotonic()
    main()
    print(f"\n(done in {time.monotonic() - start:.0f}s; best of 3 runs each; the machine is shared, so expect noise)")
