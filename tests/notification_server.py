# ruff: noqa: F722, F821, N802 — dbus-fast reads D-Bus signatures ("as", "a{sv}") from annotations
"""A freedesktop notification server for tests: it owns org.freedesktop.Notifications on the session bus it is
started on, records every Notify call (summary, body, actions) as one JSON line in the file given as its first
argument, and answers each one as a user would: "open" invokes the notification's Open action (`ActionInvoked`),
"close" dismisses it (`NotificationClosed`), "none" leaves it on screen.

    python -m tests.notification_server calls.jsonl open
"""

import asyncio
import json
import sys
from pathlib import Path

from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method, signal


class Notifications(ServiceInterface):
    def __init__(self, record: Path, answer: str) -> None:
        super().__init__("org.freedesktop.Notifications")
        self.record = record
        self.answer = answer
        self.last = 0

    @method()
    def GetCapabilities(self) -> "as":
        return ["actions", "body", "icon-static"]

    @method()
    def GetServerInformation(self) -> "ssss":
        return ["test-notifications", "companion tests", "1.0", "1.2"]

    @method()
    def Notify(
        self,
        app_name: "s",
        replaces_id: "u",
        app_icon: "s",
        summary: "s",
        body: "s",
        actions: "as",
        hints: "a{sv}",
        expire_timeout: "i",
    ) -> "u":
        self.last += 1
        nid = self.last
        with self.record.open("a", encoding="utf-8") as out:
            out.write(
                json.dumps(
                    {"app": app_name, "icon": app_icon, "summary": summary, "body": body, "actions": actions}
                )
                + "\n"
            )
        keys = actions[0::2]
        loop = asyncio.get_running_loop()
        if self.answer == "open":
            key = next(
                (k for k, title in zip(actions[0::2], actions[1::2], strict=False) if title == "Open"),
                keys[0] if keys else "",
            )
            loop.call_later(0.3, self.ActionInvoked, nid, key)
        elif self.answer == "close":
            loop.call_later(0.3, self.NotificationClosed, nid, 2)
        return nid

    @method()
    def CloseNotification(self, nid: "u"):  # type: ignore[no-untyped-def]
        self.NotificationClosed(nid, 3)

    @signal()
    def ActionInvoked(self, nid, key) -> "us":
        return [nid, key]

    @signal()
    def NotificationClosed(self, nid, reason) -> "uu":
        return [nid, reason]


async def main(record: Path, answer: str) -> None:
    bus = await MessageBus().connect()
    bus.export("/org/freedesktop/Notifications", Notifications(record, answer))
    await bus.request_name("org.freedesktop.Notifications")
    record.with_suffix(".ready").write_text("ready")
    await asyncio.Event().wait()


if __name__ == "__main__":
    _ = Variant  # hints arrive as variants
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "none"))
