"""Desktop notifications through the platform's own service — the freedesktop Notifications D-Bus interface on
Linux, Notification Center on macOS, toasts on Windows — by desktop-notifier, not by shelling out.

`send` shows one notification and, when it has an "Open" action, waits a while for the click (a server that
supports actions sends `ActionInvoked`); the click starts the app through the same launcher as the app menu.
Nothing here raises for a missing or refusing service: the result says so in a sentence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from companion.errors import CompanionError

APP_NAME = "companion"


@dataclass(frozen=True)
class Sent:
    ok: bool
    detail: str  # "shown", or why not
    opened: bool = False  # the user clicked it (or its Open action)


def _no_service(error: BaseException) -> str:
    reason = (error.strerror if isinstance(error, OSError) and error.strerror else str(error)).strip()
    reason = reason or type(error).__name__
    return f"no notification service could be reached ({reason}); a desktop session provides one"


def send(
    title: str,
    body: str,
    *,
    icon: Path | None = None,
    on_open: Callable[[], object] | None = None,
    wait_seconds: float = 0.0,
) -> Sent:
    """Show a notification; with `on_open`, offer "Open" and wait up to `wait_seconds` for the click."""
    try:
        return asyncio.run(_send(title, body, icon, on_open, wait_seconds))
    except Exception as error:  # noqa: BLE001 — D-Bus, Cocoa and WinRT each fail their own way; all mean "none"
        return Sent(False, _no_service(error))


async def _send(
    title: str, body: str, icon: Path | None, on_open: Callable[[], object] | None, wait_seconds: float
) -> Sent:
    from desktop_notifier import Button, DesktopNotifier, Icon

    notifier = DesktopNotifier(
        app_name=APP_NAME, app_icon=Icon(path=icon) if icon and icon.exists() else None
    )
    clicked, closed, shown = asyncio.Event(), asyncio.Event(), asyncio.Event()
    buttons = [Button(title="Open", on_pressed=clicked.set)] if on_open else []
    failed = _Failure()
    logger = logging.getLogger("desktop_notifier")
    logger.addHandler(failed)
    logger.propagate = False  # its own warning (with a traceback) becomes our sentence
    try:
        await asyncio.wait_for(
            notifier.send(
                title=title,
                message=body,
                buttons=buttons,
                on_dispatched=shown.set,
                on_clicked=clicked.set if on_open else None,
                on_dismissed=closed.set,
            ),
            timeout=10,
        )
    finally:
        logger.removeHandler(failed)
    if not shown.is_set():
        return Sent(False, _no_service(failed.error or RuntimeError("the service did not take it")))
    if on_open is not None and wait_seconds > 0:
        waiters = [asyncio.ensure_future(clicked.wait()), asyncio.ensure_future(closed.wait())]
        _, pending = await asyncio.wait(waiters, timeout=wait_seconds, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    if clicked.is_set() and on_open is not None:
        try:
            on_open()
        except CompanionError as error:
            return Sent(True, f"shown; Open could not start the app: {error}")
        return Sent(True, "shown, and opened", opened=True)
    return Sent(True, "shown")


class _Failure(logging.Handler):
    """desktop-notifier logs a failed send instead of raising: the error is kept to say why."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.error: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.error = record.exc_info[1]


def reachable() -> str | None:
    """None when a notification service answers; else why not, in a sentence (for `doctor`)."""

    async def ask() -> None:
        from desktop_notifier import DesktopNotifier

        await asyncio.wait_for(DesktopNotifier(app_name=APP_NAME).get_capabilities(), timeout=5)

    try:
        asyncio.run(ask())
    except Exception as error:  # noqa: BLE001 — as in `send`
        return _no_service(error)
    return None
