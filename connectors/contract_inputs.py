"""The contract upload bot's inputs: a drop of signed PDFs and their details becomes contract jobs.

Staff drop the signed PDFs in a folder together with their details: a metadata workbook
or CSV (one row per contract) or a JSON sidecar per PDF (``CT-2026-0001.pdf`` +
``CT-2026-0001.json``). :func:`plan_batch` pairs the details with the files: a row whose
file is missing, a file no row describes, a second row with the same contract ID, a file
name that points outside the folder, each is a problem of that contract.
:func:`check_job` then checks the file itself (a real, complete, unencrypted PDF within
the size limit: :mod:`connectors.pdf`) and the details (:func:`validate_contract`, the
rules of :mod:`bots.domain.contracts` with this package's cell converters).

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from bots.domain.contracts import (
    CONTRACT_ALIASES,
    HIGH_VALUE_THRESHOLD,
    CellReaders,
    ContractJob,
    ContractProblem,
    ContractRejected,
    ContractRow,
    cell_text,
    check_contract_details,
    is_bare_name,
    name_key,
    register_differences,
)
from bots.domain.models import Contract, money
from connectors import csvfiles, excel
from connectors.pdf import DEFAULT_MAX_BYTES, PdfProblem, check_pdf
from connectors.rows import ConversionError, SpreadsheetError, normalise_header, to_bool, to_date, to_decimal

__all__ = [
    "CELL_READERS",
    "METADATA_SUFFIXES",
    "BatchFile",
    "BatchPlan",
    "adopt_loose_files",
    "check_job",
    "compare_register_details",
    "plan_batch",
    "read_metadata_file",
    "read_sidecar",
    "validate_contract",
]

METADATA_SUFFIXES: Final = (".xlsx", ".xlsm", ".csv")
SIDECAR_SUFFIX: Final = ".json"
MAX_SIDECAR_BYTES: Final = 256 * 1024


def _as_date(value: str) -> dt.date | None:
    try:
        return to_date(value)
    except ConversionError:
        return None


def _as_amount(value: str) -> Decimal | None:
    try:
        amount = to_decimal(value)
    except ConversionError:
        return None
    return money(amount) if amount is not None and amount.is_finite() else None


def _as_bool(value: str) -> bool | None:
    if not value:
        return False
    try:
        return to_bool(value)
    except ConversionError:
        return None


CELL_READERS: Final = CellReaders(date=_as_date, amount=_as_amount, flag=_as_bool)
"""Cell text to date (dd/mm/yyyy, ISO...), amount (``£1,234.50``) and yes/no, as the row readers convert."""


def validate_contract(
    metadata: Mapping[str, Any],
    *,
    document_name: str | None,
    source: str,
    high_value_threshold: Decimal = HIGH_VALUE_THRESHOLD,
    extra_problems: Iterable[ContractProblem] = (),
) -> Contract:
    """The :class:`~bots.domain.models.Contract` the metadata describes, or every reason it cannot be
    (:func:`bots.domain.contracts.check_contract_details` with :data:`CELL_READERS`).

    Raises:
        ContractRejected: with every problem found.
    """
    return check_contract_details(
        metadata,
        read=CELL_READERS,
        document_name=document_name,
        source=source,
        high_value_threshold=high_value_threshold,
        extra_problems=extra_problems,
    )


def compare_register_details(contract: Contract, shown: Mapping[str, str]) -> list[str]:
    """What the register's contract page shows differently from ``contract`` (empty: all agree).

    ``shown`` maps the page's labels to their text (``"Contract value excluding VAT": "£1,234.50"``).
    """
    return register_differences(contract, shown, read=CELL_READERS)


# --- a batch of dropped files: details paired with documents -------------------------------------


@dataclass(frozen=True, slots=True)
class BatchFile:
    """One file of a drop: the name it was dropped under and where it is now (claimed)."""

    name: str
    path: Path


@dataclass(slots=True)
class BatchPlan:
    """The contracts of one drop, and the metadata files with a problem of their own."""

    jobs: list[ContractJob] = field(default_factory=list)
    metadata_files: list[BatchFile] = field(default_factory=list)
    unreadable: dict[str, ContractProblem] = field(default_factory=dict)
    """Metadata file path -> why it could not be read at all (it goes to quarantine)."""


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


def _normalise_keys(data: Mapping[str, Any]) -> dict[str, Any]:
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
            documents[name_key(f.name)] = f

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
        contract_id = cell_text((details or {}).get("contract_id"))
        wanted = cell_text((details or {}).get("document"))
        if not wanted and owner is not None:
            stem = owner.name[: -len(SIDECAR_SUFFIX)]
            wanted = stem if Path(stem).suffix else f"{stem}.pdf"
        elif not wanted and contract_id:
            wanted = f"{contract_id}.pdf"
        document: BatchFile | None = None
        if wanted and not is_bare_name(wanted):
            problems.append(
                ContractProblem(
                    "UNSAFE_FILE_NAME", f"the document name {wanted!r} is not a plain file name", "document"
                )
            )
        elif wanted:
            document = documents.get(name_key(wanted))
            if document is None:
                problems.append(
                    ContractProblem(
                        "FILE_MISSING", f"the document {wanted!r} is not in the folder", "document"
                    )
                )
            elif name_key(wanted) in claimed:
                problems.append(
                    ContractProblem(
                        "DUPLICATE_DOCUMENT",
                        f"the document {wanted!r} is already used by {claimed[name_key(wanted)]}",
                        "document",
                    )
                )
                document = None
            else:
                claimed[name_key(wanted)] = source
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


def adopt_loose_files(root: Path) -> list[Path]:
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
