"""The contract upload bot: signed contracts from a drop folder into the portal's contract
register, exactly once, verified.

Under the Procurement Act 2023 a trust publishes the details of the contracts it signs
(and, over £5m, the contract document and at least three KPIs) and keeps its contract
register right. Staff drop the signed PDFs in a folder together with their details:
a metadata workbook or CSV (one row per contract) or a JSON sidecar per PDF
(``CT-2026-0001.pdf`` + ``CT-2026-0001.json``). For each contract the bot

1. pairs the details with the file (:func:`plan_batch`): a row whose file is missing, a
   file no row describes, a second row with the same contract ID, a file name that
   points outside the folder, each is a business exception with a reason;
2. validates (:func:`validate_contract`): required contract-details fields, dates in
   order (start <= end <= maximum end with extensions), net <= gross, the £5m rule,
   supplier identifiers (GB VAT check digits, Companies House shape), CPV and ODS
   shapes, and the file itself (a real, complete, unencrypted PDF within the size
   limit: :mod:`connectors.pdf`). Every problem is collected, so one rejection tells
   the officer everything that is wrong;
3. uploads it through the register's page objects, exactly once: search by contract ID
   first; after the upload, checkpoint ``uploaded`` at once;
4. verifies: downloads the stored document and compares its SHA-256 with the file's,
   and compares the details the register shows with the model; then checkpoints
   ``verified``.

The drop folder keeps every file: uploaded contracts go to ``done/``, rejected ones to
``quarantine/`` with a ``.reason.json`` beside them. :func:`write_contracts_report`
writes the workbook people read: uploaded, rejected with reasons, and contracts ending
within 90 and 180 days with a chart by month.

Reason codes (stable): ``MISSING_FIELD``, ``INVALID_VALUE``, ``DATES_INCONSISTENT``,
``VALUE_INCONSISTENT``, ``HIGH_VALUE_KPIS``, ``SUPPLIER_ID_MISSING``,
``SUPPLIER_ID_INVALID``, ``FILE_MISSING``, ``METADATA_MISSING``, ``METADATA_UNREADABLE``,
``DUPLICATE_CONTRACT_ID``, ``DUPLICATE_DOCUMENT``, ``UNSAFE_FILE_NAME``, the
:mod:`connectors.pdf` codes (``NOT_A_PDF``, ``PDF_ENCRYPTED``, ``PDF_TOO_LARGE``,
``PDF_TRUNCATED``, ``PDF_DAMAGED``, ``PDF_EMPTY``), and from the portal
``PORTAL_REFUSED``, ``REGISTER_DOCUMENT_MISMATCH``, ``REGISTER_DETAILS_MISMATCH``.

Example:
    >>> contract = validate_contract(
    ...     {"contract_id": "CT-2026-0001", "title": "Supply of examination gloves",
    ...      "supplier_name": "Medisupply Ltd", "supplier_vat": "GB980780684", "buyer_ods": "RX1",
    ...      "cpv_codes": "33141420-0", "procedure": "open", "value_net": "£120,000.00",
    ...      "value_gross": "144000", "start_date": "01/04/2026", "end_date": "31/03/2028",
    ...      "kpis": "On-time delivery; Fill rate"},
    ...     document_name="CT-2026-0001.pdf", source="metadata.xlsx row 2",
    ... )
    >>> contract.value_gross, contract.end_date.isoformat()
    (Decimal('144000.00'), '2028-03-31')
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bots.domain.errors import ApplicationError, BusinessError
from bots.domain.identifiers import check_companies_house, check_cpv, check_gb_vat, check_ods_code
from bots.domain.models import Contract, Procedure, money
from bots.runtime.bot import Bot, RunContext
from bots.runtime.breaker import CircuitBreaker
from bots.runtime.ids import new_run_id
from bots.runtime.item import Item
from bots.runtime.ledger import Ledger, WorkItem
from bots.runtime.run import work
from bots.runtime.runner import RunSummary
from bots.runtime.sync import run_sync

if TYPE_CHECKING:
    from config.settings import Settings
    from connectors.portal.pages.base import PortalSession

__all__ = [
    "BOT",
    "CONTRACT_ALIASES",
    "HIGH_VALUE_THRESHOLD",
    "MIN_HIGH_VALUE_KPIS",
    "ContractBot",
    "ContractJob",
    "ContractProblem",
    "ContractRejected",
    "ContractRow",
    "contract_fingerprint",
    "plan_batch",
    "read_metadata_file",
    "read_sidecar",
    "validate_contract",
]

BOT: Final = "contract_uploads"
"""The bot name of contract upload work items in the ledger."""

HIGH_VALUE_THRESHOLD: Final = Decimal("5000000")
"""Procurement Act 2023 s.52: above £5m (VAT included, as the Act values contracts)
a contract needs at least three KPIs, and its document is published."""
MIN_HIGH_VALUE_KPIS: Final = 3

METADATA_SUFFIXES: Final = (".xlsx", ".xlsm", ".csv")
SIDECAR_SUFFIX: Final = ".json"
MAX_SIDECAR_BYTES: Final = 256 * 1024

_CONTRACT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}")
_LIST_SPLIT = re.compile(r"[;\n|]+")
_CPV_SPLIT = re.compile(r"[,;\s]+")
_PROCEDURES: Final = frozenset(get_args(Procedure))
_PROCEDURE_WORDS: Final = {
    "open procedure": "open",
    "competitive flexible procedure": "competitive_flexible",
    "competitive flexible": "competitive_flexible",
    "direct award": "direct_award",
    "call-off from a framework": "framework_call_off",
    "framework call-off": "framework_call_off",
    "framework call off": "framework_call_off",
    "dynamic market": "dynamic_market",
    "below threshold": "below_threshold",
}


# --- problems ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContractProblem:
    """One thing wrong with a contract: a reason code, the field it concerns, a readable message."""

    code: str
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "field": self.field, "message": self.message}


class ContractRejected(BusinessError):
    """A contract that cannot go into the register as it is; ``problems`` lists every reason.

    The reason ``code`` is the first problem's; the message names the source (file, row)
    and every problem, so the officer fixes them all in one go.
    """

    def __init__(self, source: str, problems: Sequence[ContractProblem]) -> None:
        if not problems:
            raise ValueError("a rejection needs at least one problem")
        self.source = source
        self.problems = list(problems)
        super().__init__(problems[0].code, f"{source}: " + "; ".join(p.message for p in problems))


# --- input format ----------------------------------------------------------------------------


class ContractRow(BaseModel):
    """One row of a contracts metadata workbook, as text: :func:`validate_contract` converts it.

    Every cell is read as text so that a bad date or amount becomes a reason on *that*
    contract (by its contract ID), not an anonymous row error.
    """

    model_config = ConfigDict(extra="ignore")

    contract_id: str | None = None
    title: str | None = None
    buyer_name: str | None = None
    buyer_ods: str | None = None
    supplier_name: str | None = None
    supplier_vat: str | None = None
    companies_house: str | None = None
    cpv_codes: str | None = None
    procedure: str | None = None
    value_net: str | None = None
    value_gross: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    max_end_date: str | None = None
    kpis: str | None = None
    kpi_count: str | None = None
    document: str | None = None
    sme: str | None = None
    vcse: str | None = None


CONTRACT_ALIASES: Final[dict[str, list[str]]] = {
    "contract_id": ["contract id", "contract reference", "contract ref", "contract number", "reference"],
    "title": ["contract title", "description"],
    "buyer_name": ["buyer", "contracting authority"],
    "buyer_ods": ["buyer ods code", "buyer ods", "ods code", "ods"],
    "supplier_name": ["supplier", "supplier legal name"],
    "supplier_vat": ["supplier vat number", "supplier vat", "vat number", "vat"],
    "companies_house": ["companies house number", "company number", "supplier companies house"],
    "cpv_codes": ["cpv", "cpv code", "cpv codes", "cpv code(s)"],
    "procedure": ["procurement procedure", "procedure type"],
    "value_net": [
        "contract value excluding vat",
        "value excluding vat",
        "value excl vat",
        "value ex vat",
        "net value",
        "value (net)",
    ],
    "value_gross": [
        "contract value including vat",
        "value including vat",
        "value incl vat",
        "value inc vat",
        "gross value",
        "value (gross)",
    ],
    "start_date": ["start", "contract start date", "commencement date"],
    "end_date": ["end", "contract end date", "expiry date"],
    "max_end_date": [
        "maximum end date",
        "maximum end date (with extensions)",
        "end date with extensions",
        "max end date",
    ],
    "kpis": ["kpi", "key performance indicators", "kpi names"],
    "kpi_count": ["number of kpis", "kpi count", "kpis count"],
    "document": ["file", "filename", "file name", "document file", "pdf", "contract document"],
    "sme": ["supplier is an sme", "sme supplier"],
    "vcse": ["supplier is a vcse", "vcse supplier"],
}


# --- validation (pure) -----------------------------------------------------------------------

_REQUIRED: Final = (
    ("contract_id", "contract ID"),
    ("title", "contract title"),
    ("supplier_name", "supplier name"),
    ("buyer_ods", "buyer ODS code"),
    ("cpv_codes", "CPV code"),
    ("procedure", "procedure"),
    ("value_net", "contract value excluding VAT"),
    ("value_gross", "contract value including VAT"),
    ("start_date", "start date"),
    ("end_date", "end date"),
)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "; ".join(_text(v) for v in value)
    return str(value).strip()


def _as_date(value: str) -> dt.date | None:
    from connectors.rows import ConversionError, to_date

    try:
        return to_date(value)
    except ConversionError:
        return None


def _as_amount(value: str) -> Decimal | None:
    from connectors.rows import ConversionError, to_decimal

    try:
        amount = to_decimal(value)
    except ConversionError:
        return None
    return money(amount) if amount is not None and amount.is_finite() else None


def _as_bool(value: str) -> bool | None:
    from connectors.rows import ConversionError, to_bool

    if not value:
        return False
    try:
        return to_bool(value)
    except ConversionError:
        return None


def _procedure(value: str) -> str | None:
    key = value.strip().lower()
    if key.replace(" ", "_") in _PROCEDURES:
        return key.replace(" ", "_")
    return _PROCEDURE_WORDS.get(key)


def validate_contract(
    metadata: Mapping[str, Any],
    *,
    document_name: str | None,
    source: str,
    high_value_threshold: Decimal = HIGH_VALUE_THRESHOLD,
    extra_problems: Iterable[ContractProblem] = (),
) -> Contract:
    """The :class:`~bots.domain.models.Contract` the metadata describes, or every reason it cannot be.

    Args:
        metadata: field -> cell value (a :class:`ContractRow` dump, or a JSON sidecar).
        document_name: the contract document's file name (``None`` when there is no file).
        source: where the metadata came from, for the message (``metadata.xlsx!Contracts row 7``).
        high_value_threshold: over this value (VAT included) the £5m rule applies.
        extra_problems: problems already found (the PDF check), reported together.

    Raises:
        ContractRejected: with every problem found.
    """
    problems = list(extra_problems)
    text = {name: _text(metadata.get(name)) for name in ContractRow.model_fields}

    def problem(code: str, name: str | None, message: str) -> None:
        problems.append(ContractProblem(code, message, name))

    for name, label in _REQUIRED:
        if not text[name]:
            problem("MISSING_FIELD", name, f"the {label} is missing")
    contract_id = text["contract_id"]
    if contract_id and not _CONTRACT_ID.fullmatch(contract_id):
        problem(
            "INVALID_VALUE",
            "contract_id",
            f"contract ID {contract_id!r} must be up to 64 letters, digits, '/', '.', '-' or '_'",
        )
    ods = text["buyer_ods"]
    if ods and not check_ods_code(ods).valid:
        problem("INVALID_VALUE", "buyer_ods", check_ods_code(ods).message)
    cpvs = [c for c in _CPV_SPLIT.split(text["cpv_codes"]) if c]
    for cpv in cpvs:
        if not (check := check_cpv(cpv)).valid:
            problem("INVALID_VALUE", "cpv_codes", check.message)
    procedure = _procedure(text["procedure"]) if text["procedure"] else None
    if text["procedure"] and procedure is None:
        known = ", ".join(sorted(_PROCEDURES))
        problem("INVALID_VALUE", "procedure", f"procedure {text['procedure']!r} is not one of: {known}")

    amounts: dict[str, Decimal] = {}
    for name, label in (("value_net", "value excluding VAT"), ("value_gross", "value including VAT")):
        if text[name]:
            amount = _as_amount(text[name])
            if amount is None or amount < 0:
                problem("INVALID_VALUE", name, f"the {label} {text[name]!r} is not an amount in pounds")
            else:
                amounts[name] = amount
    if len(amounts) == 2 and amounts["value_gross"] < amounts["value_net"]:
        problem(
            "VALUE_INCONSISTENT",
            "value_gross",
            f"the value including VAT (£{amounts['value_gross']:,}) is less than the value "
            f"excluding VAT (£{amounts['value_net']:,})",
        )

    dates: dict[str, dt.date] = {}
    for name, label in (
        ("start_date", "start date"),
        ("end_date", "end date"),
        ("max_end_date", "maximum end date"),
    ):
        if text[name]:
            day = _as_date(text[name])
            if day is None:
                problem("INVALID_VALUE", name, f"the {label} {text[name]!r} is not a date (use dd/mm/yyyy)")
            else:
                dates[name] = day
    start, end, max_end = dates.get("start_date"), dates.get("end_date"), dates.get("max_end_date")
    if start and end and end < start:
        problem(
            "DATES_INCONSISTENT",
            "end_date",
            f"the end date {end:%d/%m/%Y} is before the start date {start:%d/%m/%Y}",
        )
    if end and max_end and max_end < end:
        problem(
            "DATES_INCONSISTENT",
            "max_end_date",
            f"the maximum end date {max_end:%d/%m/%Y} is before the end date {end:%d/%m/%Y}",
        )

    vat, companies_house = text["supplier_vat"], text["companies_house"]
    if not vat and not companies_house:
        problem(
            "SUPPLIER_ID_MISSING",
            "supplier_vat",
            "the supplier has neither a VAT number nor a Companies House number",
        )
    vat_check = check_gb_vat(vat) if vat else None
    if vat_check is not None and not vat_check.valid:
        problem("SUPPLIER_ID_INVALID", "supplier_vat", vat_check.message)
    ch_check = check_companies_house(companies_house) if companies_house else None
    if ch_check is not None and not ch_check.valid:
        problem("SUPPLIER_ID_INVALID", "companies_house", ch_check.message)

    # Whitespace inside a name collapses to one space: the register lists one KPI per line,
    # so no line break (of any kind) may hide inside a name.
    kpis = [" ".join(k.split()) for k in _LIST_SPLIT.split(text["kpis"]) if k.strip()]
    count_given = text["kpi_count"]
    if kpis and count_given and not (count_given.isdigit() and int(count_given) == len(kpis)):
        problem(
            "INVALID_VALUE",
            "kpi_count",
            f"the number of KPIs {text['kpi_count']!r} does not match the {len(kpis)} KPI names given",
        )
    if not kpis and text["kpi_count"]:
        count = text["kpi_count"]
        if not count.isdigit() or int(count) > 100:
            problem("INVALID_VALUE", "kpi_count", f"the number of KPIs {count!r} is not a whole number")
        else:
            # The sheet gives only how many: numbered placeholders stand in, and the register
            # shows them until someone names the KPIs.
            kpis = [f"KPI {n}" for n in range(1, int(count) + 1)]
    flags: dict[str, bool] = {}
    for name in ("sme", "vcse"):
        flag = _as_bool(text[name])
        if flag is None:
            problem("INVALID_VALUE", name, f"{name.upper()} {text[name]!r} should be yes or no")
        flags[name] = bool(flag)

    value_for_threshold = amounts.get("value_gross", amounts.get("value_net"))
    if value_for_threshold is not None and value_for_threshold > high_value_threshold:
        if len(kpis) < MIN_HIGH_VALUE_KPIS:
            problem(
                "HIGH_VALUE_KPIS",
                "kpis",
                f"a contract over £{high_value_threshold:,.0f} needs at least {MIN_HIGH_VALUE_KPIS} KPIs "
                f"(it has {len(kpis)})",
            )
        if not document_name and not any(p.code == "FILE_MISSING" for p in problems):
            problem(
                "FILE_MISSING",
                "document",
                f"a contract over £{high_value_threshold:,.0f} must publish its document",
            )

    if problems:
        raise ContractRejected(source, _unique(problems))
    # Required fields were present and parsed, or a problem was raised above.
    assert start is not None
    assert end is not None
    try:
        return Contract(
            contract_id=contract_id,
            title=text["title"],
            buyer_name=text["buyer_name"],
            buyer_ods=check_ods_code(ods).normalised,
            supplier_name=text["supplier_name"],
            supplier_vat=vat_check.normalised if vat_check else None,
            companies_house=ch_check.normalised if ch_check else None,
            cpv_codes=cpvs,
            procedure=procedure,
            value_net=amounts["value_net"],
            value_gross=amounts["value_gross"],
            start_date=start,
            end_date=end,
            max_end_date=max_end,
            kpis=kpis,
            document=document_name or "",
            sme=flags["sme"],
            vcse=flags["vcse"],
        )
    except ValidationError as exc:  # a rule of the model not mirrored above: still the officer's to fix
        first = exc.errors()[0]
        where = str(first["loc"][0]) if first["loc"] else None
        raise ContractRejected(source, [ContractProblem("INVALID_VALUE", str(first["msg"]), where)]) from None


def _unique(problems: list[ContractProblem]) -> list[ContractProblem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.code, p.message) not in seen:
            seen.add((p.code, p.message))
            out.append(p)
    return out


# --- a batch of dropped files: details paired with documents -------------------------------------


@dataclass(frozen=True, slots=True)
class BatchFile:
    """One file of a drop: the name it was dropped under and where it is now (claimed)."""

    name: str
    path: Path


class ContractJob(BaseModel):
    """The work-item payload of one contract: its details, its document and what pairing found."""

    model_config = ConfigDict(frozen=True)

    contract_id: str = ""
    source: str
    metadata: dict[str, Any] | None = None
    document_name: str | None = None
    document_path: str | None = None
    document_sha256: str | None = None
    files: list[str] = Field(default_factory=list)
    """Claimed files this contract owns (document, sidecar): they move to done/ or quarantine/ with it."""
    problems: list[dict[str, str | None]] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """The idempotency key: contract ID (or source) and a digest of details and document.

        The same drop again is the same item (nothing new happens); corrected details or
        a new document are a new item, which the portal search then checks against the
        register.
        """
        digest = hashlib.sha256(
            json.dumps(
                [self.metadata, self.document_sha256, self.problems], sort_keys=True, default=str
            ).encode()
        ).hexdigest()[:16]
        return f"{self.contract_id or self.source}@{digest}"


@dataclass(slots=True)
class BatchPlan:
    """The contracts of one drop, and the metadata files with a problem of their own."""

    jobs: list[ContractJob] = field(default_factory=list)
    metadata_files: list[BatchFile] = field(default_factory=list)
    unreadable: dict[str, ContractProblem] = field(default_factory=dict)
    """Metadata file path -> why it could not be read at all (it goes to quarantine)."""


def contract_fingerprint(job: ContractJob) -> str:
    """The idempotency key of a job (see :attr:`ContractJob.key`)."""
    return job.key


def _sha256_file(path: Path, limit: int) -> str | None:
    try:
        if path.stat().st_size > limit:
            return None
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def _name_key(name: str) -> str:
    """How file names are compared: Unicode NFC (macOS writes NFD) and case-insensitive."""
    import unicodedata

    return unicodedata.normalize("NFC", name).casefold()


def _is_bare_name(name: str) -> bool:
    if not name or name in (".", "..") or "\x00" in name:
        return False
    return "/" not in name and "\\" not in name and ":" not in name


def _normalise_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    from connectors.rows import normalise_header

    spellings = {normalise_header(name): name for name in ContractRow.model_fields}
    for name, aliases in CONTRACT_ALIASES.items():
        for alias in aliases:
            spellings.setdefault(normalise_header(alias), name)
    out: dict[str, Any] = {}
    for key, value in data.items():
        canonical = spellings.get(normalise_header(key))
        if canonical is not None and canonical not in out:
            out[canonical] = value
    return out


def read_sidecar(path: Path) -> dict[str, Any]:
    """The contract details in a JSON sidecar (field names as in the workbook, aliases too).

    Raises:
        ContractRejected: ``METADATA_UNREADABLE`` when the file is too big, not JSON or not an object.
    """
    source = path.name
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise ContractRejected(
                source,
                [
                    ContractProblem(
                        "METADATA_UNREADABLE", f"the sidecar is larger than {MAX_SIDECAR_BYTES // 1024} KB"
                    )
                ],
            )
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ContractRejected(
            source,
            [
                ContractProblem(
                    "METADATA_UNREADABLE", f"the sidecar is not valid JSON ({str(exc).splitlines()[0][:100]})"
                )
            ],
        ) from None
    if not isinstance(data, dict):
        raise ContractRejected(
            source,
            [
                ContractProblem(
                    "METADATA_UNREADABLE", "the sidecar must hold one JSON object of contract details"
                )
            ],
        )
    return _normalise_keys(data)


def read_metadata_file(path: Path, *, display_name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The rows of a contracts metadata workbook or CSV: ``(source, details)`` per contract.

    ``source`` names the file, sheet and row (``metadata.xlsx!Contracts row 7``).

    Raises:
        ContractRejected: ``METADATA_UNREADABLE`` when the file cannot be read at all.
    """
    from connectors import csvfiles, excel
    from connectors.rows import SpreadsheetError

    name = display_name or path.name
    try:
        if path.suffix.lower() == ".csv":
            result = csvfiles.read_rows(path, ContractRow, aliases=CONTRACT_ALIASES, required=["contract_id"])
        else:
            result = excel.read_rows(path, ContractRow, aliases=CONTRACT_ALIASES, required=["contract_id"])
    except SpreadsheetError as exc:
        message = str(exc)
        message = message.split(": ", 1)[1] if message.startswith(str(path)) and ": " in message else message
        raise ContractRejected(name, [ContractProblem("METADATA_UNREADABLE", message)]) from None
    place = f"{name}!{result.sheet}" if result.sheet else name
    out: list[tuple[str, dict[str, Any]]] = []
    for row, number in zip(result.rows, result.row_numbers, strict=True):
        details = {k: v for k, v in row.model_dump().items() if v is not None}
        out.append((f"{place} row {number}", details))
    for number, raw in sorted(result.rejected.items()):
        details = {k: v for k, v in raw.items() if v is not None}
        out.append((f"{place} row {number}", details))
    return out


def plan_batch(files: Sequence[BatchFile], *, max_document_bytes: int | None = None) -> BatchPlan:
    """Pair the details (workbook rows, JSON sidecars) with the documents of one drop.

    Pure apart from reading the metadata files and hashing the documents. Every contract
    becomes one :class:`ContractJob`; what pairing finds wrong (no file, no details,
    a duplicate contract ID, a file name pointing outside the folder) is in its ``problems``.
    """
    from connectors.pdf import DEFAULT_MAX_BYTES

    limit = max_document_bytes or DEFAULT_MAX_BYTES
    plan = BatchPlan()
    documents: dict[str, BatchFile] = {}
    sidecars: list[BatchFile] = []
    for f in files:
        suffix = Path(f.name).suffix.lower()
        if suffix in METADATA_SUFFIXES:
            plan.metadata_files.append(f)
        elif suffix == SIDECAR_SUFFIX:
            sidecars.append(f)
        else:
            documents[_name_key(f.name)] = f

    described: list[tuple[str, dict[str, Any] | None, list[ContractProblem], BatchFile | None]] = []
    for meta in plan.metadata_files:
        try:
            rows = read_metadata_file(meta.path, display_name=meta.name)
        except ContractRejected as exc:
            plan.unreadable[str(meta.path)] = exc.problems[0]
            continue
        described += [(source, details, [], None) for source, details in rows]
    for sidecar in sidecars:
        try:
            described.append((sidecar.name, read_sidecar(sidecar.path), [], sidecar))
        except ContractRejected as exc:
            described.append((sidecar.name, None, exc.problems, sidecar))

    claimed: dict[str, str] = {}  # document key -> source that took it
    seen_ids: dict[str, str] = {}
    for source, details, found, owner in described:
        problems = list(found)
        contract_id = _text((details or {}).get("contract_id"))
        wanted = _text((details or {}).get("document"))
        if not wanted and owner is not None:
            stem = owner.name[: -len(SIDECAR_SUFFIX)]
            wanted = stem if Path(stem).suffix else f"{stem}.pdf"
        elif not wanted and contract_id:
            wanted = f"{contract_id}.pdf"
        document: BatchFile | None = None
        if wanted and not _is_bare_name(wanted):
            problems.append(
                ContractProblem(
                    "UNSAFE_FILE_NAME", f"the document name {wanted!r} is not a plain file name", "document"
                )
            )
        elif wanted:
            document = documents.get(_name_key(wanted))
            if document is None:
                problems.append(
                    ContractProblem(
                        "FILE_MISSING", f"the document {wanted!r} is not in the folder", "document"
                    )
                )
            elif _name_key(wanted) in claimed:
                problems.append(
                    ContractProblem(
                        "DUPLICATE_DOCUMENT",
                        f"the document {wanted!r} is already used by {claimed[_name_key(wanted)]}",
                        "document",
                    )
                )
                document = None
            else:
                claimed[_name_key(wanted)] = source
        if contract_id:
            if contract_id.casefold() in seen_ids:
                problems.append(
                    ContractProblem(
                        "DUPLICATE_CONTRACT_ID",
                        f"contract ID {contract_id} is also given by {seen_ids[contract_id.casefold()]}",
                        "contract_id",
                    )
                )
            else:
                seen_ids[contract_id.casefold()] = source
        owned = [str(owner.path)] if owner is not None else []
        if document is not None:
            owned.insert(0, str(document.path))
        plan.jobs.append(
            ContractJob(
                contract_id=contract_id,
                source=source,
                metadata=details,
                document_name=document.name if document else (wanted or None),
                document_path=str(document.path) if document else None,
                document_sha256=_sha256_file(document.path, limit) if document else None,
                files=owned,
                problems=[p.as_dict() for p in problems],
            )
        )
    for key, document in documents.items():
        if key not in claimed:
            plan.jobs.append(
                ContractJob(
                    source=document.name,
                    document_name=document.name,
                    document_path=str(document.path),
                    document_sha256=_sha256_file(document.path, limit),
                    files=[str(document.path)],
                    problems=[
                        ContractProblem(
                            "METADATA_MISSING",
                            f"no metadata row or JSON sidecar describes the file {document.name!r}",
                        ).as_dict()
                    ],
                )
            )
    return plan


def check_job(job: ContractJob, *, max_document_bytes: int | None = None) -> tuple[Contract, str]:
    """Validate one job: its pairing problems, its document (a real PDF) and its details.

    Returns:
        the contract and the document's SHA-256.

    Raises:
        ContractRejected: with every problem found.
    """
    from connectors.pdf import DEFAULT_MAX_BYTES, PdfProblem, check_pdf

    problems = [ContractProblem(str(p["code"]), str(p["message"]), p.get("field")) for p in job.problems]
    sha256 = None
    if job.document_path is not None:
        try:
            info = check_pdf(job.document_path, max_bytes=max_document_bytes or DEFAULT_MAX_BYTES)
            sha256 = info.sha256
        except PdfProblem as exc:
            problems.append(ContractProblem(exc.code, f"{job.document_name}: {exc.message}", "document"))
        except FileNotFoundError:
            problems.append(
                ContractProblem("FILE_MISSING", f"the document {job.document_name!r} has gone", "document")
            )
    if job.metadata is None:
        raise ContractRejected(
            job.source, problems or [ContractProblem("METADATA_MISSING", "no contract details")]
        )
    contract = validate_contract(
        job.metadata,
        document_name=job.document_name if job.document_path else None,
        source=job.source,
        extra_problems=problems,
    )
    assert sha256 is not None  # a document problem would have been raised with the details'
    return contract, sha256


# --- verifying what the register shows ---------------------------------------------------------

_SPACES = re.compile(r"\s+")


def _same_text(a: str | None, b: str | None) -> bool:
    return _SPACES.sub(" ", (a or "").strip()) == _SPACES.sub(" ", (b or "").strip())


def _kpi_name(name: str) -> str:
    """A KPI name as the register keeps it: one line, single spaces."""
    return " ".join(name.split())


def register_form(contract: Contract) -> dict[str, str | bool]:
    """The upload form's fields for ``contract``, as typed (amounts plain, dates ``yyyy-mm-dd``)."""
    return {
        "contract_id": contract.contract_id,
        "title": contract.title,
        "supplier_name": contract.supplier_name,
        "supplier_vat": contract.supplier_vat or "",
        "companies_house": contract.companies_house or "",
        "buyer_ods": contract.buyer_ods,
        "cpv_codes": ", ".join(contract.cpv_codes),
        "procedure": contract.procedure,
        "value_net": f"{contract.value_net:.2f}",
        "value_gross": f"{contract.value_gross:.2f}",
        "start_date": contract.start_date.isoformat(),
        "end_date": contract.end_date.isoformat(),
        "max_end_date": contract.max_end_date.isoformat() if contract.max_end_date else "",
        "kpis": "\n".join(_kpi_name(k) for k in contract.kpis),
        "sme": contract.sme,
    }


def compare_register_details(contract: Contract, shown: Mapping[str, str]) -> list[str]:
    """What the register's contract page shows differently from ``contract`` (empty: all agree).

    ``shown`` maps the page's labels to their text (``"Contract value excluding VAT": "£1,234.50"``).
    """
    from connectors.rows import ConversionError, to_date, to_decimal

    differences: list[str] = []

    def differs(label: str, expected: str, ok: bool) -> None:
        if not ok:
            differences.append(f"{label}: the register shows {shown.get(label, '')!r}, expected {expected!r}")

    def text(label: str, expected: str | None) -> None:
        if label not in shown:
            differences.append(f"{label}: not shown by the register")
        else:
            differs(label, expected or "", _same_text(shown[label], expected))

    def amount(label: str, expected: Decimal) -> None:
        try:
            value = to_decimal(shown.get(label))
        except ConversionError:
            value = None
        differs(label, f"£{expected:,.2f}", value is not None and money(value) == expected)

    def day(label: str, expected: dt.date | None) -> None:
        try:
            value = to_date(shown.get(label) or None)
        except ConversionError:
            value = None
        differs(label, expected.isoformat() if expected else "", value == expected)

    text("Contract ID", contract.contract_id)
    text("Contract title", contract.title)
    text("Supplier name", contract.supplier_name)
    text("Supplier VAT number", contract.supplier_vat)
    text("Companies House number", contract.companies_house)
    text("Buyer ODS code", contract.buyer_ods)
    cpvs = {c for c in _CPV_SPLIT.split(shown.get("CPV codes", "")) if c}
    differs("CPV codes", ", ".join(contract.cpv_codes), cpvs == set(contract.cpv_codes))
    differs("Procedure", contract.procedure, _procedure(shown.get("Procedure", "")) == contract.procedure)
    amount("Contract value excluding VAT", contract.value_net)
    amount("Contract value including VAT", contract.value_gross)
    day("Start date", contract.start_date)
    day("End date", contract.end_date)
    day("Maximum end date", contract.max_end_date)
    text("Number of KPIs", str(len(contract.kpis)))
    expected_kpis = [_kpi_name(k) for k in contract.kpis]
    if "KPIs" not in shown:
        differences.append("KPIs: not shown by the register")
    else:
        shown_kpis = [_kpi_name(k) for k in shown["KPIs"].splitlines() if k.strip()]
        differs("KPIs", "; ".join(expected_kpis), shown_kpis == expected_kpis)
    differs(
        "SME supplier",
        "Yes" if contract.sme else "No",
        shown.get("SME supplier", "") == ("Yes" if contract.sme else "No"),
    )
    return differences


# --- the run: drop folder -> ledger -> portal -> drop folder + report ---------------------------------


@dataclass(slots=True)
class ContractOutcome:
    """How one contract of a run ended, for the report and the flow's artifacts."""

    contract_id: str
    source: str
    document: str | None
    outcome: str
    """``uploaded``, ``found_in_register`` (it was there), ``already_done`` (by an earlier run),
    ``validated`` (dry run), ``rejected``, ``failed`` or ``pending`` (interrupted; retried later)."""
    reason_code: str | None = None
    reason: str | None = None
    problems: list[dict[str, str | None]] = field(default_factory=list)
    sha256: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    stored_as: str | None = None
    item_id: int | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "outcome": self.outcome,
            "reason_code": self.reason_code or "",
            "reason": self.reason or "",
            "source": self.source,
            "document": self.document or "",
            "stored_as": self.stored_as or "",
        }


@dataclass(slots=True)
class ContractRunResult:
    """What one run did: every contract's outcome, counts, the report, and the runner's summary."""

    outcomes: list[ContractOutcome] = field(default_factory=list)
    report: Path | None = None
    dry_run: bool = False
    runner_summary: RunSummary | None = None
    quarantined_metadata: list[str] = field(default_factory=list)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)

    @property
    def stopped(self) -> str:
        """Why the run stopped early (``PORTAL_UNAVAILABLE``, ``LOGIN_REJECTED``), else empty."""
        return self.breaker.reason or ""

    @property
    def stopped_message(self) -> str:
        return self.breaker.message

    @property
    def counts(self) -> dict[str, int]:
        names = (
            "uploaded",
            "found_in_register",
            "already_done",
            "validated",
            "rejected",
            "failed",
            "pending",
        )
        counts = dict.fromkeys(names, 0)
        for o in self.outcomes:
            counts[o.outcome] = counts.get(o.outcome, 0) + 1
        return counts

    @property
    def exit_code(self) -> int:
        """0 when every contract went in (or validated), 1 when some were rejected or failed."""
        bad = any(o.outcome in ("rejected", "failed", "pending") for o in self.outcomes)
        return 1 if bad or self.quarantined_metadata or self.stopped else 0


def _contract_result(contract: Contract, sha256: str, action: str, url: str) -> dict[str, Any]:
    return {
        "action": action,
        "contract_id": contract.contract_id,
        "title": contract.title,
        "supplier_name": contract.supplier_name,
        "value_net": str(contract.value_net),
        "value_gross": str(contract.value_gross),
        "start_date": contract.start_date.isoformat(),
        "end_date": contract.end_date.isoformat(),
        "max_end_date": contract.max_end_date.isoformat() if contract.max_end_date else None,
        "kpis": len(contract.kpis),
        "sha256": sha256,
        "url": url,
    }


async def upload_and_verify(
    session: PortalSession, job: ContractJob, contract: Contract, sha256: str, *, item: Item[ContractJob]
) -> dict[str, Any]:
    """Put one validated contract in the register exactly once, then check what the register holds.

    The upload is the step ``uploaded`` of :meth:`~bots.runtime.item.Item.once`: the
    register is searched first (an earlier attempt may have saved it before its answer
    was lost), the lease is checked right before the form is sent, and the outcome
    (``uploaded`` or ``found_in_register``) is checkpointed at once.

    Raises:
        BusinessError: ``PORTAL_REFUSED``, ``REGISTER_DOCUMENT_MISMATCH`` or ``REGISTER_DETAILS_MISMATCH``.
        ApplicationError: the portal failed (5xx, session, timeout): retried by the runner.
    """
    from urllib.parse import quote

    from connectors.portal.pages.contracts import (
        AlreadyInRegister,
        ContractDetailPage,
        ContractForm,
        ContractRefused,
        ContractRegisterPage,
        ContractUploadPage,
    )

    async def find() -> str | None:
        found = await ContractRegisterPage(session).find(contract.contract_id)
        return "found_in_register" if found is not None else None

    async def upload() -> str:
        assert job.document_path is not None
        try:
            await ContractUploadPage(session).upload(
                ContractForm(**register_form(contract)),  # type: ignore[arg-type]
                Path(job.document_path),
            )
        except AlreadyInRegister:
            return "found_in_register"
        except ContractRefused as exc:
            raise BusinessError(
                "PORTAL_REFUSED", f"{job.source}: the portal refused contract {contract.contract_id}: {exc}"
            ) from None
        return "uploaded"

    action = (
        await item.once("uploaded", find=find, do=upload, audit={"contract_id": contract.contract_id})
    ).value
    detail = ContractDetailPage(session)
    if action == "uploaded" and detail.showing(contract.contract_id):
        detail.title = f"Contract {contract.contract_id}"  # the upload landed on it: no second load
    else:
        await detail.open(contract.contract_id)
    shown = await detail.details()
    stored = hashlib.sha256(await detail.download_document()).hexdigest()
    if stored != sha256:
        raise BusinessError(
            "REGISTER_DOCUMENT_MISMATCH",
            f"{job.source}: the register holds a different document for {contract.contract_id} "
            f"(SHA-256 {stored[:12]}..., the file is {sha256[:12]}...)",
        )
    differences = compare_register_details(contract, shown)
    if differences:
        raise BusinessError(
            "REGISTER_DETAILS_MISMATCH",
            f"{job.source}: the register shows {contract.contract_id} differently: " + "; ".join(differences),
        )
    await item.checkpoint("verified", stored)
    url = session.url(f"/contracts/{quote(contract.contract_id, safe='')}")
    return _contract_result(contract, stored, action, url)


class ContractBot(Bot[ContractJob]):
    """Uploads each validated contract to the portal's register exactly once, verified.

    Options:
        jobs: this run's contracts by key (their files as claimed now).
        max_document_bytes: the PDF size limit.
    """

    name: ClassVar[str] = BOT
    title: ClassVar[str] = "Contract uploads"
    payload = ContractJob
    key_name: ClassVar[str] = "contract_key"
    session_retries: ClassVar[int] = 3

    def __init__(
        self, run: RunContext, *, jobs: Mapping[str, ContractJob], max_document_bytes: int | None = None
    ) -> None:
        super().__init__(run)
        self.jobs = jobs
        self.max_document_bytes = max_document_bytes

    def key(self, payload: ContractJob) -> str:
        return payload.key

    def _job(self, item: Item[ContractJob]) -> ContractJob:
        # This run's claim of the files, else (an item of an earlier drop) the ledger's.
        return self.jobs.get(item.key) or item.payload

    def check(self, item: Item[ContractJob]) -> None:
        check_job(self._job(item), max_document_bytes=self.max_document_bytes)

    async def process(self, item: Item[ContractJob], page: PortalSession) -> dict[str, Any]:
        job = self._job(item)
        if (
            job.document_path is not None
            and not Path(job.document_path).exists()
            and not item.done_step("uploaded")
        ):
            raise ApplicationError(
                "DOCUMENT_NOT_AVAILABLE",
                f"{job.source}: the document is no longer in processing/; it is retried when dropped again",
            )
        contract, sha256 = check_job(job, max_document_bytes=self.max_document_bytes)
        return await upload_and_verify(page, job, contract, sha256, item=item)

    def wants_evidence(self, error: BusinessError) -> bool:
        """A rejected contract's data was wrong: a screenshot of the portal would show nothing."""
        return not isinstance(error, ContractRejected)


def _adopt_loose_files(root: Path) -> list[Path]:
    """Files dropped straight into the folder (not its ``inbox/``) are moved into ``inbox/``.

    ``procbots sandbox data`` and people write contracts straight into a folder; the drop
    folder takes arrivals from ``inbox/``. Names already in the inbox are left where they are.
    """
    inbox = root / "inbox"
    moved: list[Path] = []
    if not root.is_dir():
        return moved
    for entry in sorted(root.iterdir()):
        if entry.name.startswith((".", "~$")) or entry.is_symlink() or not entry.is_file():
            continue
        target = inbox / entry.name
        if target.exists():
            continue
        inbox.mkdir(parents=True, exist_ok=True)
        entry.rename(target)
        moved.append(target)
    return moved


def run_contract_uploads(
    folder: str | Path,
    *,
    portal_url: str | None = None,
    dry_run: bool = False,
    settings: Settings | None = None,
    ledger: Ledger | None = None,
    workers: int | None = None,
    stable_for_s: float = 2.0,
    recover_after_s: float = 0.0,
    max_document_bytes: int | None = None,
    report_dir: Path | None = None,
    today: dt.date | None = None,
    run_id: str | None = None,
) -> ContractRunResult:
    """Take every contract dropped in ``folder``, upload the valid ones, quarantine the rest.

    Args:
        folder: the drop folder root (``inbox/``, ``processing/``, ``done/``, ``quarantine/``...);
            files put straight into it are moved into its ``inbox/`` first.
        portal_url: the portal; default ``settings.portal.url``.
        dry_run: validate and report only: nothing is claimed, uploaded or moved, and the
            ledger is not touched.
        settings: procbots settings (default: the process settings).
        ledger: the work-item ledger (default: from settings).
        workers: parallel browser contexts (default ``settings.browser.contexts``).
        stable_for_s: how long a file must stay unchanged before it is taken.
        recover_after_s: files in ``processing/`` that no live lease holds (a killed or
            stopped run left them) and were claimed longer ago than this go back to the
            inbox first, to be taken again; their contracts finish after their last
            checkpoint. One run per drop folder at a time.
        max_document_bytes: PDF size limit (default :data:`connectors.pdf.DEFAULT_MAX_BYTES`).
        report_dir: where the report workbook goes (default the outbox).
        today: the date "ending within 90/180 days" counts from (default today in London).
        run_id: names the evidence folder ``evidence/<run id>/<item id>/`` (default a timestamp).

    Returns:
        every contract's outcome and the report's path (``None`` when nothing arrived).
    """
    from zoneinfo import ZoneInfo

    from config.logging import get_logger
    from config.settings import get_settings
    from connectors.dropfolder import ClaimedFile, DropFolder

    settings = settings or get_settings()
    log = get_logger("contracts")
    root = Path(folder)
    today = today or dt.datetime.now(ZoneInfo("Europe/London")).date()
    result = ContractRunResult(dry_run=dry_run)
    report_dir = report_dir or settings.paths.resolve("outbox")

    if dry_run:
        # Read where the files are; claim nothing.
        places = [p for p in (root, root / "inbox") if p.is_dir()]
        files = [
            BatchFile(p.name, p)
            for place in places
            for p in sorted(place.iterdir())
            if p.is_file() and not p.is_symlink() and not p.name.startswith((".", "~$"))
        ]
        plan = plan_batch(files, max_document_bytes=max_document_bytes)
        for path, problem in plan.unreadable.items():
            result.quarantined_metadata.append(f"{Path(path).name}: {problem.message}")
        for job in plan.jobs:
            result.outcomes.append(_dry_run_outcome(job, max_document_bytes))
        if result.outcomes or result.quarantined_metadata:
            result.report = write_contracts_report(
                report_dir / _report_name("contracts-dry-run"), result, [], today
            )
        return result

    from connectors.portal.pages.base import PortalCredentials

    # Before any file moves: a missing password is a configuration error, not 20 failed items.
    credentials = PortalCredentials.from_settings(settings)
    _adopt_loose_files(root)
    drop = DropFolder(root, stable_for_s=stable_for_s)
    if ledger is None:
        from bots.runtime.ledger import Ledger

        ledger = Ledger.from_settings(settings)
    # Files a killed run left in processing/ go back to the inbox once no live lease holds them.
    held, dropped_as = _files_in_ledger(ledger)
    drop.recover_stale(recover_after_s, keep=held, names=dropped_as)
    claims: dict[str, ClaimedFile] = {}
    for claimed in drop:
        claims[str(claimed.path)] = claimed
    if not claims:
        log.info("no contracts dropped", folder=str(root))
        return result
    plan = plan_batch(
        [BatchFile(c.original_name, c.path) for c in claims.values()], max_document_bytes=max_document_bytes
    )
    for path, problem in plan.unreadable.items():
        claims[path].quarantine(problem.code, f"{claims[path].original_name}: {problem.message}")
        result.quarantined_metadata.append(f"{claims[path].original_name}: {problem.message}")

    jobs: dict[str, ContractJob] = {}
    items: dict[str, Any] = {}
    earlier: set[str] = set()  # done by an earlier run: this drop is a repeat
    for job in plan.jobs:
        item = ledger.add(BOT, job.key, job)
        if item.state in ("failed", "needs_review"):
            # Dropped again after it failed on system errors: give it another go.
            item = ledger.retry(item.id, reason="the contract was dropped again")
        jobs[job.key] = job
        items[job.key] = item
        if item.state == "done":
            earlier.add(job.key)
    log.info("contracts planned", contracts=len(jobs), files=len(claims))

    # Claimable: pending, or leased by a run that was killed (its lease ran out). A drop whose
    # every claimable contract is rejected on its own data needs no browser at all.
    failing_here = [
        k for k, item in items.items() if item.state == "pending" and not _passes(jobs[k], max_document_bytes)
    ]
    bot = ContractBot(
        RunContext(settings, ledger, run_id or new_run_id(), (portal_url or settings.portal.url).rstrip("/")),
        jobs=jobs,
        max_document_bytes=max_document_bytes,
    )
    result.runner_summary = run_sync(
        work(
            bot,
            credentials=credentials,
            contexts=workers,
            breaker=result.breaker,
            browser=ledger.claimable(BOT) > len(failing_here),
        )
    )

    found = ledger.find_many(BOT, list(jobs))
    outcomes = {key: _outcome(job, found[key]) for key, job in jobs.items()}
    # A drop with a contract still pending (the run stopped early, or another run holds it)
    # stays together in processing/: the next run takes it again whole, and reports the
    # contracts done now as done by an earlier run.
    finished_metadata_ok = all(o.outcome != "pending" for o in outcomes.values())
    for key, job in jobs.items():
        outcome = outcomes[key]
        if key in earlier:
            outcome.outcome = "already_done"
        owned = [claims[f] for f in job.files if f in claims]
        if not finished_metadata_ok:
            moved = []
        elif outcome.outcome in ("uploaded", "found_in_register", "already_done"):
            moved = [c.done() for c in owned]
        elif outcome.outcome == "rejected":
            errors = outcome.problems or [{"code": outcome.reason_code, "message": outcome.reason}]
            moved = [
                c.quarantine(outcome.reason_code or "REJECTED", outcome.reason or "", errors) for c in owned
            ]
        elif outcome.outcome == "failed":
            moved = [c.fail(outcome.reason_code or "FAILED", outcome.reason or "") for c in owned]
        else:
            moved = []
        if moved:
            outcome.stored_as = str(moved[0].relative_to(drop.root))
        result.outcomes.append(outcome)
    for meta in plan.metadata_files:
        sheet = claims.get(str(meta.path))
        if sheet is not None and sheet.outcome is None and finished_metadata_ok:
            sheet.done()

    ending = _known_contracts(ledger)
    result.report = write_contracts_report(report_dir / _report_name("contracts"), result, ending, today)
    log.info("contract uploads finished", report=str(result.report), **result.counts)
    return result


def _files_in_ledger(ledger: Ledger) -> tuple[set[str], dict[str, str]]:
    """Names in processing/ of the files of contracts a live run holds (an unexpired lease),
    and the names unfinished contracts' documents were dropped under, by processing/ name."""
    now = dt.datetime.now(dt.UTC)
    held: set[str] = set()
    dropped_as: dict[str, str] = {}
    for state in ("pending", "in_progress", "system_exception"):
        for item in ledger.list(state=state, bot=BOT):
            job = item.payload_as(ContractJob)
            if job.document_path and job.document_name:
                dropped_as[Path(job.document_path).name] = job.document_name
            if item.lease_expires_at is not None and item.lease_expires_at > now:
                held.update(Path(f).name for f in job.files)
    return held, dropped_as


def _passes(job: ContractJob, max_document_bytes: int | None) -> bool:
    try:
        check_job(job, max_document_bytes=max_document_bytes)
    except ContractRejected:
        return False
    return True


def _report_name(prefix: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{prefix}-{stamp}.xlsx"


def _dry_run_outcome(job: ContractJob, max_document_bytes: int | None) -> ContractOutcome:
    try:
        contract, sha256 = check_job(job, max_document_bytes=max_document_bytes)
    except ContractRejected as exc:
        return ContractOutcome(
            job.contract_id,
            job.source,
            job.document_name,
            "rejected",
            exc.code,
            exc.message,
            [p.as_dict() for p in exc.problems],
        )
    return ContractOutcome(
        contract.contract_id,
        job.source,
        job.document_name,
        "validated",
        sha256=sha256,
        details=_contract_result(contract, sha256, "validated", ""),
    )


def _outcome(job: ContractJob, item: WorkItem) -> ContractOutcome:
    base = ContractOutcome(job.contract_id, job.source, job.document_name, "pending", item_id=item.id)
    state = str(item.state)
    if state == "done":
        details = dict(item.result or {})
        base.outcome = str(details.get("action", "uploaded"))
        base.sha256 = details.get("sha256")
        base.details = details
    elif state == "business_exception":
        base.outcome = "rejected"
        base.reason_code, base.reason = item.reason_code, item.reason_message
        base.problems = _problems_of(job, item)
    elif state in ("failed", "needs_review"):
        base.outcome = "failed"
        base.reason_code, base.reason = item.reason_code, item.reason_message
    return base


def _problems_of(job: ContractJob, item: WorkItem) -> list[dict[str, str | None]]:
    """Every problem of a rejection (the ledger keeps one code and the joined message)."""
    try:
        check_job(job)
    except ContractRejected as exc:
        if exc.code == item.reason_code:
            return [p.as_dict() for p in exc.problems]
    except Exception:  # the file went away meanwhile: the ledger's reason is the record
        return [{"code": item.reason_code, "field": None, "message": item.reason_message}]
    return [{"code": item.reason_code, "field": None, "message": item.reason_message}]


def _known_contracts(ledger: Ledger) -> list[dict[str, Any]]:
    """Every contract the bot has put in (or found in) the register, latest details per contract ID."""
    latest: dict[str, dict[str, Any]] = {}
    for item in ledger.list(state="done", bot=BOT):
        details = dict(item.result or {})
        if details.get("contract_id") and details.get("end_date"):
            latest[str(details["contract_id"])] = details
    return list(latest.values())


# --- the report ----------------------------------------------------------------------------------


def write_contracts_report(
    path: Path, result: ContractRunResult, known: Sequence[Mapping[str, Any]], today: dt.date
) -> Path:
    """The contracts workbook: a summary with a chart of contracts ending by month, then
    sheets of the uploaded contracts, the rejected ones with every reason, and the
    contracts ending within 180 days (those within 90 highlighted).

    ``known`` are the contracts already in the register (the bot's done items); in a dry
    run they are this run's validated contracts.
    """
    from connectors.excel import ChartSpec, Column, Sheet, Summary, write_report

    def day(value: Any) -> dt.date | None:
        return dt.date.fromisoformat(str(value)) if value else None

    def amount(value: Any) -> Decimal | None:
        return Decimal(str(value)) if value not in (None, "") else None

    uploaded_rows = []
    for o in result.outcomes:
        if o.outcome in ("uploaded", "found_in_register", "already_done", "validated"):
            d = o.details
            uploaded_rows.append(
                {
                    "contract_id": o.contract_id,
                    "outcome": o.outcome.replace("_", " "),
                    "title": d.get("title"),
                    "supplier_name": d.get("supplier_name"),
                    "value_net": amount(d.get("value_net")),
                    "value_gross": amount(d.get("value_gross")),
                    "start_date": day(d.get("start_date")),
                    "end_date": day(d.get("end_date")),
                    "max_end_date": day(d.get("max_end_date")),
                    "kpis": d.get("kpis"),
                    "document": o.document,
                    "sha256": o.sha256,
                    "url": d.get("url") or None,
                }
            )
    rejected_rows = []
    for o in result.outcomes:
        if o.outcome in ("rejected", "failed", "pending"):
            problems = o.problems or [{"code": o.reason_code, "field": None, "message": o.reason}]
            for p in problems:
                rejected_rows.append(
                    {
                        "contract_id": o.contract_id,
                        "outcome": o.outcome,
                        "code": p.get("code"),
                        "field": p.get("field"),
                        "message": p.get("message"),
                        "source": o.source,
                        "document": o.document,
                        "stored_as": o.stored_as,
                    }
                )
    for line in result.quarantined_metadata:
        rejected_rows.append({"outcome": "rejected", "code": "METADATA_UNREADABLE", "message": line})

    contracts = list(known) or [o.details for o in result.outcomes if o.outcome == "validated"]
    horizon = today + dt.timedelta(days=180)
    ending_rows: list[dict[str, Any]] = []
    ending_by_month: list[tuple[dt.date, int]] = []
    for c in contracts:
        end = day(c.get("end_date"))
        if end is None or not today <= end <= horizon:
            continue
        days_left = (end - today).days
        ending_by_month.append((end.replace(day=1), days_left))
        ending_rows.append(
            {
                "contract_id": c.get("contract_id"),
                "title": c.get("title"),
                "supplier_name": c.get("supplier_name"),
                "value_gross": amount(c.get("value_gross")),
                "end_date": end,
                "max_end_date": day(c.get("max_end_date")),
                "days_left": days_left,
                "window": "within 90 days" if days_left <= 90 else "within 180 days",
            }
        )
    ending_rows.sort(key=lambda r: (r["end_date"], str(r["contract_id"])))

    months = []
    cursor = today.replace(day=1)
    while cursor <= horizon:
        months.append(cursor)
        cursor = (cursor + dt.timedelta(days=32)).replace(day=1)
    within_90 = [0] * len(months)
    within_180 = [0] * len(months)
    for month, days_left in ending_by_month:
        (within_90 if days_left <= 90 else within_180)[months.index(month)] += 1

    counts = result.counts
    figures: list[tuple[str, Any]] = [
        ("Report date", today),
        ("Uploaded", counts["uploaded"]),
        ("Found in the register", counts["found_in_register"]),
        ("Done by an earlier run", counts["already_done"]),
        ("Rejected", counts["rejected"] + len(result.quarantined_metadata)),
        ("Failed (system errors)", counts["failed"]),
        ("Contracts ending within 90 days", sum(within_90)),
        ("Contracts ending within 180 days", sum(within_90) + sum(within_180)),
    ]
    if result.dry_run:
        figures.insert(1, ("Dry run: validated, nothing uploaded", counts["validated"]))
    chart = ChartSpec(
        "Contracts ending by month",
        [m.strftime("%b %Y") for m in months],
        {"Within 90 days": within_90, "91 to 180 days": within_180},
    )
    sheets = [
        Sheet(
            "Uploaded",
            [
                Column("contract_id", "Contract ID"),
                Column("outcome", "Outcome"),
                Column("title", "Title"),
                Column("supplier_name", "Supplier"),
                Column("value_net", "Value excl. VAT", "money"),
                Column("value_gross", "Value incl. VAT", "money"),
                Column("start_date", "Start date", "date"),
                Column("end_date", "End date", "date"),
                Column("max_end_date", "Maximum end date", "date"),
                Column("kpis", "KPIs", "int"),
                Column("document", "Document"),
                Column("sha256", "SHA-256"),
                Column("url", "In the register", "link"),
            ],
            uploaded_rows,
        ),
        Sheet(
            "Rejected",
            [
                Column("contract_id", "Contract ID"),
                Column("outcome", "Outcome"),
                Column("code", "Reason code"),
                Column("field", "Field"),
                Column("message", "Reason", width=80),
                Column("source", "Source"),
                Column("document", "Document"),
                Column("stored_as", "Now in"),
            ],
            rejected_rows,
            highlight=("outcome", {"rejected", "failed"}),
        ),
        Sheet(
            "Ending soon",
            [
                Column("contract_id", "Contract ID"),
                Column("title", "Title"),
                Column("supplier_name", "Supplier"),
                Column("value_gross", "Value incl. VAT", "money"),
                Column("end_date", "End date", "date"),
                Column("max_end_date", "Maximum end date", "date"),
                Column("days_left", "Days left", "int"),
                Column("window", "Window"),
            ],
            ending_rows,
            highlight=("window", {"within 90 days"}),
        ),
    ]
    title = "Contract uploads (dry run)" if result.dry_run else "Contract uploads"
    return write_report(path, sheets, summary=Summary(title, figures, [chart]))
