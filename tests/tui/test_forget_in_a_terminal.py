"""The app open in a real terminal (tmux, 80×24, the demo model) while `companion memory forget --matching` runs
from a second shell: within seconds the forgotten turn is off the screen, and what was not forgotten stays."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from companion.paths import Paths
from tests.test_first_run import Terminal


@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (.ci/run installs it)")
def test_a_forget_from_a_second_shell_leaves_the_terminal(demo_home: Paths, tmp_path: Path) -> None:
    env = {
        "COMPANION_HOME": os.environ["COMPANION_HOME"],
        "PATH": os.environ["PATH"],
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
    }
    assert (
        subprocess.run(
            [sys.executable, "-m", "companion", "config", "set", "ui.welcomed", "true"],
            env=env,
            capture_output=True,
        ).returncode
        == 0
    )
    terminal = Terminal(f"companion-forget-{os.getpid()}", env)
    try:
        terminal.type(str(Path(sys.executable).with_name("companion")), "Enter")
        terminal.wait(lambda s: " demo " in s, 120, "the app with the model loaded")
        terminal.type("My neighbour Quintela plays the tuba.", "Enter")
        terminal.wait(lambda s: "tok/s" in s and "writing" not in s and "thinking" not in s, 120, "the reply")
        assert "Quintela" in terminal.screen()
        shell = subprocess.run(
            [sys.executable, "-m", "companion", "memory", "forget", "--matching", "quintela", "--yes"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shell.returncode == 0 and "Forgotten:" in shell.stdout, shell.stderr
        screen = terminal.wait(lambda s: "Quintela" not in s, 30, "the forgotten turn off the screen")
        assert "Hi there" in screen or "Sam" in screen  # the greeting stays
    finally:
        terminal.close()
