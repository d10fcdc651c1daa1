"""`companion schedule …` (upkeep without the app) and `companion desktop …` (the app-menu launcher)."""

from __future__ import annotations

from pathlib import Path

import typer

schedule_app = typer.Typer(
    help="Upkeep without the app: a timer that runs `companion maintain` every 30 minutes."
)
desktop_app = typer.Typer(help="The launcher that puts companion in your desktop's app menu.")


@schedule_app.command("install")
def schedule_install() -> None:
    """Write and enable the timer (systemd user timer; launchd on macOS; elsewhere the cron line to add)."""
    from companion.desktop import schedule

    done = schedule.install()
    for path in done.files:
        print(f"Wrote {path}")
    print(done.said)


@schedule_app.command("status")
def schedule_status() -> None:
    """Whether the timer is installed and running."""
    from companion.desktop import schedule

    state = schedule.state()
    print(state or "No timer is installed: upkeep runs while the app is open (`companion schedule install`).")


@schedule_app.command("remove")
def schedule_remove() -> None:
    """Disable and remove the timer."""
    from companion.desktop import schedule

    _say_removed(schedule.remove(), "The timer is removed.", "No timer was installed.")


@desktop_app.command("install")
def desktop_install() -> None:
    """Put companion in the desktop's app menu (it opens in a terminal)."""
    from companion.desktop import launcher

    entry = launcher.install()
    print(f"Wrote {entry}; companion is in your app menu (it may take a moment to appear).")


@desktop_app.command("remove")
def desktop_remove() -> None:
    """Take companion out of the app menu."""
    from companion.desktop import launcher

    _say_removed(launcher.remove(), "The launcher is removed.", "No launcher was installed.")


def _say_removed(gone: list[Path], removed: str, none: str) -> None:
    for path in gone:
        print(f"Removed {path}")
    print(removed if gone else none)
