"""The portal's contract register: list and search, the upload form, and a contract's page.

Three page objects, all reached through a
:class:`~connectors.portal.pages.base.PortalSession` (which signs in again when the
session ends and asks a GET again when the portal answers 5xx):

* :class:`ContractRegisterPage` (``/contracts``): "look before you upload", by contract ID.
* :class:`ContractUploadPage` (``/contracts/new``): fills the contract-details form by
  label and attaches the PDF; the portal's inline errors come back as
  :class:`ContractRefused` (or :class:`AlreadyInRegister` for a duplicate contract ID).
* :class:`ContractDetailPage` (``/contracts/<id>``): the details as shown (label -> text;
  ``KPIs`` holds one name per line) and the stored document, downloaded byte for byte.

Example:
    >>> register = ContractRegisterPage(session)  # doctest: +SKIP
    >>> if not await register.find("CT-2026-0001"):  # doctest: +SKIP
    ...     await ContractUploadPage(session).upload(form, Path("CT-2026-0001.pdf"))
    >>> detail = await ContractDetailPage(session).open("CT-2026-0001")  # doctest: +SKIP
    >>> data = await detail.download_document()  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from bots.domain.errors import ApplicationError, PortalUnavailable, SessionExpired
from connectors.portal.pages.base import LOGIN_PATH, PortalPage

__all__ = [
    "AlreadyInRegister",
    "ContractDetailPage",
    "ContractForm",
    "ContractRefused",
    "ContractRegisterPage",
    "ContractSummary",
    "ContractUploadPage",
]

MAX_PAGES = 20
"""Result pages followed at most when searching (25 contracts each)."""
DOWNLOAD_ATTEMPTS = 3


class ContractRefused(Exception):
    """The portal refused the upload form; ``errors`` are its messages as shown."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors) or "the portal refused the contract")


class AlreadyInRegister(ContractRefused):
    """The portal says a contract with this ID is already in the register."""


@dataclass(frozen=True, slots=True)
class ContractSummary:
    """One row of the contract register."""

    contract_id: str
    title: str
    supplier: str
    value_net: str
    start_date: str
    end_date: str


@dataclass(frozen=True, slots=True)
class ContractForm:
    """What the upload form asks, as the text typed into each field (dates ``yyyy-mm-dd``)."""

    contract_id: str
    title: str
    supplier_name: str
    supplier_vat: str
    companies_house: str
    buyer_ods: str
    cpv_codes: str
    procedure: str
    value_net: str
    value_gross: str
    start_date: str
    end_date: str
    max_end_date: str
    kpis: str
    """The KPI names, one per line (the form's ``KPIs`` box); the portal counts them."""
    sme: bool


class ContractRegisterPage(PortalPage):
    """``/contracts``: the register, searchable by contract ID, title, supplier or VAT number."""

    title = "Contract register"

    async def find(self, contract_id: str) -> ContractSummary | None:
        """The register's row for exactly ``contract_id``, or ``None`` when it is not there.

        The portal's search matches parts of IDs and titles, so rows are filtered to the
        exact ID, and every result page is read.
        """
        table = self.page.get_by_role("table", name="Contracts")
        for page_no in range(1, MAX_PAGES + 1):
            # The search form's GET, sent directly: a 5xx answer can then simply be asked again.
            await self.session.open(
                "/contracts", ready=table, q=contract_id, page=str(page_no) if page_no > 1 else ""
            )
            for row in await self.read_table(table):
                if row.get("Contract ID") == contract_id:
                    return ContractSummary(
                        contract_id=contract_id,
                        title=row.get("Title", ""),
                        supplier=row.get("Supplier", ""),
                        value_net=row.get("Value excluding VAT", ""),
                        start_date=row.get("Start date", ""),
                        end_date=row.get("End date", ""),
                    )
            if not await self.page.get_by_role("link", name="Next page").count():
                return None
        raise ApplicationError(
            "SEARCH_TOO_BROAD", f"Searching the register for {contract_id} gave more than {MAX_PAGES} pages"
        )


class ContractUploadPage(PortalPage):
    """``/contracts/new``: the contract-details form with the PDF."""

    title = "Upload contract"

    async def open(self) -> None:
        await self.session.open("/contracts/new", ready=self.ready)

    async def fill(self, form: ContractForm, document: Path) -> None:
        """Types every field by its label and attaches ``document`` (field order does not matter)."""
        page = self.page
        texts = {
            "Contract ID": form.contract_id,
            "Contract title": form.title,
            "Supplier name": form.supplier_name,
            "Supplier VAT number": form.supplier_vat,
            "Companies House number": form.companies_house,
            "Buyer ODS code": form.buyer_ods,
            "CPV codes": form.cpv_codes,
            "Contract value excluding VAT": form.value_net,
            "Contract value including VAT": form.value_gross,
            "Start date": form.start_date,
            "End date": form.end_date,
            "Maximum end date (with extensions)": form.max_end_date,
            "KPIs": form.kpis,
        }
        for label, value in texts.items():
            await page.get_by_label(label, exact=True).fill(value)
        await page.get_by_label("Procedure", exact=True).select_option(value=form.procedure)
        await page.get_by_label("Supplier is an SME", exact=True).set_checked(form.sme)
        await page.get_by_label("Contract document (PDF)", exact=True).set_input_files(document)

    async def upload(self, form: ContractForm, document: Path) -> None:
        """Opens the form, fills it, sends it, and waits for the contract's page.

        Raises:
            AlreadyInRegister: the portal has a contract with this ID (nothing was saved).
            ContractRefused: the portal refused a field (its messages in ``errors``).
            bots.domain.errors.PortalUnavailable: the portal answered 5xx; the upload may be saved.
            bots.domain.errors.SessionExpired: the session ended; the upload was not applied.
        """
        await self.open()
        await self.fill(form, document)
        async with self.session.submitting(f"the upload of contract {form.contract_id}") as answer:
            await self.page.get_by_role("button", name="Upload contract").click()
        response = answer[0]
        status = response.status if response is not None else 0
        if status == 422:
            alert = self.page.get_by_role("alert")
            await self.session.wait_visible(alert, "the upload form's errors")
            errors = [e.strip() for e in await alert.get_by_role("listitem").all_inner_texts() if e.strip()]
            if any("already in the register" in e for e in errors):
                raise AlreadyInRegister(errors)
            raise ContractRefused(errors)
        if status >= 400:
            raise ApplicationError(
                "UPLOAD_NOT_ACCEPTED",
                f"The portal answered HTTP {status} to the upload of {form.contract_id}",
            )
        status_line = self.page.get_by_role("status").filter(has_text=f"Contract {form.contract_id} uploaded")
        await self.session.wait_visible(status_line, f"the confirmation of contract {form.contract_id}")


class ContractDetailPage(PortalPage):
    """``/contracts/<id>``: a contract's details and its stored document."""

    async def open(self, contract_id: str) -> ContractDetailPage:
        self.title = f"Contract {contract_id}"
        await self.session.open(f"/contracts/{quote(contract_id, safe='')}", ready=self.ready)
        return self

    def showing(self, contract_id: str) -> bool:
        """True when the browser is on this contract's page already (after an upload)."""
        return self.session.path() == f"/contracts/{quote(contract_id, safe='')}"

    async def details(self) -> dict[str, str]:
        """The details as shown: label (``"Contract value excluding VAT"``) -> text.

        A list (``KPIs``) reads as its items' text, one per line.
        """
        terms = self.page.get_by_role("term")
        pairs: list[list[str]] = await terms.evaluate_all(
            """(terms) => terms.map((dt) => {
                let dd = dt.nextElementSibling;
                while (dd && dd.tagName !== "DD") dd = dd.nextElementSibling;
                return [dt.innerText.trim(), dd ? dd.innerText.trim() : ""];
            })"""
        )
        shown: dict[str, str] = {}
        for label, text in pairs:
            shown.setdefault(label, text)
        return shown

    async def download_document(self) -> bytes:
        """The stored document, byte for byte, through the page's download link.

        Fetched with the browser context's own session cookie (no second sign-in).

        Raises:
            bots.domain.errors.PortalUnavailable: the download answered 5xx every time.
            bots.domain.errors.SessionExpired: the session ended and signing in again did not help.
        """
        link = self.page.get_by_role("link", name="Download contract document")
        href = await link.get_attribute("href")
        if not href:
            raise ApplicationError("NO_DOWNLOAD_LINK", f"{self.title}: the page has no document link")
        url = urljoin(self.page.url, href)
        expired = False
        for _attempt in range(DOWNLOAD_ATTEMPTS):
            response = await self.page.context.request.get(url, fail_on_status_code=False)
            try:
                expired = urlsplit(response.url).path == LOGIN_PATH
                if response.status >= 500:
                    continue
                if expired:
                    await self.session.login()
                    continue
                content_type = response.headers.get("content-type", "")
                if response.status != 200 or "application/pdf" not in content_type:
                    raise ApplicationError(
                        "DOWNLOAD_FAILED",
                        f"{self.title}: the download answered HTTP {response.status} ({content_type})",
                    )
                return await response.body()
            finally:
                await response.dispose()
        if expired:
            raise SessionExpired(
                "SESSION_EXPIRED", f"{self.title}: the session kept ending during the download"
            )
        raise PortalUnavailable(
            "PORTAL_UNAVAILABLE", f"{self.title}: the document download kept answering 5xx"
        )
