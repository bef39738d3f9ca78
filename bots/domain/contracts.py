"""The rules of a contract for the register: Procurement Act 2023 contract details, checked.

Under the Procurement Act 2023 a trust publishes the details of the contracts it signs
(and, over £5m, the contract document and at least three KPIs) and keeps its contract
register right. :func:`check_contract_details` checks one contract's details: required
fields, dates in order (start <= end <= maximum end with extensions), net <= gross, the
£5m rule, supplier identifiers (GB VAT check digits, Companies House shape), CPV and ODS
shapes. Every problem is collected, so one rejection tells the officer everything that
is wrong. :class:`ContractJob` is one contract's work-item payload (its idempotency key);
:func:`register_form` and :func:`register_differences` are what the register is given
and how what it shows is compared.

Pure: no I/O. Cell text becomes dates, amounts and yes/no through the
:class:`CellReaders` the caller passes (the connectors' converters:
:data:`connectors.contract_inputs.CELL_READERS`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bots.domain.errors import BusinessError
from bots.domain.identifiers import check_companies_house, check_cpv, check_gb_vat, check_ods_code
from bots.domain.models import Contract, Procedure

__all__ = [
    "CONTRACT_ALIASES",
    "HIGH_VALUE_THRESHOLD",
    "MIN_HIGH_VALUE_KPIS",
    "CellReaders",
    "ContractJob",
    "ContractProblem",
    "ContractRejected",
    "ContractRow",
    "cell_text",
    "check_contract_details",
    "contract_fingerprint",
    "contract_result",
    "is_bare_name",
    "name_key",
    "register_differences",
    "register_form",
]

HIGH_VALUE_THRESHOLD: Final = Decimal("5000000")
"""Procurement Act 2023 s.52: above £5m (VAT included, as the Act values contracts)
a contract needs at least three KPIs, and its document is published."""
MIN_HIGH_VALUE_KPIS: Final = 3

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


def cell_text(value: Any) -> str:
    """A cell or JSON value as trimmed text (lists joined with ``; ``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "; ".join(cell_text(v) for v in value)
    return str(value).strip()


@dataclass(frozen=True, slots=True)
class CellReaders:
    """How a cell's text becomes a date, an amount (pounds, to the penny) or a yes/no;
    each gives ``None`` when the text is not one (an empty yes/no is ``False``)."""

    date: Callable[[str], dt.date | None]
    amount: Callable[[str], Decimal | None]
    flag: Callable[[str], bool | None]


def _procedure(value: str) -> str | None:
    key = value.strip().lower()
    if key.replace(" ", "_") in _PROCEDURES:
        return key.replace(" ", "_")
    return _PROCEDURE_WORDS.get(key)


def check_contract_details(
    metadata: Mapping[str, Any],
    *,
    read: CellReaders,
    document_name: str | None,
    source: str,
    high_value_threshold: Decimal = HIGH_VALUE_THRESHOLD,
    extra_problems: Iterable[ContractProblem] = (),
) -> Contract:
    """The :class:`~bots.domain.models.Contract` the metadata describes, or every reason it cannot be.

    Args:
        metadata: field -> cell value (a :class:`ContractRow` dump, or a JSON sidecar).
        document_name: the contract document's file name (``None`` when there is no file).
        read: how cell text becomes a date, an amount, a yes/no (the connectors' converters).
        source: where the metadata came from, for the message (``metadata.xlsx!Contracts row 7``).
        high_value_threshold: over this value (VAT included) the £5m rule applies.
        extra_problems: problems already found (the PDF check), reported together.

    Raises:
        ContractRejected: with every problem found.
    """
    problems = list(extra_problems)
    text = {name: cell_text(metadata.get(name)) for name in ContractRow.model_fields}

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
            amount = read.amount(text[name])
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
            day = read.date(text[name])
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
        flag = read.flag(text[name])
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


# --- the work item -----------------------------------------------------------------------------


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


def contract_fingerprint(job: ContractJob) -> str:
    """The idempotency key of a job (see :attr:`ContractJob.key`)."""
    return job.key


def name_key(name: str) -> str:
    """How file names are compared: Unicode NFC (macOS writes NFD) and case-insensitive."""
    return unicodedata.normalize("NFC", name).casefold()


def is_bare_name(name: str) -> bool:
    if not name or name in (".", "..") or "\x00" in name:
        return False
    return "/" not in name and "\\" not in name and ":" not in name


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


def register_differences(contract: Contract, shown: Mapping[str, str], *, read: CellReaders) -> list[str]:
    """What the register's contract page shows differently from ``contract`` (empty: all agree).

    ``shown`` maps the page's labels to their text (``"Contract value excluding VAT": "£1,234.50"``).
    """
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
        value = read.amount(shown.get(label) or "")
        differs(label, f"£{expected:,.2f}", value is not None and value == expected)

    def day(label: str, expected: dt.date | None) -> None:
        value = read.date(shown.get(label) or "")
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


def contract_result(contract: Contract, sha256: str, action: str, url: str) -> dict[str, Any]:
    """What the ledger keeps of a contract done (and the report shows)."""
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
