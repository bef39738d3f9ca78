"""Reads each malformed spreadsheet/CSV given on the command line under hard limits; prints JSON.

Run by ``tests/test_excel_bad.py`` in a subprocess: address space is capped (so a zip bomb
cannot eat the machine) and each file gets a wall-clock alarm, so "bounded time and
memory" is enforced by the operating system rather than by a timed assertion.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from pathlib import Path
from typing import Any

MEMORY_LIMIT = 1536 * 1024 * 1024
SECONDS_PER_FILE = 20


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def main(paths: list[str]) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGALRM, _alarm)
    from connectors.formats import load_invoice_rows, load_orders, load_receipts
    from connectors.rows import SpreadsheetError

    loaders = {"orders": load_orders, "receipts": load_receipts, "invoices": load_invoice_rows}
    out: dict[str, Any] = {}
    for path in paths:
        loader = loaders[Path(path).name.split("_", 1)[0]]
        signal.alarm(SECONDS_PER_FILE)
        try:
            documents, errors = loader(path)
            out[path] = {
                "outcome": "errors",
                "documents": len(documents),
                "errors": [
                    {"text": str(e), "row": e.row, "column": e.column, "file": e.file} for e in errors
                ],
            }
        except SpreadsheetError as exc:
            out[path] = {
                "outcome": "raised",
                "errors": [{"text": str(exc), "file": exc.file, "row": exc.error.row}],
            }
        except _Timeout:
            out[path] = {"outcome": "timeout", "errors": []}
        except MemoryError:
            out[path] = {"outcome": "memory", "errors": []}
        except Exception as exc:
            out[path] = {"outcome": f"crash {type(exc).__name__}", "errors": [{"text": str(exc)}]}
        finally:
            signal.alarm(0)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
