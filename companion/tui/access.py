"""How screens and widgets reach the app, typed (posting's pattern): `companion(self)` is `self.app` as the
`CompanionApp` it is, so a screen calls `companion(self).engine` with its type known and no `type: ignore`."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode

if TYPE_CHECKING:
    from companion.tui.app import CompanionApp


def companion(node: DOMNode) -> CompanionApp:
    return cast("CompanionApp", node.app)
