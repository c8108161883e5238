"""Start-up time of each command line: wall seconds of `gan-torch --help`, `gan-keras --help` and `gan-parity --help`.

Usage: python benchmarks/startup.py [--runs 5] [--commands gan-torch gan-keras gan-parity] [--markdown]
Each command runs --runs times as a fresh process (the console script beside this Python, else `python -m`); the
table shows the median, the fastest and the slowest run, and what the process wrote to stderr (it should be
nothing). Two reference rows show the floor each command stands on: importing the framework alone.
Run it on an otherwise idle machine; the first run after installing warms the file cache and is slower.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODULES = {"gan-torch": "torch_impl", "gan-keras": "keras_impl", "gan-parity": "parity"}
REFERENCES = {"import torch": "import torch", "import keras (TensorFlow)": "import keras"}


def command_line(name: str) -> list[str]:
    """The console script beside this interpreter, or `python -m <package>` when it is not installed."""
    script = Path(sys.executable).with_name(name)
    return [str(script), "--help"] if script.is_file() else [sys.executable, "-m", MODULES[name], "--help"]


def timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds of one run of `command` and its stderr; RuntimeError when it fails."""
    start = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {process.stderr.strip()[-400:]}")
    return seconds, process.stderr


def measure(label: str, command: list[str], runs: int) -> dict:
    times, stderr = [], ""
    for _ in range(runs):
        seconds, err = timed(command)
        times.append(seconds)
        stderr = stderr or err.strip()
    return {"label": label, "median": statistics.median(times), "min": min(times), "max": max(times),
            "stderr": stderr}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command (default 5)")
    parser.add_argument("--commands", nargs="+", choices=list(MODULES), default=list(MODULES))
    parser.add_argument("--no-references", action="store_true", help="skip the framework-import rows")
    args = parser.parse_args(argv)
    rows = [measure(f"{name} --help", command_line(name), args.runs) for name in args.commands]
    if not args.no_references:
        rows += [measure(label, [sys.executable, "-c", code], args.runs) for label, code in REFERENCES.items()]
    print(f"`python benchmarks/startup.py --runs {args.runs}`: wall seconds of a fresh process\n")
    print("| command | median s | fastest s | slowest s | stderr lines |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        lines = len(row["stderr"].splitlines())
        print(f"| `{row['label']}` | {row['median']:.2f} | {row['min']:.2f} | {row['max']:.2f} | {lines} |")
    for row in rows:
        if row["stderr"]:
            print(f"\nstderr of `{row['label']}`:\n" + "\n".join(f"    {line}" for line in row["stderr"].splitlines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
