"""fio's io_uring engine on the same files: the kernel's limit on this machine (IOPS)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess

from fs_cases import READ_FILE

JOBS = {
    "fs_read_rtt_4k": {"iodepth": "1", "direct": "0"},
    "fs_read_throughput_4k_qd32": {"iodepth": "32", "direct": "0"},
    "fs_read_odirect_4k_qd32": {"iodepth": "32", "direct": "1"},
}


def fio_iops(runtime: int = 2, repeats: int = 3) -> dict[str, float]:
    """Median IOPS of 4 KiB random reads per benchmark shape; empty if fio is missing.

    The disk is a shared virtual device whose O_DIRECT speed swings between
    runs (seen: 3.6k to 73k IOPS), so each shape is the median of ``repeats``.
    """
    if not shutil.which("fio"):
        return {}
    out: dict[str, float] = {}
    for bench, opts in JOBS.items():
        cmd = [
            "fio", "--name=limit", f"--filename={READ_FILE}", "--ioengine=io_uring", "--rw=randread",
            "--bs=4k", f"--iodepth={opts['iodepth']}", f"--direct={opts['direct']}", "--time_based",
            f"--runtime={runtime}", "--output-format=json", "--numjobs=1", "--thread",
            # fio drops the file's page cache before it starts unless told not to; the
            # page-cache shapes must read from the cache, as the Python cases do.
            f"--invalidate={opts['direct']}",
        ]  # fmt: skip
        if opts["direct"] == "0":
            with open(READ_FILE, "rb") as f:
                while f.read(1 << 22):
                    pass
        runs = []
        for _ in range(repeats):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs.append(float(json.loads(proc.stdout)["jobs"][0]["read"]["iops"]))
        out[bench] = statistics.median(runs)
    return out
