"""The profile screen: the portrait companion keeps of the user, its versions with what changed, and a veto
for any line (it is removed and never inferred again) — the same code as `companion profile veto`."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, ListItem, ListView, Static

from companion.memory.tables.profile import Version
from companion.tui.access import companion
from companion.tui.messages import ProfileLoaded
from companion.tui.widgets.dialogs import ConfirmDialog


class LineItem(ListItem):
    def __init__(self, line: str) -> None:
        super().__init__(Label(line))
        self.line = line


class VersionItem(ListItem):
    def __init__(self, version: Version) -> None:
        super().__init__(
            Label(f"v{version.id} · {version.created_at[:16].replace('T', ' ')} · {version.reason}")
        )
        self.version = version


class ProfileScreen(Screen[None]):
    DEFAULT_CSS = """
    ProfileScreen #columns { height: 1fr; }
    ProfileScreen #current { width: 1fr; border: round $accent 50%; }
    ProfileScreen #history { width: 1fr; border: round $accent 50%; }
    ProfileScreen ListView { height: 1fr; }
    ProfileScreen ListItem { height: auto; }
    ProfileScreen ListItem Label { width: 1fr; }
    ProfileScreen #diff { height: auto; max-height: 10; padding: 0 1; }
    ProfileScreen #empty { padding: 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("v", "veto", "Veto line", id="profile.veto"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="columns"):
            with Vertical(id="current"):
                yield ListView(id="lines")
            with Vertical(id="history"):
                yield ListView(id="versions")
                with VerticalScroll(id="diff"):
                    yield Static("", id="diff-text")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Profile"
        self.query_one("#current").border_title = "What companion knows of you"
        self.query_one("#history").border_title = "Versions"
        self.query_one("#lines", ListView).focus()
        self.load()

    @work(thread=True, exit_on_error=False, exclusive=True, group="profile")
    def load(self) -> None:
        from companion.memory.tables import profile

        store = companion(self).engine.store
        current = profile.current(store)
        self.post_message(ProfileLoaded(current.version, current.lines, profile.history(store)))

    def on_profile_loaded(self, message: ProfileLoaded) -> None:
        version, lines, history = message.version, message.lines, message.history
        listing = self.query_one("#lines", ListView)
        listing.clear()
        if version is None:
            listing.append(
                ListItem(
                    Label(
                        "No profile yet: it is written from what you talk about, after a conversation ends."
                    )
                )
            )
        else:
            listing.extend(LineItem(line) for line in lines)
        versions = self.query_one("#versions", ListView)
        versions.clear()
        versions.extend(VersionItem(v) for v in reversed(history))
        if history:
            self._diff(history[-1])

    @on(ListView.Highlighted, "#versions")
    def version_highlighted(self, event: ListView.Highlighted) -> None:
        if isinstance(event.item, VersionItem):
            self._diff(event.item.version)

    def _diff(self, version: Version) -> None:
        text = Text()
        for line in version.diff.get("added", []):
            text.append(f"+ {line}\n", style="green")
        for line in version.diff.get("removed", []):
            text.append(f"- {line}\n", style="red")
        self.query_one("#diff-text", Static).update(text or Text("(no change)", style="dim"))

    def action_veto(self) -> None:
        item = self.query_one("#lines", ListView).highlighted_child
        if not isinstance(item, LineItem):
            self.notify("Choose a line of the profile first (↑/↓).", severity="warning")
            return
        line = item.line

        def answer(yes: bool | None) -> None:
            if yes:
                self.veto(line)

        self.app.push_screen(
            ConfirmDialog(f"Remove “{line}” from your profile and never infer it again?", "Veto"), answer
        )

    @work(thread=True, exit_on_error=False, group="profile-veto")
    def veto(self, line: str) -> None:
        from companion.errors import CompanionError
        from companion.memory.tables.profile import veto

        app = companion(self)
        try:
            version = veto(app.engine.store, line)
        except CompanionError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error")
            return
        app.engine.refresh_profile()
        self.app.call_from_thread(self.notify, f"Removed; the profile is now version {version}.")
        self.load()
