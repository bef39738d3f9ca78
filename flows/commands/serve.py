"""`procbots serve`: run the deployments of ``prefect.yaml``, on one box or through workers.

``prefect.yaml`` is generated from the bot registry (:mod:`bots.registry`):
``procbots serve --write-prefect-yaml`` writes it (:func:`render_prefect_yaml`),
and a test fails when the file in the checkout differs from what the registry
gives. This module reads its deployments and either

- serves them from this process (``procbots serve``: Prefect's ``serve()``, no
  work pool or worker needed: a single machine),
- registers them with the ``procbots`` work pool (``procbots serve --deploy``:
  ``prefect deploy`` of every deployment whose flow exists; workers on any
  number of machines pick the runs up), or
- creates the work pool and the global browser-session limit
  (``procbots serve --setup``).

A deployment whose entrypoint does not exist yet (a flow still being written) is
skipped with a printed reason, so the set grows as flows land.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

__all__ = [
    "CHECKOUT_ENV",
    "PREFECT_YAML",
    "PROJECT_ROOT",
    "WORK_POOL",
    "DeploymentSpec",
    "ScheduleSpec",
    "deploy_to_work_pool",
    "ensure_operations_setup",
    "entrypoint_problem",
    "load_deployment_specs",
    "registry_specs",
    "render_prefect_yaml",
    "runner_deployments",
    "serve",
    "split_available",
    "with_docs_table",
    "write_registry_files",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
WORK_POOL = "procbots"
# Environment variable naming this machine's checkout, read by prefect.yaml's pull step.
CHECKOUT_ENV = "PROCBOTS_CHECKOUT"


@dataclass(frozen=True)
class ScheduleSpec:
    """One cron schedule of a deployment."""

    cron: str
    timezone: str
    active: bool = True


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment as written in ``prefect.yaml``."""

    name: str
    entrypoint: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    concurrency_limit: int | None = None
    collision_strategy: str | None = None
    work_pool: str | None = None
    job_variables: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.entrypoint.rsplit(":", 1)[0]

    @property
    def function(self) -> str:
        return self.entrypoint.rsplit(":", 1)[1]


class ProjectFileError(ValueError):
    """prefect.yaml is missing or malformed (message names the file and deployment)."""


def load_deployment_specs(prefect_yaml: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """The deployments of a ``prefect.yaml``, validated enough to serve or deploy them."""
    import yaml

    if not prefect_yaml.is_file():
        raise ProjectFileError(f"{prefect_yaml}: no such file")
    data = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8")) or {}
    specs = []
    for index, raw in enumerate(data.get("deployments") or []):
        where = f"{prefect_yaml}: deployments[{index}]"
        name = raw.get("name")
        entrypoint = raw.get("entrypoint")
        if not name or not entrypoint or ":" not in entrypoint:
            raise ProjectFileError(f"{where}: needs a name and an entrypoint 'path.py:function'")
        limit = raw.get("concurrency_limit")
        strategy = None
        if isinstance(limit, dict):
            strategy = limit.get("collision_strategy")
            limit = limit.get("limit")
        schedules = []
        for schedule in raw.get("schedules") or []:
            if "cron" not in schedule:
                raise ProjectFileError(f"{where} ({name}): only cron schedules are supported")
            schedules.append(
                ScheduleSpec(
                    cron=str(schedule["cron"]),
                    timezone=str(schedule.get("timezone", "Europe/London")),
                    active=bool(schedule.get("active", True)),
                )
            )
        pool = raw.get("work_pool") or {}
        specs.append(
            DeploymentSpec(
                name=str(name),
                entrypoint=str(entrypoint),
                description=raw.get("description"),
                parameters=dict(raw.get("parameters") or {}),
                tags=[str(t) for t in raw.get("tags") or []],
                schedules=schedules,
                concurrency_limit=int(limit) if limit is not None else None,
                collision_strategy=strategy,
                work_pool=pool.get("name"),
                job_variables=dict(pool.get("job_variables") or {}),
            )
        )
    return specs


def entrypoint_problem(spec: DeploymentSpec, root: Path = PROJECT_ROOT, *, load: bool = True) -> str | None:
    """Why a deployment cannot run yet (missing file, missing or broken flow), or ``None``."""
    path = root / spec.path
    if not path.is_file():
        return f"{spec.path} does not exist yet"
    from bots import registry

    made = {bot.flow_function for bot in registry.bots(kind="bots")}  # flows/bot_flows.py's factory
    if f"def {spec.function}" not in path.read_text(encoding="utf-8") and spec.function not in made:
        return f"{spec.path} has no function {spec.function}"
    if load:
        try:
            _load_flow(spec, root)
        except Exception as exc:
            return f"{spec.entrypoint} does not load: {type(exc).__name__}: {exc}"
    return None


def _load_flow(spec: DeploymentSpec, root: Path) -> Any:
    from prefect.flows import Flow, load_flow_from_entrypoint

    flow: Any = load_flow_from_entrypoint(f"{root / spec.path}:{spec.function}")
    if not isinstance(flow, Flow):
        raise TypeError(f"{spec.function} is not a Prefect flow")
    return flow


def split_available(
    specs: list[DeploymentSpec], root: Path = PROJECT_ROOT, *, load: bool = True
) -> tuple[list[DeploymentSpec], list[tuple[DeploymentSpec, str]]]:
    """The deployments that can run now, and the others with the reason."""
    ready: list[DeploymentSpec] = []
    skipped: list[tuple[DeploymentSpec, str]] = []
    for spec in specs:
        problem = entrypoint_problem(spec, root, load=load)
        if problem is None:
            ready.append(spec)
        else:
            skipped.append((spec, problem))
    return ready, skipped


def runner_deployments(specs: list[DeploymentSpec], root: Path = PROJECT_ROOT) -> list[RunnerDeployment]:
    """``flow.to_deployment(...)`` for each spec, with its schedules, parameters, tags and limit."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    deployments = []
    for spec in specs:
        flow = _load_flow(spec, root)
        limit: int | ConcurrencyLimitConfig | None = spec.concurrency_limit
        if spec.concurrency_limit is not None and spec.collision_strategy:
            limit = ConcurrencyLimitConfig(
                limit=spec.concurrency_limit,
                collision_strategy=ConcurrencyLimitStrategy(spec.collision_strategy),
            )
        deployments.append(
            flow.to_deployment(
                spec.name,
                schedules=[Cron(s.cron, timezone=s.timezone, active=s.active) for s in spec.schedules],
                parameters=spec.parameters,
                tags=spec.tags,
                description=spec.description,
                concurrency_limit=limit,
            )
        )
    return deployments


def ensure_operations_setup(pool: str = WORK_POOL, browser_sessions: int | None = None) -> list[str]:
    """Creates the process work pool and the ``portal-browser-sessions`` limit if missing.

    Returns one line per thing done, for the operator. Uses ``PREFECT_API_URL``.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
        WorkPoolCreate,
    )
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    from config.settings import get_settings
    from flows.common import PORTAL_BROWSER_SESSIONS

    slots = browser_sessions if browser_sessions is not None else get_settings().portal.max_sessions
    done: list[str] = []
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
            done.append(f"work pool {pool}: exists")
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="procbots bots and operations flows",
                )
            )
            done.append(f"work pool {pool}: created (process)")
        try:
            existing = client.read_global_concurrency_limit_by_name(PORTAL_BROWSER_SESSIONS)
            if existing.limit != slots:
                client.update_global_concurrency_limit(
                    PORTAL_BROWSER_SESSIONS, GlobalConcurrencyLimitUpdate(limit=slots)
                )
                done.append(f"concurrency limit {PORTAL_BROWSER_SESSIONS}: {existing.limit} -> {slots} slots")
            else:
                done.append(f"concurrency limit {PORTAL_BROWSER_SESSIONS}: exists ({slots} slots)")
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=PORTAL_BROWSER_SESSIONS, limit=slots)
            )
            done.append(f"concurrency limit {PORTAL_BROWSER_SESSIONS}: created ({slots} slots)")
    return done


def deploy_to_work_pool(
    prefect_yaml: Path = PREFECT_YAML,
    root: Path | None = None,
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 300,
) -> tuple[list[str], list[tuple[str, str]]]:
    """``prefect deploy`` of every deployment whose entrypoint exists; returns (deployed, skipped).

    Runs in ``root`` (the checkout, default: the folder of ``prefect_yaml``).
    Raises ``RuntimeError`` with Prefect's output when the deploy fails.
    """
    root = root or prefect_yaml.parent
    ready, skipped = split_available(load_deployment_specs(prefect_yaml), root, load=False)
    if not ready:
        return [], [(spec.name, reason) for spec, reason in skipped]
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file", str(prefect_yaml)]
    for spec in ready:
        command += ["--name", spec.name]
    deploy_env = {**os.environ, **(env or {})}
    # Prefect resolves `{{ $VAR }}` at deploy time when VAR is set; unset, the pull
    # step keeps the placeholder and each worker resolves it to its own checkout.
    deploy_env.pop(CHECKOUT_ENV, None)
    result = subprocess.run(
        command,
        cwd=root,
        env=deploy_env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"prefect deploy failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return [spec.name for spec in ready], [(spec.name, reason) for spec, reason in skipped]


_YAML_HEADER = """\
# procbots deployments, generated from the bot registry (bots/registry.py) by
#   procbots serve --write-prefect-yaml
# Do not edit by hand: change the registry entry and regenerate (a test compares them).
#
#   Worker route (one or more machines):  procbots serve --setup      # work pool + global limit, once
#                                         procbots serve --deploy     # register the deployments below
#                                         PROCBOTS_CHECKOUT=$PWD prefect worker start --pool procbots
#   One box, no worker:                   procbots serve              # serves the same deployments
#
# Schedules are cron in Europe/London: 07:00 means 07:00 on the office clock in
# both GMT (winter) and BST (summer). Parameters are each flow's pydantic model
# `params`; its defaults apply unless set here. See docs/operations.md.
name: procbots
prefect-version: {prefect_version}

build: null
push: null

# Workers run flows from their own checkout of this repository: each machine sets
# PROCBOTS_CHECKOUT to the checkout's path (resolved on the worker, at run time).
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{{{ $PROCBOTS_CHECKOUT }}}}"

definitions:
  work_pools:
    procbots: &procbots_pool
      name: procbots
      work_queue_name: default
      job_variables:
        env:
          # procbots' log lines go to the Prefect run logs.
          PREFECT_LOGGING_EXTRA_LOGGERS: procbots

deployments:
"""


def registry_specs() -> list[DeploymentSpec]:
    """The deployments the registry gives, in its order (what ``prefect.yaml`` must hold)."""
    from bots import registry

    return [
        DeploymentSpec(
            name=bot.name,
            entrypoint=bot.entrypoint,
            description=bot.description,
            parameters=dict(bot.deployment_parameters),
            tags=list(bot.tags),
            schedules=[ScheduleSpec(bot.schedule, registry.TIMEZONE)] if bot.schedule else [],
            concurrency_limit=bot.concurrency,
            collision_strategy=bot.collision,
            work_pool=WORK_POOL,
            job_variables={"env": {"PREFECT_LOGGING_EXTRA_LOGGERS": "procbots"}},
        )
        for bot in registry.bots()
    ]


DOCS_TABLES = {"README.md": "readme", "docs/operations.md": "deployments"}
"""The files holding a table generated from the registry, and which table."""
_TABLE_START = (
    "<!-- registry:{kind} (generated from bots/registry.py by procbots serve --write-prefect-yaml) -->"
)
_TABLE_END = "<!-- registry:{kind}:end -->"


def with_docs_table(text: str, kind: str) -> str:
    """``text`` with the block between its ``registry:<kind>`` markers replaced by the registry's table.

    Raises:
        ProjectFileError: the markers are missing.
    """
    from bots import registry

    start, end = _TABLE_START.format(kind=kind), _TABLE_END.format(kind=kind)
    if start not in text or end not in text:
        raise ProjectFileError(f"no {start} ... {end} block to write the {kind} table into")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{registry.docs_table(kind)}{end}{tail}"  # type: ignore[arg-type]


def write_registry_files(prefect_yaml: Path = PREFECT_YAML) -> list[Path]:
    """Writes what follows from the registry: ``prefect.yaml`` and the tables of the docs
    beside it (``README.md``, ``docs/operations.md``, when that folder has them)."""
    written = [prefect_yaml]
    prefect_yaml.write_text(render_prefect_yaml(), encoding="utf-8")
    for name, kind in DOCS_TABLES.items():
        path = prefect_yaml.parent / name
        if not path.is_file():
            continue
        path.write_text(with_docs_table(path.read_text(encoding="utf-8"), kind), encoding="utf-8")
        written.append(path)
    return written


def render_prefect_yaml() -> str:
    """The text of ``prefect.yaml`` for the registry (``procbots serve --write-prefect-yaml``)."""
    import json

    import prefect

    out = [_YAML_HEADER.format(prefect_version=prefect.__version__)]
    for spec in registry_specs():
        out.append(f"  - name: {spec.name}\n")
        out.append(f"    description: {json.dumps(spec.description)}\n")
        out.append(f"    entrypoint: {spec.entrypoint}\n")
        out.append(f"    parameters: {json.dumps(spec.parameters)}\n")
        out.append(f"    tags: [{', '.join(spec.tags)}]\n")
        if spec.schedules:
            out.append("    schedules:\n")
            for schedule in spec.schedules:
                out.append(f'      - cron: "{schedule.cron}"\n')
                out.append(f"        timezone: {schedule.timezone}\n")
                out.append(f"        active: {str(schedule.active).lower()}\n")
        else:
            out.append("    schedules: []\n")
        out.append("    concurrency_limit:\n")
        out.append(f"      limit: {spec.concurrency_limit}\n")
        out.append(f"      collision_strategy: {spec.collision_strategy}\n")
        out.append("    work_pool: *procbots_pool\n\n")
    return "".join(out).rstrip("\n") + "\n"


def serve(
    prefect_file: Annotated[
        Path, typer.Option("--prefect-file", help="The prefect.yaml to read", dir_okay=False)
    ] = PREFECT_YAML,
    list_only: Annotated[
        bool, typer.Option("--list", help="Print the deployments that would be served, then exit")
    ] = False,
    setup: Annotated[
        bool,
        typer.Option(
            "--setup", help="Create the procbots work pool and the browser-session limit, then exit"
        ),
    ] = False,
    deploy: Annotated[
        bool,
        typer.Option("--deploy", help="Register the deployments with the procbots work pool, then exit"),
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Most flow runs at once in this process")
    ] = None,
    console: Annotated[
        bool,
        typer.Option("--console", help="Also serve the work-queue console (console.host, console.port)"),
    ] = False,
    write_prefect_yaml: Annotated[
        bool,
        typer.Option(
            "--write-prefect-yaml",
            help="Write --prefect-file and the docs' bot tables from the bot registry, then exit",
        ),
    ] = False,
) -> None:
    """Serve every deployment of prefect.yaml from this machine (Prefect serve())."""
    if write_prefect_yaml:
        written = write_registry_files(prefect_file)
        typer.echo(f"wrote {prefect_file}: {', '.join(spec.name for spec in registry_specs())}")
        for path in written[1:]:
            typer.echo(f"wrote the bot table of {path}")
        return
    try:
        specs = load_deployment_specs(prefect_file)
    except ProjectFileError as exc:
        typer.echo(f"procbots serve: {exc}", err=True)
        raise typer.Exit(2) from None
    root = prefect_file.resolve().parent
    if setup:
        for line in ensure_operations_setup():
            typer.echo(line)
        return
    if deploy:
        deployed, skipped = deploy_to_work_pool(prefect_file.resolve(), root)
        for name in deployed:
            typer.echo(f"deployed {name} -> work pool {WORK_POOL}")
        for name, reason in skipped:
            typer.echo(f"skipped {name}: {reason}")
        return
    ready, not_ready = split_available(specs, root)
    for spec, reason in not_ready:
        typer.echo(f"skipped {spec.name}: {reason}")
    for spec in ready:
        when = "; ".join(f"{s.cron} ({s.timezone})" for s in spec.schedules) or "no schedule"
        typer.echo(f"{'would serve' if list_only else 'serving'} {spec.name}: {spec.entrypoint}, {when}")
    if list_only:
        return
    if not ready:
        typer.echo("procbots serve: no deployment has an existing flow", err=True)
        raise typer.Exit(2)
    from prefect import serve as prefect_serve

    if console:
        from config.settings import get_settings
        from flows.console.server import ConsoleServer, setup_problem

        problem = setup_problem(get_settings())
        if problem:
            typer.echo(f"procbots serve --console: {problem}", err=True)
            raise typer.Exit(2)
        typer.echo(f"console on {ConsoleServer(get_settings()).start().url}")
    # Runs start in subprocesses that resolve entrypoints relative to the checkout.
    os.chdir(root)
    prefect_serve(*runner_deployments(ready, root), limit=limit)
