"""The forgetting curve and its sweep, with a fixed clock; property tests with hypothesis."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.memory.db.store import Store
from companion.memory.operations import LongTermMemory
from companion.memory.recall.retention import retention
from companion.memory.tables import audit as audit_table
from companion.memory.tables import memories as memory_table
from companion.memory.upkeep import scheduler
from companion.memory.upkeep.forgetting import sweep
from companion.paths import Paths
from tests.rows import add_memory

T0 = datetime(2024, 1, 1, tzinfo=UTC)
days = st.floats(min_value=0, max_value=3650, allow_nan=False)
strengths = st.floats(min_value=0.05, max_value=50, allow_nan=False)


@given(strengths, days, days)
def test_retention_falls_with_time(strength: float, a: float, b: float) -> None:
    early, late = sorted((a, b))
    assert retention(strength, T0, T0 + timedelta(days=early)) >= retention(
        strength, T0, T0 + timedelta(days=late)
    )


@given(strengths, st.floats(min_value=0.01, max_value=3650, allow_nan=False))
def test_recall_raises_retention(strength: float, elapsed: float) -> None:
    now = T0 + timedelta(days=elapsed)
    assert retention(strength + 1, T0, now) > retention(strength, T0, now)


def test_recall_slows_forgetting_unlike_memorybanks_formula() -> None:
    # MemoryBank's exp(-t / 5*S) is exp(-t*S/5) in Python: a stronger memory fades *faster* there.
    assert math.exp(-10 / 5 * 3) < math.exp(-10 / 5 * 1)
    assert retention(3, T0, T0 + timedelta(days=10)) > retention(1, T0, T0 + timedelta(days=10))


def test_a_clock_that_jumps_back_forgets_nothing() -> None:
    assert retention(0.5, T0, T0 - timedelta(days=30)) == 1.0


@pytest.fixture
def store(paths: Paths) -> Store:
    return Store(paths.database)


def add(store: Store, text: str, importance: float, made: datetime, pinned: bool = False) -> int:
    memory_id = add_memory(store, "fact", text, importance=importance)
    with store.transaction() as conn:
        conn.execute(
            "update memories set created_at = ?, pinned = ? where id = ?",
            (made.isoformat(), int(pinned), memory_id),
        )
    return memory_id


def test_recalled_memory_outlives_a_forgotten_one(store: Store) -> None:
    memory = LongTermMemory(store)
    trivia = add(store, "Ana had toast on Tuesday", 0.3, T0)
    loved = add(store, "Ana's sister is Marta", 0.3, T0)
    hit = type("H", (), {"kind": "fact", "id": loved})()
    memory.reinforce([hit, hit], T0 + timedelta(days=1))  # it came up twice
    result = sweep(memory, T0 + timedelta(days=6))
    assert result.archived == [trivia]
    archived = memory_table.get(store, trivia)
    assert archived is not None and archived.archived
    assert [h.action for h in audit_table.history(store, "memory", trivia)] == ["add", "archive"]
    kept = memory_table.get(store, loved)
    assert kept is not None and not kept.archived and kept.strength == pytest.approx(2.3)


memories = st.lists(
    st.tuples(
        st.floats(min_value=0.05, max_value=1.0), st.integers(min_value=0, max_value=400), st.booleans()
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(memories, st.integers(min_value=0, max_value=800))
def test_pinned_never_archived_and_archive_restore_is_lossless(store: Store, rows: list, later: int) -> None:
    with store.transaction() as conn:
        conn.execute("delete from audit")
        conn.execute("delete from memories")
    ids = [
        add(store, f"memory {i}", importance, T0 + timedelta(days=age), pinned)
        for i, (importance, age, pinned) in enumerate(rows)
    ]
    before = {i: memory_table.get(store, i) for i in ids}
    result = sweep(LongTermMemory(store), T0 + timedelta(days=later))
    for memory_id, (_, _, pinned) in zip(ids, rows, strict=True):
        if pinned:
            assert memory_id not in result.archived
    memory = LongTermMemory(store)
    for memory_id in result.archived:
        memory.restore(memory_id)
        back = memory_table.get(store, memory_id)
        old = before[memory_id]
        assert back is not None and old is not None and not back.archived
        same = (
            "kind",
            "text",
            "event_time",
            "created_at",
            "importance",
            "pinned",
            "valid_from",
            "valid_to",
            "session_id",
        )
        assert all(getattr(back, f) == getattr(old, f) for f in same)


def test_jobs_catch_up_back_off_and_survive_the_clock(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    memory = LongTermMemory(store)
    add(store, "fleeting", 0.1, T0)
    first = scheduler.run_jobs(memory, T0 + timedelta(days=3), only="forget")
    assert first == {"forget": "checked 1, archived 1"}
    assert scheduler.run_jobs(memory, T0 + timedelta(days=3, minutes=10)).get("forget") is None  # not due yet
    assert "forget" in scheduler.run_jobs(memory, T0 + timedelta(days=3, hours=2))  # due again
    assert "forget" in scheduler.run_jobs(memory, T0 - timedelta(days=100))  # clock jumped back: runs again

    def broken(memory: LongTermMemory, now: datetime, options: dict) -> str:
        raise RuntimeError("model missing")

    monkeypatch.setitem(scheduler.JOBS, "forget", scheduler.Job("forget", timedelta(hours=1), "x", broken))
    later = T0 + timedelta(days=10)
    outcome = scheduler.run_jobs(memory, later, only="forget")
    assert outcome["forget"].startswith("failed (RuntimeError: model missing)")
    state = scheduler.load_state(memory, "forget")
    assert state.failures == 1 and state.retry_at == later + timedelta(minutes=2)
    assert "forget" not in scheduler.run_jobs(memory, later + timedelta(minutes=1))  # backing off
    assert "forget" in scheduler.run_jobs(memory, later + timedelta(minutes=3))
    assert scheduler.load_state(memory, "forget").failures == 2


def test_the_in_app_schedule_runs_the_jobs_at_the_clock_it_is_given(store: Store) -> None:
    """The app's schedule and the check-in after it read one clock (the engine's): a job at the wall clock
    while the check-in reads another closed the thread the check-in was about (a test failed once the calendar
    passed a week after its fixed date)."""
    memory = LongTermMemory(store)
    add(store, "fleeting", 0.1, T0)
    seen: list[datetime] = []
    upkeep = scheduler.Scheduler(
        memory, scheduler.UpkeepOptions(), after=lambda: seen.append(T0), now=lambda: T0 + timedelta(days=3)
    )
    upkeep.run_due(wait=True)
    state = scheduler.load_state(memory, "forget")
    assert state.last_run == T0 + timedelta(days=3) and state.last_result == "checked 1, archived 1"
    assert seen == [T0]


def test_maintain_command(paths: Paths, store: Store) -> None:
    add(store, "old trivia", 0.2, T0)
    store.close()
    run = [sys.executable, "-m", "companion", "maintain"]
    result = subprocess.run([*run, "--now", "2024-03-01", "--only", "forget"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "forget: checked 1, archived 1" in result.stdout
    status = subprocess.run([*run, "--status"], capture_output=True, text=True).stdout
    assert "forget" in status and "2024-03-01" in status and "index" in status
    listed = subprocess.run(
        [sys.executable, "-m", "companion", "memory", "list", "--archived"], capture_output=True, text=True
    )
    assert "old trivia" in listed.stdout
    bad = subprocess.run([*run, "--only", "dream"], capture_output=True, text=True)
    assert bad.returncode == 1 and "no job 'dream'" in bad.stderr and "Traceback" not in bad.stderr


def test_archiving_messages_is_an_option(memory: LongTermMemory) -> None:  # the imported 2023 conversation
    now = datetime(2023, 7, 1, tzinfo=UTC)
    assert sweep(memory, now, tau_days=memory.tau_days).messages == []  # off by default: messages stay
    assert memory.search("grey cat", now=now, limit=3)
    result = sweep(memory, now, tau_days=memory.tau_days, messages=True)
    # exp(-days / 5) < 0.05 after 15 days: May's two conversations fade, June 20th's does not.
    old = {r[0] for r in memory.store.conn.execute("select id from messages where created_at < '2023-06-16'")}
    assert set(result.messages) == old and len(old) == 6
    assert not any("Bolacha" in h.text for h in memory.search("grey cat Bolacha", now=now, limit=10))
    first = int(memory.store.scalar("select id from messages where source_id = 'D1:1'"))
    memory.restore_message(first)
    assert memory.search("grey cat Bolacha", now=now, limit=3)[0].source_ids == ["D1:1"]
    assert memory.store.count("messages") == 11  # nothing deleted


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice is per thread on Linux only")
def test_upkeep_runs_at_the_lowest_cpu_priority_and_the_rest_of_the_process_does_not(
    memory: LongTermMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a busy machine the jobs take what the chat, its recall and the screen leave over."""
    import os
    import threading

    seen: list[int] = []
    ran = threading.Event()

    def record(*args: object, **kwargs: object) -> dict[str, str]:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        ran.set()
        return {}

    monkeypatch.setattr(scheduler, "run_jobs", record)
    upkeep = scheduler.Scheduler(memory, scheduler.UpkeepOptions())
    upkeep.start()
    try:
        assert ran.wait(30)
    finally:
        upkeep.stop()
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [19] and here < 19


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice is per thread on Linux only")
def test_maintain_from_cron_yields_the_cpu(paths: Paths) -> None:
    code = (
        "import atexit, os, sys, threading\n"
        "atexit.register(lambda: print('nice', os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))\n"
        "sys.argv = ['companion', *sys.argv[1:]]\n"
        "from companion.cli import main\n"
        "main()\n"
    )
    upkeep = subprocess.run(
        [sys.executable, "-c", code, "maintain", "--only", "forget"], capture_output=True, text=True
    )
    status = subprocess.run(
        [sys.executable, "-c", code, "maintain", "--status"], capture_output=True, text=True
    )
    assert upkeep.returncode == 0 and status.returncode == 0, upkeep.stderr + status.stderr
    assert upkeep.stdout.splitlines()[-1] == "nice 19"
    assert status.stdout.splitlines()[-1] != "nice 19"  # only showing the schedule is no background work
