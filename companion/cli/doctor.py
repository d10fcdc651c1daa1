"""`companion doctor`: each part of the installation checked, each problem with its fix."""

from __future__ import annotations

import typer

from companion.cli.common import out


def doctor() -> None:
    """Check the installation: Python, llama.cpp build, model, embedding model, data directory, keyring."""
    from companion.doctor import run_checks

    failed = 0
    for check in run_checks():
        mark = "ok  " if check.ok else ("warn" if check.warning else "FAIL")
        out.print(f"[{mark}] {check.name}: {check.detail}", markup=False)
        if not check.ok and check.fix:
            out.print(f"       fix: {check.fix}", markup=False)
        failed += int(not check.ok and not check.warning)
    if failed:
        raise typer.Exit(1)
