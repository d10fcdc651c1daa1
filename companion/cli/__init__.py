"""The command line (typer): thin, no business logic. Every command calls the same functions the app calls.

One module per command group (`config`, `model`, `memory`, `persona`, `profile`, `desktop` for `schedule` and
`desktop`) and for the top-level
commands (`chat`/`ask`, `maintain`, `doctor`); what they share is in `common`. Heavy modules (llama.cpp, torch,
FAISS, Textual) are imported inside the commands that need them, so `companion --help` and every command that
needs no model start at once. `main()` turns every error a user can cause into one sentence and a non-zero
exit: a `CompanionError` (exit 1), a usage error such as an unknown command or a missing argument (exit 2), a
failing memory file (exit 1); Ctrl+C exits 130 after whatever was in flight was stored or rolled back.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import typer

from companion import __version__
from companion.cli import config, memory, model, persona, profile
from companion.cli.chat import ask, chat
from companion.cli.common import ask as passphrase_prompt
from companion.cli.common import err
from companion.cli.desktop import desktop_app, schedule_app
from companion.cli.doctor import doctor
from companion.cli.maintain import maintain
from companion.errors import CompanionError
from companion.jsontext import LONE_SURROGATE
from companion.paths import get_paths

app = typer.Typer(
    name="companion",
    help="A private companion for the terminal that remembers you. Run with no command to open the app.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(config.app, name="config")
app.add_typer(model.app, name="model")
app.add_typer(memory.app, name="memory")
app.add_typer(persona.app, name="persona")
app.add_typer(profile.app, name="profile")
app.add_typer(schedule_app, name="schedule")
app.add_typer(desktop_app, name="desktop")
app.command("chat")(chat)
app.command("ask")(ask)
app.command("maintain")(maintain)
app.command("doctor")(doctor)


def _version(value: bool) -> None:
    if value:
        print(f"companion {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Open the app when no command is given."""
    if ctx.invoked_subcommand is None:
        from companion.tui.app import run_app

        run_app(ask=passphrase_prompt())


def _kinds(error: BaseException) -> set[str]:
    """The names of an exception's classes. typer bundles its own copy of click (`typer._click` since 0.29),
    whose classes are not the click package's: errors are told apart by class name, whichever copy raised."""
    return {kind.__name__ for kind in type(error).__mro__}


def usage_sentence(error: BaseException) -> str:
    """One sentence for a usage error: what is wrong, then where to read the usage."""
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    message = " ".join(str(message).split()).rstrip(".")
    ctx = getattr(error, "ctx", None)
    command = getattr(ctx, "command_path", "") or "companion"
    return f"{message}; see `{command} --help`."


def _text_only_input() -> None:
    """Input that is not UTF-8 text, said in one sentence or mended before any command sees it: a word on the
    command line (other than a file that exists) must be UTF-8; standard input's stray bytes become U+FFFD."""
    for arg in sys.argv[1:]:
        if LONE_SURROGATE.search(arg) and not os.path.exists(arg):
            shown = os.fsencode(arg).decode("utf-8", "backslashreplace")
            raise CompanionError(
                f"The command line holds bytes that are not UTF-8 text ('{shown}'); set the terminal to UTF-8 "
                "(e.g. LANG=C.UTF-8) and type it again."
            )
    reconfigure = getattr(sys.stdin, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="replace")


def main() -> None:
    try:
        _text_only_input()
        result = app(standalone_mode=False)
    except CompanionError as error:
        err.print(f"Error: {error}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(130)
    except Exception as error:
        kinds = _kinds(error)
        if "Exit" in kinds:  # --help, --version, typer.Exit(code)
            sys.exit(getattr(error, "exit_code", 0))
        if "Abort" in kinds:  # Ctrl+C or Ctrl+D at a prompt
            err.print("Interrupted.")
            sys.exit(130)
        if "ClickException" in kinds:  # unknown command, missing argument, bad value…
            err.print(f"Error: {usage_sentence(error)}", markup=False)
            sys.exit(getattr(error, "exit_code", 2) or 2)
        from companion.errors import file_system_error, storage_error
        from companion.memory.db.store import SQL_ERRORS

        said = file_system_error(error) if isinstance(error, OSError) else None
        if said is not None:  # a full disk, a read-only or foreign folder: whichever file it was
            err.print(f"Error: {said}", markup=False)
            sys.exit(1)
        if not isinstance(error, SQL_ERRORS):
            raise
        # A read of a damaged or vanished memory file: one sentence, not a traceback.
        err.print(f"Error: {storage_error(get_paths().database, error)}", markup=False)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
