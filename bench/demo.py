"""Benchmark: `make demo` from a fresh clone, as a new user runs it, timed phase by phase.

    python3 bench/demo.py                 # with pip's cache as this machine has it
    python3 bench/demo.py --no-pip-cache  # pip downloads everything, as on a machine that never ran pip
    python3 bench/demo.py --json

It clones the repository's HEAD into a temporary directory (git clone, no .venv) and runs `make demo` there with the
machine's python3, reading its output as it comes: the time until the venv is ready (pip done, the demo's first
line), each of the demo's three runs (from its "run N of 3" lines) and the whole. Nothing is shared with the
checkout it runs from.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 180  # seconds: under 3 minutes on an idle 2-core machine


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_demo(clone: Path, env: dict) -> dict:
    marks, started = {}, time.perf_counter()
    with subprocess.Popen(["make", "demo"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:  # fmt: skip
        for line in proc.stdout:
            now = round(time.perf_counter() - started, 1)
            if line.startswith("demo: ") and "venv" not in marks:
                marks["venv"] = now
            found = re.match(r"demo: run (\d) of 3 done", line)
            if found:
                marks[f"run {found.group(1)}"] = now
    if proc.returncode:
        raise SystemExit(f"bench: make demo failed (exit {proc.returncode})")
    marks["total"] = round(time.perf_counter() - started, 1)
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-pip-cache", action="store_true", help="pip downloads everything (PIP_NO_CACHE_DIR)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nerv-bench-demo-") as tmp:
        clone = Path(tmp) / "nerv.homelab"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SOPS_", "NERV_", "VIRTUAL_ENV"))}
        env["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        if args.no_pip_cache:
            env["PIP_NO_CACHE_DIR"] = "1"
        log(f"make demo in a fresh clone ({'no pip cache' if args.no_pip_cache else 'pip cache as it is'})")
        marks = run_demo(clone, env)
    result = {"date": datetime.date.today().isoformat(), "cpus": os.cpu_count(),
              "python": platform.python_version(), "pip_cache": not args.no_pip_cache, **marks}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    previous = result["venv"]
    lines = [f"{result['date']}, {result['cpus']} CPUs, Python {result['python']}, pip cache: {result['pip_cache']}",
             f"venv (pip): {result['venv']} s"]  # fmt: skip
    for number in (1, 2, 3):
        lines.append(f"run {number} of 3: {round(result[f'run {number}'] - previous, 1)} s")
        previous = result[f"run {number}"]
    verdict = "met" if result["total"] < TARGET else "not met"
    lines.append(f"make demo, all of it: {result['total']} s (target under {TARGET} s: {verdict})")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
