"""`companion maintain`: memory upkeep once, headless (cron, systemd timers), and its schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from companion import config as config_mod
from companion import timeutil
from companion.cli.common import MemoryContext, err, when
from companion.paths import get_paths

if TYPE_CHECKING:
    from companion import checkins
    from companion.llm.base import ChatModel


def maintain(
    now: Annotated[str | None, typer.Option("--now", help="Treat this ISO time as now.")] = None,
    only: Annotated[
        str | None,
        typer.Option("--only", help="Run just this job (forget, consolidate, digest, index, checkin)."),
    ] = None,
    show_status: Annotated[
        bool, typer.Option("--status", help="Show last and next runs and failures.")
    ] = False,
    due: Annotated[
        bool, typer.Option("--due", help="Run only the jobs that are due (what the timer runs).")
    ] = False,
) -> None:
    """Run memory upkeep once, headless (for cron or a systemd timer): forgetting, consolidation, digests, index,
    and a check-in when one is due (`checkins.enabled`)."""
    from companion import checkins
    from companion.background import lower_this_thread
    from companion.memory.upkeep import scheduler

    moment = when(now, "--now")
    if not show_status:
        lower_this_thread()  # upkeep (from cron, beside the app) yields the CPU to the chat and everything else
    settings = config_mod.load()
    if not show_status:
        settings = _remote_consent(settings)
    with MemoryContext(ready=not show_status and only != CHECKIN) as memory:
        if show_status:
            for row in scheduler.status(memory):
                failed = f"; {row.failures} failures, last: {row.last_error}" if row.failures else ""
                print(
                    f"{row.job:<12} every {row.every:<15} last {row.last_run or 'never'} "
                    f"({row.last_result or '-'}); next {row.next_run}{failed}"
                )
            return
        loaded: list[ChatModel] = []

        def model() -> ChatModel:  # loaded only when a job needs it
            if not loaded:
                from companion.llm.models import open_model

                with err.status("Loading the model…", spinner="dots"):
                    loaded.append(open_model(settings, get_paths().ensure()))
            return loaded[0]

        options = scheduler.UpkeepOptions.from_settings(settings, model=model)
        try:
            jobs_only = None if only == CHECKIN else only
            outcomes = (
                {}
                if only == CHECKIN
                else scheduler.run_jobs(memory, moment, only=jobs_only, force=not due, options=options)
            )
            checkin = None
            if only in (None, CHECKIN):
                checkin = checkins.run(memory, settings, moment or timeutil.now(), model=model)
                outcomes[CHECKIN] = checkin.said
        finally:
            if loaded:
                loaded[0].close()
    if checkin is not None and checkin.made is not None:
        outcomes[CHECKIN] += "; " + _tell_the_desktop(settings, checkin)
    for name, outcome in outcomes.items():
        print(f"{name}: {outcome}")
    if any(outcome.startswith("failed") for outcome in outcomes.values()):
        raise typer.Exit(1)


CHECKIN = "checkin"
OPEN_WAIT_SECONDS = 600.0  # under the timer, how long the notification's "Open" is listened for


def _tell_the_desktop(settings: config_mod.Settings, checkin: checkins.Outcome) -> str:
    """Show the check-in's notification; under a timer (no terminal), wait a while for its "Open" click."""
    import sys

    from companion import checkins
    from companion.desktop import launcher
    from companion.memory.tables import checkins as checkin_table

    assert checkin.made is not None
    sent = checkins.tell_the_desktop(
        settings.persona.name,
        checkin.text,
        settings.checkins.preview,
        on_open=launcher.open_app,
        wait_seconds=0.0 if sys.stdin.isatty() else OPEN_WAIT_SECONDS,
    )
    if not sent.ok:
        return f"not shown: {sent.detail}"
    with MemoryContext() as memory:
        checkin_table.mark_notified(memory.store, checkin.made.id, timeutil.now_iso())
    return f"notification {sent.detail}"


def _remote_consent(settings: config_mod.Settings) -> config_mod.Settings:
    """With a remote backend, consolidation sends whole conversations to the server: asked once, in a terminal
    (`remote.consolidate = ask`); the answer is kept. Without a terminal (cron), nothing is sent."""
    import sys

    if settings.model.backend != "remote" or settings.remote.consolidate != "ask":
        return settings
    if not sys.stdin.isatty():
        err.print(
            "Note: summaries and facts are written without the remote model; it would be sent whole "
            "conversations (`companion config set remote.consolidate yes` allows it).",
            markup=False,
        )
        return settings
    allowed = typer.confirm(
        f"Upkeep can send each finished conversation (its whole transcript) to {settings.remote.base_url} to "
        "write summaries, facts and your profile. Allow it?",
        default=False,
    )
    config_mod.set_value(settings, "remote.consolidate", "yes" if allowed else "no")
    config_mod.save(settings)
    return settings
