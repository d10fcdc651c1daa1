"""The first ten minutes, exactly as the README says, from a fresh home: its install command in a real terminal
(tmux, 80×24), the welcome screen, a name and Enter, a message, a streamed reply, Ctrl+Q; then, in a new shell,
`companion` is on the PATH and `companion memory search` finds the message."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_install_command() -> str:
    """The README's one command that installs and starts the app, as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Install and start", 1)[1]
    block = re.search(r"```sh\n(.+?)\n```", section, re.DOTALL)
    assert block is not None
    return block.group(1).strip()


def externally_managed_python() -> Path | None:
    """The system's own Python where the distribution marks it externally managed (PEP 668), with venv."""
    import glob

    system = Path("/usr/bin/python3")
    if not system.exists() or not glob.glob("/usr/lib/python3*/EXTERNALLY-MANAGED"):
        return None
    works = subprocess.run([str(system), "-c", "import venv, ensurepip"], capture_output=True)
    return system if works.returncode == 0 else None


class Terminal:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        shell = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # A tmux server that the previous test's last session left is still going away: try again.
        for wait in (0.5, 1.0, 2.0, 0.0):
            started = subprocess.run(
                [
                    "tmux",
                    "new-session",
                    "-d",
                    "-s",
                    name,
                    "-x",
                    "80",
                    "-y",
                    "24",
                    "-c",
                    str(ROOT),
                    f"env -i {shell} bash --norc --noprofile",
                ],
                capture_output=True,
                text=True,
            )
            if started.returncode == 0:
                return
            if not wait:
                raise AssertionError(f"tmux did not start a session: {started.stderr.strip()}")
            time.sleep(wait)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        ).stdout

    def type(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait(self, seen: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if seen(screen):
                return screen
            time.sleep(1)
        raise AssertionError(f"waited {timeout:.0f} s for {what}; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (.ci/run installs it)")
def test_the_readme_first_run_in_a_real_terminal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    path = os.environ["PATH"]
    managed = externally_managed_python()
    if managed is not None:  # as on Debian 12 or Ubuntu 24.04: `pip install --user` is refused (PEP 668)
        shim = tmp_path / "system-python"
        shim.mkdir()
        (shim / "python3").symlink_to(managed)
        path = f"{shim}{os.pathsep}{path}"
        refused = subprocess.run(
            ["python3", "-m", "pip", "install", "--user", "--dry-run", "pipx"],
            env={"PATH": path, "HOME": str(home)},
            capture_output=True,
            text=True,
        )
        assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr
    env = {
        "HOME": str(home),
        "PATH": path,
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        # The machine's own pip settings and cache (a built llama-cpp-python wheel is reused, not rebuilt).
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "PYENV")) and k != "PIP_CACHE_DIR"},
    }
    terminal = Terminal(f"companion-first-run-{os.getpid()}", env)
    try:
        terminal.type(readme_install_command(), "Enter")
        terminal.wait(lambda s: "Welcome to companion" in s, 1500, "the install and the welcome screen")
        terminal.type("Ana", "Enter")  # a name and Enter: that is all the first run needs
        terminal.wait(lambda s: "Hi Ana" in s and " demo " in s, 180, "the greeting, with the model loaded")
        terminal.type("I am allergic to peanuts, so I never eat satay.", "Enter")
        terminal.wait(lambda s: "tok/s" in s and "thinking" not in s, 180, "the streamed reply")
        screen = terminal.screen()
        assert "I am allergic to peanuts" in screen
        terminal.type("C-q")
        terminal.wait(lambda s: s.rstrip().endswith("#") or s.rstrip().endswith("$"), 120, "the shell again")
    finally:
        terminal.close()
    # A new terminal: `companion` is on the PATH and remembers.
    found = subprocess.run(
        ["bash", "-lic", "command -v companion && companion memory search peanuts --limit 5"],
        env={**env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert found.returncode == 0, found.stderr
    assert str(home / ".local" / "bin" / "companion") in found.stdout
    assert "I am allergic to peanuts, so I never eat satay." in found.stdout
