"""Upkeep that runs without the app: a systemd user timer on Linux, a launchd agent on macOS, else a cron line.

The timer runs `companion maintain --due` every 30 minutes at the lowest CPU and I/O priority: the jobs that
are due (forgetting, consolidation, digests, the index) and a check-in when one is due (`companion.checkins`).
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from companion.desktop.launcher import command, home_env
from companion.errors import CompanionError

UNIT = "companion-upkeep"
EVERY_MINUTES = 30
AGENT = "org.companion.upkeep"


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def unit_dir() -> Path:
    return config_home() / "systemd" / "user"


def agent_path() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{AGENT}.plist"


def maintain_command() -> list[str]:
    return [*command(), "maintain", "--due"]


def _systemd_quote(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\n\"'\\;$%"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$") + '"'


def service_text(run: list[str], env: dict[str, str]) -> str:
    environment = "".join(f"Environment={_systemd_quote(f'{k}={v}')}\n" for k, v in env.items())
    return (
        "[Unit]\n"
        "Description=companion memory upkeep (forgetting, consolidation, check-ins)\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={' '.join(_systemd_quote(a) for a in run)}\n"
        f"{environment}"
        "Nice=19\n"
        "IOSchedulingClass=idle\n"
        "CPUSchedulingPolicy=idle\n"
    )


def timer_text() -> str:
    return (
        "[Unit]\n"
        f"Description=Run companion memory upkeep every {EVERY_MINUTES} minutes\n\n"
        "[Timer]\n"
        f"OnCalendar=*:0/{EVERY_MINUTES}\n"
        "Persistent=true\n"
        "RandomizedDelaySec=60\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def cron_line() -> str:
    return f"*/{EVERY_MINUTES} * * * * nice -n 19 {' '.join(maintain_command())}"


@dataclass(frozen=True)
class Installed:
    kind: str  # "systemd" | "launchd" | "cron"
    files: list[Path]
    said: str  # what the user is told


def _systemctl(*args: str) -> tuple[bool, str]:
    if not shutil.which("systemctl"):
        return False, "systemctl is not on the PATH"
    done = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, check=False)
    return done.returncode == 0, (done.stderr or done.stdout).strip()


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.part")
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    except OSError as error:
        raise CompanionError(
            f"The timer cannot be written to {path.parent} ({error.strerror}); check that folder's permissions."
        ) from None


def install() -> Installed:
    if sys.platform == "darwin":
        plist = {
            "Label": AGENT,
            "ProgramArguments": maintain_command(),
            "StartInterval": EVERY_MINUTES * 60,
            "Nice": 19,
            "LowPriorityIO": True,
            "ProcessType": "Background",
            "EnvironmentVariables": home_env(),
        }
        path = agent_path()
        _write(path, plistlib.dumps(plist).decode())
        subprocess.run(["launchctl", "load", "-w", str(path)], capture_output=True, check=False)
        return Installed(
            "launchd", [path], f"Upkeep runs every {EVERY_MINUTES} minutes (launchd agent {path})."
        )
    if os.name == "nt" or not shutil.which("systemctl"):
        return Installed(
            "cron",
            [],
            "This system has no systemd user session; add this line with `crontab -e` to run upkeep every "
            f"{EVERY_MINUTES} minutes:\n{cron_line()}",
        )
    service, timer = unit_dir() / f"{UNIT}.service", unit_dir() / f"{UNIT}.timer"
    _write(service, service_text(maintain_command(), home_env()))
    _write(timer, timer_text())
    ok, detail = _systemctl("daemon-reload")
    if ok:
        ok, detail = _systemctl("enable", "--now", f"{UNIT}.timer")
    if ok:
        said = f"Upkeep runs every {EVERY_MINUTES} minutes (systemd user timer {UNIT}.timer)."
    else:
        said = (
            f"The timer is written to {unit_dir()} but could not be enabled ({detail or 'no user session'}); "
            f"run `systemctl --user enable --now {UNIT}.timer` from your desktop session."
        )
    return Installed("systemd", [service, timer], said)


def remove() -> list[Path]:
    gone: list[Path] = []
    if sys.platform == "darwin":
        path = agent_path()
        if path.exists():
            subprocess.run(["launchctl", "unload", "-w", str(path)], capture_output=True, check=False)
            path.unlink()
            gone.append(path)
        return gone
    timer = unit_dir() / f"{UNIT}.timer"
    if timer.exists():
        _systemctl("disable", "--now", f"{UNIT}.timer")
    for path in (timer, unit_dir() / f"{UNIT}.service"):
        if path.exists():
            path.unlink()
            gone.append(path)
    if gone:
        _systemctl("daemon-reload")
    return gone


def state() -> str | None:
    """What runs upkeep: a sentence, or None when nothing companion installed does."""
    if sys.platform == "darwin":
        path = agent_path()
        return f"launchd agent {path}" if path.exists() else None
    timer = unit_dir() / f"{UNIT}.timer"
    if not timer.exists():
        return None
    ok, detail = _systemctl("is-active", f"{UNIT}.timer")
    active = "active" if ok else f"installed, not active ({detail or 'systemctl could not tell'})"
    return f"systemd user timer {UNIT}.timer: {active}"
