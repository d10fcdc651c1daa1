"""`companion profile …`: the profile companion keeps of you; see it, its history, veto a line."""

from __future__ import annotations

import typer

from companion.cli.common import MemoryContext

app = typer.Typer(
    help="The profile companion keeps of you: see it, its history, veto a line.", invoke_without_command=True
)


@app.callback()
def show(ctx: typer.Context) -> None:
    """Show the current profile."""
    if ctx.invoked_subcommand is not None:
        return
    from companion.memory.tables import profile

    with MemoryContext() as memory:
        current = profile.current(memory.store)
    if current.version is None:
        print("No profile yet: it is written from what you talk about, after a conversation has ended.")
        return
    print(f"Profile version {current.version} ({(current.created_at or '')[:16]}):")
    for line in current.lines:
        found = current.sources.get(line)
        said = (
            f"  (from {'memory' if len(found) == 1 else 'memories'} {', '.join(map(str, found))})"
            if found
            else ""
        )
        print(f"  {line}{said}")


@app.command("history")
def history() -> None:
    """Every version of the profile with what changed."""
    from companion.memory.tables import profile

    with MemoryContext() as memory:
        versions = profile.history(memory.store)
    if not versions:
        print("No profile yet.")
    for version in versions:
        print(f"version {version.id} · {version.created_at[:16]} · {version.reason}")
        for line in version.diff.get("added", []):
            print(f"  + {line}")
        for line in version.diff.get("removed", []):
            print(f"  - {line}")


@app.command("veto")
def veto(line: str) -> None:
    """Remove a line from the profile and keep companion from inferring it again."""
    from companion.memory.tables import profile

    with MemoryContext() as memory:
        version = profile.veto(memory.store, line)
    print(f"Removed; the profile is now version {version}, and that line will not be inferred again.")
