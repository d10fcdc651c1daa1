"""`companion chat` and `companion ask`: the conversation without the app (scripts, pipes, one question)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from companion import config as config_mod
from companion.cli.common import ask as passphrase_prompt
from companion.cli.common import err
from companion.cli.model import check_registered
from companion.errors import CompanionError

if TYPE_CHECKING:
    from companion.engine import Engine

Seed = Annotated[int | None, typer.Option("--seed", help="Sampling seed, for repeatable replies.")]
MaxTokens = Annotated[int | None, typer.Option("--max-tokens", min=1, help="Longest reply, in tokens.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="A model name (see `companion model list`).")]
StatsOpt = Annotated[bool, typer.Option("--stats", help="One JSON line of timing per turn on stderr.")]
ShowPrompt = Annotated[
    bool,
    typer.Option("--show-prompt", help="Print on stderr the exact prompt the model gets, before each reply."),
]


def open_engine(model: str | None, checkins: bool = True) -> Engine:
    from companion.engine import Engine

    settings = config_mod.load()
    if model is not None:
        check_registered(settings, model)
    engine = Engine(settings, model_name=model, ask=passphrase_prompt(), checkins=checkins)
    try:
        with err.status("Loading the model…", spinner="dots"):
            loaded = engine.load_model()
    except BaseException:
        engine.close()
        raise
    if loaded.notice:
        err.print(f"Note: {loaded.notice}", markup=False)
    if engine.checkin is not None:  # the conversation goes on in a check-in the user has not answered yet
        said = next((m.text for m in engine.messages() if m.role == "assistant"), "")
        err.print(f"{engine.persona.name} (checking in): {said}", markup=False)
    return engine


def run_turn(
    engine: Engine,
    text: str,
    stats: bool,
    seed: int | None,
    max_tokens: int | None,
    show_prompt: bool = False,
) -> None:
    degraded = engine.degraded
    turn = engine.send(text, seed=seed, max_tokens=max_tokens)
    if engine.degraded and engine.degraded != degraded:
        err.print(f"Warning: {engine.degraded}", markup=False)
    if show_prompt:
        sys.stderr.write(f"--- the prompt ---\n{engine.prompt_text()}\n--- end of the prompt ---\n")
        sys.stderr.flush()
    try:
        for piece in turn:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:
        turn.close()
        sys.stdout.write("\n")
        raise
    sys.stdout.write("\n\n")
    sys.stdout.flush()
    if turn.unanswered:
        err.print(f"({turn.unanswered_note()})")
    if stats:
        sys.stderr.write(json.dumps(turn.stats.as_json()) + "\n")
        sys.stderr.flush()


def chat(
    plain: Annotated[
        bool, typer.Option("--plain", help="Read one message per line from stdin; no TUI.")
    ] = False,
    stats: StatsOpt = False,
    model: ModelOpt = None,
    seed: Seed = None,
    max_tokens: MaxTokens = None,
    show_prompt: ShowPrompt = False,
) -> None:
    """Chat. With --plain: one message per stdin line, each reply on stdout followed by a blank line."""
    if not plain:
        from companion.tui.app import run_app

        run_app(model_name=model, ask=passphrase_prompt())
        return
    interactive = sys.stdin.isatty()
    engine = None
    seen = 0
    try:
        while True:
            if interactive:
                sys.stderr.write("you> ")
                sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                break
            if not line.strip():
                continue
            seen += 1
            if engine is None:
                engine = open_engine(model)
            run_turn(engine, line, stats, seed, max_tokens, show_prompt)
    finally:
        if engine is not None:
            engine.close()
    if seen == 0:
        raise CompanionError(
            "No message came on stdin; pipe one message per line, e.g. `echo hello | companion chat --plain`."
        )


def ask(
    message: str,
    stats: StatsOpt = False,
    model: ModelOpt = None,
    seed: Seed = None,
    max_tokens: MaxTokens = None,
    show_prompt: ShowPrompt = False,
) -> None:
    """Answer one message and exit."""
    if not message.strip():
        raise CompanionError('The message is empty; give the text to ask, e.g. `companion ask "hello"`.')
    engine = open_engine(model, checkins=False)
    try:
        run_turn(engine, message, stats, seed, max_tokens, show_prompt)
    finally:
        engine.close()
