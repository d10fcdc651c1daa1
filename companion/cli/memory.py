"""`companion memory …`: look at, search, export and forget what companion remembers.

Every command calls the same `LongTermMemory` functions the app calls: one `search`, one `forget`, one
`export`. Only `search`, `add`, `edit`, `restore`, `forget` and `import` load the embedding model.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from companion import config as config_mod
from companion import timeutil
from companion.cli.common import MemoryContext, ask, err, memory_id, plural, progress, when
from companion.errors import CompanionError
from companion.paths import get_paths
from companion.tui.text import shorten

if TYPE_CHECKING:
    from companion.memory.tables.forget import Preview

app = typer.Typer(help="Look at, search, export and forget what companion remembers.", no_args_is_help=True)


@app.command("stats")
def stats(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Counts by kind, archived, file and index sizes, index state, oldest and newest."""
    with MemoryContext() as memory:
        figures = memory.stats()
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    many = {"summary": "summaries"}
    kinds = ", ".join(plural(n, k, many.get(k)) for k, n in sorted(figures["memories"].items())) or "none yet"
    print(f"messages:  {plural(figures['messages'], 'message')} in {plural(figures['sessions'], 'session')}")
    print(
        f"memories:  {kinds}; {figures['archived']} archived, {figures['superseded']} superseded, "
        f"{figures['pinned']} pinned"
    )
    print(f"file:      {figures['file']} ({figures['file_bytes'] / 2**20:.1f} MiB)")
    print(
        f"index:     {figures['index_kind']}, {figures['vectors']} vectors, "
        f"{figures['index_bytes'] / 2**20:.1f} MiB, {figures['index_state']}"
    )
    print(f"embedding: {figures['embedding_model']}")
    print(f"oldest:    {figures['oldest'] or '-'}")
    print(f"newest:    {figures['newest'] or '-'}")


@app.command("list")
def list_(
    kind: Annotated[
        str | None, typer.Option("--kind", help="message, fact, summary, digest, profile or note.")
    ] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Show archived memories instead.")] = False,
    session: Annotated[int | None, typer.Option("--session", help="The messages of one session.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 200,
) -> None:
    """List memories (or, with --session or --kind message, messages)."""
    from companion.memory.tables import messages as message_table

    with MemoryContext() as memory:
        if session is not None or kind == "message":
            for m in message_table.page(memory.store, session, limit):
                print(f"message:{m.id}\tsession {m.session_id}\t{m.created_at[:16]}\t{m.who}: {m.text}")
            return
        for item in memory.list_memories(kind, archived, limit):
            pin = " (pinned)" if item.pinned else ""
            print(
                f"{item.id}\t{item.kind}{pin}\t{timeutil.day(item.event_time or item.created_at)}\t{item.text}"
            )


@app.command("show")
def show(ref: Annotated[str, typer.Argument(help="A memory ID or message:ID.")]) -> None:
    """One memory (ID) or message (message:ID): text, provenance and full change history."""
    from companion import timeutil
    from companion.memory.records import Ref
    from companion.memory.view import memory_view, message_view

    target = Ref.parse(ref)
    settings = config_mod.load()
    with MemoryContext() as memory:
        if target.kind == "message":
            seen = message_view(memory.store, target.id)
            if seen is None:
                raise CompanionError(f"There is no message {target.id}.")
            message = seen.message
            print(f"message:{message.id} in session {message.session_id}, {message.created_at}")
            print(f"{message.who}: {message.text}")
            if message.source_id:
                print(f"external id: {message.source_id}")
            if seen.derived:
                print("memories from it: " + ", ".join(str(i) for i in seen.derived))
            return
        view = memory_view(memory.store, target.id, timeutil.now(), settings.memory.tau_days)
        if view is None:
            raise CompanionError(f"There is no memory {target.id}; see `companion memory list`.")
    item = view.memory
    print(f"{item.id} · {item.kind} · {item.state}{' · pinned' if item.pinned else ''}")
    print(item.text)
    print(
        f"created {item.created_at}; event {item.event_time or '-'}; importance {item.importance:.2f}; "
        f"strength {item.strength:.2f}; retention {view.retention:.2f}; recalled "
        f"{plural(item.recall_count, 'time')}, last {item.last_recalled_at or 'never'}"
    )
    print("from:" if view.sources else "from: (no messages: added by hand)")
    for message in view.sources:
        print(
            f"  message:{message.id} ({message.source_id or '-'}) {message.created_at[:16]} {message.who}: "
            f"{message.text}"
        )
    print("history:")
    for change in view.history:
        moved = f" {change.old_text!r} -> {change.new_text!r}" if change.old_text else ""
        print(f"  {change.at[:19]} {change.action}{moved} {change.reason}".rstrip())


@app.command("search")
def search(
    query: Annotated[str | None, typer.Argument(help="What to look for.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 10,
    now: Annotated[
        str | None, typer.Option("--now", help="Treat this ISO time as now (for 'last week').")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    queries: Annotated[
        Path | None, typer.Option("--queries", help="One query per line; prints one JSON array per line.")
    ] = None,
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="The whole ranking, each hit with its relevance and whether it passes the bar (without it: "
            "only what the chat would recall, possibly nothing).",
        ),
    ] = False,
) -> None:
    """Search memories and messages: keywords and meaning together, time-aware. Prints what the chat would
    recall for this text: nothing when nothing clears the relevance bar."""
    moment = when(now, "--now")
    if queries is None and (query is None or not query.strip()):
        raise CompanionError(
            'Give something to search for, e.g. `companion memory search "sister\'s wedding"`.'
        )
    if queries is not None and not queries.exists():
        raise CompanionError(f"{queries} does not exist; give a file with one query per line.")
    with MemoryContext(ready=True) as memory:
        if queries is not None:
            for line in queries.read_text(encoding="utf-8").splitlines():
                hits = (
                    memory.search(line, now=moment, limit=limit, everything=everything)
                    if line.strip()
                    else []
                )
                rows = [h.as_json(detail=everything) for h in hits]
                sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
            return
        assert query is not None
        hits = memory.search(query, now=moment, limit=limit, everything=everything)
    if as_json:
        print(json.dumps([h.as_json(detail=everything) for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        print("Nothing relevant remembered.")
    for hit in hits:
        ref = f"message:{hit.id}" if hit.kind == "message" else str(hit.id)
        who = f"{hit.speaker or hit.role}: " if hit.kind == "message" else f"({hit.kind}) "
        passes = ("  " if hit.relevant else "✗ ") if everything else ""
        print(f"{passes}{hit.score:6.2f}  {ref:<14} {timeutil.day(hit.time)}  {who}{hit.text}")
    if everything and hits and not any(hit.relevant for hit in hits):
        print("(none of these clears the relevance bar: the chat would recall nothing)")
    elif everything and not all(hit.relevant for hit in hits):
        print("(✗: below the relevance bar, not recalled)")


@app.command("add")
def add(text: str) -> None:
    """Add a note for the companion to remember."""
    with MemoryContext(ready=True) as memory:
        new_id = memory.add_note(text)
    print(f"Remembered as memory {new_id}.")


@app.command("pin")
def pin(ref: Annotated[str, typer.Argument(help="A memory ID.")]) -> None:
    """Pin a memory: it never fades and ranks higher in recall."""
    from companion.memory.records import Ref

    with MemoryContext() as memory:
        memory.pin(memory_id(Ref.parse(ref)), True)
    print("Pinned.")


@app.command("unpin")
def unpin(ref: Annotated[str, typer.Argument(help="A memory ID.")]) -> None:
    """Unpin a memory."""
    from companion.memory.records import Ref

    with MemoryContext() as memory:
        memory.pin(memory_id(Ref.parse(ref)), False)
    print("Unpinned.")


@app.command("edit")
def edit(ref: Annotated[str, typer.Argument(help="A memory ID.")], text: str) -> None:
    """Correct a memory's text (the old text stays in its history)."""
    from companion.memory.records import Ref

    with MemoryContext(ready=True) as memory:
        memory.edit(memory_id(Ref.parse(ref)), text)
    print("Updated.")


@app.command("restore")
def restore(ref: Annotated[str, typer.Argument(help="A memory ID or message:ID.")]) -> None:
    """Bring an archived memory (ID) or message (message:ID) back."""
    from companion.memory.records import Ref

    target = Ref.parse(ref)
    with MemoryContext(ready=True) as memory:
        if target.kind == "message":
            memory.restore_message(target.id)
        else:
            memory.restore(target.id)
    print("Restored.")


@app.command("forget")
def forget(
    ref: Annotated[str | None, typer.Argument(help="A memory ID or message:ID.")] = None,
    session: Annotated[int | None, typer.Option("--session", help="Forget a whole session.")] = None,
    before: Annotated[
        str | None, typer.Option("--before", help="Forget everything before this ISO date.")
    ] = None,
    matching: Annotated[
        str | None,
        typer.Option("--matching", help="Forget everything that says these words (whole words, any case)."),
    ] = None,
    substring: Annotated[
        bool, typer.Option("--substring", help="With --matching: also inside longer words.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be forgotten.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete for good: the text is removed from the file, the index and everything derived only from it.
    Lists what it will remove and asks first."""
    from companion.memory.records import Ref
    from companion.memory.tables import messages as message_table
    from companion.memory.tables import sessions as session_table
    from companion.memory.tables.forget import Criteria
    from companion.memory.tables.words import Words

    if ref is None and session is None and before is None and matching is None:
        raise CompanionError(
            "Say what to forget: an ID, message:ID, --session S, --before DATE or --matching TEXT."
        )
    if matching is not None and not matching.strip():
        raise CompanionError("--matching needs words to look for; give the words to forget.")
    if substring and matching is None:
        raise CompanionError("--substring goes with --matching; give the words to forget.")
    moment = when(before, "--before")
    with MemoryContext() as memory:
        messages: list[int] = []
        memories: list[int] = []
        sessions: list[int] = []
        if ref is not None:
            target = Ref.parse(ref)
            if target.kind == "message":
                if message_table.get(memory.store, target.id) is None:
                    raise CompanionError(f"There is no message {target.id}.")
                messages.append(target.id)
            else:
                memories.append(memory.require_memory(target.id).id)
        if session is not None:
            if not session_table.exists(memory.store, session):
                raise CompanionError(
                    f"There is no session {session}; see `companion memory list --kind message`."
                )
            sessions.append(session)
        criteria = Criteria(
            tuple(messages),
            tuple(memories),
            tuple(sessions),
            moment,
            Words(matching, substring) if matching is not None else None,
        )
        plan = memory.preview_forget(criteria)
        if plan.nothing:
            print("Nothing matches; nothing was forgotten.")
            return
        print(forget_listing(plan))
        if dry_run:
            print("Nothing was forgotten (--dry-run).")
            return
        if not yes:
            if not sys.stdin.isatty():
                raise CompanionError("This forgets the above for good; add --yes to confirm.")
            if not typer.confirm("Forget all of this for good?"):
                print("Nothing was forgotten.")
                return
        with progress() as report:
            memory.ready(report)
        done = memory.forget(criteria)
    print(
        f"Forgotten: {plural(done['messages'], 'message')}, {plural(done['memories'], 'memory', 'memories')}, "
        f"{plural(done['sessions'], 'session')}."
    )


def forget_listing(plan: Preview, shown: int = 10) -> str:
    """What a forget removes, as the user reads it before saying yes."""
    lines = ["This forgets for good:"]
    if plan.messages:
        whole = f" in {plural(plan.sessions, 'whole session')}" if plan.sessions else ""
        lines.append(f"  {plural(plan.messages, 'message')}{whole}")
    if plan.memories:
        lines.append(f"  {plural(len(plan.memories), 'memory', 'memories')}:")
        for memory_id, kind, text in plan.memories[:shown]:
            lines.append(f"    {memory_id} ({kind}) {shorten(text, 60)}")
        if len(plan.memories) > shown:
            lines.append(f"    … and {len(plan.memories) - shown} more")
    for persona, entry in plan.lore[:shown]:
        lines.append(f"  lorebook entry of {persona}: {shorten(entry, 60)}")
    if len(plan.lore) > shown:
        lines.append(f"  … and {len(plan.lore) - shown} more lorebook entries")
    if plan.speakers:
        lines.append(
            f'  the speaker name {", ".join(plan.speakers)} (those messages\' speaker becomes "someone")'
        )
    if plan.personas:
        lines.append(f'  the persona name {", ".join(plan.personas)} (renamed "Companion")')
    return "\n".join(lines)


@app.command("export")
def export(
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
    from companion.memory import encryption
    from companion.memory.portability import exports, sealed
    from companion.paths import atomic_path

    if fmt not in ("json", "jsonl", "markdown"):
        raise CompanionError(f"'{fmt}' is not an export format; use json, jsonl or markdown.")
    if encrypt and output is None:
        raise CompanionError("An encrypted export needs a file to go to; add -o FILE.")
    secret = (
        encryption.passphrase(ask(), "Passphrase for the export: ", confirm=True, what="an encrypted export")
        if encrypt
        else None
    )
    with MemoryContext() as memory:
        if fmt == "json":
            text = json.dumps(exports.export_json(memory), ensure_ascii=False, indent=1) + "\n"
        elif fmt == "jsonl":
            text = exports.export_jsonl(memory)
        else:
            text = exports.export_markdown(memory)
    plain = (
        "Warning: the export is plain text, readable by anyone who gets it; "
        "-o FILE --encrypt protects it with a passphrase."
    )
    if output is None:
        sys.stdout.write(text)
        err.print(plain)
        return
    with atomic_path(output.expanduser().resolve(), ours=False) as tmp:
        tmp.write_bytes(
            sealed.seal(text.encode("utf-8"), secret) if secret is not None else text.encode("utf-8")
        )
    if secret is not None:
        err.print(
            f"Exported to {output}, encrypted with your passphrase (import it with the same passphrase)."
        )
    else:
        err.print(f"Exported to {output}. {plain}")


@app.command("import")
def import_(
    file: Path,
    fmt: Annotated[
        str | None, typer.Option("--format", help="json, jsonl or chatgpt (default: by file name).")
    ] = None,
) -> None:
    """Import a companion json export, a JSON Lines conversation log, or a ChatGPT conversations.json."""
    from companion.memory.portability import formats, imports

    parsed = formats.read_import(file, fmt, ask())  # a bad file is reported before anything loads
    with MemoryContext(ready=True) as memory, progress() as report:
        result = imports.import_parsed(memory, parsed, report)
    skipped = f", {result.skipped} already there" if result.skipped else ""
    extra = f", {plural(result.memories, 'memory', 'memories')}" if result.memories else ""
    repaired = (
        f" {plural(result.repaired, 'message')} held characters that cannot be stored; they were replaced with �."
        if result.repaired
        else ""
    )
    print(
        f"Imported {plural(result.messages, 'message')} in {plural(result.sessions, 'new session')}"
        f"{extra}{skipped}.{repaired}"
    )


@app.command("encrypt")
def encrypt(
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
    prompt = ask()
    if not use_passphrase and not keyring_usable() and encryption.PASSPHRASE_ENV not in os.environ:
        if prompt is None:
            raise CompanionError(
                "No OS keyring is available here to keep the key, so the memory file needs a passphrase: set "
                f"{encryption.PASSPHRASE_ENV}, or run `companion memory encrypt` in a terminal to type one."
            )
        err.print("No OS keyring is available here, so the memory file will be locked with a passphrase.")
    result = encryption.encrypt(paths, prompt, use_passphrase)
    print(f"The memory file is now {result.describe()}.")


@app.command("decrypt")
def decrypt(
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
    result = encryption.decrypt(get_paths().ensure(), ask())
    print(f"The memory file is now {result.describe()}.")


@app.command("threads")
def threads(
    close: Annotated[str | None, typer.Option("--close", help="Close this thread (a memory ID).")] = None,
    closed: Annotated[bool, typer.Option("--closed", help="List closed threads instead.")] = False,
) -> None:
    """Open threads: things coming up in your life (an interview, a trip) the companion may ask about later."""
    from companion.memory.records import Ref
    from companion.memory.tables import memories as memory_table

    with MemoryContext() as memory:
        if close is not None:
            memory.close_thread(memory_id(Ref.parse(close)))
            print("Closed.")
            return
        items = memory_table.threads(memory.store, "closed" if closed else "open")
        if not closed:  # asked about in a check-in: still open, not asked again
            items += memory_table.threads(memory.store, "asked")
    if not items:
        print("No closed threads." if closed else "No open threads.")
    for item in items:
        asked = "\t(asked in a check-in)" if item.thread == "asked" else ""
        print(f"{item.id}\t{timeutil.day(item.event_time)}\t{item.text}{asked}")
