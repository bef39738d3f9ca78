"""Deterministic seed data of an NHS trust's procurement: the sandbox portal's history.

:func:`generate` builds, from a seed and a number of orders, the trust's suppliers
(valid GB VAT numbers), catalogue (valid GTIN-13s), cost centres and ODS sites, then
purchase orders, goods receipts (partial deliveries included), supplier invoices
(exact matches, over-priced, over-billed, duplicates, credit notes, no PO) and the
contract register. Reference data depends on the seed only, so the same seed with
another number of orders names the same suppliers, items and sites.

The same dataset fills the portal database (:func:`write_database`) and the input
files the bots read (:mod:`sandbox.datafiles`), plus *new* requisitions and contracts
that are not yet in the portal, for the bots to enter. The records are in
:mod:`sandbox.seed_records`, the portal database in :mod:`sandbox.seed_database`.

Example:
    >>> data = generate(seed=7, orders=20)
    >>> data.orders[0].po_number
    'PO-000001'
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from zoneinfo import ZoneInfo

from sandbox.pdf import text_pdf
from sandbox.seed_database import CONTRACT_COLUMNS, CONTRACT_PLACEHOLDERS, contract_row, write_database
from sandbox.seed_records import (
    ANCHOR,
    ZERO,
    ContractRecord,
    Dataset,
    Delivery,
    InvoiceRecord,
    Item,
    Order,
    OrderLine,
    Receipt,
    RequisitionLine,
    Supplier,
    gb_vat,
    gtin13,
    vat_is_valid,
)
from sandbox.ubl import Buyer, UblDocument, UblLine, money

__all__ = [
    "ANCHOR",
    "AWAITING_RECEIPT",
    "CONTRACT_COLUMNS",
    "CONTRACT_PLACEHOLDERS",
    "SCENARIOS",
    "Dataset",
    "contract_row",
    "gb_vat",
    "generate",
    "gtin13",
    "vat_is_valid",
    "write_database",
]

SCENARIOS = ("exact", "over_priced", "over_billed", "duplicate", "credit_note", "no_po")
AWAITING_RECEIPT = "awaiting_receipt"
"""Scenario of an invoice for goods delivered but not yet receipted in the portal: matching
holds it NOT_RECEIVED until the goods receipt is recorded."""
_SCENARIO_WEIGHTS = (70, 8, 7, 6, 6, 3)


# --- reference data ------------------------------------------------------------------

_PLACES = (
    "Northwick",
    "Medway",
    "Pennine",
    "Severn",
    "Wessex",
    "Cheviot",
    "Mersey",
    "Trent",
    "Chiltern",
    "Fenland",
    "Solent",
    "Tamar",
    "Humber",
    "Wolds",
    "Mendip",
    "Cotswold",
    "Exe",
    "Tyne",
    "Wye",
    "Ribble",
    "Calder",
    "Dales",
    "Brecon",
    "Cheshire",
    "Kennet",
    "Avon",
    "Lune",
    "Orwell",
    "Stour",
    "Ouse",
)
_SECTORS = (
    "Surgical",
    "Clinical Supplies",
    "Healthcare",
    "Medical",
    "Diagnostics",
    "Wound Care",
    "Orthopaedics",
    "Hospital Supplies",
    "Biomedical Services",
    "Care Products",
)
_SUFFIXES = ("Ltd", "Limited", "plc", "UK Ltd")
_CITIES = (
    ("Leeds", "LS"),
    ("Bristol", "BS"),
    ("Manchester", "M"),
    ("Nottingham", "NG"),
    ("Exeter", "EX"),
    ("Reading", "RG"),
    ("Norwich", "NR"),
    ("Newcastle upon Tyne", "NE"),
    ("Sheffield", "S"),
    ("Leicester", "LE"),
)
_STREETS = ("Commerce Way", "Mill Lane", "Station Road", "Enterprise Park", "Riverside Drive", "Forge Road")

# category: (description templates, price range in pence, VAT rate, CPV code, is a service)
_CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[int, int], str, str, bool]] = {
    "gloves": (
        (
            "Nitrile examination gloves, powder-free, {size}, box of 100",
            "Latex-free surgical gloves, sterile, size {glove}, pair",
        ),
        (320, 1450),
        "20",
        "33141420-0",
        False,
    ),
    "syringes": (
        ("Luer-lock syringe {ml} ml, sterile, box of 100", "Hypodermic needle {gauge}G, box of 100"),
        (650, 2400),
        "20",
        "33141310-6",
        False,
    ),
    "dressings": (
        (
            "Foam dressing {cm} x {cm} cm, box of 10",
            "Non-woven swabs {cm} x {cm} cm, pack of 100",
            "Transparent film dressing {cm} x {cm} cm, box of 50",
        ),
        (410, 3800),
        "20",
        "33141110-4",
        False,
    ),
    "catheters": (
        (
            "Foley catheter {fr}Ch, 2-way, 10 ml balloon",
            "IV cannula {gauge}G with injection port, box of 50",
            "Urine drainage bag 2 litre, box of 10",
        ),
        (180, 5600),
        "20",
        "33141200-2",
        False,
    ),
    "protective": (
        (
            "Fluid-resistant surgical mask Type IIR, box of 50",
            "Disposable apron, white, roll of 200",
            "Sharps container {litre} litre, yellow lid",
        ),
        (250, 1900),
        "20",
        "18143000-3",
        False,
    ),
    "continence": (
        ("Incontinence pad, maxi, pack of 28", "All-in-one continence brief, {size}, pack of 14"),
        (520, 1650),
        "0",
        "33771000-5",
        False,
    ),
    "nutrition": (
        ("Semi-skimmed milk, 2 pint", "Oral nutritional supplement, 200 ml, pack of 24"),
        (95, 4200),
        "0",
        "15511000-3",
        False,
    ),
    "energy": (("Heating oil, 1,000 litres",), (65000, 98000), "5", "09135000-4", False),
    "maintenance": (
        (
            "Quarterly service visit: infusion pumps",
            "Annual calibration: weighing scales",
            "Planned preventive maintenance: patient monitors",
        ),
        (8500, 145000),
        "20",
        "50421000-2",
        True,
    ),
    "waste": (
        ("Clinical waste collection, per 770 l bin", "Confidential waste shredding, per sack"),
        (1100, 4500),
        "20",
        "90524000-6",
        True,
    ),
}
_SIZES = ("small", "medium", "large", "extra large")
_DEPARTMENTS = (
    "Theatres",
    "Emergency Department",
    "Maternity",
    "Pathology",
    "Radiology",
    "Pharmacy",
    "Estates",
    "Catering",
    "Critical Care",
    "Cardiology",
    "Oncology",
    "Paediatrics",
    "Outpatients",
    "Renal Unit",
    "Ophthalmology",
    "Community Nursing",
    "Sterile Services",
    "Endoscopy",
    "Stroke Unit",
    "Orthopaedics",
)
_SITES = (
    ("RX101", "Wessex Valley General Hospital"),
    ("RX102", "St Aldhelm's Community Hospital"),
    ("RX103", "Kennet Road Treatment Centre"),
    ("RX104", "Marlow House Mental Health Unit"),
    ("RX1AB", "Central Stores and Distribution"),
    ("RX1AC", "Pathology Hub, Unit 4 Avon Park"),
    ("RX1AD", "Wessex Valley Maternity Unit"),
    ("RX1AE", "Eastgate Outpatients Centre"),
)
_PROCEDURES = ("open", "competitive_flexible", "direct_award", "framework_call_off", "below_threshold")
KPI_NAMES = (
    "On-time delivery in full",
    "Order fill rate",
    "Invoice accuracy",
    "Emergency order response within 4 hours",
    "Complaints resolved within 10 working days",
    "Social value commitments delivered",
    "Carbon reduction plan milestones met",
    "Product recalls notified within 24 hours",
    "Service availability",
    "Modern slavery statement reviewed annually",
)
"""What NHS supply contracts commonly measure; seeded contracts take a few of these."""


def _kpi_names(contract_id: str, count: int) -> tuple[str, ...]:
    # A generator of its own per contract, so naming KPIs leaves the dataset's main
    # random stream (and so every seeded order, invoice and contract) as it was.
    return tuple(random.Random(f"kpis-{contract_id}").sample(KPI_NAMES, count))


def _reference_data(seed: int) -> tuple[Buyer, list[Supplier], list[Item], list[tuple[str, str]]]:
    rng = random.Random(f"procbots-reference-{seed}")
    buyer = Buyer(
        name="Wessex Valley NHS Foundation Trust",
        vat=gb_vat(f"{rng.randrange(1_000_000, 9_999_999)}"),
        gln=gtin13("501234" + f"{rng.randrange(0, 999_999):06d}"),
        ods="RX1",
        street="Wessex Valley General Hospital, Hospital Road",
        city="Salisbury",
        postcode="SP2 8BJ",
    )
    names: set[str] = set()
    suppliers: list[Supplier] = []
    items: list[Item] = []
    categories = list(_CATEGORIES)
    while len(suppliers) < 60:
        if len(suppliers) == 7:
            name = "Barnes & Lowe Medical Ltd"  # an ampersand keeps escaping honest in HTML, CSV and XML
        else:
            name = f"{rng.choice(_PLACES)} {rng.choice(_SECTORS)} {rng.choice(_SUFFIXES)}"
        if name in names:
            continue
        names.add(name)
        n = len(suppliers) + 1
        city, area = rng.choice(_CITIES)
        scheme = "97" if rng.random() < 0.3 else "9755"
        vat = gb_vat(f"{rng.randrange(1_000_000, 9_999_999)}", scheme)
        companies_house = (
            f"SC{rng.randrange(100_000, 999_999)}"
            if rng.random() < 0.1
            else f"{rng.randrange(1, 13_999_999):08d}"
        )
        initials = "".join(w[0] for w in name.split()[:3] if w[0].isalpha()).upper()
        supplier = Supplier(
            supplier_id=f"SUP-{n:05d}",
            name=name,
            vat=vat,
            companies_house=companies_house,
            street=f"{rng.randrange(1, 240)} {rng.choice(_STREETS)}",
            city=city,
            postcode=f"{area}{rng.randrange(1, 30)} {rng.randrange(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
            email=f"orders@{name.split()[0].lower()}-{n}.example.co.uk",
            sme=rng.random() < 0.45,
            invoice_prefix=f"{initials}{n:02d}",
        )
        suppliers.append(supplier)
        company_prefix = f"50{rng.randrange(10_000, 99_999)}"
        own = rng.sample(categories, 3)
        for k in range(8):
            cat = own[k % 3]
            templates, (lo, hi), rate, _cpv, service = _CATEGORIES[cat]
            description = rng.choice(templates).format(
                size=rng.choice(_SIZES),
                glove=rng.choice(("6.5", "7", "7.5", "8", "8.5")),
                ml=rng.choice((2, 5, 10, 20, 50)),
                gauge=rng.choice((18, 20, 21, 22, 23, 25)),
                cm=rng.choice((5, 7, 10, 15, 20)),
                fr=rng.choice((12, 14, 16, 18)),
                litre=rng.choice((1, 4, 7, 11)),
            )
            if service:
                code, gtin = f"SVC-{n:03d}{k:02d}", None
            else:
                gtin = gtin13(company_prefix + f"{k:05d}")
                code = gtin
            items.append(
                Item(
                    code=code,
                    gtin=gtin,
                    description=description,
                    supplier_id=supplier.supplier_id,
                    unit_price=(Decimal(rng.randrange(lo, hi)) / 100).quantize(Decimal("0.01")),
                    vat_rate=Decimal(rate),
                    receipt_required=not service,
                    category=cat,
                )
            )
    cost_centres = [(f"CC{4100 + 7 * i}", dept) for i, dept in enumerate(_DEPARTMENTS)]
    return buyer, suppliers, items, cost_centres


# --- transactions --------------------------------------------------------------------


def generate(seed: int = 1, orders: int = 200, new_requisitions: int = 20, new_contracts: int = 8) -> Dataset:
    """The whole dataset for one seed; ``orders`` scales from 10 to 100,000+."""
    buyer, suppliers, items, cost_centres = _reference_data(seed)
    data = Dataset(
        seed=seed,
        buyer=buyer,
        suppliers=suppliers,
        items=items,
        cost_centres=cost_centres,
        sites=list(_SITES),
    )
    catalogue: dict[str, list[Item]] = {}
    for item in items:
        catalogue.setdefault(item.supplier_id, []).append(item)
    rng = random.Random(f"procbots-orders-{seed}")
    supplier_weights = [1 + (i % 7) for i in range(len(suppliers))]  # some suppliers trade far more
    supplier_picks = rng.choices(suppliers, weights=supplier_weights, k=orders)
    span_s = 365 * 86400
    receipt_id = 0
    invoice_seq: dict[str, int] = {}
    invoiced = 0
    cc_codes = [c for c, _ in cost_centres]
    site_codes = [s for s, _ in _SITES]
    for i in range(orders):
        supplier = supplier_picks[i]
        created = ANCHOR - dt.timedelta(
            seconds=span_s * (orders - i) / max(orders, 1) + rng.randrange(0, 600)
        )
        n_lines = rng.choices((1, 2, 3, 4, 5), weights=(35, 30, 20, 10, 5))[0]
        picked = rng.sample(catalogue[supplier.supplier_id], n_lines)
        lines = [
            OrderLine(
                line_no=k + 1,
                item_code=it.code,
                description=it.description,
                quantity=Decimal(rng.randrange(1, 4) if not it.receipt_required else rng.randrange(1, 60)),
                unit_price=it.unit_price,
                vat_rate=it.vat_rate,
                receipt_required=it.receipt_required,
                gtin=it.gtin,
            )
            for k, it in enumerate(picked)
        ]
        order = Order(
            id=i + 1,
            po_number=f"PO-{i + 1:06d}",
            requisition_ref=f"REQ-2025-{i + 1:06d}",
            supplier_id=supplier.supplier_id,
            cost_centre=rng.choice(cc_codes),
            delivery_site=rng.choice(site_codes),
            need_by=(created + dt.timedelta(days=rng.randrange(5, 40))).date(),
            created_at=created,
            lines=lines,
        )
        data.orders.append(order)

        # Goods receipts: full, split over two deliveries, partial, or not yet.
        age_days = (ANCHOR - created).days
        first: list[tuple[int, Decimal]] = []
        second: list[tuple[int, Decimal]] = []
        received: dict[int, Decimal] = {}
        goods = [ln for ln in lines if ln.receipt_required]
        for ln in goods:
            if age_days < 7:
                continue
            r = rng.random()
            if r < 0.64:
                first.append((ln.line_no, ln.quantity))
                received[ln.line_no] = ln.quantity
            elif r < 0.76 and ln.quantity > 1:
                part = Decimal(rng.randrange(1, int(ln.quantity)))
                first.append((ln.line_no, part))
                second.append((ln.line_no, ln.quantity - part))
                received[ln.line_no] = ln.quantity
            elif r < 0.88 and ln.quantity > 1:
                part = Decimal(rng.randrange(1, int(ln.quantity)))
                first.append((ln.line_no, part))
                received[ln.line_no] = part
        delivered = created.date() + dt.timedelta(days=rng.randrange(2, 10))
        last_delivery = delivered
        for batch, when in (
            (first, delivered),
            (second, delivered + dt.timedelta(days=rng.randrange(3, 15))),
        ):
            if batch:
                receipt_id += 1
                data.receipts.append(
                    Receipt(receipt_id, f"GRN-{receipt_id:06d}", order.id, order.po_number, when, batch)
                )
                last_delivery = when
        if goods:
            if not received:
                order.status = "open"
            elif all(received.get(ln.line_no) == ln.quantity for ln in goods):
                order.status = "received"
            else:
                order.status = "part_received"

        # Supplier invoices for what was delivered (goods) or done (services).
        if age_days < 14 or rng.random() >= 0.5:
            continue
        inv_lines = [
            (ln, received.get(ln.line_no, ZERO) if ln.receipt_required else ln.quantity)
            for ln in lines
            if not ln.receipt_required or received.get(ln.line_no)
        ]
        if not inv_lines:
            continue
        # The first invoiced orders walk through every scenario so even 10 orders show each one.
        if invoiced < len(SCENARIOS):
            scenario = SCENARIOS[invoiced]
        else:
            scenario = rng.choices(SCENARIOS, weights=_SCENARIO_WEIGHTS)[0]
        invoiced += 1
        ubl_lines = [
            UblLine(k + 1, qty, ln.unit_price, ln.vat_rate, ln.description, ln.item_code, ln.gtin, ln.line_no)
            for k, (ln, qty) in enumerate(inv_lines)
        ]
        target = rng.choice(ubl_lines)
        if scenario == "over_priced":
            raised = max(
                target.unit_price * Decimal(rng.randrange(110, 126)) / 100,
                target.unit_price + Decimal("5.01"),
            )
            target.unit_price = money(raised)
        elif scenario == "over_billed":
            target.quantity += rng.randrange(1, 6)
        seq = invoice_seq.get(supplier.supplier_id, 0) + 1
        invoice_seq[supplier.supplier_id] = seq
        number = f"{supplier.invoice_prefix}-{seq:05d}"
        issue = last_delivery + dt.timedelta(days=rng.randrange(0, 6))
        received_at = dt.datetime.combine(issue + dt.timedelta(days=1), dt.time(9), dt.UTC) + dt.timedelta(
            minutes=rng.randrange(0, 480)
        )
        doc = _document(
            "invoice",
            number,
            issue,
            supplier,
            buyer,
            order,
            ubl_lines,
            order.po_number if scenario != "no_po" else None,
        )
        record = InvoiceRecord(
            number,
            "invoice",
            supplier.supplier_id,
            supplier.vat,
            doc.order_reference,
            issue,
            received_at,
            scenario,
            None,
            doc,
        )
        data.invoices.append(record)
        if scenario == "duplicate":
            later = received_at + dt.timedelta(days=rng.randrange(3, 11))
            data.invoices.append(
                InvoiceRecord(
                    number,
                    "invoice",
                    supplier.supplier_id,
                    supplier.vat,
                    order.po_number,
                    issue,
                    later,
                    "duplicate",
                    None,
                    doc,
                )
            )
        elif scenario == "credit_note":
            credited = rng.choice(ubl_lines)
            cn_qty = Decimal(rng.randrange(1, int(credited.quantity) + 1))
            cn_line = UblLine(
                1,
                cn_qty,
                credited.unit_price,
                credited.vat_rate,
                credited.item_name,
                credited.seller_item_id,
                credited.gtin,
                credited.order_line_ref,
            )
            cn_issue = issue + dt.timedelta(days=rng.randrange(5, 20))
            cn = _document(
                "credit_note",
                f"CN-{number}",
                cn_issue,
                supplier,
                buyer,
                order,
                [cn_line],
                order.po_number,
                billing=(number, issue),
            )
            data.invoices.append(
                InvoiceRecord(
                    cn.number,
                    "credit_note",
                    supplier.supplier_id,
                    supplier.vat,
                    order.po_number,
                    cn_issue,
                    dt.datetime.combine(cn_issue + dt.timedelta(days=1), dt.time(10), dt.UTC),
                    "credit_note",
                    number,
                    cn,
                )
            )
    _awaiting_receipt(data, buyer, invoice_seq, random.Random(f"procbots-awaiting-{seed}"))
    data.invoices.sort(key=lambda inv: inv.received_at)
    for k, inv in enumerate(data.invoices, start=1):
        inv.id = k
    data.contracts = _contracts(seed, "CT-2025", 30, data, random.Random(f"procbots-contracts-{seed}"))
    data.new_contracts = _contracts(
        seed, "CT-2026", new_contracts, data, random.Random(f"procbots-new-ct-{seed}")
    )
    data.new_requisitions = _requisitions(
        data, catalogue, new_requisitions, random.Random(f"procbots-req-{seed}")
    )
    return data


def _awaiting_receipt(data: Dataset, buyer: Buyer, invoice_seq: dict[str, int], rng: random.Random) -> None:
    """Invoices for the goods of every open order two weeks old or more: delivered and
    billed, never receipted. Two in three of those deliveries come with a despatch
    advice or point-of-use scans (``Delivery.channel``); the rest do not."""
    suppliers = data.suppliers_by_id
    for order in data.orders:
        age_days = (ANCHOR - order.created_at).days
        goods = [ln for ln in order.lines if ln.receipt_required]
        if order.status != "open" or not goods or age_days < 14:
            continue
        supplier = suppliers[order.supplier_id]
        despatched = order.created_at.date() + dt.timedelta(days=rng.randrange(2, 8))
        issue = despatched + dt.timedelta(days=rng.randrange(0, 4))
        seq = invoice_seq.get(supplier.supplier_id, 0) + 1
        invoice_seq[supplier.supplier_id] = seq
        number = f"{supplier.invoice_prefix}-{seq:05d}"
        ubl_lines = [
            UblLine(k + 1, ln.quantity, ln.unit_price, ln.vat_rate, ln.description, ln.item_code, ln.gtin,
                    ln.line_no)
            for k, ln in enumerate(goods)
        ]  # fmt: skip
        doc = _document("invoice", number, issue, supplier, buyer, order, ubl_lines, order.po_number)
        received_at = dt.datetime.combine(issue + dt.timedelta(days=1), dt.time(9), dt.UTC) + dt.timedelta(
            minutes=rng.randrange(0, 480)
        )
        data.invoices.append(
            InvoiceRecord(
                number,
                "invoice",
                supplier.supplier_id,
                supplier.vat,
                order.po_number,
                issue,
                received_at,
                AWAITING_RECEIPT,
                None,
                doc,
            )
        )
        channel = ("despatch", "despatch", "scan", "none", "despatch", "none")[len(data.deliveries) % 6]
        data.deliveries.append(
            Delivery(
                order.po_number, supplier.supplier_id, f"DESP-{order.id:06d}", despatched, goods, channel
            )
        )


def _document(
    kind: str,
    number: str,
    issue: dt.date,
    supplier: Supplier,
    buyer: Buyer,
    order: Order,
    lines: list[UblLine],
    po_number: str | None,
    billing: tuple[str, dt.date] | None = None,
) -> UblDocument:
    return UblDocument(
        document_type=kind,
        number=number,
        issue_date=issue,
        supplier_name=supplier.name,
        supplier_vat=supplier.vat,
        supplier_companies_house=supplier.companies_house,
        supplier_street=supplier.street,
        supplier_city=supplier.city,
        supplier_postcode=supplier.postcode,
        buyer=buyer,
        order_reference=po_number,
        buyer_reference=order.cost_centre,
        lines=lines,
        billing_reference=billing[0] if billing else None,
        billing_reference_date=billing[1] if billing else None,
    )


def _contracts(seed: int, prefix: str, count: int, data: Dataset, rng: random.Random) -> list[ContractRecord]:
    out = []
    by_supplier_cat: dict[str, str] = {}
    for item in data.items:
        by_supplier_cat.setdefault(item.supplier_id, item.category)
    for k in range(1, count + 1):
        supplier = rng.choice(data.suppliers)
        category = by_supplier_cat[supplier.supplier_id]
        cpv = _CATEGORIES[category][3]
        start = (ANCHOR - dt.timedelta(days=rng.randrange(0, 700))).date()
        end = start + dt.timedelta(days=365 * rng.randrange(1, 5))
        net = Decimal(rng.randrange(20, 4000)) * 500
        contract_id = f"{prefix}-{k:04d}"
        title = f"Supply of {category.replace('_', ' ')} products and services to {data.buyer.name}"
        procedure = rng.choice(_PROCEDURES)
        lines = [
            f"Contract {contract_id}",
            title,
            f"Between {data.buyer.name} (ODS {data.buyer.ods}) and {supplier.name} (VAT {supplier.vat})",
            f"Procedure: {procedure}; CPV {cpv}",
            f"Term: {start.isoformat()} to {end.isoformat()}; value GBP {net:,.2f} excluding VAT",
        ]
        out.append(
            ContractRecord(
                contract_id=contract_id,
                title=title,
                supplier_name=supplier.name,
                supplier_vat=supplier.vat,
                companies_house=supplier.companies_house,
                buyer_ods=data.buyer.ods,
                cpv_codes=cpv,
                procedure=procedure,
                value_net=net,
                value_gross=money(net * Decimal("1.2")),
                start_date=start,
                end_date=end,
                max_end_date=end + dt.timedelta(days=365 * rng.randrange(0, 3)),
                kpis=_kpi_names(contract_id, rng.randrange(0, 7)),
                sme=supplier.sme,
                filename=f"{contract_id}.pdf",
                document=text_pdf(lines, title=contract_id),
            )
        )
    return out


def _requisitions(
    data: Dataset, catalogue: dict[str, list[Item]], count: int, rng: random.Random
) -> list[RequisitionLine]:
    out = []
    # New requisitions need their goods in the future of the day they are made,
    # not of the seeded history (which is fixed so every run sees the same portal).
    today = max(ANCHOR.date(), dt.datetime.now(ZoneInfo("Europe/London")).date())
    for k in range(1, count + 1):
        supplier = rng.choice(data.suppliers)
        ref = f"REQ-2026-{k:06d}"
        cc = rng.choice(data.cost_centres)[0]
        site = rng.choice(data.sites)[0]
        need_by = today + dt.timedelta(days=rng.randrange(14, 60))
        if k % 10 == 4:
            # Planted mistake: a requisition keyed in late, needed before today.
            need_by = today - dt.timedelta(days=3)
        for item in rng.sample(catalogue[supplier.supplier_id], rng.randrange(1, 5)):
            qty = Decimal(rng.randrange(1, 4) if not item.receipt_required else rng.randrange(1, 40))
            out.append(
                RequisitionLine(
                    ref,
                    supplier.supplier_id,
                    supplier.vat,
                    cc,
                    site,
                    need_by,
                    item.code,
                    item.description,
                    qty,
                    item.unit_price,
                    item.vat_rate,
                )
            )
    return out
