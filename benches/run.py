"""``make bench``: prepare data, run pyperf on every case, fio for the limit, write the report.

Writes ``benches/results/fs.json``, ``pool.json``, ``boundary.json``, ``hotpath.json`` and ``net.json`` (pyperf),
``fio.json``,
``table.md`` and ``plot.png``.  ``--quick`` runs pyperf's --fast mode (fewer processes/values).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fio_limit  # noqa: E402
import fs_cases  # noqa: E402
import hotpath_cases  # noqa: E402
import pool_cases  # noqa: E402
import report  # noqa: E402


def merge(fresh: Path, out: Path, *, replace_all: bool) -> None:
    """Move ``fresh`` results into ``out``; with --only, keep ``out``'s other benchmarks."""
    import pyperf

    if not fresh.exists():
        return
    if replace_all or not out.exists():
        fresh.replace(out)
        return
    new = pyperf.BenchmarkSuite.load(str(fresh))
    names = set(new.get_benchmark_names())
    kept = [b for b in pyperf.BenchmarkSuite.load(str(out)).get_benchmarks() if b.get_name() not in names]
    pyperf.BenchmarkSuite([*kept, *new.get_benchmarks()]).dump(str(out), replace=True)
    fresh.unlink()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="pyperf --fast")
    parser.add_argument(
        "--only", default="", help="only benchmarks whose name contains this (or one of these, comma-separated)"
    )
    args = parser.parse_args()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    print("preparing data in", fs_cases.DATA, flush=True)
    fs_cases.prepare_data()
    pool_cases.prepare_data()
    hotpath_cases.prepare_data()
    fs_mode = ["--fast"] if args.quick else ["--processes", "6", "--values", "3", "--warmups", "1"]
    pool_mode = ["--fast"] if args.quick else ["--processes", "3", "--values", "3", "--warmups", "1"]
    for script, name, mode, min_time in (
        ("bench_fs.py", "fs.json", fs_mode, "0.05"),
        ("bench_pool.py", "pool.json", pool_mode, "0.2"),
        ("bench_boundary.py", "boundary.json", pool_mode, "0.2"),
        ("bench_hotpath.py", "hotpath.json", pool_mode, "0.2"),
        ("bench_net.py", "net.json", pool_mode, "0.1"),
    ):
        out = results / name
        fresh = results / f"new-{name}"
        fresh.unlink(missing_ok=True)
        cmd = [sys.executable, "-P", str(HERE / script), *mode, "--min-time", min_time, "-o", str(fresh)]
        if args.only:
            cmd += ["--only", args.only]
        subprocess.run(cmd, check=True)
        merge(fresh, out, replace_all=not args.only)
    if not (args.only and (results / "fio.json").exists()):
        print("fio (io_uring engine) for the kernel's limit...", flush=True)
        (results / "fio.json").write_text(json.dumps(fio_limit.fio_iops(), indent=1))
    print(report.main(results))
    print(f"wrote {results / 'table.md'} and {results / 'plot.png'}")


if __name__ == "__main__":
    main()
