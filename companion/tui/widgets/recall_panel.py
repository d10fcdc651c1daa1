"""The recall panel: for the reply on screen, what was recalled and why (kind, score, date, provenance)."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, ListItem, ListView

from companion import timeutil
from companion.english import plural
from companion.memory.records import Hit
from companion.prompt_builder import Recalled
from companion.tui.access import companion
from companion.tui.text import shorten

STATUS = {
    "in": ("in the prompt", "green"),
    "shortened": ("in the prompt, shortened", "green"),
    "left out": ("left out", "yellow"),
    "in view": ("already in view", "dim"),
}


def hit_text(recalled: Recalled, now: datetime) -> Text:
    hit = recalled.hit
    if recalled.lorebook:
        said, colour = STATUS.get(recalled.status, (recalled.status, ""))
        return Text.assemble(
            ("lore", "bold"),
            " · the persona's lorebook\n",
            shorten(hit.text, 160),
            "\n",
            (said, colour),
            (f": {recalled.note}" if recalled.note else "", "dim"),
        )
    when = timeutil.parse(hit.time)
    date = timeutil.relative(when, now).split(",")[0] if when else "undated"
    if when and hit.spoken_of:
        date += f", speaking of {hit.spoken_of}"
    head = Text.assemble((f"{hit.kind}", "bold"), f" · {hit.score:.2f} · {date}")
    why = ", ".join(f"{k} {v:.2f}" for k, v in sorted(hit.why.items(), key=lambda kv: -abs(kv[1]))[:3])
    source = f"message:{hit.id}, session {hit.session_id}" if hit.kind == "message" else f"memory {hit.id}"
    if hit.kind != "message" and hit.source_ids:
        source += f", from {plural(len(hit.source_ids), 'message')}"
    text = shorten(hit.text, 160)
    said, colour = STATUS.get(recalled.status, (recalled.status, ""))
    fate = Text.assemble((said, colour), (f": {recalled.note}" if recalled.note else "", "dim"))
    return Text.assemble(
        head, "\n", text, "\n", fate, "\n", (f"{source}" + (f" · {why}" if why else ""), "dim")
    )


class HitItem(ListItem):
    def __init__(self, recalled: Recalled, now: datetime) -> None:
        super().__init__(Label(hit_text(recalled, now)))
        self.hit = recalled.hit
        self.status = recalled.status
        self.lorebook = recalled.lorebook


class RecallPanel(Vertical):
    DEFAULT_CSS = """
    RecallPanel { dock: right; width: 38; border-left: solid $accent; display: none; }
    RecallPanel.shown { display: block; }
    RecallPanel > #recall-title { padding: 0 1; text-style: bold; }
    RecallPanel > #recall-hint { padding: 0 1; color: $text-muted; }
    RecallPanel ListView { height: 1fr; }
    RecallPanel ListItem { padding: 0 1; margin-bottom: 1; height: auto; }
    RecallPanel ListItem Label { width: 1fr; }
    """
    BINDINGS = [
        Binding("p", "pin", "Pin", id="recall.pin"),
        Binding("f", "forget", "Wrong: forget", id="recall.forget"),
    ]

    def compose(self) -> ComposeResult:
        yield Label("Recalled for this reply", id="recall-title")
        yield Label("Enter opens · p pins · f forgets", id="recall-hint")
        yield ListView(id="recall-list")

    def show_hits(self, recall: list[Recalled], now: datetime) -> None:
        """What was recalled for the reply on screen, and what became of each: in the prompt, shortened to
        fit, left out (and why), or already in view."""
        listing = self.query_one(ListView)
        listing.clear()
        if not recall:
            listing.append(ListItem(Label("Nothing relevant remembered for this reply.")))
            return
        listing.extend(HitItem(recalled, now) for recalled in recall)

    def _current(self) -> Hit | None:
        item = self.query_one(ListView).highlighted_child
        if isinstance(item, HitItem) and item.lorebook:
            self.app.notify(
                "This entry is the persona's lorebook, not a memory: change it in the persona's card "
                "(`companion persona edit`).",
                severity="information",
            )
            return None
        return item.hit if isinstance(item, HitItem) else None

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        if isinstance(event.item, HitItem) and not event.item.lorebook:
            from companion.tui.screens.memory_detail import MemoryDetail

            self.app.push_screen(MemoryDetail(event.item.hit.kind, event.item.hit.id))

    def action_pin(self) -> None:
        hit = self._current()
        if hit is None:
            return
        if hit.kind == "message":
            self.app.notify("Messages cannot be pinned; they are what was said.", severity="warning")
            return
        companion(self).memory_op(lambda m: m.pin(hit.id, True), said="Pinned: it will not fade.")

    def action_forget(self) -> None:
        hit = self._current()
        if hit is None:
            return
        app = companion(self)
        what = f"message:{hit.id}" if hit.kind == "message" else f"{hit.kind} {hit.id}"

        def gone() -> None:
            listing = self.query_one(ListView)
            if listing.highlighted_child is not None:
                listing.highlighted_child.remove()

        app.confirm_forget(hit.kind, hit.id, f"Mark {what} as wrong and forget it for good?", then=gone)
