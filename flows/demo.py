"""``procbots demo``: the daily job on the embedded default, end to end, through Prefect.

What one demo does, in order:

1. makes a fresh data root ``<paths.root>/demo-<UTC timestamp>/`` (inbox, outbox,
   evidence, audit, ledger) and points every bot at it through settings
   (``PROCBOTS_PATHS__ROOT``, ``PROCBOTS_PORTAL__URL``, ``PROCBOTS_PORTAL__PASSWORD``);
2. picks the Prefect API: the configured one when ``PREFECT_API_URL`` is set (the
   runs appear in that UI), else a local ``prefect server start`` on 127.0.0.1
   with its home in ``<paths.root>/prefect-home`` (so earlier demo runs stay
   browsable), started in the background while the next steps run;
3. starts the sandbox portal (:class:`sandbox.server.SandboxServer`) and writes
   the sample inputs for the same seed and order count into the inbox;
4. runs the portal healthcheck, then goods receipts, then the other bot flows
   (purchase orders, invoice matching, contract uploads), each as a real Prefect flow run in its own
   process (as a process worker would), with live progress read from the
   work-item ledger; flows whose module is not in the checkout yet are listed as such;
5. prints a summary (state, items done / business exceptions / system errors,
   duration per flow), how many invoices were approved because their goods were
   receipted today, the business exceptions by reason, the reports in the
   outbox, the evidence folder, the audit log and its verification, and the
   Prefect UI links of the runs; writes the same as ``demo-summary.json``.

Exit 0 when every flow run that exists ended ``Completed`` (business exceptions
in the sample data are expected), 1 when one did not (or the audit chain is
broken), 2 when the demo could not be set up (no Chromium, bad ``--chaos``, no
Prefect API).

The flows run in child processes started as ``python -m flows.demo run-flow``;
that keeps Chromium, structlog JSON and Prefect's console logging out of the
demo's own output (each flow's output goes to ``logs/<flow>.log`` in the data root).
The child side is :mod:`flows.demo_child`, the Prefect API (configured or started
locally) :mod:`flows.demo_server`.

Example:
    >>> exit_code = run_demo(DemoOptions(orders=40, seed=3))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bots import registry
from bots.registry import Bot, DemoInputs
from flows.demo_child import DEMO_TAG, run_flow_child
from flows.demo_server import DemoSetupError, PrefectApi, api_healthy, stop_group

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from bots.runtime.ledger import Ledger
    from config.settings import Settings

__all__ = [
    "DEMO_FLOWS",
    "DemoFlow",
    "DemoInputs",
    "DemoOptions",
    "DemoSetupError",
    "FlowOutcome",
    "demo_flow",
    "run_demo",
]

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_FILE = "demo-summary.json"
# Ledger states that count as "system errors" in the summary: given up after every
# retry, parked for a person, or left unfinished by a run that stopped.
SYSTEM_ERROR_STATES = ("failed", "needs_review", "system_exception", "in_progress", "pending")


# -- what runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoFlow:
    """One flow of the daily job: where it lives, what it is given, which ledger queue it fills.

    ``entrypoint`` has the ``prefect.yaml`` form ``flows/<module>.py:<function>``;
    ``bot`` names the flow's work items in the ledger (live progress, counts);
    ``parameters`` builds the flow's ``params`` from the demo's inputs.
    """

    key: str
    title: str
    entrypoint: str
    bot: str | None
    parameters: Callable[[DemoInputs], dict[str, Any]]

    @property
    def path(self) -> Path:
        """The flow's module file in the checkout."""
        return ROOT / self.entrypoint.split(":", 1)[0]

    @property
    def module(self) -> str:
        """The importable module name (``flows.purchase_orders``)."""
        return self.entrypoint.split(":", 1)[0].removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        """The flow object's name in its module."""
        return self.entrypoint.split(":", 1)[1]

    def exists(self) -> bool:
        """Whether the flow's module is in this checkout (flows land one by one)."""
        return self.path.is_file()


def demo_flow(bot: Bot) -> DemoFlow:
    """The demo's view of a registry entry (its flow, ledger queue and demo parameters)."""
    if bot.demo is None:
        raise ValueError(f"{bot.name} takes no part in the demo (its registry entry has no demo)")
    return DemoFlow(
        key=bot.key, title=bot.title, entrypoint=bot.entrypoint, bot=bot.ledger_bot, parameters=bot.demo
    )


# The first flow of the daily job: nothing else starts when the portal is not there.
HEALTHCHECK = demo_flow(registry.get("portal-healthcheck"))

# The daily job: every bot of the registry with demo parameters, in the registry's order.
DEMO_FLOWS: tuple[DemoFlow, ...] = tuple(
    demo_flow(bot) for bot in registry.bots(kind="bots") if bot.demo is not None
)

RUN_FIRST = ("goods_receipts",)
"""Flows that end before the others start: goods are receipted before invoices are matched,
so the invoices that waited for those goods are approved, not held."""


@dataclass(frozen=True)
class DemoOptions:
    """The knobs of ``procbots demo``."""

    orders: int = 200
    seed: int = 1
    chaos: str = ""
    contexts: int | None = None
    keep_server: bool = False
    sequential: bool = False


@dataclass
class FlowOutcome:
    """How one flow of the demo ended, for the summary table and ``demo-summary.json``."""

    key: str
    title: str
    entrypoint: str
    state: str = "NOT RUN"  # Prefect state name, "NOT THERE YET", "IMPORT ERROR" or "NOT RUN"
    message: str = ""
    flow_run_id: str | None = None
    ui_url: str | None = None
    duration_s: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    log: Path | None = None
    data: Any = None

    @property
    def links(self) -> dict[str, str]:
        """The run's own links (reports, folders) from its final state's data, as local paths."""
        links = self.data.get("links") if isinstance(self.data, dict) else None
        if not isinstance(links, dict):
            return {}
        return {str(name): _local_path(str(target)) for name, target in links.items()}

    def result_text(self) -> str:
        """The run's own one-line result (its state message), without the repeated title."""
        if self.state == "NOT THERE YET":
            return f"{self.entrypoint} is not in this checkout yet"
        return self.message.removeprefix(f"{self.title}: ").removeprefix(f"{self.title} ")

    @property
    def completed(self) -> bool:
        return self.state == "Completed"

    @property
    def ran(self) -> bool:
        return self.state not in ("NOT THERE YET", "NOT RUN")

    @property
    def done(self) -> int:
        return self.counts.get("done", 0)

    @property
    def business_exceptions(self) -> int:
        return self.counts.get("business_exception", 0)

    @property
    def system_errors(self) -> int:
        return sum(self.counts.get(state, 0) for state in SYSTEM_ERROR_STATES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "entrypoint": self.entrypoint,
            "state": self.state,
            "message": self.message,
            "flow_run_id": self.flow_run_id,
            "ui_url": self.ui_url,
            "duration_s": round(self.duration_s, 2) if self.duration_s is not None else None,
            "items": {
                "done": self.done,
                "business_exceptions": self.business_exceptions,
                "system_errors": self.system_errors,
            },
            "ledger_counts": self.counts,
            "log": str(self.log) if self.log else None,
            "links": self.links,
        }


def _local_path(target: str) -> str:
    """``file:///var/outbox/x.xlsx`` as ``/var/outbox/x.xlsx``; other links unchanged."""
    if target.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(target).path)
    return target


# -- the demo ----------------------------------------------------------------------------------


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the data root when inside it (shorter lines), else as given."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _describe_files(folder: Path, files: list[Path]) -> list[str]:
    """Files straight in ``folder`` by name, those in subfolders as one line per subfolder."""
    lines: list[str] = []
    nested: Counter[str] = Counter()
    for path in files:
        relative = path.relative_to(folder)
        if len(relative.parts) == 1:
            lines.append(str(relative))
        else:
            nested[relative.parts[0]] += 1
    lines += [f"{name}/ ({count} files)" for name, count in sorted(nested.items())]
    return lines


def _demo_root(base: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = base / f"demo-{stamp}"
    suffix = 1
    while root.exists():
        suffix += 1
        root = base / f"demo-{stamp}-{suffix}"
    root.mkdir(parents=True)
    return root


@dataclass
class _Running:
    flow: DemoFlow
    outcome: FlowOutcome
    process: subprocess.Popen[bytes]
    result_path: Path
    started: float
    task: TaskID
    announced: bool = False


class Demo:
    """One demo run: set up, run the flows with live progress, report. See :func:`run_demo`."""

    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.root: Path | None = None
        self.settings: Settings | None = None
        self.prefect: PrefectApi | None = None
        self.portal: Any = None
        self.ledger: Ledger | None = None
        self.env: dict[str, str] = {}
        self.outcomes: list[FlowOutcome] = []
        self.stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.started = time.monotonic()
        # Seconds per phase (demo-summary.json; benchmarks/bench_demo.py reads them).
        self.timings: dict[str, float] = {}
        self._password = ""

    # -- set up ---------------------------------------------------------------------------

    def _settings_env(self, root: Path, portal_url: str) -> dict[str, str]:
        """Settings every flow of the demo gets (and this process, for the paths it reports)."""
        env = {
            "PROCBOTS_PATHS__ROOT": str(root),
            "PROCBOTS_PORTAL__URL": portal_url,
            "PROCBOTS_PORTAL__PASSWORD": self._password,
            # Demo data in the demo root, whatever the user's ledger and audit settings say.
            "PROCBOTS_LEDGER__URL": "",
            "PROCBOTS_AUDIT__FILE": "audit.jsonl",
            # Sample data must not page a real Teams channel.
            "PROCBOTS_ALERTS__WEBHOOK_URL": "",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "procbots",
            "PYTHONUNBUFFERED": "1",
        }
        if self.options.contexts is not None:
            env["PROCBOTS_BROWSER__CONTEXTS"] = str(self.options.contexts)
        return env

    def set_up(self) -> None:
        from sandbox.chaos import ChaosError, ChaosSpec

        try:
            chaos = ChaosSpec.parse(self.options.chaos)
        except ChaosError as exc:
            raise DemoSetupError(f"--chaos: {exc}") from None

        from config.settings import get_settings

        base = get_settings().paths.root
        self.root = root = _demo_root(base.resolve())
        logs = root / "logs"
        logs.mkdir()

        # The Prefect server starts slowest: set it going first, wait for it last.
        configured = PrefectApi.configured()
        if configured is not None:
            if not api_healthy(configured.api_url):
                raise DemoSetupError(
                    f"PREFECT_API_URL={configured.api_url} does not answer /health; start that server, "
                    "or unset PREFECT_API_URL so the demo starts a local one"
                )
            self.prefect = configured
        else:
            self.prefect = PrefectApi.start_local(
                base.resolve() / "prefect-home", logs / "prefect-server.log"
            )

        from connectors.portal.browser import find_chromium

        try:
            find_chromium(get_settings().browser.executable)
        except FileNotFoundError as exc:
            raise DemoSetupError(str(exc)) from None

        from sandbox.app import DEFAULT_PASSWORD
        from sandbox.server import PASSWORD_ENV, SandboxServer

        # The documented sandbox password unless the user chose one; either way it reaches
        # the portal and the bots only through the environment, and is never printed.
        self._password = os.environ.get(PASSWORD_ENV) or DEFAULT_PASSWORD
        mark = time.monotonic()
        with self.console.status(
            f"Starting the sandbox portal ({self.options.orders} orders, seed {self.options.seed})"
        ):
            self.portal = SandboxServer(
                seed=self.options.seed,
                orders=self.options.orders,
                chaos=chaos,
                db_path=root / "sandbox" / "portal.db",
                password=self._password,
            ).start()
        self.console.print(
            f"[green]✓[/] Sandbox portal on {self.portal.url} "
            f"(seed {self.options.seed}, {self.options.orders} orders)"
        )

        # This process reads the same settings as the flows: paths, ledger, audit file.
        self.env = self._settings_env(root, self.portal.url)
        os.environ.update(self.env)
        get_settings.cache_clear()
        self.settings = settings = get_settings()
        from config.logging import register_secret

        register_secret(self._password)

        from sandbox.datafiles import write_input_files

        inbox = settings.paths.resolve("inbox")
        self.timings["sandbox_start_s"] = time.monotonic() - mark
        mark = time.monotonic()
        with self.console.status("Writing sample inputs"):
            written = write_input_files(inbox, seed=self.options.seed, orders=self.options.orders)
        self.timings["sample_inputs_s"] = time.monotonic() - mark
        self.console.print(
            f"[green]✓[/] Sample inputs in {inbox}: {written['requisitions']} new requisitions, "
            f"{written['invoices']} invoices, {written['contracts']} new contracts "
            f"(and the portal's {written['orders']} orders and their receipts)"
        )
        for name in ("outbox", "evidence", "audit", "quarantine"):
            settings.paths.resolve(name).mkdir(parents=True, exist_ok=True)

        from bots.runtime.ledger import Ledger

        # Made here, before any flow, so the schema exists when the flows and the progress
        # bars open it at once; read-only from here on (no audit hook).
        self.ledger = Ledger(settings.ledger_url, audit=False)

        assert self.prefect is not None
        if self.prefect.local:
            with self.console.status(
                f"Starting the Prefect server at {self.prefect.ui_url} (the first start takes a minute)"
            ):
                waited = self.prefect.wait_ready()
            self.timings["prefect_wait_after_sandbox_s"] = waited
            self.console.print(
                f"[green]✓[/] Prefect server at {self.prefect.ui_url} (ready after {waited:.0f} s more)"
            )
        else:
            self.console.print(f"[green]✓[/] Prefect API {self.prefect.api_url} (PREFECT_API_URL)")
        self.timings["set_up_s"] = time.monotonic() - self.started
        self.console.print(
            f"  Watch the runs in the Prefect UI: [bold link={self.prefect.ui_url}]{self.prefect.ui_url}[/]"
            f" (tag [bold]{DEMO_TAG}[/], runs named [bold]demo-{self.stamp}-*[/])"
        )

    # -- run --------------------------------------------------------------------------------

    def _launch(self, flow: DemoFlow, progress: Progress, task: TaskID) -> _Running:
        assert self.root is not None
        assert self.prefect is not None
        assert self.settings is not None
        logs = self.root / "logs"
        result_path = logs / f"{flow.key}.result.json"
        log_path = logs / f"{flow.key}.log"
        inputs = DemoInputs(inbox=self.settings.paths.resolve("inbox"), portal_url=self.portal.url)
        params = flow.parameters(inputs)
        env = {**os.environ, **self.env, **self.prefect.child_env()}
        cmd = [
            sys.executable,
            "-m",
            "flows.demo",
            "run-flow",
            flow.entrypoint,
            "--params",
            json.dumps(params),
            "--result",
            str(result_path),
            "--run-name",
            f"demo-{self.stamp}-{flow.key.replace('_', '-')}",
        ]
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        outcome = FlowOutcome(flow.key, flow.title, flow.entrypoint, state="Running", log=log_path)
        progress.start_task(task)
        progress.update(task, status="starting")
        return _Running(flow, outcome, process, result_path, time.monotonic(), task)

    def _counts(self, flow: DemoFlow) -> dict[str, int]:
        if flow.bot is None or self.ledger is None:
            return {}
        try:
            return {state: n for state, n in self.ledger.counts(flow.bot).items() if n}
        except Exception:  # a busy SQLite file: the next poll will do
            return {}

    def _poll(self, run: _Running, progress: Progress) -> bool:
        """Updates one flow's bar; returns True once its process has ended."""
        assert self.prefect is not None
        if not run.announced:
            running = run.result_path.with_name(run.result_path.name.replace(".result.", ".running."))
            if running.exists():
                with contextlib.suppress(ValueError, OSError):
                    run.outcome.flow_run_id = json.loads(running.read_text())["flow_run_id"]
                    run.outcome.ui_url = self.prefect.run_url(run.outcome.flow_run_id)
                    run.announced = True
                    progress.console.print(
                        f"  {run.flow.title}: flow run {run.outcome.ui_url or run.outcome.flow_run_id}"
                    )
        counts = self._counts(run.flow)
        total = sum(counts.values())
        finished = sum(counts.get(s, 0) for s in ("done", "business_exception", "failed", "needs_review"))
        status = (
            f"{counts.get('done', 0)} done · {counts.get('business_exception', 0)} exceptions"
            f" · {sum(counts.get(s, 0) for s in ('failed', 'needs_review'))} errors"
            if total
            else ("running" if run.announced else "starting")
        )
        progress.update(run.task, total=total or None, completed=finished, status=status)
        return run.process.poll() is not None

    def _finish(self, run: _Running, progress: Progress) -> FlowOutcome:
        assert self.prefect is not None
        outcome = run.outcome
        outcome.duration_s = time.monotonic() - run.started
        try:
            result = json.loads(run.result_path.read_text())
        except (OSError, ValueError):
            result = {
                "state": "Crashed",
                "message": f"the flow process exited with code {run.process.returncode} without a result; "
                f"see {outcome.log}",
            }
        outcome.state = str(result.get("state", "Crashed"))
        outcome.message = str(result.get("message", ""))
        outcome.data = result.get("data")
        outcome.flow_run_id = result.get("flow_run_id") or outcome.flow_run_id
        outcome.ui_url = self.prefect.run_url(outcome.flow_run_id)
        if result.get("duration_s") is not None:
            outcome.duration_s = float(result["duration_s"])
        outcome.counts = self._counts(run.flow)
        style = "green" if outcome.completed else "red"
        total = sum(outcome.counts.values())
        progress.update(
            run.task,
            total=total or 1,
            completed=total or 1,
            status=f"[{style}]{outcome.state}[/]"
            + (
                f" · {outcome.done} done · {outcome.business_exceptions} exceptions"
                f" · {outcome.system_errors} errors"
                if total
                else ""
            ),
        )
        return outcome

    def _run_group(
        self, flows: list[DemoFlow], progress: Progress, tasks: Mapping[str, TaskID]
    ) -> list[FlowOutcome]:
        """Runs ``flows`` all at once (they are independent), or one by one with ``--sequential``."""
        pending = list(flows)
        running: list[_Running] = []
        finished: list[FlowOutcome] = []
        limit = 1 if self.options.sequential else len(flows)
        try:
            while pending or running:
                while pending and len(running) < limit:
                    flow = pending.pop(0)
                    running.append(self._launch(flow, progress, tasks[flow.key]))
                for run in list(running):
                    if self._poll(run, progress):
                        finished.append(self._finish(run, progress))
                        running.remove(run)
                time.sleep(0.25)
        finally:
            for run in running:  # Ctrl-C or an error: no flow process outlives the demo
                stop_group(run.process)
        return finished

    def run_flows(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        present = [flow for flow in DEMO_FLOWS if flow.exists()]
        missing = [flow for flow in DEMO_FLOWS if not flow.exists()]
        for flow in missing:
            self.console.print(
                f"[yellow]•[/] {flow.title}: not there yet "
                f"({flow.entrypoint} is not in this checkout); skipped"
            )

        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
        )
        order = [HEALTHCHECK, *present]
        tasks = {
            flow.key: progress.add_task(flow.title, total=None, status="waiting", start=False)
            for flow in order
        }
        by_key: dict[str, FlowOutcome] = {}
        mark = time.monotonic()
        with progress:
            for outcome in self._run_group([HEALTHCHECK], progress, tasks):
                by_key[outcome.key] = outcome
            if by_key[HEALTHCHECK.key].completed:
                first = [flow for flow in present if flow.key in RUN_FIRST]
                for group in (first, [flow for flow in present if flow not in first]):
                    for outcome in self._run_group(group, progress, tasks):
                        by_key[outcome.key] = outcome
            else:
                for flow in present:
                    progress.update(
                        tasks[flow.key],
                        total=1,
                        completed=0,
                        status="[red]not started: the healthcheck failed[/]",
                    )
        self.timings["flows_s"] = time.monotonic() - mark
        self.outcomes = [by_key.get(f.key) or FlowOutcome(f.key, f.title, f.entrypoint) for f in order]
        self.outcomes += [FlowOutcome(f.key, f.title, f.entrypoint, state="NOT THERE YET") for f in missing]

    # -- report -----------------------------------------------------------------------------

    def _print_flow_table(self) -> None:
        """One row per flow: state, item counts from the ledger, duration, the run's own result."""
        from rich.table import Table

        table = Table(title="procbots demo: the daily job", title_justify="left")
        for column, justify in (
            ("Flow", "left"),
            ("State", "left"),
            ("Done", "right"),
            ("Business exceptions", "right"),
            ("System errors", "right"),
            ("Duration", "right"),
            ("Result", "left"),
        ):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for outcome in self.outcomes:
            style = "green" if outcome.completed else ("yellow" if not outcome.ran else "red")
            has_items = bool(outcome.counts)
            table.add_row(
                outcome.title,
                f"[{style}]{outcome.state}[/]",
                str(outcome.done) if has_items else "-",
                str(outcome.business_exceptions) if has_items else "-",
                str(outcome.system_errors) if has_items else "-",
                f"{outcome.duration_s:.1f} s" if outcome.duration_s is not None else "-",
                outcome.result_text(),
            )
        self.console.print()
        self.console.print(table)

    def _print_business_exceptions(self) -> Counter[tuple[str, str]]:
        """Business exceptions by bot and reason code, with example keys; returns the counts."""
        from rich.table import Table

        # Business exceptions are the sample data's planted problems: expected, listed by reason.
        reasons: Counter[tuple[str, str]] = Counter()
        examples: dict[tuple[str, str], list[str]] = {}
        if self.ledger is not None:
            for item in self.ledger.list(state="business_exception"):
                key = (item.bot, item.reason_code or "(no code)")
                reasons[key] += 1
                examples.setdefault(key, []).append(item.idempotency_key)
        business = sum(reasons.values())
        if reasons:
            self.console.print(
                f"[bold]Business exceptions: {business}[/] (planted in the sample data, so expected: "
                "the bots set these items aside for a person)"
            )
            by_reason = Table()
            by_reason.add_column("Bot")
            by_reason.add_column("Reason")
            by_reason.add_column("Items", justify="right")
            by_reason.add_column("For example")
            for (bot, code), count in sorted(reasons.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
                shown = examples[(bot, code)][:3]
                more = ", ..." if count > len(shown) else ""
                by_reason.add_row(bot, code, str(count), ", ".join(shown) + more)
            self.console.print(by_reason)

        return reasons

    def _verify_audit(self) -> tuple[bool, str]:
        """``procbots audit verify`` on the demo's audit log: (intact, the line to show)."""
        from connectors.audit import verify_audit

        assert self.settings is not None
        audit_path = self.settings.audit_path
        if not audit_path.exists():
            return True, f"{audit_path}: no audit log was written"
        hmac_key = self.settings.audit.hmac_key
        verification = verify_audit(audit_path, hmac_key=hmac_key.get_secret_value() if hmac_key else None)
        if verification.ok:
            return True, f"{audit_path}: {verification.message}"
        return False, f"{audit_path}: BROKEN at seq {verification.first_broken_seq}: {verification.message}"

    def released_by_receipts(self) -> int:
        """Invoices approved in this demo that matching would have held for want of a goods
        receipt without the receipts recorded today (the sample files' history only)."""
        from bots.domain.match_tables import match_documents
        from bots.invoices import BOT, RECEIPT_HOLDS
        from connectors.match_inputs import load_invoices, load_orders, load_receipts

        inbox = self.settings.paths.resolve("inbox") if self.settings else None
        if self.ledger is None or inbox is None or not (inbox / "orders.csv").is_file():
            return 0
        held = {
            (d.supplier_vat, d.invoice_number)
            for d in match_documents(
                load_orders(inbox / "orders.csv"),
                load_receipts(inbox / "receipts.csv"),
                load_invoices([inbox / "invoices"]),
            )
            if d.decision == "hold" and {r.code for r in d.reasons} <= RECEIPT_HOLDS
        }
        approved = {
            (r.get("supplier_vat"), r.get("invoice_number"))
            for item in self.ledger.list(state="done", bot=BOT)
            if (r := item.result or {}).get("status") == "approved"
        }
        return len(held & approved)

    def report(self) -> int:
        """Prints the summary, writes ``demo-summary.json``; returns the exit code."""
        assert self.settings is not None
        assert self.root is not None
        assert self.prefect is not None
        settings = self.settings
        self._print_flow_table()
        reasons = self._print_business_exceptions()
        business = sum(o.business_exceptions for o in self.outcomes)
        released = self.released_by_receipts()
        if released:
            self.console.print(
                f"[bold]Goods receipted today[/] released {released} invoices for payment: matching "
                "approved them instead of holding them NOT_RECEIVED"
            )

        outbox = settings.paths.resolve("outbox")
        evidence = settings.paths.resolve("evidence")
        reports = sorted(p for p in outbox.rglob("*") if p.is_file()) if outbox.exists() else []
        evidence_files = [p for p in evidence.rglob("*") if p.is_file()] if evidence.exists() else []
        audit_path = settings.audit_path
        audit_ok, audit_line = self._verify_audit()

        self.console.print()
        self.console.print(f"[bold]Data root[/]  {self.root}")
        self.console.print(
            f"[bold]Reports[/]    {outbox} ({len(reports)} files; paths below are in the data root)"
        )
        for outcome in self.outcomes:
            for name, target in outcome.links.items():
                where = _relative(Path(target), self.root) if target.startswith("/") else target
                self.console.print(f"  {outcome.title}, {name}: {where}", highlight=False)
        linked = {Path(target) for outcome in self.outcomes for target in outcome.links.values()}
        others = [p for p in reports if p not in linked and not any(p.is_relative_to(f) for f in linked)]
        for line in _describe_files(outbox, others):
            self.console.print(f"  also in the outbox: {line}", highlight=False)
        self.console.print(f"[bold]Evidence[/]   {evidence} ({len(evidence_files)} files)")
        self.console.print(f"[bold]Audit log[/]  {audit_path}")
        self.console.print(
            f"  procbots audit verify: [{'green' if audit_ok else 'red'}]{audit_line}[/]", highlight=False
        )
        self.console.print(f"[bold]Flow logs[/]  {self.root / 'logs'}")
        self.console.print(f"[bold]Prefect UI[/] {self.prefect.ui_url}  (filter by tag {DEMO_TAG})")
        for outcome in self.outcomes:
            if outcome.ui_url:
                self.console.print(f"  {outcome.title}: {outcome.ui_url}", highlight=False)
        if self.prefect.local and not self.options.keep_server:
            self.console.print(
                "  This server stops with the demo (--keep-server keeps it); the runs stay in its home:\n"
                f"  [bold]PREFECT_HOME={self.prefect.home} uv run prefect server start[/] shows them again."
            )

        self.timings["total_s"] = time.monotonic() - self.started
        ran = [o for o in self.outcomes if o.ran]
        failed = [o for o in self.outcomes if o.ran and not o.completed] + [
            o for o in self.outcomes if o.state == "NOT RUN"
        ]
        missing = [o for o in self.outcomes if o.state == "NOT THERE YET"]
        summary = {
            "root": str(self.root),
            "portal_url": self.portal.url if self.portal else None,
            "prefect": {
                "api_url": self.prefect.api_url,
                "ui_url": self.prefect.ui_url,
                "local": self.prefect.local,
            },
            "options": {
                "orders": self.options.orders,
                "seed": self.options.seed,
                "chaos": self.options.chaos,
                "contexts": self.options.contexts,
                "sequential": self.options.sequential,
            },
            "flows": [o.as_dict() for o in self.outcomes],
            "business_exceptions": business,
            "invoices_approved_after_receipt": released,
            "business_exceptions_by_reason": [
                {"bot": bot, "reason": code, "items": n} for (bot, code), n in sorted(reasons.items())
            ],
            "reports": [str(p) for p in reports],
            "outbox": str(outbox),
            "evidence": str(evidence),
            "evidence_files": len(evidence_files),
            "audit": {"path": str(audit_path), "ok": audit_ok, "result": audit_line},
            "ok": not failed and audit_ok,
            "timings": {name: round(value, 2) for name, value in self.timings.items()},
        }
        (self.root / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        self.console.print(f"[bold]Summary[/]    {self.root / SUMMARY_FILE}")
        self.console.print()

        if missing:
            self.console.print(
                f"[yellow]Not there yet:[/] {', '.join(o.title for o in missing)} "
                "(the demo runs them once their flows land)"
            )
        if failed or not audit_ok:
            problems = [f"{o.title} ended {o.state}" for o in failed] + (
                [] if audit_ok else ["the audit chain is broken"]
            )
            self.console.print(
                f"[bold red]Demo FAILED:[/] {'; '.join(problems)}. "
                f"Each flow's output is in {self.root / 'logs'}."
            )
            return 1
        self.console.print(
            f"[bold green]Demo OK:[/] {len(ran)} flow runs Completed"
            + (
                f", with {business} business exceptions for people to look at (expected in the sample data)"
                if business
                else ""
            )
            + "."
        )
        return 0

    # -- tear down --------------------------------------------------------------------------

    def wait_for_ctrl_c(self) -> None:
        assert self.prefect is not None
        what = "the Prefect server and the sandbox portal" if self.prefect.local else "the sandbox portal"
        self.console.print(
            f"Keeping {what} running: Prefect UI {self.prefect.ui_url}, portal {self.portal.url} "
            "(sign in as buyer1 with the sandbox password, see docs/sandbox.md). Press Ctrl-C to stop."
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                if self.prefect.process is not None and self.prefect.process.poll() is not None:
                    self.console.print("The Prefect server stopped.")
                    return
                time.sleep(1)

    def tear_down(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None
        if self.portal is not None:
            self.portal.stop()
        if self.prefect is not None:
            self.prefect.stop()


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Runs the demo and returns its exit code (0 all Completed, 1 a flow did not, 2 set-up failed)."""
    from rich.console import Console

    console = console or Console()
    demo = Demo(options, console)
    started = time.monotonic()
    try:
        try:
            demo.set_up()
        except DemoSetupError as exc:
            console.print(f"[bold red]procbots demo: cannot start:[/] {exc}", highlight=False)
            return 2
        except Exception as exc:
            from sandbox.server import SandboxError

            if isinstance(exc, SandboxError):
                console.print(
                    f"[bold red]procbots demo: the sandbox portal did not start:[/] {exc}", highlight=False
                )
                return 2
            raise
        demo.run_flows()
        code = demo.report()
        console.print(f"Wall time {time.monotonic() - started:.0f} s.")
        if options.keep_server:
            demo.wait_for_ctrl_c()
        return code
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted: stopping the flows, the portal and the Prefect server.[/]")
        return 130
    finally:
        demo.tear_down()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.demo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    child = sub.add_parser("run-flow", help="run one flow as a Prefect flow run (the demo's child process)")
    child.add_argument("entrypoint")
    child.add_argument("--params", required=True, help="the flow's params as JSON")
    child.add_argument("--result", required=True, type=Path)
    child.add_argument("--run-name", required=True)
    args = parser.parse_args(argv)
    return run_flow_child(args.entrypoint, json.loads(args.params), args.result, args.run_name)


if __name__ == "__main__":
    sys.exit(_main())
