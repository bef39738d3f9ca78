"""The parameter models of the purchase-order, invoice-matching and contract-upload bots.

Each is the run form in the Prefect UI and the options of ``procbots run <bot>``
(see :mod:`bots.registry`): plain defaults (``""`` and ``0`` mean "use the
setting"), help written for the person filling in the form.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from bots.registry import BotParameters, Cli, InputPath

__all__ = [
    "ContractUploadsParameters",
    "GoodsReceiptsParameters",
    "InvoiceMatchingParameters",
    "PortalUrl",
    "PurchaseOrdersParameters",
]


def _http_or_empty(value: str) -> str:
    value = value.strip()
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r}: expected an http:// or https:// URL")
    return value


PortalUrl = Annotated[str, AfterValidator(_http_or_empty), Cli("--portal")]
"""The portal's address; empty means the ``portal.url`` setting."""

_CONTEXTS_HELP = "How many browser windows work at once. 0 uses the browser.contexts setting."
_PORTAL_HELP = "The portal's web address (http:// or https://). Leave empty to use the portal.url setting."


class PurchaseOrdersParameters(BotParameters):
    """What to raise, where, and how."""

    input: Annotated[str, Cli("--input"), InputPath("file")] = Field(
        "",
        description="The requisition workbook (.xlsx) or CSV file, one row per order line. Leave empty "
        "to take every file waiting in the drop folder.",
    )
    drop_folder: Annotated[str, Cli("--drop-folder"), InputPath("folder", must_exist=False)] = Field(
        "requisitions",
        description="The drop folder read when no file is given. Finished files move to its done/, "
        "failed/ or quarantine/ folder.",
    )
    portal_url: PortalUrl = Field("", description=_PORTAL_HELP)
    dry_run: Annotated[bool, Cli("--dry-run")] = Field(
        False, description="Check each requisition and search the portal, but create no purchase order."
    )
    contexts: Annotated[int, Cli("--contexts")] = Field(
        0,
        ge=0,
        le=32,
        description="How many browser windows work at once. 0 uses the browser.contexts setting.",
    )
    peppol: Annotated[bool, Cli("--peppol")] = Field(
        False, description="Also write a PEPPOL BIS Order 3 XML file for each purchase order."
    )
    buyer_name: Annotated[str, Cli("--buyer-name")] = Field(
        "", description="The buying organisation's name in the PEPPOL orders."
    )


# Up front, in the form's own schema: the Prefect API refuses a run of file mode without
# invoices (or orders) before the run exists, as pydantic does for the CLI.
_FILE_MODE_NEEDS_BOTH: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"orders": {"minLength": 1}}, "required": ["orders"]},
            "then": {"properties": {"invoices": {"minItems": 1}}, "required": ["invoices"]},
        },
        {
            "if": {"properties": {"invoices": {"minItems": 1}}, "required": ["invoices"]},
            "then": {"properties": {"orders": {"minLength": 1}}, "required": ["orders"]},
        },
    ]
}


class InvoiceMatchingParameters(BotParameters):
    """What to match: the portal's invoice inbox (the default) or files (orders and invoices)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_FILE_MODE_NEEDS_BOTH)

    portal_url: PortalUrl = Field("", description=_PORTAL_HELP + " Not used when files are given.")
    orders: Annotated[str, Cli("--orders"), InputPath("file")] = Field(
        "",
        description="Match files instead of the portal: the orders CSV or XLSX (po_number, line_no, ...). "
        "Needs invoices too.",
    )
    receipts: Annotated[str, Cli("--receipts"), InputPath("file")] = Field(
        "", description="With orders: the goods receipts CSV or XLSX, for 3-way matched lines."
    )
    invoices: Annotated[list[str], Cli("--invoices", rest=True), InputPath("any")] = Field(
        default_factory=list,
        description="With orders: invoice files or folders (PEPPOL UBL XML, CSV, XLSX).",
    )
    policy: Annotated[str, Cli("--policy"), InputPath("file")] = Field(
        "",
        description='A TOML file of matching tolerances over the settings, with [suppliers."GB..."] '
        "sections. Leave empty for the settings' tolerances.",
    )
    out: Annotated[str, Cli("--out"), InputPath("file", must_exist=False)] = Field(
        "",
        description="Where to write the report workbook (.xlsx). Leave empty for "
        "outbox/invoice-matching-<run>.xlsx.",
    )
    workers: Annotated[int, Cli("--workers")] = Field(
        0,
        ge=0,
        le=32,
        description="How many browser windows work at once. 0 uses the browser.contexts setting.",
    )

    @model_validator(mode="after")
    def _one_mode(self) -> InvoiceMatchingParameters:
        files = bool(self.orders or self.receipts or self.invoices)
        if files and self.portal_url:
            raise ValueError("give either portal_url (portal mode) or orders/invoices files (file mode)")
        if files and not (self.orders and self.invoices):
            raise ValueError("file mode needs both orders and invoices (receipts for 3-way lines)")
        return self

    @property
    def mode(self) -> Literal["portal", "files"]:
        """``files`` when input files are given, else ``portal``."""
        return "files" if self.orders else "portal"


class ContractUploadsParameters(BotParameters):
    """Where the contracts are and where they go."""

    folder: Annotated[str, Cli("--folder"), InputPath("folder")] = Field(
        "contracts",
        description="The drop folder: contracts arrive in its inbox/ (or straight in it) as PDFs with a "
        "metadata workbook or a JSON file each.",
    )
    portal_url: PortalUrl = Field("", description=_PORTAL_HELP)
    dry_run: Annotated[bool, Cli("--dry-run")] = Field(
        False, description="Check the contracts and report only: claim, upload and move nothing."
    )
    workers: Annotated[int, Cli("--workers")] = Field(
        0,
        ge=0,
        le=32,
        description="How many browser windows work at once. 0 uses the browser.contexts setting.",
    )
    stable_for_s: Annotated[float, Cli("--stable-for")] = Field(
        2.0,
        ge=0,
        le=600,
        description="Seconds a file must stay unchanged before it is taken (so copies in progress wait).",
    )


class GoodsReceiptsParameters(BotParameters):
    """Where the despatch advices and scans are, and which portal records them."""

    folder: Annotated[str, Cli("--folder"), InputPath("folder")] = Field(
        "goods-receipts",
        description="The folder of PEPPOL despatch advices (.xml) and point-of-use scan exports (.csv, "
        ".xlsx). Files stay there; a receipt already recorded is never recorded again.",
    )
    portal_url: PortalUrl = Field("", description=_PORTAL_HELP)
    workers: Annotated[int, Cli("--workers")] = Field(0, ge=0, le=32, description=_CONTEXTS_HELP)
