"""Wall time of ``make demo``'s ``procbots demo`` with the default sizes (200 orders, seed 1).

Runs ``procbots demo`` in a subprocess exactly as ``make demo`` does (no
``PREFECT_API_URL``: it starts its own Prefect server), with a fresh data root and a
fresh Prefect home, and records its wall time, its phases (from ``demo-summary.json``)
and each flow's duration and counts. Writes ``benchmarks/results/demo.json``.

The reference measured in the same run is the bare start of a Python process that
imports Prefect (``python -c "import prefect"``): the demo starts at least five such
processes (server, healthcheck, three flows), so ``ratio_vs_prefect_import`` tells a
slow machine from a slow demo. The load average before and after is recorded too,
because a shared 2-core machine can make everything several times slower.

Run: ``uv run python -m benchmarks.bench_demo [--orders 200] [--sequential]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _prefect_import_s() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import prefect"], check=True, cwd=REPO_ROOT)
    return time.perf_counter() - started


def measure(orders: int, seed: int, sequential: bool) -> dict[str, Any]:
    """One ``procbots demo`` run in a fresh data root; its wall time, phases and flows."""
    with tempfile.TemporaryDirectory(prefix="procbots-bench-demo-") as tmp:
        base = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PROCBOTS_"))}
        env.update(
            {
                "PROCBOTS_PATHS__ROOT": str(base / "var"),
                "PREFECT_HOME": str(base / "user-prefect-home"),
                "COLUMNS": "200",
            }
        )
        cmd = [sys.executable, "-c", "from flows.cli import main; main()", "demo", "--orders", str(orders)]
        cmd += ["--seed", str(seed)] + (["--sequential"] if sequential else [])
        load_before = os.getloadavg()
        started = time.perf_counter()
        result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        load_after = os.getloadavg()
        summaries = list((base / "var").glob("demo-*/demo-summary.json"))
        summary = json.loads(summaries[0].read_text()) if summaries else {}
    # The demo's own summary, for the person running the benchmark (stderr: stdout is the JSON).
    print(result.stdout[-6000:], file=sys.stderr)
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
    return {
        "orders": orders,
        "seed": seed,
        "mode": "sequential" if sequential else "parallel",
        "exit_code": result.returncode,
        "wall_s": round(wall, 1),
        "phases_s": summary.get("timings", {}),
        "flows": [
            {
                "flow": flow["title"],
                "state": flow["state"],
                "duration_s": flow["duration_s"],
                "items": flow["items"],
            }
            for flow in summary.get("flows", [])
        ],
        "business_exceptions": summary.get("business_exceptions"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200, help="as procbots demo --orders (default 200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sequential", action="store_true", help="also measure --sequential")
    args = parser.parse_args(argv)

    reference = _prefect_import_s()
    runs = [measure(args.orders, args.seed, sequential=False)]
    if args.sequential:
        runs.append(measure(args.orders, args.seed, sequential=True))
    for run in runs:
        run["ratio_vs_prefect_import"] = round(run["wall_s"] / reference, 1) if reference else None
    result = {
        "benchmark": "procbots demo (make demo) wall time",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "reference_prefect_import_s": round(reference, 2),
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "demo.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if all(run["exit_code"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
