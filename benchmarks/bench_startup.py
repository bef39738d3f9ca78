"""Benchmark: start-up of the ``procbots`` command line (``procbots --help``).

Times whole processes, start to exit, of the installed console script: ``procbots --help``
(goal: within 0.5 s, best of 5, issue 15), ``procbots peppol --help`` and ``procbots
audit --help`` (which load the settings), and beside them, in the same run and interleaved,
the references: a bare ``python -c pass``, ``python -c "import typer"``, and ``procbots
--help`` with Typer's rich help formatting off (``TYPER_USE_RICH=0``), which tells what
rich costs. Also counts the modules ``procbots --help`` imports. Writes
``benchmarks/results/startup.json``.

Run: ``.venv/bin/python -m benchmarks.bench_startup [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "startup.json"
ROOT = Path(__file__).resolve().parents[1]
PROCBOTS = Path(sys.executable).with_name("procbots")
GOAL_S = 0.5


def _commands() -> dict[str, tuple[list[str], dict[str, str]]]:
    script = str(PROCBOTS)
    return {
        "python -c pass": ([sys.executable, "-c", "pass"], {}),
        "python -c 'import typer'": ([sys.executable, "-c", "import typer"], {}),
        "procbots --help (TYPER_USE_RICH=0)": ([script, "--help"], {"TYPER_USE_RICH": "0"}),
        "procbots --help": ([script, "--help"], {}),
        "procbots peppol --help": ([script, "peppol", "--help"], {}),
        "procbots audit --help": ([script, "audit", "--help"], {}),
    }


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env={**os.environ, **env}, capture_output=True, check=True, timeout=60)
    return time.perf_counter() - started


def _modules_imported(argv: list[str]) -> int:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return sum(1 for line in result.stderr.splitlines() if line.startswith("import time:")) - 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best of each is kept")
    args = parser.parse_args(argv)
    if not PROCBOTS.is_file():
        print(f"bench_startup: {PROCBOTS}: the console script is not installed (uv sync)", file=sys.stderr)
        return 2

    commands = _commands()
    for cmd, env in commands.values():  # warm the file cache and .pyc files
        _time(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):  # interleaved, so a busy moment hits every command alike
        for name, (cmd, env) in commands.items():
            times[name].append(_time(cmd, env))

    best = {name: round(min(values), 3) for name, values in times.items()}
    help_s = best["procbots --help"]
    python_s = best["python -c pass"]
    result = {
        "benchmark": "procbots start-up",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "repeat": args.repeat,
        "best_s": best,
        "median_s": {name: round(sorted(v)[len(v) // 2], 3) for name, v in times.items()},
        "help_goal_s": GOAL_S,
        "help_within_goal": help_s <= GOAL_S,
        "help_over_bare_python_s": round(help_s - python_s, 3),
        "help_over_import_typer_s": round(help_s - best["python -c 'import typer'"], 3),
        "rich_help_formatting_s": round(help_s - best["procbots --help (TYPER_USE_RICH=0)"], 3),
        "modules_imported_by_help": _modules_imported([str(PROCBOTS), "--help"]),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name in commands:
        print(f"{name:40} best {best[name]:.3f} s")
    print(f"procbots --help within {GOAL_S} s: {result['help_within_goal']}  -> {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
