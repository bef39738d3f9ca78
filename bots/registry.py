"""The bot registry: the one list of bots, from which everything outside a bot follows.

One :class:`Bot` entry per bot (and per operations flow such as the healthcheck)
gives its name, what it does, its typed parameters, how to run it, its schedule,
tags, concurrency and docs page. From this list come:

- ``procbots run <bot>`` and its typed options (:mod:`flows.commands.run`),
- the Prefect flows and their parameter forms, one factory (:mod:`flows.bot_flows`),
- the deployments in ``prefect.yaml`` (``procbots serve --write-prefect-yaml``; a
  test fails when the file disagrees with this list),
- the demo's flows (:mod:`flows.demo`), and
- the bot tables of ``README.md`` and ``docs/operations.md`` (checked by a test).

Adding a bot is: its module in ``bots/``, its page objects, **one entry** in
:data:`BOTS`, its tests. Nothing in ``flows/`` changes.

A bot's run callable is ``run(params, context) -> outcome`` where ``params`` is
an instance of the entry's parameter model (a :class:`BotParameters`),
``context`` a :class:`RunContext`, and ``outcome`` anything with the small
:class:`RunOutcome` protocol: ``counts``, ``exit_code``, ``reports`` and
``exceptions`` (:class:`BotRun` is a ready-made one). The callable is named by
``"module:function"`` and imported only when the bot runs, so listing the
registry (``procbots --help``, the CLI's options) never imports a browser.

Example:
    >>> [bot.name for bot in bots()]  # doctest: +SKIP
    ['purchase-orders', 'invoice-matching', 'contract-uploads', 'portal-healthcheck']
    >>> get("purchase-orders").schedule
    '0 7 * * 1-5'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

__all__ = [
    "BOTS",
    "TIMEZONE",
    "Bot",
    "BotInputError",
    "BotParameters",
    "BotRun",
    "Cli",
    "DemoInputs",
    "InputPath",
    "RunContext",
    "RunOutcome",
    "bots",
    "cli_flag",
    "docs_table",
    "flow_run_suffix",
    "get",
    "input_fields",
    "load",
    "new_run_id",
    "resolve_input",
    "resolve_inputs",
    "row_dict",
]

TIMEZONE = "Europe/London"
"""Every schedule is cron on the office clock (GMT in winter, BST in summer)."""


# -- parameters -----------------------------------------------------------------------------------


class BotParameters(BaseModel):
    """Base of every bot's parameter model: unknown fields are an error, not ignored.

    Every field has a plain default (``""`` or ``0`` meaning "use the setting", never
    ``None``: the Prefect form then shows a plain field, not a ``None`` toggle) and
    a ``Field(description=...)`` written for the person filling in the form.
    Annotate a field with :class:`Cli` to give its command-line flag, with
    :class:`InputPath` when it names an input file or folder.
    """

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Cli:
    """Command-line spelling of a parameter field: ``Annotated[str, Cli("--portal")]``.

    ``rest=True`` on a list field also takes the command's extra arguments, so
    ``--invoices a.xml b.xml`` works.
    """

    flag: str
    rest: bool = False


@dataclass(frozen=True)
class InputPath:
    """Marks a parameter field as an input path (``file``, ``folder`` or ``any``).

    Relative paths are read from the data root (``paths.root``) in a flow run and
    from the working directory on the command line; a path that is not there is
    refused before the run starts, with the full path in the message.
    """

    kind: Literal["file", "folder", "any"] = "any"
    must_exist: bool = True


class BotInputError(ValueError):
    """A bot's input cannot be used (missing file, unreadable sheet): one clear line, exit 2."""


def resolve_input(
    value: str, root: Path, kind: Literal["file", "folder", "any"] = "any", *, must_exist: bool = True
) -> Path:
    """``value`` as a path (relative ones under ``root``) that exists as ``kind`` (when ``must_exist``).

    Raises:
        BotInputError: naming the full path it looked at.

    Example:
        >>> resolve_input("inbox/requisitions.xlsx", Path("/data"))  # doctest: +SKIP
        PosixPath('/data/inbox/requisitions.xlsx')
    """
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = root / path
    if not must_exist:
        return path
    if kind == "file" and not path.is_file():
        raise BotInputError(f"{path}: no such file")
    if kind == "folder" and not path.is_dir():
        raise BotInputError(f"{path}: no such folder")
    if kind == "any" and not path.exists():
        raise BotInputError(f"{path}: no such file or folder")
    return path


_P = TypeVar("_P", bound=BotParameters)


# -- runs -----------------------------------------------------------------------------------------


def new_run_id(flow_run_id: object | None = None) -> str:
    """The one run-id format (:func:`bots.runtime.ids.new_run_id`): ``20260123T101500Z-1a2b3c4d``.

    Inside a Prefect flow run the suffix is the start of the flow run id (8 hex digits),
    so the run id in logs, evidence folders and reports leads to the run in the UI.
    """
    from bots.runtime.ids import new_run_id as runtime_run_id

    return runtime_run_id(suffix=flow_run_suffix(flow_run_id) if flow_run_id else None)


def flow_run_suffix(flow_run_id: object) -> str:
    """The suffix every run id of a Prefect flow run ends with: its id's first 8 hex digits."""
    return str(flow_run_id).replace("-", "")[:8]


@dataclass(frozen=True)
class RunContext:
    """What a run callable gets besides its parameters."""

    run_id: str
    flow_run_id: str | None = None
    data_root: Path | None = None


@runtime_checkable
class RunOutcome(Protocol):
    """What the flow factory and the CLI read from a bot's run: nothing more.

    ``counts`` maps an outcome to a number of items (``business_exception`` and
    ``failed`` are read for the final state), ``exit_code`` is the CLI's (0, 1),
    ``reports`` names files and folders a person opens, ``exceptions`` are the rows
    of the items people must act on (mappings or pydantic models, see :func:`row_dict`).
    """

    @property
    def counts(self) -> Mapping[str, int]: ...

    @property
    def exit_code(self) -> int: ...

    @property
    def reports(self) -> Mapping[str, Path | str]: ...

    @property
    def exceptions(self) -> Sequence[Any]: ...


@dataclass
class BotRun:
    """A ready-made :class:`RunOutcome` with what the CLI and the run page show.

    ``rows`` is the run's table (every item, or only the exceptions); ``lines`` the
    CLI's text; ``data`` the CLI's ``--json`` output; ``stopped`` the reason code when the
    run stopped early (the flow run then ends Failed with it);
    ``tables`` more table artifacts by key (``table_titles`` their titles); ``table_name``
    the key of ``rows``.
    """

    title: str
    counts: dict[str, int]
    exit_code: int = 0
    reports: dict[str, Path | str] = field(default_factory=dict)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] | None = None
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    table_titles: dict[str, str] = field(default_factory=dict)
    table_name: str = "items"
    note: str = ""
    stopped: str = ""
    """Why the run stopped early (``PORTAL_UNAVAILABLE``, ``LOGIN_REJECTED``), else empty."""
    stopped_message: str = ""

    def message(self) -> str:
        """One line: ``"Purchase orders: 12 done, 3 business_exception"`` (+ the note)."""
        parts = [f"{count} {name}" for name, count in self.counts.items() if count]
        text = f"{self.title}: " + (", ".join(parts) if parts else "nothing to do")
        return f"{text}; {self.note}" if self.note else text


def row_dict(row: Any) -> dict[str, Any]:
    """An exception row as a dict, whether the bot gave a mapping or a pydantic model."""
    if isinstance(row, BaseModel):
        return row.model_dump(mode="json")
    return dict(row)


# -- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoInputs:
    """Where a demo's inputs are and which portal the flows drive (``procbots demo``)."""

    inbox: Path
    portal_url: str


@dataclass(frozen=True)
class Bot:
    """One registry entry. See the module docstring for what follows from it.

    Attributes:
        name: the command, flow and deployment name (``purchase-orders``).
        title: how people call it (``Purchase orders``).
        description: one sentence: what it does (CLI help, flow, deployment, docs table).
        parameters: its :class:`BotParameters` model, or ``"module:Class"``.
        run: ``"module:function"``: ``run(params, context) -> RunOutcome``.
        schedule: cron on the office clock (:data:`TIMEZONE`); ``None``: on demand only.
        tags: Prefect tags of its deployment.
        concurrency: runs of it at once (deployment concurrency limit).
        collision: what a run due while one is busy does: wait (``ENQUEUE``) or is
            dropped (``CANCEL_NEW``).
        docs: its page, relative to the repository root.
        ledger_bot: the ``bot`` of its work items in the ledger (live progress).
        browser_contexts: the parameter field giving its browser contexts (``""``:
            no browser); the flow holds that many portal session slots.
        demo: its parameters in ``procbots demo``; ``None`` keeps it out of the demo.
        flow: an own flow ``"flows/x.py:function"`` instead of the factory's
            (operations flows); its parameters are that flow's.
        deployment_parameters: parameters set on its deployment in ``prefect.yaml``.
        details: what it does, for the README's table (default: ``description``).
        when: its schedule in words (``weekdays 07:00``), for the docs' tables.
    """

    name: str
    title: str
    description: str
    parameters: type[BotParameters] | str | None
    run: str
    schedule: str | None = None
    tags: tuple[str, ...] = ()
    concurrency: int = 1
    collision: Literal["ENQUEUE", "CANCEL_NEW"] = "ENQUEUE"
    docs: str = "docs/adding-a-bot.md"
    ledger_bot: str | None = None
    browser_contexts: str = ""
    demo: Callable[[DemoInputs], dict[str, Any]] | None = None
    flow: str | None = None
    deployment_parameters: Mapping[str, Any] = field(default_factory=dict)
    details: str = ""
    when: str = ""

    @property
    def key(self) -> str:
        """``purchase_orders``: the name as a Python identifier."""
        return self.name.replace("-", "_")

    @property
    def flow_function(self) -> str:
        """The flow object's name in its module (``purchase_orders_flow``)."""
        return self.flow.split(":", 1)[1] if self.flow else f"{self.key}_flow"

    @property
    def entrypoint(self) -> str:
        """The ``prefect.yaml`` entrypoint: the factory's module unless it has its own flow."""
        return self.flow or f"flows/bot_flows.py:{self.flow_function}"

    def parameter_model(self) -> type[BotParameters] | None:
        """The parameter model (imported now when named by a string)."""
        if self.parameters is None or isinstance(self.parameters, type):
            return self.parameters
        model = load(self.parameters)
        if not (isinstance(model, type) and issubclass(model, BotParameters)):
            raise TypeError(f"{self.name}: {self.parameters} is not a BotParameters model")
        return model

    def run_callable(self) -> Callable[[Any, RunContext], RunOutcome]:
        """The run callable (imported now)."""
        function = load(self.run)
        if not callable(function):
            raise TypeError(f"{self.name}: {self.run} is not callable")
        return function  # type: ignore[no-any-return]


def load(reference: str) -> Any:
    """The object named ``"package.module:attribute"``."""
    module, _, attribute = reference.partition(":")
    if not module or not attribute:
        raise ValueError(f"{reference!r}: expected 'package.module:attribute'")
    return getattr(importlib.import_module(module), attribute)


# The daily job, in the order of its schedules: 07:00 purchase orders, goods receipts every
# 30 minutes before invoice matching through the day (so held invoices are released),
# contract uploads every 15 minutes; the healthcheck first.
BOTS: tuple[Bot, ...] = (
    Bot(
        name="portal-healthcheck",
        title="Portal healthcheck",
        description="Checks the portal /healthz, the work-item ledger and the audit folder.",
        parameters=None,
        run="",  # its own flow does the work
        flow="flows/healthcheck.py:portal_healthcheck_flow",
        schedule="*/5 * * * *",
        tags=("procbots", "operations", "healthcheck"),
        collision="CANCEL_NEW",
        docs="docs/operations.md",
        when="every 5 minutes",
        details="checks the portal, the ledger and the audit folder; nothing else starts in the demo "
        "when the portal is not there",
        demo=lambda inputs: {"portal_url": inputs.portal_url},
        deployment_parameters={"params": {"timeout_s": 5.0, "check_ledger": True, "check_audit": True}},
    ),
    Bot(
        name="purchase-orders",
        title="Purchase orders",
        description="Raises purchase orders in the portal from approved requisitions, exactly once each, "
        "and writes a results workbook (and PEPPOL BIS Order 3 XML).",
        parameters="bots.bot_parameters:PurchaseOrdersParameters",
        run="bots.bot_runs:run_purchase_orders_bot",
        schedule="0 7 * * 1-5",
        tags=("procbots", "bot", "purchase-orders", "portal"),
        docs="docs/adding-a-bot.md",
        when="weekdays 07:00",
        details="requisition spreadsheet (or drop folder) in; each requisition validated (supplier, VAT "
        "number, GTINs, quantities, prices, VAT rates, ODS site, need-by date) and raised in the portal "
        "exactly once; results workbook and PEPPOL BIS Order 3 XML out",
        ledger_bot="purchase_orders",
        browser_contexts="contexts",
        demo=lambda inputs: {
            "input": str(inputs.inbox / "requisitions.xlsx"),
            "portal_url": inputs.portal_url,
            "peppol": True,  # a PEPPOL BIS Order 3 XML per PO raised, in the outbox
        },
    ),
    Bot(
        name="goods-receipts",
        title="Goods receipts",
        description="Records goods receipts in the portal from PEPPOL despatch advices and point-of-use "
        "scans, exactly once each, so invoices held for receipt can be approved.",
        parameters="bots.bot_parameters:GoodsReceiptsParameters",
        run="bots.bot_runs:run_goods_receipts_bot",
        schedule="*/30 * * * 1-5",
        tags=("procbots", "bot", "goods-receipts", "portal"),
        docs="docs/goods-receipts.md",
        when="every 30 minutes on weekdays",
        details="PEPPOL despatch advices and point-of-use scan exports (CSV/XLSX) from a folder become "
        "goods receipts in the portal, each exactly once (unknown POs or lines, over-receipts, GTIN "
        "mismatches, future dates and resent despatch advices set aside with reasons); the next "
        "invoice-matching run approves the invoices that waited for them",
        ledger_bot="goods_receipts",
        browser_contexts="workers",
        demo=lambda inputs: {"folder": str(inputs.inbox / "goods-receipts"), "portal_url": inputs.portal_url},
    ),
    Bot(
        name="invoice-matching",
        title="Invoice matching",
        description="Matches supplier invoices and credit notes to orders and goods receipts (2/3-way) "
        "and approves, holds or rejects each in the portal, exactly once (or matches files offline).",
        parameters="bots.bot_parameters:InvoiceMatchingParameters",
        run="bots.bot_runs:run_invoice_matching_bot",
        schedule="0 8-18 * * 1-5",
        tags=("procbots", "bot", "invoice-matching"),
        docs="docs/matching.md",
        when="hourly 08:00-18:00 on weekdays",
        details="2/3-way matching of supplier invoices and credit notes (PEPPOL UBL or CSV/XLSX) against "
        "orders and goods receipts; Approve / Hold / Reject in the portal's invoice inbox, each exactly "
        "once; a report a payables clerk can work from; `procbots match`, the flow and the bot decide "
        "through a bulk engine with the reference engine's exact decisions",
        ledger_bot="invoice_matching",
        browser_contexts="workers",
        demo=lambda inputs: {"portal_url": inputs.portal_url},
    ),
    Bot(
        name="contract-uploads",
        title="Contract uploads",
        description="Uploads signed contracts from the drop folder to the portal's contract register, "
        "exactly once each, verified by SHA-256; quarantines the rest with reasons.",
        parameters="bots.bot_parameters:ContractUploadsParameters",
        run="bots.bot_runs:run_contract_uploads_bot",
        schedule="*/15 * * * *",
        tags=("procbots", "bot", "contract-uploads", "portal"),
        # A run still busy after 15 minutes: skip the next one rather than pile them up.
        collision="CANCEL_NEW",
        docs="docs/contracts.md",
        when="every 15 minutes",
        details="signed contract PDFs plus metadata from a drop folder, checked (Procurement Act 2023 "
        "contract details, real unencrypted PDF) and uploaded to the contract register once, then "
        "verified by SHA-256",
        ledger_bot="contract_uploads",
        browser_contexts="workers",
        demo=lambda inputs: {
            "folder": str(inputs.inbox / "contracts"),
            "portal_url": inputs.portal_url,
            # The demo wrote these files before starting the flow: no copy can be in progress.
            "stable_for_s": 0,
        },
    ),
)


def bots(*, kind: Literal["all", "bots", "operations"] = "all") -> tuple[Bot, ...]:
    """The registry in its order; ``bots``: only those the flow factory makes (no own flow)."""
    if kind == "bots":
        return tuple(bot for bot in BOTS if bot.flow is None)
    if kind == "operations":
        return tuple(bot for bot in BOTS if bot.flow is not None)
    return BOTS


def docs_table(kind: Literal["readme", "deployments"]) -> str:
    """A markdown table of the registry: the README's bots, or operations' deployments.

    Written into ``README.md`` and ``docs/operations.md`` between their
    ``<!-- registry:... -->`` markers by ``procbots serve --write-prefect-yaml``.
    """
    overlap = {"ENQUEUE": "queue", "CANCEL_NEW": "skip the new run"}
    if kind == "readme":
        lines = ["| bot / flow | what it does | when (Europe/London) | docs |", "|---|---|---|---|"]
        for bot in BOTS:
            page = bot.docs.rsplit("/", 1)[-1].removesuffix(".md")
            when = bot.when or bot.schedule or "on demand"
            lines.append(
                f"| `{bot.name}` | {bot.details or bot.description} | {when} | [{page}]({bot.docs}) |"
            )
    else:
        lines = [
            "| Deployment | Flow (entrypoint) | Schedule (Europe/London) | On overlap |",
            "|---|---|---|---|",
        ]
        for bot in BOTS:
            when = f"{bot.when} (`{bot.schedule}`)" if bot.schedule else "on demand"
            lines.append(f"| `{bot.name}` | `{bot.entrypoint}` | {when} | {overlap[bot.collision]} |")
    return "\n".join(lines) + "\n"


def get(name: str) -> Bot:
    """The entry called ``name`` (``purchase-orders``; ``purchase_orders`` works too).

    Raises:
        KeyError: naming the bots there are.
    """
    wanted = name.replace("_", "-")
    for bot in BOTS:
        if bot.name == wanted:
            return bot
    raise KeyError(f"no bot {name!r}; there are: {', '.join(b.name for b in BOTS)}")


def input_fields(model: type[BotParameters]) -> dict[str, InputPath]:
    """The fields of ``model`` marked :class:`InputPath`, by name."""
    found: dict[str, InputPath] = {}
    for name, info in model.model_fields.items():
        marker = next((m for m in info.metadata if isinstance(m, InputPath)), None)
        if marker is not None:
            found[name] = marker
    return found


def cli_flag(model: type[BotParameters], name: str) -> Cli:
    """The :class:`Cli` spelling of field ``name`` (``--<name-with-dashes>`` when not given)."""
    info = model.model_fields[name]
    marker = next((m for m in info.metadata if isinstance(m, Cli)), None)
    return marker or Cli("--" + name.replace("_", "-"))


def resolve_inputs(params: _P, root: Path, label: Callable[[str], str] | None = None) -> _P:
    """``params`` with every :class:`InputPath` field made absolute (relative ones under
    ``root``) and checked to exist, before any work starts.

    Raises:
        BotInputError: ``"<field>: <full path>: no such file"`` (``label`` names the field).
    """
    label = label or (lambda name: f"{name}:")
    updates: dict[str, Any] = {}
    for name, marker in input_fields(type(params)).items():
        value = getattr(params, name)
        try:
            if isinstance(value, list):
                updates[name] = [
                    str(resolve_input(v, root, marker.kind, must_exist=marker.must_exist)) for v in value if v
                ]
            elif value:
                updates[name] = str(resolve_input(value, root, marker.kind, must_exist=marker.must_exist))
        except BotInputError as exc:
            raise BotInputError(f"{label(name)} {exc}") from None
    return params.model_copy(update=updates)
