"""Check-ins on a real desktop bus: a private `dbus-daemon --session` with a notification server on it that
records every Notify call (tests/notification_server.py). Everything goes through the commands a user types —
`config set`, `memory import`, `maintain --now …`, `desktop install` — as separate processes, on a home whose
conversation mentions a dated plan. Skipped where the Debian package `dbus` is missing (`.ci/run` installs it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from companion import config
from companion.engine import Engine
from companion.paths import Paths
from tests.scripted import ScriptedModel

ROOT = Path(__file__).resolve().parents[2]
CHAT = [
    ("user", "Ana", "Hi! I have a job interview next Tuesday at a bakery.", "2026-12-01T10:00:00Z"),
    ("assistant", "Sam", "Good luck! What kind of job?", "2026-12-01T10:00:30Z"),
    ("user", "Ana", "Pastry chef. I am a bit nervous.", "2026-12-01T10:01:00Z"),
]


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Callable[[str], dict[str, str]]]:
    """`desktop(answer)`: a session bus with a notification server that answers each notification with
    `answer` ("open", "close" or "none"); returns the environment a companion process needs to reach it."""
    if not shutil.which("dbus-daemon"):
        pytest.skip("needs the Debian package dbus")
    started: list[subprocess.Popen[str]] = []
    bus_pids: list[int] = []

    def start(answer: str) -> dict[str, str]:
        env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share"), "PYTHONPATH": str(ROOT)}
        bus = subprocess.run(
            ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
            capture_output=True,
            text=True,
            check=True,
        )
        address, pid = bus.stdout.split()[:2]
        bus_pids.append(int(pid))
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        record = tmp_path / "notifications.jsonl"
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.notification_server", str(record), answer],
            cwd=ROOT,
            env=env,
            text=True,
        )
        started.append(server)
        for _ in range(100):
            if record.with_suffix(".ready").exists():
                break
            time.sleep(0.05)
        env["NOTIFICATIONS"] = str(record)
        return env

    yield start
    for server in started:
        server.terminate()
        server.wait(10)
    for pid in bus_pids:
        os.kill(pid, signal.SIGTERM)


def companion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "companion", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def shown(env: dict[str, str]) -> list[dict[str, object]]:
    record = Path(env["NOTIFICATIONS"])
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def a_home_with_a_plan(env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "chat.jsonl"
    log.write_text(
        "\n".join(
            json.dumps({"session": "s1", "role": r, "speaker": s, "text": t, "time": at})
            for r, s, t, at in CHAT
        )
    )
    assert companion(env, "config", "set", "user.name", "Ana").returncode == 0
    assert companion(env, "memory", "import", str(log)).returncode == 0
    first = companion(env, "maintain", "--now", "2026-12-01T12:00:00Z")  # learns the plan: an open thread
    assert first.returncode == 0 and "checkin: none (check-ins are off)" in first.stdout, first.stdout


def test_one_private_notification_after_the_date_and_the_app_opens_on_it(
    desktop: Callable[[str], dict[str, str]], tmp_path: Path, paths: Paths
) -> None:
    env = desktop("close")
    a_home_with_a_plan(env, tmp_path)
    off = companion(env, "maintain", "--only", "checkin", "--now", "2026-12-09T12:00:00Z")
    assert "none (check-ins are off)" in off.stdout and shown(env) == []
    assert companion(env, "config", "set", "checkins.enabled", "true").returncode == 0
    for before in ("2026-12-07T12:00:00Z", "2026-12-08T18:00:00Z"):  # the interview is on Tuesday the 8th
        assert "nothing has come due" in companion(env, "maintain", "--now", before).stdout
    assert (
        "quiet hours"
        in companion(env, "maintain", "--only", "checkin", "--now", "2026-12-09T06:00:00Z").stdout
    )
    assert shown(env) == []
    made = companion(env, "maintain", "--now", "2026-12-09T12:00:00Z")
    assert made.returncode == 0 and "checkin: made one" in made.stdout and "notification shown" in made.stdout
    again = companion(env, "maintain", "--only", "checkin", "--now", "2026-12-09T17:00:00Z")
    assert "one check-in today already" in again.stdout
    [notification] = shown(env)
    assert notification["summary"] == "Sam would like to check in" and notification["body"] == ""
    assert "Open" in notification["actions"]  # type: ignore[operator]
    # The app started afterwards opens on the check-in: the companion's question, answered in place.
    engine = Engine(config.load(paths), paths, model=ScriptedModel(replies=["Wonderful!"]))
    assert engine.checkin is not None
    [question] = engine.messages()
    assert question.role == "assistant" and "job interview at a bakery on Tuesday 8 December" in question.text
    assert engine.ask("It went well, I got the job!")[0] == "Wonderful!"
    engine.close()


def test_preview_shows_the_question_and_open_starts_the_launcher(
    desktop: Callable[[str], dict[str, str]], tmp_path: Path
) -> None:
    env = desktop("open")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launched = tmp_path / "launched"
    gio = bin_dir / "gio"  # the desktop's launcher tool, recording what it was asked to launch
    gio.write_text(f'#!/bin/sh\necho "$@" >> {launched}\n')
    gio.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    a_home_with_a_plan(env, tmp_path)
    assert companion(env, "desktop", "install").returncode == 0
    for key, value in (("checkins.enabled", "true"), ("checkins.preview", "true")):
        assert companion(env, "config", "set", key, value).returncode == 0
    made = companion(env, "maintain", "--only", "checkin", "--now", "2026-12-09T12:00:00Z")
    assert "notification shown, and opened" in made.stdout, made.stdout
    [notification] = shown(env)
    assert "How did it go?" in str(notification["body"])
    for _ in range(50):
        if launched.exists():
            break
        time.sleep(0.1)
    entry = Path(env["XDG_DATA_HOME"]) / "applications" / "companion.desktop"
    assert launched.read_text().split() == ["launch", str(entry)]


def test_no_notification_service_is_one_sentence_and_upkeep_goes_on(tmp_path: Path) -> None:
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path / 'no-bus'}"}
    a_home_with_a_plan(env, tmp_path)
    assert companion(env, "config", "set", "checkins.enabled", "true").returncode == 0
    made = companion(env, "maintain", "--now", "2026-12-09T12:00:00Z")
    assert made.returncode == 0, made.stderr
    line = next(line for line in made.stdout.splitlines() if line.startswith("checkin:"))
    assert "made one" in line and "not shown: no notification service could be reached" in line
    assert "consolidate:" in made.stdout and "index:" in made.stdout
