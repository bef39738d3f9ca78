"""PEPPOL BIS 3 documents (UBL 2.1): read invoices, credit notes, orders and despatch
advices into the domain models, check their EN 16931 arithmetic, and write a PEPPOL
BIS Order 3 from a :class:`~bots.domain.models.PurchaseOrder`.

Suppliers send what they send. Parsing goes through :mod:`defusedxml` with DTDs
refused, so no XXE, no entity expansion ("billion laughs") and no external fetches,
and it is bounded in bytes and elements. A document that cannot be read raises
:class:`PeppolError` naming the file and the element (``base-example.xml:
/Invoice/cac:InvoiceLine[2]/cbc:InvoicedQuantity: expected a number, got 'x'``).
A document that reads but does not add up, or carries an identifier with a bad check
digit, reads fine with :attr:`PeppolDocument.findings` (EN 16931 rule ids such as
``BR-CO-10``, or ``INVALID_GB_VAT``): the official PEPPOL examples themselves carry
invalid check digits, and deciding what to do with a finding is the matcher's job.

Amounts stay :class:`~decimal.Decimal` exactly as the document states them.

Example:
    >>> doc = read_document("tests/fixtures/peppol/invoice/base-example.xml")
    >>> doc.document_type, doc.totals.payable
    ('invoice', Decimal('1656.25'))
    >>> to_json_shape(doc)["lines"][1]["quantity"]
    '-3'
    >>> sorted(f.code for f in doc.findings)  # the official example's bad check digits
    ['INVALID_GB_VAT', 'INVALID_GLN', 'INVALID_GLN']

The package is split by role: :mod:`~connectors.peppol.document` (namespaces, errors, the
document as read, its JSON shape), :mod:`~connectors.peppol.read` (parsing and reading),
:mod:`~connectors.peppol.rules` (EN 16931 arithmetic) and :mod:`~connectors.peppol.write`
(the Order writer). Import from ``connectors.peppol``.
"""

from __future__ import annotations

from connectors.peppol.document import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ELEMENTS,
    NAMESPACES,
    ORDER_CUSTOMIZATION_ID,
    ORDER_PROFILE_ID,
    DocumentType,
    Finding,
    PeppolDocument,
    PeppolError,
    PeppolLine,
    StatedTotals,
    to_json_shape,
)
from connectors.peppol.read import read_document
from connectors.peppol.write import write_order

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ELEMENTS",
    "NAMESPACES",
    "ORDER_CUSTOMIZATION_ID",
    "ORDER_PROFILE_ID",
    "DocumentType",
    "Finding",
    "PeppolDocument",
    "PeppolError",
    "PeppolLine",
    "StatedTotals",
    "read_document",
    "to_json_shape",
    "write_order",
]
