"""The command line (typer): thin, no business logic. Every command calls the same functions the TUI calls.

Heavy modules (llama.cpp, torch, Textual) are imported inside the commands that need them, so `companion
--help` stays instant. A `CompanionError` becomes one sentence on stderr and exit code 1; Ctrl+C exits 130
after whatever was in flight has been stored or rolled back.
"""

from __future__ import annotations

import json
import os
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
memory_app = typer.Typer(
    help="Look at, search, export and forget what companion remembers.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(model_app, name="model")
app.add_typer(memory_app, name="memory")

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

        run_app(ask=_ask())


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


def _ask() -> Any:
    """A hidden prompt on the terminal for a passphrase, or None when there is no terminal (scripts use
    COMPANION_PASSPHRASE)."""
    if not sys.stdin.isatty():
        return None
    import getpass

    return getpass.getpass


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
    engine = Engine(settings, model_name=model, ask=_ask())
    with err.status("Loading the model…", spinner="dots"):
        engine.load_model()
    return engine


def _run_turn(engine: Any, text: str, stats: bool, seed: int | None, max_tokens: int | None) -> None:
    degraded = engine.degraded
    turn = engine.send(text, seed=seed, max_tokens=max_tokens)
    if engine.degraded and engine.degraded != degraded:
        err.print(f"Warning: {engine.degraded}", markup=False)
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

        run_app(model_name=model, ask=_ask())
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


# -- memory ---------------------------------------------------------------------------------------------------
class _Memory:
    """The memory file opened for one command, with a progress bar for long work (embedding)."""

    def __init__(self, ready: bool = True) -> None:
        from companion.memory.encryption import open_memory

        paths = get_paths().ensure()
        self.store, self.memory = open_memory(paths, config_mod.load(paths).memory, _ask())
        if ready:
            with _progress() as report:
                self.memory.ready(report)

    def __enter__(self) -> Any:
        return self.memory

    def __exit__(self, *exc: object) -> None:
        self.memory.close()
        self.store.close()


class _progress:  # noqa: N801 - used like a function
    """A rich progress bar on stderr that appears only once there is something to report."""

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.tasks: dict[str, Any] = {}

        def report(what: str, done: int, total: int) -> None:
            if what not in self.tasks:
                if not self.tasks:
                    self.bar.start()
                self.tasks[what] = self.bar.add_task(what, total=total)
            self.bar.update(self.tasks[what], completed=done, total=total)

        return report

    def __exit__(self, *exc: object) -> None:
        if self.tasks:
            self.bar.stop()


def _when(value: str | None, option: str) -> Any:
    if value is None:
        return None
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CompanionError(
            f"{option} {value!r} is not an ISO date, e.g. 2023-05-08 or 2023-05-08T13:56:00."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@memory_app.command("stats")
def memory_stats(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Counts by kind, archived, file and index sizes, index state, oldest and newest."""
    with _Memory() as memory:
        stats = memory.stats()
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(stats["memories"].items())) or "none yet"
    print(f"messages:  {stats['messages']} in {stats['sessions']} sessions")
    print(
        f"memories:  {kinds}; {stats['archived']} archived, {stats['superseded']} superseded, {stats['pinned']} pinned"
    )
    print(f"file:      {stats['file']} ({stats['file_bytes'] / 2**20:.1f} MiB)")
    print(
        f"index:     {stats['index_kind']}, {stats['vectors']} vectors, {stats['index_bytes'] / 2**20:.1f} MiB, {stats['index_state']}"
    )
    print(f"embedding: {stats['embedding_model']}")
    print(f"oldest:    {stats['oldest'] or '-'}")
    print(f"newest:    {stats['newest'] or '-'}")


@memory_app.command("list")
def memory_list(
    kind: Annotated[
        str | None, typer.Option("--kind", help="message, fact, summary, digest, profile or note.")
    ] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Show archived memories instead.")] = False,
    session: Annotated[int | None, typer.Option("--session", help="The messages of one session.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 200,
) -> None:
    """List memories (or, with --session or --kind message, messages)."""
    with _Memory(ready=False) as memory:
        if session is not None or kind == "message":
            sql = "select id, session_id, created_at, role, speaker, text from messages"
            params: list[Any] = []
            if session is not None:
                sql += " where session_id = ?"
                params.append(session)
            for mid, sid, created, role, speaker, text in memory.store.conn.execute(
                sql + " order by id limit ?", [*params, limit]
            ):
                print(f"message:{mid}\tsession {sid}\t{created[:16]}\t{speaker or role}: {text}")
            return
        for item in memory.list_memories(kind, archived, limit):
            pin = " (pinned)" if item.pinned else ""
            print(f"{item.id}\t{item.kind}{pin}\t{(item.event_time or item.created_at)[:10]}\t{item.text}")


@memory_app.command("show")
def memory_show(ref: str) -> None:
    """One memory (ID) or message (message:ID): text, provenance and full change history."""
    from companion.memory.operations import Ref

    target = Ref.parse(ref)
    with _Memory(ready=False) as memory:
        if target.kind == "message":
            message = memory.store.get_message(target.id)
            if message is None:
                raise CompanionError(f"There is no message {target.id}.")
            print(f"message:{message.id} in session {message.session_id}, {message.created_at}")
            print(f"{message.speaker or message.role}: {message.text}")
            if message.source_id:
                print(f"external id: {message.source_id}")
            derived = memory.store.conn.execute(
                "select memory_id from memory_sources where message_id = ?", (message.id,)
            ).fetchall()
            if derived:
                print("memories from it: " + ", ".join(str(r[0]) for r in derived))
            return
        item = memory.require_memory(target.id)
        state = "archived" if item.archived else ("superseded" if item.valid_to else "active")
        print(f"{item.id} · {item.kind} · {state}{' · pinned' if item.pinned else ''}")
        print(item.text)
        print(
            f"created {item.created_at}; event {item.event_time or '-'}; importance {item.importance:.2f}; "
            f"strength {item.strength:.2f}; recalled {item.recall_count} times, last {item.last_recalled_at or 'never'}"
        )
        sources = memory.store.memory_sources(item.id)
        print("from:" if sources else "from: (no messages: added by hand)")
        for message in sources:
            print(
                f"  message:{message.id} ({message.source_id or '-'}) {message.created_at[:16]} {message.speaker or message.role}: {message.text}"
            )
        print("history:")
        for entry in memory.store.history("memory", item.id):
            change = f" {entry['old_text']!r} -> {entry['new_text']!r}" if entry["old_text"] else ""
            print(f"  {entry['at'][:19]} {entry['action']}{change} {entry['reason'] or ''}".rstrip())


@memory_app.command("search")
def memory_search(
    query: Annotated[str | None, typer.Argument(help="What to look for.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 10,
    now: Annotated[
        str | None, typer.Option("--now", help="Treat this ISO time as now (for 'last week').")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    queries: Annotated[
        Path | None, typer.Option("--queries", help="One query per line; prints one JSON array per line.")
    ] = None,
) -> None:
    """Search memories and messages: keywords and meaning together, time-aware."""
    moment = _when(now, "--now")
    if queries is None and (query is None or not query.strip()):
        raise CompanionError(
            'Give something to search for, e.g. `companion memory search "sister\'s wedding"`.'
        )
    if queries is not None and not queries.exists():
        raise CompanionError(f"{queries} does not exist; give a file with one query per line.")
    with _Memory() as memory:
        if queries is not None:
            for line in queries.read_text(encoding="utf-8").splitlines():
                hits = memory.search(line, now=moment, limit=limit) if line.strip() else []
                sys.stdout.write(json.dumps([h.as_json() for h in hits], ensure_ascii=False) + "\n")
            return
        assert query is not None
        hits = memory.search(query, now=moment, limit=limit)
    if as_json:
        print(json.dumps([h.as_json() for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        print("Nothing found.")
    for hit in hits:
        ref = f"message:{hit.id}" if hit.kind == "message" else str(hit.id)
        who = f"{hit.speaker or hit.role}: " if hit.kind == "message" else f"({hit.kind}) "
        print(f"{hit.score:6.2f}  {ref:<14} {hit.time[:10]}  {who}{hit.text}")


@memory_app.command("add")
def memory_add(text: str) -> None:
    """Add a note for the companion to remember."""
    with _Memory() as memory:
        memory_id = memory.add_note(text)
    print(f"Remembered as memory {memory_id}.")


@memory_app.command("pin")
def memory_pin(ref: str) -> None:
    """Pin a memory: it never fades and ranks higher in recall."""
    from companion.memory.operations import Ref

    with _Memory(ready=False) as memory:
        memory.pin(_memory_id(Ref.parse(ref)), True)
    print("Pinned.")


@memory_app.command("unpin")
def memory_unpin(ref: str) -> None:
    """Unpin a memory."""
    from companion.memory.operations import Ref

    with _Memory(ready=False) as memory:
        memory.pin(_memory_id(Ref.parse(ref)), False)
    print("Unpinned.")


@memory_app.command("edit")
def memory_edit(ref: str, text: str) -> None:
    """Correct a memory's text (the old text stays in its history)."""
    from companion.memory.operations import Ref

    with _Memory() as memory:
        memory.edit(_memory_id(Ref.parse(ref)), text)
    print("Updated.")


@memory_app.command("restore")
def memory_restore(ref: str) -> None:
    """Bring an archived memory (ID) or message (message:ID) back."""
    from companion.memory.operations import Ref

    target = Ref.parse(ref)
    with _Memory() as memory:
        if target.kind == "message":
            memory.restore_message(target.id)
        else:
            memory.restore(target.id)
    print("Restored.")


def _memory_id(ref: Any) -> int:
    if ref.kind != "memory":
        raise CompanionError(
            "Messages cannot be pinned or edited; they are what was said. Forget one with `forget message:ID`."
        )
    return int(ref.id)


@memory_app.command("forget")
def memory_forget(
    ref: Annotated[str | None, typer.Argument(help="A memory ID or message:ID.")] = None,
    session: Annotated[int | None, typer.Option("--session", help="Forget a whole session.")] = None,
    before: Annotated[
        str | None, typer.Option("--before", help="Forget everything before this ISO date.")
    ] = None,
    matching: Annotated[
        str | None, typer.Option("--matching", help="Forget everything containing this text.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete for good: the text is removed from the file, the index and everything derived only from it."""
    from companion.memory.operations import Ref

    if ref is None and session is None and before is None and matching is None:
        raise CompanionError(
            "Say what to forget: an ID, message:ID, --session S, --before DATE or --matching TEXT."
        )
    moment = _when(before, "--before")
    with _Memory(ready=False) as memory:
        messages: list[int] = []
        memories: list[int] = []
        sessions: list[int] = []
        if ref is not None:
            target = Ref.parse(ref)
            if target.kind == "message":
                if memory.store.get_message(target.id) is None:
                    raise CompanionError(f"There is no message {target.id}.")
                messages.append(target.id)
            else:
                memories.append(memory.require_memory(target.id).id)
        if session is not None:
            if not memory.store.scalar("select count(*) from sessions where id = ?", (session,)):
                raise CompanionError(
                    f"There is no session {session}; see `companion memory list --kind message`."
                )
            sessions.append(session)
        if moment is not None or matching:
            messages += memory.select_messages(before=moment, matching=matching)
            memories += memory.select_memories(before=moment, matching=matching)
        count = len(set(messages)) + len(set(memories)) + len(sessions)
        if count == 0:
            print("Nothing matches; nothing was forgotten.")
            return
        what = []
        if messages:
            what.append(f"{len(set(messages))} messages")
        if memories:
            what.append(f"{len(set(memories))} memories")
        if sessions:
            what.append(f"{len(sessions)} session(s) with all their messages")
        if not yes:
            if not sys.stdin.isatty():
                raise CompanionError(f"This would forget {', '.join(what)} for good; add --yes to confirm.")
            if not typer.confirm(f"Forget {', '.join(what)} for good?"):
                print("Nothing was forgotten.")
                return
        memory.ready()
        done = memory.forget(messages=messages, memories=memories, sessions=sessions)
    print(
        f"Forgotten: {done['messages']} messages, {done['memories']} memories, {done['sessions']} sessions."
    )


@memory_app.command("export")
def memory_export(
    fmt: Annotated[
        str, typer.Option("--format", help="json (complete), jsonl (conversation log) or markdown.")
    ] = "json",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file (default: stdout).")
    ] = None,
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt", help="Encrypt the export with a passphrase (asked, or COMPANION_PASSPHRASE)."
        ),
    ] = False,
) -> None:
    """Export the memory: json (complete, re-importable), jsonl (the conversation log) or markdown (a journal)."""
    from companion.memory import encryption, portability

    if fmt not in ("json", "jsonl", "markdown"):
        raise CompanionError(f"'{fmt}' is not an export format; use json, jsonl or markdown.")
    if encrypt and output is None:
        raise CompanionError("An encrypted export needs a file to go to; add -o FILE.")
    secret = encryption.passphrase(_ask(), "Passphrase for the export: ", confirm=True) if encrypt else None
    with _Memory(ready=False) as memory:
        if fmt == "json":
            text = json.dumps(portability.export_json(memory), ensure_ascii=False, indent=1) + "\n"
        elif fmt == "jsonl":
            text = portability.export_jsonl(memory)
        else:
            text = portability.export_markdown(memory)
    plain = (
        "Warning: the export is plain text, readable by anyone who gets it; "
        "-o FILE --encrypt protects it with a passphrase."
    )
    if output is None:
        sys.stdout.write(text)
        err.print(plain)
        return
    from companion.paths import atomic_path

    with atomic_path(output.expanduser().resolve()) as tmp:
        tmp.write_bytes(
            encryption.seal(text.encode("utf-8"), secret) if secret is not None else text.encode("utf-8")
        )
    if secret is not None:
        err.print(
            f"Exported to {output}, encrypted with your passphrase (import it with the same passphrase)."
        )
    else:
        err.print(f"Exported to {output}. {plain}")


@memory_app.command("import")
def memory_import(
    file: Path,
    fmt: Annotated[
        str | None, typer.Option("--format", help="json, jsonl or chatgpt (default: by file name).")
    ] = None,
) -> None:
    """Import a companion json export, a JSON Lines conversation log, or a ChatGPT conversations.json."""
    from companion.memory import portability

    if fmt is not None and fmt not in ("json", "jsonl", "chatgpt"):
        raise CompanionError(f"'{fmt}' is not an import format; use json, jsonl or chatgpt.")
    with _Memory() as memory, _progress() as report:
        result = portability.import_file(memory, file, fmt, report, ask=_ask())
    skipped = f", {result.skipped} already there" if result.skipped else ""
    extra = f", {result.memories} memories" if result.memories else ""
    print(f"Imported {result.messages} messages in {result.sessions} new sessions{extra}{skipped}.")


# -- persona --------------------------------------------------------------------------------------------------
persona_app = typer.Typer(
    help="Who you talk with: Character Card personas (import, export, edit).", no_args_is_help=True
)
app.add_typer(persona_app, name="persona")


@persona_app.command("list")
def persona_list() -> None:
    """The personas; the one in use is marked with *."""
    from companion.persona import library

    settings = config_mod.load()
    with _Memory(ready=False) as memory:
        library.ensure_default(memory.store)
        for name in library.names(memory.store):
            mark = "*" if name.lower() == settings.persona.name.lower() else " "
            card = library.get(memory.store, name)
            print(f"{mark} {name}\t{card.creator or '-'}\t{', '.join(card.tags)}")


@persona_app.command("show")
def persona_show(name: str) -> None:
    """A persona's card fields and lorebook."""
    from companion.persona import library

    with _Memory(ready=False) as memory:
        library.ensure_default(memory.store)
        card = library.get(memory.store, name)
    for field_name in library.EDITABLE:
        value = getattr(card, field_name)
        if value:
            shown = " | ".join(value) if isinstance(value, list) else value
            print(f"{field_name}: {shown}")
    entries = (card.character_book or {}).get("entries", [])
    if entries:
        print(f"lorebook: {len(entries)} entries")
        for entry in entries:
            print(f"  [{', '.join(entry.get('keys', []))}] {entry.get('content', '')}")
    extensions = sorted(card.extensions)
    if extensions:
        print(f"extensions: {', '.join(extensions)}")


@persona_app.command("use")
def persona_use(name: str) -> None:
    """Talk with this persona from now on."""
    from companion.persona import library

    with _Memory(ready=False) as memory:
        library.ensure_default(memory.store)
        card = library.get(memory.store, name)
    settings = config_mod.load()
    settings.persona.name = card.name
    config_mod.save(settings)
    print(f"Now talking with {card.name}.")


@persona_app.command("new")
def persona_new(
    name: str,
    description: Annotated[str, typer.Option("--description", help="Who the persona is.")] = "",
    personality: Annotated[str, typer.Option("--personality")] = "",
    scenario: Annotated[str, typer.Option("--scenario")] = "",
    first_mes: Annotated[str, typer.Option("--first-message")] = "",
) -> None:
    """Create a persona (edit its other fields with `persona edit`)."""
    from companion.persona import library
    from companion.persona.card import Card

    if not name.strip():
        raise CompanionError("A persona needs a name.")
    card = Card(
        name=name.strip(),
        description=description,
        personality=personality,
        scenario=scenario,
        first_mes=first_mes,
        creator=config_mod.load().user.name,
    )
    with _Memory(ready=False) as memory:
        library.add(memory.store, card)
    print(f"Created {card.name}. Talk with it: companion persona use {card.name}")


@persona_app.command("edit")
def persona_edit(name: str, field_name: Annotated[str, typer.Argument(metavar="FIELD")], value: str) -> None:
    """Change one field of a persona, e.g. `persona edit Sam personality "calm, dry humour"` (lists: a | b)."""
    from companion.persona import library

    with _Memory(ready=False) as memory:
        library.ensure_default(memory.store)
        card = library.update(memory.store, name, field_name, value)
    print(f"Updated {card.name}.")


@persona_app.command("import")
def persona_import(file: Path) -> None:
    """Import a Character Card: V2 or V1 JSON, or a PNG with the card inside (V3 best effort)."""
    from companion.persona import library
    from companion.persona.card import read_card

    card = read_card(file)
    with _Memory(ready=False) as memory:
        library.ensure_default(memory.store)
        library.add(memory.store, card)
    lore = len((card.character_book or {}).get("entries", []))
    print(
        f"Imported {card.name}"
        + (f" with {lore} lorebook entries" if lore else "")
        + f". Use it: companion persona use {card.name}"
    )


@persona_app.command("export")
def persona_export(
    name: str,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file (default: stdout).")
    ] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Embed the card in this PNG image.")] = None,
    as_png: Annotated[bool, typer.Option("--as-png", help="A PNG card with the default avatar.")] = False,
) -> None:
    """Export a persona as Character Card V2 JSON, or as a PNG card (`--png IMAGE`, or `--as-png`)."""
    from companion.paths import assets_dir, write_private_text
    from companion.persona import library
    from companion.persona.card import card_to_png

    with _Memory(ready=False) as memory:
        library.ensure_default(memory.store)
        card = library.get(memory.store, name)
    if png is not None or as_png:
        source = png or assets_dir() / "personas" / "avatar.png"
        if not source.exists():
            raise CompanionError(f"{source} does not exist; give a PNG image to put the card in.")
        data = card_to_png(card, source.read_bytes(), source.name)
        if output is None:
            raise CompanionError("A PNG card needs a file to go to; add -o FILE.png.")
        from companion.paths import atomic_path

        with atomic_path(output.expanduser().resolve()) as tmp:
            tmp.write_bytes(data)
        print(f"Exported {card.name} to {output}.")
        return
    text = json.dumps(card.to_json(), ensure_ascii=False, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    write_private_text(output.expanduser().resolve(), text)
    print(f"Exported {card.name} to {output}.")


# -- profile --------------------------------------------------------------------------------------------------
profile_app = typer.Typer(
    help="The profile companion keeps of you: see it, its history, veto a line.", invoke_without_command=True
)
app.add_typer(profile_app, name="profile")


@profile_app.callback()
def profile_show(ctx: typer.Context) -> None:
    """Show the current profile."""
    if ctx.invoked_subcommand is not None:
        return
    from companion.memory.consolidate import current_profile

    with _Memory(ready=False) as memory:
        version, sections, created = current_profile(memory.store)
    if version is None:
        print("No profile yet: it is written from what you talk about, after a conversation has ended.")
        return
    print(f"Profile version {version} ({created[:16] if created else ''}):")
    for name, lines in sections.items():
        for line in lines:
            print(f"  {name}: {line}")


@profile_app.command("history")
def profile_history_command() -> None:
    """Every version of the profile with what changed."""
    from companion.memory.consolidate import profile_history

    with _Memory(ready=False) as memory:
        rows = profile_history(memory.store)
    if not rows:
        print("No profile yet.")
    for row in rows:
        print(f"version {row['id']} · {row['created_at'][:16]} · {row['reason']}")
        for line in row["diff"].get("added", []):
            print(f"  + {line}")
        for line in row["diff"].get("removed", []):
            print(f"  - {line}")


@profile_app.command("veto")
def profile_veto(line: str) -> None:
    """Remove a line from the profile and keep companion from inferring it again."""
    from companion.memory.consolidate import veto

    with _Memory(ready=False) as memory:
        version = veto(memory.store, line)
    print(f"Removed; the profile is now version {version}, and that line will not be inferred again.")


@memory_app.command("encrypt")
def memory_encrypt(
    use_passphrase: Annotated[
        bool, typer.Option("--passphrase", help="Use a passphrase even where an OS keyring exists.")
    ] = False,
) -> None:
    """Encrypt the memory file at rest (SQLCipher); its key goes to the OS keyring, or a passphrase is used."""
    from companion.memory import encryption
    from companion.secrets import keyring_usable

    paths = get_paths().ensure()
    if encryption.state(paths.database).encrypted:
        raise CompanionError("The memory file is already encrypted; nothing was changed.")
    if not use_passphrase and not keyring_usable() and encryption.PASSPHRASE_ENV not in os.environ:
        err.print("No OS keyring is available here, so the memory file will be locked with a passphrase.")
    result = encryption.encrypt(paths, _ask(), use_passphrase)
    print(f"The memory file is now {result.describe()}.")


@memory_app.command("decrypt")
def memory_decrypt(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Turn encryption off: the memory file is rewritten in the clear."""
    from companion.memory import encryption

    if not yes:
        if not sys.stdin.isatty():
            raise CompanionError("This writes your memory file in the clear; add --yes to confirm.")
        if not typer.confirm("Write the memory file in the clear?"):
            print("Nothing was changed.")
            return
    result = encryption.decrypt(get_paths().ensure(), _ask())
    print(f"The memory file is now {result.describe()}.")


@memory_app.command("threads")
def memory_threads(
    close: Annotated[str | None, typer.Option("--close", help="Close this thread (a memory ID).")] = None,
    closed: Annotated[bool, typer.Option("--closed", help="List closed threads instead.")] = False,
) -> None:
    """Open threads: things coming up in your life (an interview, a trip) the companion may ask about later."""
    from companion.memory.operations import Ref

    with _Memory(ready=False) as memory:
        if close is not None:
            memory.close_thread(_memory_id(Ref.parse(close)))
            print("Closed.")
            return
        rows = memory.store.conn.execute(
            "select id, text, event_time from memories where thread = ? and archived = 0 and valid_to is null"
            " order by event_time",
            ("closed" if closed else "open",),
        ).fetchall()
    if not rows:
        print("No closed threads." if closed else "No open threads.")
    for memory_id, text, when in rows:
        print(f"{memory_id}\t{(when or '')[:10]}\t{text}")


# -- maintain -------------------------------------------------------------------------------------------------
@app.command("maintain")
def maintain(
    now: Annotated[str | None, typer.Option("--now", help="Treat this ISO time as now.")] = None,
    only: Annotated[
        str | None, typer.Option("--only", help="Run just this job (forget, consolidate, digest, index).")
    ] = None,
    show_status: Annotated[
        bool, typer.Option("--status", help="Show last and next runs and failures.")
    ] = False,
) -> None:
    """Run memory upkeep once, headless (for cron or a systemd timer): forgetting, consolidation, digests, index."""
    from companion.memory import scheduler

    moment = _when(now, "--now")
    settings = config_mod.load()
    with _Memory(ready=not show_status) as memory:
        if show_status:
            for row in scheduler.status(memory):
                failed = f"; {row['failures']} failures, last: {row['last_error']}" if row["failures"] else ""
                print(
                    f"{row['job']:<12} every {row['every']:<15} last {row['last_run'] or 'never'} "
                    f"({row['last_result'] or '-'}); next {row['next_run']}{failed}"
                )
            return
        loaded: list[Any] = []

        def model() -> Any:  # loaded only when a job needs it
            if not loaded:
                from companion.llm.models import open_model

                with err.status("Loading the model…", spinner="dots"):
                    loaded.append(open_model(settings, get_paths().ensure()))
            return loaded[0]

        options = {
            "archive_below": settings.memory.archive_below,
            "archive_messages": settings.memory.archive_messages,
            "idle_minutes": settings.memory.session_idle_minutes,
            "model": model,
            "user": settings.user.name,
        }
        try:
            outcomes = scheduler.run_jobs(memory, moment, only=only, force=True, options=options)
        finally:
            if loaded:
                loaded[0].close()
    for name, outcome in outcomes.items():
        print(f"{name}: {outcome}")
    if any(outcome.startswith("failed") for outcome in outcomes.values()):
        raise typer.Exit(1)


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
    except Exception as error:  # a read of a damaged or vanished memory file: one sentence, not a traceback
        from companion.errors import storage_error
        from companion.memory.store import SQL_ERRORS

        if not isinstance(error, SQL_ERRORS):
            raise
        err.print(f"Error: {storage_error(get_paths().database, error)}", markup=False)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
