"""Command palette entries (Ctrl+P): every action of the app, by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.app import SystemCommand

# (title, help, action on the app or the chat screen)
COMMANDS = [
    ("Memories", "Browse, search, pin, edit, forget and restore memories (F2)", "app.memories"),
    ("Profile", "What companion thinks it knows about you; veto a line (F3)", "app.profile"),
    ("Sessions", "Past conversations and their summaries (F4)", "app.sessions"),
    ("Settings", "Model, context, temperature, persona, forgetting, theme (F5)", "app.settings"),
    ("Help", "Every key and what it does (F1)", "app.help"),
    ("Stop the reply", "Stop generating; what was said so far is kept (Esc)", "chat.stop"),
    ("Regenerate the last reply", "Answer your last message again (Ctrl+R)", "chat.regenerate"),
    (
        "Show what was recalled",
        "The memories behind the reply on screen, and why (Ctrl+B)",
        "chat.toggle_recall",
    ),
    ("Copy the last reply", "To the clipboard (Ctrl+Y)", "chat.copy_last"),
    (
        "Edit my last message",
        "Branch the conversation from an edit (Up in an empty composer)",
        "chat.edit_last",
    ),
    ("New session", "End this conversation and start another (Ctrl+N)", "chat.new_session"),
    ("Off-the-record session", "A conversation that is never written to memory (Ctrl+O)", "chat.off_record"),
    ("Toggle light/dark theme", "Saved to the config (Ctrl+T)", "app.toggle_theme"),
    ("Quit", "Leave companion; a reply being written is stopped and kept (Ctrl+Q)", "app.quit"),
]


def system_commands(app: Any) -> Iterable[SystemCommand]:
    for title, help_text, action in COMMANDS:
        target, _, name = action.partition(".")

        def run(target: str = target, name: str = name) -> None:
            if target == "chat":
                app.run_chat_action(name)
            else:
                app.call_later(app.run_action, name)

        yield SystemCommand(title, help_text, run)
