"""The runtime's private folder for Playwright's files: 0700, one per run, leftovers of dead runs removed."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

from bots.runtime.session import private_folder
from config.settings import Settings


def test_each_run_gets_its_own_0700_folder_and_a_dead_runs_leftovers_go_at_the_next_start(
    tmp_path: Path,
) -> None:
    settings = Settings(paths={"root": tmp_path / "var"})
    base = tmp_path / "var" / "private" / "playwright"
    base.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    leftover = base / f"{dead.stdout.strip()}-abc"  # a killed run's folder (its process is gone)
    leftover.mkdir()
    (leftover / "trace.network").write_text("recorded")
    live = base / f"{os.getppid()}-def"  # a run of a process that still runs
    live.mkdir()

    async def two_runs() -> tuple[Path, Path, bool]:
        async with private_folder(settings) as first, private_folder(settings) as second:
            modes = {stat.S_IMODE(path.stat().st_mode) for path in (first, second, base, base.parent)}
            return first, second, modes == {0o700}

    first, second, private = asyncio.run(two_runs())
    assert first != second
    assert private
    assert not leftover.exists()
    assert live.exists()
    assert not first.exists()  # removed at the end of each run
    assert not second.exists()
