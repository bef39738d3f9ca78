"""Form fields and the parsing of what users type, shared by every form page.

Under ``shuffle`` chaos a form's fields come in a new order with new ids on every
load, so only labels find them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from sandbox.chaos import ChaosSpec
from sandbox.ubl import PENNY

__all__ = [
    "FormField",
    "arrange",
    "arrange_keep_order",
    "form_lines",
    "gtin_ok",
    "parse_decimal",
    "plain",
    "price_text",
]


@dataclass
class FormField:
    """One labelled input of a form; ``dom_id``/``container_id`` change per load under shuffle."""

    name: str
    label: str
    kind: str = "text"
    value: str = ""
    error: str = ""
    hint: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    dom_id: str = ""
    container_id: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


def arrange(fields: list[FormField], chaos: ChaosSpec) -> list[FormField]:
    """Stable ids normally; under ``shuffle`` a new order and new ids on every load."""
    if not chaos.shuffle:
        for f in fields:
            f.dom_id = f.dom_id or f.name.replace("_", "-")
            f.container_id = f.container_id or f"field-{f.dom_id}"
        return fields
    rng = chaos.rng()
    for f in fields:
        f.dom_id = f"f{rng.getrandbits(40):010x}"
        f.container_id = f"c{rng.getrandbits(40):010x}"
    out = list(fields)
    original = list(fields)
    while len(out) > 1 and out == original:
        rng.shuffle(out)
    return out


def arrange_keep_order(fields: list[FormField], chaos: ChaosSpec) -> list[FormField]:
    """New ids under shuffle, keeping the (already shuffled) order of a line's fields."""
    rng = chaos.rng()
    for f in fields:
        f.dom_id = f"f{rng.getrandbits(40):010x}"
        f.container_id = f"c{rng.getrandbits(40):010x}"
    return fields


def line_order(count: int, chaos: ChaosSpec) -> list[int]:
    """The order of a form line's ``count`` fields: as declared, or shuffled under ``shuffle=1``."""
    order = list(range(count))
    if chaos.shuffle:
        chaos.rng().shuffle(order)
    return order


def gtin_ok(code: str) -> bool:
    body, check = code[:-1], code[-1]
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10) == check


def parse_decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def plain(value: Decimal) -> str:
    """A quantity or rate without exponent or trailing zeros (``12``, ``2.5``)."""
    return format(value.normalize(), "f")


def price_text(value: Decimal) -> str:
    """A unit price to the penny, or to the stated precision when finer (``4.50``, ``0.1234``)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return str(value.quantize(PENNY))
    return format(value.normalize(), "f")


def form_lines(items: Iterable[tuple[str, object]], names: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
    """The ``line-N-name`` inputs of a posted form, by line number, values stripped."""
    wanted = set(names)
    lines: dict[int, dict[str, str]] = {}
    for key, value in items:
        m = re.fullmatch(r"line-(\d+)-(\w+)", key)
        if m and m.group(2) in wanted:
            lines.setdefault(int(m.group(1)), {})[m.group(2)] = str(value).strip()
    return sorted(lines.items())
