"""Run the benchmarks and show their headline figures: ``make bench`` / ``python -m benchmarks``.

Every ``benchmarks/bench_<name>.py`` with a ``main()`` is one benchmark. Each writes its
figures to ``benchmarks/results/<name>.json`` in a shape of its own; this runner reads
those files and prints their numbers generically (top-level values, one level of nested
objects, lists of runs one line each), so a new benchmark needs no change here.

Usage::

    python -m benchmarks                      # run every benchmark, then the table
    python -m benchmarks --only excel         # run one (repeat --only for more)
    python -m benchmarks --only excel -- --rows 20000   # arguments after -- go to it
    python -m benchmarks --list               # what there is, without running anything
    python -m benchmarks --show               # the table from the last results only

Exit status: 0 when every benchmark that ran finished, 1 if one raised or returned a
non-zero status, 2 for an unknown name.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import importlib
import inspect
import json
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
_MAX_LIST_ROWS = 8
_MAX_ITEMS_PER_ROW = 8


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One ``bench_<name>.py`` module."""

    name: str
    module: str
    path: Path
    summary: str

    @property
    def results(self) -> Path:
        """Where the benchmark writes its figures."""
        return RESULTS / f"{self.name}.json"


def discover(folder: Path = HERE) -> list[Benchmark]:
    """The benchmark modules in ``folder``, by name, read without importing them."""
    found: list[Benchmark] = []
    for path in sorted(folder.glob("bench_*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        if not any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            continue
        doc = (ast.get_docstring(tree) or "").strip().splitlines()
        name = path.stem.removeprefix("bench_")
        found.append(Benchmark(name, f"benchmarks.{path.stem}", path, doc[0] if doc else ""))
    return found


def run(benchmark: Benchmark, argv: Sequence[str]) -> tuple[bool, float, str]:
    """Import and run one benchmark's ``main``; returns (ok, seconds, message)."""
    started = time.perf_counter()
    try:
        module = importlib.import_module(benchmark.module)
        main = module.main
        takes_argv = bool(inspect.signature(main).parameters)
        # Always pass the list: a main() left to read sys.argv would see this runner's options.
        outcome = main(list(argv)) if takes_argv else main()
    except SystemExit as exc:  # argparse errors and explicit exits inside a benchmark
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code == 0, time.perf_counter() - started, f"exited with status {code}"
    except Exception as exc:
        traceback.print_exc()
        return False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    if isinstance(outcome, int) and not isinstance(outcome, bool) and outcome != 0:
        return False, seconds, f"returned status {outcome}"
    return True, seconds, "ok"


# --- showing results generically ---------------------------------------------------------


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    text = str(value)
    return text if len(text) <= 70 else text[:67] + "..."


def _pairs(data: dict[str, Any], limit: int | None = None) -> str:
    items: list[str] = []
    for key, value in data.items():
        if _scalar(value):
            items.append(f"{key}={_fmt(value)}")
        elif isinstance(value, dict):  # one level down: {"engine": {"engine_s": 1.2}} -> engine.engine_s=1.2
            items += [f"{key}.{k}={_fmt(v)}" for k, v in value.items() if _scalar(v)]
    if limit is not None and len(items) > limit:
        items = [*items[:limit], "..."]
    return ", ".join(items)


def figure_lines(data: Any) -> list[tuple[str, str]]:
    """(label, value) lines for any results JSON: scalars, nested objects, lists of runs."""
    if not isinstance(data, dict):
        return [("value", _fmt(data) if _scalar(data) else json.dumps(data)[:70])]
    lines: list[tuple[str, str]] = []
    for key, value in data.items():
        if _scalar(value):
            lines.append((key, _fmt(value)))
        elif isinstance(value, dict):
            if all(_scalar(v) for v in value.values()):
                lines.append((key, _pairs(value, _MAX_ITEMS_PER_ROW)))
            else:
                for inner_key, inner in value.items():
                    label = f"{key}.{inner_key}"
                    if _scalar(inner):
                        lines.append((label, _fmt(inner)))
                    elif isinstance(inner, dict):
                        lines.append((label, _pairs(inner, _MAX_ITEMS_PER_ROW)))
                    else:
                        lines.append((label, f"{len(inner)} items" if isinstance(inner, list) else "..."))
        elif isinstance(value, list):
            if value and all(isinstance(v, dict) for v in value):
                for i, item in enumerate(value[:_MAX_LIST_ROWS]):
                    lines.append((f"{key}[{i}]", _pairs(item, _MAX_ITEMS_PER_ROW)))
                if len(value) > _MAX_LIST_ROWS:
                    lines.append((key, f"... {len(value) - _MAX_LIST_ROWS} more"))
            elif all(_scalar(v) for v in value):
                lines.append((key, ", ".join(_fmt(v) for v in value)))
            else:
                lines.append((key, f"{len(value)} items"))
    return lines


def _highlight(label: str) -> bool:
    return any(word in label for word in ("ratio", "goal", "_vs_", "verdict", "met"))


def show(benchmarks: Sequence[Benchmark], status: dict[str, tuple[bool, float, str]]) -> None:
    """Print one table per benchmark from its results file."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for benchmark in benchmarks:
        title = f"{benchmark.name}: {benchmark.summary.removeprefix('Benchmark: ')}"
        table = Table(title=title, title_justify="left", show_header=False, expand=False)
        table.add_column("figure", style="cyan", no_wrap=True)
        table.add_column("value", overflow="fold")
        if benchmark.name in status:
            ok, seconds, message = status[benchmark.name]
            style = "green" if ok else "bold red"
            table.add_row("this run", f"[{style}]{message}[/] in {seconds:,.1f} s")
        if not benchmark.results.exists():
            table.add_row("results", f"[yellow]none yet ({benchmark.results.relative_to(HERE.parent)})[/]")
            console.print(table)
            continue
        stamp = dt.datetime.fromtimestamp(benchmark.results.stat().st_mtime).astimezone()
        table.add_row("results", f"{benchmark.results.relative_to(HERE.parent)} ({stamp:%Y-%m-%d %H:%M %Z})")
        try:
            data = json.loads(benchmark.results.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            table.add_row("error", f"[red]unreadable: {exc}[/]")
        else:
            for label, value in figure_lines(data):
                table.add_row(f"[bold]{label}[/]" if _highlight(label) else label, value)
        console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in args_in:
        at = args_in.index("--")
        args_in, passthrough = args_in[:at], args_in[at + 1 :]
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this one")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--show", action="store_true", help="show the last results without running")
    args = parser.parse_args(args_in)

    benchmarks = discover()
    names = [name for item in args.only for name in item.split(",") if name]
    known = {b.name: b for b in benchmarks}
    unknown = [n for n in names if n.removeprefix("bench_") not in known]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; there are: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = [known[n.removeprefix("bench_")] for n in names] if names else benchmarks
    if passthrough and len(chosen) != 1:
        print("arguments after -- need exactly one --only NAME", file=sys.stderr)
        return 2

    if args.list:
        for benchmark in chosen:
            have = "results" if benchmark.results.exists() else "no results yet"
            print(f"{benchmark.name:<12} {benchmark.module:<28} {have:<15} {benchmark.summary}")
        return 0

    status: dict[str, tuple[bool, float, str]] = {}
    if not args.show:
        for benchmark in chosen:
            print(f"== {benchmark.name} ({benchmark.module})", flush=True)
            status[benchmark.name] = run(benchmark, passthrough)
    show(chosen, status)
    return 0 if all(ok for ok, _, _ in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
