"""Memory upkeep on a schedule: forgetting (hourly), consolidation of ended sessions (every 15 minutes, when
there are any), digests (daily) and index maintenance (nightly).

Inside the app an APScheduler BackgroundScheduler checks every few minutes which jobs are due; on start it
catches up on what was missed while the app was closed (last-run times live in the database's `meta` table).
`companion maintain` runs the same jobs once, headless, for cron or systemd timers. A failed job is recorded,
leaves the data as it was (each job is one transaction, or idempotent), and is retried later with backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from companion import timeutil
from companion.config import Settings
from companion.errors import CompanionError
from companion.memory.db.store import SQL_ERRORS
from companion.memory.operations import LongTermMemory
from companion.memory.tables import meta
from companion.memory.upkeep import forgetting

if TYPE_CHECKING:
    from companion.llm.base import ChatModel
    from companion.memory.upkeep.consolidate import Consolidator

log = logging.getLogger("companion.scheduler")
CHECK_EVERY = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=6)


@dataclass
class UpkeepOptions:
    """What the upkeep jobs need, built in one place (`from_settings`) by the app and by `companion maintain`."""

    archive_below: float = 0.05
    archive_messages: bool = False
    idle_minutes: float = 30.0
    user: str = ""
    persona: str = "the companion"  # who the companion is when a session does not say
    consolidation: str = "auto"  # model | extractive | auto (see Consolidator)
    # The language model, loaded only when a job needs it; a chat turn goes first (`wait_turn`).
    model: Callable[[], ChatModel] | None = field(default=None, repr=False)
    wait_turn: Callable[[], None] | None = field(default=None, repr=False)
    exclude_session: int | None = None  # the conversation going on now is not consolidated

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        model: Callable[[], ChatModel] | None = None,
        wait_turn: Callable[[], None] | None = None,
        exclude_session: int | None = None,
    ) -> UpkeepOptions:
        memory = settings.memory
        consolidation = memory.consolidation
        if settings.model.backend == "remote" and settings.remote.consolidate != "yes":
            # The server would be sent whole conversations: only with the user's yes (remote.consolidate).
            consolidation = "extractive"
        return cls(
            archive_below=memory.archive_below,
            archive_messages=memory.archive_messages,
            idle_minutes=memory.session_idle_minutes,
            user=settings.user.name,
            persona=settings.persona.name,
            consolidation=consolidation,
            model=model,
            wait_turn=wait_turn,
            exclude_session=exclude_session,
        )


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    about: str
    run: Callable[[LongTermMemory, datetime, UpkeepOptions], str]


def _forget(memory: LongTermMemory, now: datetime, options: UpkeepOptions) -> str:
    result = forgetting.sweep(
        memory,
        now,
        tau_days=memory.tau_days,
        threshold=options.archive_below,
        messages=options.archive_messages,
    )
    extra = f", {len(result.messages)} messages archived" if result.messages else ""
    return f"checked {result.checked}, archived {len(result.archived)}{extra}"


def _index(memory: LongTermMemory, now: datetime, options: UpkeepOptions) -> str:
    embedded = memory.embed_missing()
    state = memory.index.refresh()  # kept when it holds every vector, else loaded or rebuilt from SQLite
    reread = memory.reread_contexts()  # once, for a file stored under an earlier rule (the index is open)
    memory.scrub()  # FTS merge + WAL checkpoint
    memory.store.optimize()
    return f"embedded {embedded}" + (f", {reread} messages read again" if reread else "") + f", index {state}"


def _consolidator(memory: LongTermMemory, options: UpkeepOptions) -> Consolidator:
    from companion.memory.upkeep.consolidate import Consolidator

    if options.model is None:
        raise CompanionError("No language model is available for consolidation.")
    return Consolidator(
        memory,
        options.model(),
        user=options.user or "the user",
        char=options.persona or "the companion",
        wait_turn=options.wait_turn,
        mode=options.consolidation,
    )


def _consolidate(memory: LongTermMemory, now: datetime, options: UpkeepOptions) -> str:
    from companion.memory.upkeep.consolidate import Report

    consolidator = _consolidator(memory, options)
    idle = timedelta(minutes=options.idle_minutes)
    report = Report()
    for session_id in consolidator.pending_sessions(now, idle, exclude=options.exclude_session):
        consolidator.consolidate_session(session_id, now, report)
    changed = report.facts_added or report.facts_updated or report.facts_superseded
    if changed or not consolidator.model_writes:
        # The model rewrites the profile when facts change; without one the profile follows what the user
        # said (a note added by hand, a fact forgotten): cheap, and a version only when a line changes.
        consolidator.update_profile(now, report)
    consolidator.close_past_threads(now, report)
    version = f", profile version {report.profile_version}" if report.profile_version else ""
    closed = f", {report.threads_closed} threads closed" if report.threads_closed else ""
    return report.line() + version + closed


def _digest(memory: LongTermMemory, now: datetime, options: UpkeepOptions) -> str:
    from companion.memory.upkeep.consolidate import Report

    report = Report()
    _consolidator(memory, options).make_digests(now, report)
    return f"{report.digests} digests"


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("forget", timedelta(hours=1), "archive memories whose retention has faded", _forget),
        Job(
            "consolidate",
            timedelta(minutes=15),
            "summarize ended sessions, learn facts, update the profile",
            _consolidate,
        ),
        Job("digest", timedelta(days=1), "daily and weekly digests of the conversations", _digest),
        Job(
            "index",
            timedelta(days=1),
            "embed what is missing, check the vector index, re-read old contexts, compact the search index",
            _index,
        ),
    )
}


@dataclass
class JobState:
    last_run: datetime | None = None
    last_ok: datetime | None = None
    last_result: str = ""
    last_error: str = ""
    failures: int = 0
    retry_at: datetime | None = None

    def due(self, job: Job, now: datetime) -> bool:
        if self.retry_at is not None and now < self.retry_at:
            return False
        if self.last_ok is None or self.last_ok > now:  # never ran, or the clock went back: run again
            return True
        return now - self.last_ok >= job.every

    def next_run(self, job: Job) -> datetime | None:
        if self.retry_at is not None:
            return self.retry_at
        return self.last_ok + job.every if self.last_ok else None


def load_state(memory: LongTermMemory, name: str) -> JobState:
    raw = meta.get(memory.store, f"job.{name}")
    if not raw:
        return JobState()
    data = json.loads(raw)
    return JobState(
        last_run=timeutil.parse(data.get("last_run")),
        last_ok=timeutil.parse(data.get("last_ok")),
        last_result=data.get("last_result", ""),
        last_error=data.get("last_error", ""),
        failures=int(data.get("failures", 0)),
        retry_at=timeutil.parse(data.get("retry_at")),
    )


def _save_state(memory: LongTermMemory, name: str, state: JobState) -> None:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") if value else None

    meta.put(
        memory.store,
        f"job.{name}",
        json.dumps(
            {
                "last_run": iso(state.last_run),
                "last_ok": iso(state.last_ok),
                "last_result": state.last_result,
                "last_error": state.last_error,
                "failures": state.failures,
                "retry_at": iso(state.retry_at),
            }
        ),
    )


# What a failing job may raise: recorded, retried later with backoff; anything else is a bug and propagates.
JOB_ERRORS: tuple[type[Exception], ...] = (
    CompanionError,
    *SQL_ERRORS,
    OSError,
    RuntimeError,
    ValueError,
    KeyError,
    TypeError,
)


def run_jobs(
    memory: LongTermMemory,
    now: datetime | None = None,
    *,
    only: str | None = None,
    force: bool = False,
    options: UpkeepOptions | None = None,
) -> dict[str, str]:
    """Run the due jobs (all of them with `force`, or just `only`); returns each run job's outcome."""
    now = now or timeutil.now()
    if only is not None and only not in JOBS:
        raise CompanionError(f"There is no job '{only}'; the jobs are: {', '.join(JOBS)}.")
    outcomes: dict[str, str] = {}
    for job in JOBS.values():
        if only is not None and job.name != only:
            continue
        state = load_state(memory, job.name)
        if not (force or only is not None or state.due(job, now)):
            continue
        state.last_run = now
        try:
            memory.notice_forgets()  # what another process forgot is not worked on from a cache
            result = job.run(memory, now, options or UpkeepOptions())
        except JOB_ERRORS as error:
            state.failures += 1
            state.last_error = f"{type(error).__name__}: {error}"
            state.retry_at = now + min(timedelta(minutes=2**state.failures), MAX_BACKOFF)
            outcomes[job.name] = f"failed ({state.last_error}); retry after {state.retry_at:%Y-%m-%d %H:%M}"
            log.warning("job %s failed: %s", job.name, state.last_error)
        else:
            state.last_ok, state.last_result, state.failures, state.retry_at = now, result, 0, None
            state.last_error = ""
            outcomes[job.name] = result
        _save_state(memory, job.name, state)
    return outcomes


@dataclass(frozen=True)
class JobStatus:
    """One job as `maintain --status` and the settings screen show it."""

    job: str
    about: str
    every: str
    last_run: str | None
    last_result: str
    next_run: str
    failures: int
    last_error: str


def status(memory: LongTermMemory, now: datetime | None = None) -> list[JobStatus]:
    rows = []
    for job in JOBS.values():
        state = load_state(memory, job.name)
        rows.append(
            JobStatus(
                job=job.name,
                about=job.about,
                every=str(job.every),
                last_run=state.last_run.isoformat(timespec="seconds") if state.last_run else None,
                last_result=state.last_result,
                next_run=(state.next_run(job) or now or timeutil.now()).isoformat(timespec="seconds"),
                failures=state.failures,
                last_error=state.last_error,
            )
        )
    return rows


class Scheduler:
    """The in-app schedule: an APScheduler BackgroundScheduler that runs due jobs off the UI thread.

    Jobs and chat share the memory file; each job is short transactions, so a chat turn never waits long. A
    lock keeps two runs from overlapping (a slow run and the next check)."""

    def __init__(
        self,
        memory: LongTermMemory,
        options: UpkeepOptions,
        after: Callable[[], None] | None = None,
        now: Callable[[], datetime] = timeutil.now,
    ) -> None:
        """`after` runs after each check's jobs (the app's check-ins); its failure is logged, like a job's.
        `now` is the clock the jobs run at: the engine's, so that the jobs and the check-in after them see one
        time (a thread the check-in would ask about is not closed by a job that reads another clock)."""
        self.memory = memory
        self.options = options
        self.after = after
        self.now = now
        self._lock = threading.Lock()
        self._scheduler: Any = None

    def run_due(self, wait: bool = False) -> None:
        """Run the due jobs, then `after`; a check while a run is going on is skipped (`wait`: waits for it)."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            run_jobs(self.memory, self.now(), options=self.options)
            if self.after is not None:
                try:
                    self.after()
                except JOB_ERRORS as error:
                    log.warning("after upkeep: %s", error)
        finally:
            self._lock.release()

    def start(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        from companion.background import lower_this_thread

        # One thread for the jobs, at the lowest CPU priority (a run never overlaps the next one anyway).
        executor = ThreadPoolExecutor(max_workers=1, pool_kwargs={"initializer": lower_this_thread})
        self._scheduler = BackgroundScheduler(executors={"default": executor}, daemon=True, timezone="UTC")
        # First check right away: catches up on what was missed while the app was closed.
        self._scheduler.add_job(
            self.run_due,
            "interval",
            seconds=int(CHECK_EVERY.total_seconds()),
            next_run_time=timeutil.now(),
            id="memory-upkeep",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            with contextlib.suppress(Exception):  # stopping twice, or during interpreter exit
                self._scheduler.shutdown(wait=True)
            self._scheduler = None
