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
from typing import Any, Final, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bots.errors import BusinessError
from bots.identifiers import check_companies_house, check_cpv, check_gb_vat, check_ods_code
from bots.models import Contract, Procedure, money

__all__ = [
    "BOT",
    "CONTRACT_ALIASES",
    "HIGH_VALUE_THRESHOLD",
    "MIN_HIGH_VALUE_KPIS",
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
    """The :class:`~bots.models.Contract` the metadata describes, or every reason it cannot be.

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

    kpis = [k.strip() for k in _LIST_SPLIT.split(text["kpis"]) if k.strip()]
    if not kpis and text["kpi_count"]:
        count = text["kpi_count"]
        if not count.isdigit() or int(count) > 100:
            problem("INVALID_VALUE", "kpi_count", f"the number of KPIs {count!r} is not a whole number")
        else:
            # The sheet gives only how many; the register records the count, names follow later.
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
            documents[f.name.casefold()] = f

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
            document = documents.get(wanted.casefold())
            if document is None:
                problems.append(
                    ContractProblem(
                        "FILE_MISSING", f"the document {wanted!r} is not in the folder", "document"
                    )
                )
            elif wanted.casefold() in claimed:
                problems.append(
                    ContractProblem(
                        "DUPLICATE_DOCUMENT",
                        f"the document {wanted!r} is already used by {claimed[wanted.casefold()]}",
                        "document",
                    )
                )
                document = None
            else:
                claimed[wanted.casefold()] = source
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
