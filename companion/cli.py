"""The command line (typer): thin, no business logic. Every command calls the same functions the TUI calls.

Heavy modules (llama.cpp, torch, Textual) are imported inside the commands that need them, so `companion
--help` stays instant. A `CompanionError` becomes one sentence on stderr and exit code 1; Ctrl+C exits 130
after whatever was in flight has been stored or rolled back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from companion import __version__
from companion import config as config_mod
from companion.errors import CompanionError
from companion.paths import get_paths

app = typer.Typer(
    name="companion",
    help="A private companion for the terminal that remembers you. Run with no command to open the app.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Show and change settings (a TOML file).", no_args_is_help=True)
model_app = typer.Typer(help="Choose, add and download language models (GGUF files).", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(model_app, name="model")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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

        run_app()


# -- config ---------------------------------------------------------------------------------------------------
@config_app.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print every setting with its effective value."""
    settings = config_mod.load()
    data = settings.to_dict()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key in config_mod.setting_keys():
        print(f"{key} = {json.dumps(config_mod.get_value(settings, key))}")
    for name, path in settings.models.items():
        print(f"models.{name} = {json.dumps(path)}")


@config_app.command("get")
def config_get(key: str) -> None:
    """Print one setting, e.g. `companion config get chat.temperature`."""
    value = config_mod.get_value(config_mod.load(), key)
    print(value if isinstance(value, str) else json.dumps(value))


@config_app.command("set")
def config_set(key: str, value: str) -> None:
    """Change one setting, e.g. `companion config set chat.temperature 0.8`."""
    settings = config_mod.load()
    new = config_mod.set_value(settings, key, value)
    config_mod.save(settings)
    print(f"{key} = {json.dumps(new)}")


@config_app.command("path")
def config_path() -> None:
    """Print where the settings file lives."""
    print(get_paths().config_file)


@config_app.command("set-api-key")
def config_set_api_key(
    from_stdin: Annotated[bool, typer.Option("--stdin", help="Read the key from standard input.")] = False,
) -> None:
    """Store the remote server's API key in the OS keyring (never in the settings file)."""
    from companion.secrets import set_api_key

    key = sys.stdin.readline().strip() if from_stdin else typer.prompt("API key", hide_input=True)
    set_api_key(key)
    print("The API key is stored in the OS keyring.")


@config_app.command("delete-api-key")
def config_delete_api_key() -> None:
    """Remove the remote server's API key from the OS keyring."""
    from companion.secrets import delete_api_key

    print("Removed the API key." if delete_api_key() else "No API key was stored.")


# -- model ----------------------------------------------------------------------------------------------------
@model_app.command("list")
def model_list() -> None:
    """List the models companion knows; the one in use is marked with *."""
    from companion.llm.models import registered

    settings = config_mod.load()
    current = settings.model.name
    for name, path in registered(settings).items():
        mark = "*" if name == current and settings.model.backend == "local" else " "
        print(f"{mark} {name}\t{path}")
    if settings.model.backend == "remote":
        print(f"* remote\t{settings.remote.base_url} ({settings.remote.model or 'server default'})")


@model_app.command("add")
def model_add(
    path: Path,
    name: Annotated[str | None, typer.Option("--name", help="A short name for it.")] = None,
) -> None:
    """Register a GGUF file you already have."""
    from companion.llm.models import check_new_name, default_name_for, inspect_gguf

    settings = config_mod.load()
    info = inspect_gguf(path)
    name = name or default_name_for(info.path)
    check_new_name(settings, name)
    settings.models[name] = str(info.path)
    config_mod.save(settings)
    print(f"Added '{name}' ({info.architecture}, {info.file_type}, {info.size_bytes / 2**20:.0f} MiB).")
    print(f"Use it with: companion model use {name}")


@model_app.command("use")
def model_use(name: str) -> None:
    """Choose the model to chat with."""
    from companion.llm.models import registered

    settings = config_mod.load()
    if name not in registered(settings):
        known = ", ".join(registered(settings))
        raise CompanionError(
            f"There is no model named '{name}' (known: {known}); add one with `companion model add PATH`."
        )
    settings.model.name = name
    settings.model.backend = "local"
    config_mod.save(settings)
    print(f"Now using '{name}'.")


@model_app.command("pull")
def model_pull(
    repo: str,
    filename: str,
    name: Annotated[str | None, typer.Option("--name", help="A short name for it.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="A branch, tag or commit.")] = None,
) -> None:
    """Download a GGUF from the Hugging Face hub (resumable) and register it."""
    from companion.llm.models import check_new_name, default_name_for, pull

    settings = config_mod.load()
    name = name or default_name_for(Path(filename))
    check_new_name(settings, name)
    path = pull(repo, filename, get_paths().ensure(), revision=revision)
    settings.models[name] = str(path)
    config_mod.save(settings)
    print(f"Downloaded and added '{name}': {path}")
    print(f"Use it with: companion model use {name}")


@model_app.command("info")
def model_info(
    name: Annotated[str | None, typer.Argument(help="A model name; default: the one in use.")] = None,
) -> None:
    """Show a model's file, architecture, size, quantization, context length and chat template."""
    from companion.llm.models import DEMO_NOTE, inspect_gguf, resolve

    settings = config_mod.load()
    model_name, path = resolve(settings, get_paths().ensure(), name)
    info = inspect_gguf(path)
    print(f"name: {model_name}")
    for key, value in info.as_dict().items():
        print(f"{key}: {value}")
    if model_name == config_mod.DEMO_MODEL:
        print(f"note: {DEMO_NOTE}")


# -- chat -----------------------------------------------------------------------------------------------------
def _engine(model: str | None) -> Any:
    from companion.engine import Engine

    settings = config_mod.load()
    if model is not None:
        from companion.llm.models import registered

        if model not in registered(settings):
            raise CompanionError(
                f"There is no model named '{model}' (known: {', '.join(registered(settings))}); "
                "add one with `companion model add PATH`."
            )
    engine = Engine(settings, model_name=model)
    with err.status("Loading the model…", spinner="dots"):
        engine.load_model()
    return engine


def _run_turn(engine: Any, text: str, stats: bool, seed: int | None, max_tokens: int | None) -> None:
    turn = engine.send(text, seed=seed, max_tokens=max_tokens)
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
    if stats:
        sys.stderr.write(json.dumps(turn.stats.as_json()) + "\n")
        sys.stderr.flush()


Seed = Annotated[int | None, typer.Option("--seed", help="Sampling seed, for repeatable replies.")]
MaxTokens = Annotated[int | None, typer.Option("--max-tokens", min=1, help="Longest reply, in tokens.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="A model name (see `companion model list`).")]
StatsOpt = Annotated[bool, typer.Option("--stats", help="One JSON line of timing per turn on stderr.")]


@app.command("chat")
def chat(
    plain: Annotated[
        bool, typer.Option("--plain", help="Read one message per line from stdin; no TUI.")
    ] = False,
    stats: StatsOpt = False,
    model: ModelOpt = None,
    seed: Seed = None,
    max_tokens: MaxTokens = None,
) -> None:
    """Chat. With --plain: one message per stdin line, each reply on stdout followed by a blank line."""
    if not plain:
        from companion.tui.app import run_app

        run_app(model_name=model)
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
                engine = _engine(model)
            _run_turn(engine, line, stats, seed, max_tokens)
    finally:
        if engine is not None:
            engine.close()
    if seen == 0:
        raise CompanionError(
            "No message came on stdin; pipe one message per line, e.g. `echo hello | companion chat --plain`."
        )


@app.command("ask")
def ask(
    message: str,
    stats: StatsOpt = False,
    model: ModelOpt = None,
    seed: Seed = None,
    max_tokens: MaxTokens = None,
) -> None:
    """Answer one message and exit."""
    if not message.strip():
        raise CompanionError('The message is empty; give the text to ask, e.g. `companion ask "hello"`.')
    engine = _engine(model)
    try:
        _run_turn(engine, message, stats, seed, max_tokens)
    finally:
        engine.close()


# -- doctor ---------------------------------------------------------------------------------------------------
@app.command("doctor")
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


def main() -> None:
    import click

    try:
        result = app(standalone_mode=False)
    except CompanionError as error:
        err.print(f"Error: {error}", markup=False)
        sys.exit(1)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        err.print("Interrupted.")
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
