"""`companion schedule install/status/remove` and `companion desktop install/remove` against temporary XDG folders:
the unit files and the launcher a user gets, checked by content (and by `desktop-file-validate` where it is
installed). `systemctl` is a recording stand-in on the PATH: the test never touches the real user manager."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import run, run_process


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    folders = {"config": tmp_path / "config-home", "data": tmp_path / "data-home", "bin": tmp_path / "bin"}
    folders["bin"].mkdir()
    calls = tmp_path / "systemctl.calls"
    fake = folders["bin"] / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folders["config"]))
    monkeypatch.setenv("XDG_DATA_HOME", str(folders["data"]))
    monkeypatch.setenv("PATH", f"{folders['bin']}{os.pathsep}{os.environ['PATH']}")
    folders["calls"] = calls
    return folders


def test_schedule_install_writes_a_user_timer_enables_it_and_remove_takes_it_away(
    xdg: dict[str, Path],
) -> None:
    done = run("schedule", "install")
    assert done.returncode == 0, done.stderr
    units = xdg["config"] / "systemd" / "user"
    service = (units / "companion-upkeep.service").read_text()
    timer = (units / "companion-upkeep.timer").read_text()
    assert "Type=oneshot" in service and "Nice=19" in service and "IOSchedulingClass=idle" in service
    exec_line = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    assert exec_line.endswith("maintain --due")
    assert f"Environment=COMPANION_HOME={Path(os.environ['COMPANION_HOME']).resolve()}" in service
    assert "OnCalendar=*:0/30" in timer and "Persistent=true" in timer and "WantedBy=timers.target" in timer
    if shutil.which("systemd-analyze"):  # systemd's own reading of the two units
        files = [str(units / "companion-upkeep.service"), str(units / "companion-upkeep.timer")]
        check = subprocess.run(["systemd-analyze", "verify", *files], capture_output=True, text=True)
        assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check.stderr
    assert xdg["calls"].read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now companion-upkeep.timer",
    ]
    assert "systemd user timer companion-upkeep.timer: active" in run("schedule", "status").stdout
    gone = run("schedule", "remove")
    assert gone.returncode == 0 and not units.joinpath("companion-upkeep.timer").exists()
    assert "--user disable --now companion-upkeep.timer" in xdg["calls"].read_text()
    assert "No timer is installed" in run("schedule", "status").stdout
    assert "No timer was installed." in run("schedule", "remove").stdout


def test_without_systemd_the_cron_line_is_printed(
    xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (xdg["bin"] / "systemctl").unlink()
    monkeypatch.setenv("PATH", str(xdg["bin"]))  # no systemctl anywhere
    done = run("schedule", "install")
    assert done.returncode == 0 and "crontab -e" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("*/30 * * * * nice -n 19 ")
    assert done.stdout.strip().endswith("maintain --due")


def test_desktop_install_puts_a_valid_launcher_with_the_avatar_in_the_app_menu(xdg: dict[str, Path]) -> None:
    done = run("desktop", "install")
    assert done.returncode == 0, done.stderr
    entry = xdg["data"] / "applications" / "companion.desktop"
    text = entry.read_text()
    icon = xdg["data"] / "icons" / "hicolor" / "256x256" / "apps" / "companion.png"
    assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Icon={icon}" in text and "Terminal=true" in text and "Type=Application" in text
    assert "Exec=env COMPANION_HOME=" in text
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout
    assert run("desktop", "remove").returncode == 0 and not entry.exists() and not icon.exists()
    assert "No launcher was installed." in run("desktop", "remove").stdout


def test_a_folder_that_cannot_be_written_is_one_sentence(xdg: dict[str, Path]) -> None:
    xdg["data"].mkdir()
    (xdg["data"] / "applications").write_text("not a folder")
    done = run("desktop", "install")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "The launcher cannot be written to" in done.stderr


def test_doctor_says_whether_the_timer_is_installed_and_a_notification_service_answers(
    xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    line = next(x for x in run("doctor").stdout.splitlines() if "check-ins:" in x)
    assert line.startswith("[ok  ] check-ins: off") and "no upkeep timer" in line
    assert run("config", "set", "checkins.enabled", "true").returncode == 0
    shown = run("doctor").stdout
    assert "[warn] check-ins: on; no upkeep timer" in shown and "fix: companion schedule install" in shown
    assert "no notification service could be reached" in shown
    run("schedule", "install")
    shown = run("doctor").stdout
    assert "systemd user timer companion-upkeep.timer: active" in shown


def test_maintain_due_runs_only_the_jobs_that_are_due(xdg: dict[str, Path]) -> None:
    """What the timer runs every 30 minutes: the first run does every job, the next only what came due. As its
    own process: upkeep lowers its thread's CPU priority, which must not stay on the test runner."""
    first = run_process("maintain", "--due", "--now", "2026-12-01T12:00:00")
    assert first.returncode == 0 and "consolidate:" in first.stdout and "index:" in first.stdout
    soon = run_process("maintain", "--due", "--now", "2026-12-01T12:05:00")
    assert soon.returncode == 0
    assert [line.split(":")[0] for line in soon.stdout.splitlines()] == ["checkin"], soon.stdout
    later = run_process("maintain", "--due", "--now", "2026-12-01T12:31:00")
    assert "consolidate:" in later.stdout and "digest:" not in later.stdout
