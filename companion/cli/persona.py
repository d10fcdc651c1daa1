"""`companion persona …`: who you talk with, as Character Card personas (import, export, edit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from companion import config as config_mod
from companion.cli.common import MemoryContext, err
from companion.errors import CompanionError

app = typer.Typer(
    help="Who you talk with: Character Card personas (import, export, edit).", no_args_is_help=True
)


@app.command("list")
def list_() -> None:
    """The personas; the one in use is marked with *."""
    from companion.persona import library

    settings = config_mod.load()
    with MemoryContext() as memory:
        library.ensure_default(memory.store)
        for name in library.names(memory.store):
            mark = "*" if name.lower() == settings.persona.name.lower() else " "
            card = library.get(memory.store, name)
            print(f"{mark} {name}\t{card.creator or '-'}\t{', '.join(card.tags)}")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The persona's name (see `companion persona list`).")],
) -> None:
    """A persona's card fields and lorebook."""
    from companion.persona import library

    with MemoryContext() as memory:
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


@app.command("use")
def use(name: Annotated[str, typer.Argument(help="The persona's name.")]) -> None:
    """Talk with this persona from now on."""
    from companion.persona import library

    with MemoryContext() as memory:
        library.ensure_default(memory.store)
        card = library.get(memory.store, name)
    settings = config_mod.load()
    settings.persona.name = card.name
    config_mod.save(settings)
    print(f"Now talking with {card.name}.")


@app.command("new")
def new(
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
    with MemoryContext() as memory:
        library.add(memory.store, card)
    print(f"Created {card.name}. Talk with it: companion persona use {card.name}")


@app.command("edit")
def edit(name: str, field_name: Annotated[str, typer.Argument(metavar="FIELD")], value: str) -> None:
    """Change one field of a persona, e.g. `persona edit Sam personality "calm, dry humour"` (lists: a | b)."""
    from companion.persona import library

    with MemoryContext() as memory:
        library.ensure_default(memory.store)
        card = library.update(memory.store, name, field_name, value)
    print(f"Updated {card.name}.")


@app.command("import")
def import_(file: Path) -> None:
    """Import a Character Card: V2 or V1 JSON, or a PNG with the card inside (V3 best effort)."""
    from companion.persona import library
    from companion.persona.card import read_card
    from companion.persona.lorebook import unusable

    card = read_card(file)
    with MemoryContext() as memory:
        library.ensure_default(memory.store)
        library.add(memory.store, card)
    for warning in unusable(card.character_book):
        err.print(f"Warning: in the lorebook, {warning}.", markup=False)
    lore = len((card.character_book or {}).get("entries", []))
    print(
        f"Imported {card.name}"
        + (f" with {lore} lorebook entries" if lore else "")
        + f". Use it: companion persona use {card.name}"
    )


@app.command("export")
def export(
    name: str,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file (default: stdout).")
    ] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Embed the card in this PNG image.")] = None,
    as_png: Annotated[bool, typer.Option("--as-png", help="A PNG card with the default avatar.")] = False,
) -> None:
    """Export a persona as Character Card V2 JSON, or as a PNG card (`--png IMAGE`, or `--as-png`)."""
    from companion.paths import assets_dir, atomic_path, write_private_text
    from companion.persona import library
    from companion.persona.card import card_to_png

    with MemoryContext() as memory:
        library.ensure_default(memory.store)
        card = library.get(memory.store, name)
    if png is not None or as_png:
        source = png or assets_dir() / "personas" / "avatar.png"
        if not source.exists():
            raise CompanionError(f"{source} does not exist; give a PNG image to put the card in.")
        data = card_to_png(card, source.read_bytes(), source.name)
        if output is None:
            raise CompanionError("A PNG card needs a file to go to; add -o FILE.png.")
        with atomic_path(output.expanduser().resolve(), ours=False) as tmp:
            tmp.write_bytes(data)
        print(f"Exported {card.name} to {output}.")
        return
    text = json.dumps(card.to_json(), ensure_ascii=False, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    write_private_text(output.expanduser().resolve(), text, ours=False)
    print(f"Exported {card.name} to {output}.")
