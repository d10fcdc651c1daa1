"""The app-menu launcher: a freedesktop `.desktop` entry (the avatar as its icon, run in a terminal) in the
user's applications folder, and the one way to start the app from outside a terminal — the menu and a
check-in notification's "Open" both use it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from companion.errors import CompanionError
from companion.paths import assets_dir

ENTRY = "companion.desktop"


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def entry_path() -> Path:
    return data_home() / "applications" / ENTRY


def icon_path() -> Path:
    return data_home() / "icons" / "hicolor" / "256x256" / "apps" / "companion.png"


def command() -> list[str]:
    """How to run this installation of companion from anywhere (a pipx venv's script, else this Python)."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if (
        script is not None
        and script.name == "companion"
        and script.is_file()  # not the source folder called companion
        and os.access(script, os.X_OK)
    ):
        return [str(script.resolve())]
    found = shutil.which("companion")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "companion"]


def home_env() -> dict[str, str]:
    """The memory home this installation uses when it is not the default (kept by the launcher and timer)."""
    home = os.environ.get("COMPANION_HOME")
    return {"COMPANION_HOME": str(Path(home).resolve())} if home else {}


def _exec_quote(arg: str) -> str:
    """An Exec argument as the Desktop Entry spec quotes it."""
    if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{escaped}"'


def entry_text(run: list[str], icon: Path, env: dict[str, str]) -> str:
    prefix = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
    exec_line = " ".join(_exec_quote(a) for a in [*prefix, *run]).replace("%", "%%")
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=companion\n"
        "GenericName=Personal companion\n"
        "Comment=A private companion that remembers you\n"
        f"Exec={exec_line}\n"
        f"Icon={icon}\n"
        "Terminal=true\n"
        "Categories=Utility;\n"
        "Keywords=chat;companion;memory;\n"
        "StartupNotify=false\n"
    )


def _linux_only() -> None:
    if sys.platform == "darwin" or os.name == "nt":
        raise CompanionError(
            "The app-menu launcher is a freedesktop entry for Linux desktops; on this system start companion "
            "from a terminal (or pin the terminal command)."
        )


def install() -> Path:
    """Write the launcher and its icon; returns the entry's path."""
    _linux_only()
    entry, icon = entry_path(), icon_path()
    try:
        icon.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(assets_dir() / "personas" / "avatar.png", icon)
        entry.parent.mkdir(parents=True, exist_ok=True)
        part = entry.with_name(f".{entry.name}.part")
        part.write_text(entry_text(command(), icon, home_env()), encoding="utf-8")
        part.chmod(0o644)
        os.replace(part, entry)
    except OSError as error:
        raise CompanionError(
            f"The launcher cannot be written to {entry.parent} ({error.strerror}); check that folder's permissions."
        ) from None
    if shutil.which("update-desktop-database"):
        subprocess.run(["update-desktop-database", str(entry.parent)], capture_output=True, check=False)
    return entry


def remove() -> list[Path]:
    """Remove the launcher and its icon; returns what was removed."""
    gone = []
    for path in (entry_path(), icon_path()):
        if path.exists():
            path.unlink()
            gone.append(path)
    return gone


def installed() -> bool:
    return entry_path().exists()


def launch_command() -> list[str]:
    """How to start the app in the user's terminal: through the installed launcher where there is one (so the
    desktop picks the terminal), else a terminal emulator running companion."""
    if sys.platform == "darwin":
        return ["open", "-a", "Terminal", command()[0]]
    entry = entry_path()
    if entry.exists():
        if shutil.which("gio"):
            return ["gio", "launch", str(entry)]
        if shutil.which("gtk-launch"):
            return ["gtk-launch", ENTRY]
    for terminal in ("x-terminal-emulator", "gnome-terminal", "konsole", "xfce4-terminal", "xterm"):
        if shutil.which(terminal):
            return [terminal, "-e", *command()]
    raise CompanionError(
        "No terminal could be found to open companion in; run `companion desktop install`, or open a terminal "
        "and run companion."
    )


def open_app() -> None:
    """Start the app in a terminal, detached from this process (the notification's "Open")."""
    subprocess.Popen(  # noqa: S603 — our own command line
        launch_command(),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **home_env()},
    )
