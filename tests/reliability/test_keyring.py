"""The OS keyring for real: a Secret Service (gnome-keyring-daemon, unlocked, on a private D-Bus session bus) keeps
the memory file's encryption key and the remote API key, through the commands a user types: `memory encrypt`, a
restart, `doctor`, `config set-api-key`, `memory decrypt`; a locked keyring and no keyring at all are one sentence
each, with the passphrase path offered. Skipped where the Debian packages `gnome-keyring` and `dbus` are missing
(`.ci/run` installs them)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from companion.paths import Paths
from tests.reliability.test_encryption import SECRETS, data_bytes, remember

NEEDED = ("dbus-daemon", "gnome-keyring-daemon")


@pytest.fixture
def secret_service(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An unlocked gnome-keyring on its own session bus; the environment a companion process needs to use it."""
    if not all(shutil.which(tool) for tool in NEEDED):
        pytest.skip("needs the Debian packages dbus and gnome-keyring")
    home, runtime = tmp_path / "desktop-home", tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("PYTHON_KEYRING_BACKEND", None)
    bus = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    address, pid = bus.stdout.split()[:2]
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    try:
        subprocess.run(
            ["gnome-keyring-daemon", "--unlock", "--daemonize", "--components=secrets"],
            input="login password",
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=30,
        )
        for _ in range(50):  # the daemon owns its bus name a moment after it forks
            if python(env, "import keyring; keyring.set_password('probe', 'probe', 'x')").returncode == 0:
                break
            time.sleep(0.1)
        yield env
    finally:
        subprocess.run(["pkill", "-f", f"gnome-keyring-daemon.*{runtime}"], capture_output=True)
        subprocess.run(
            ["pkill", "-u", str(os.getuid()), "-f", "gnome-keyring-daemon --unlock"], capture_output=True
        )
        os.kill(int(pid), signal.SIGTERM)


def python(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def companion(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "companion", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def stored_key(env: dict[str, str]) -> str:
    """The memory file's key as the Secret Service holds it ("None" when it holds none), read by a process."""
    read = python(
        env,
        "import keyring; from companion.memory.db.cipher import keyring_entry; from companion.paths import get_paths;"
        " print(keyring.get_password('companion', keyring_entry(get_paths().database)))",
    )
    assert read.returncode == 0, read.stderr
    return read.stdout.strip()


def one_sentence(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_the_encryption_key_lives_in_a_real_secret_service(
    paths: Paths, tmp_path: Path, secret_service: dict[str, str]
) -> None:
    env = {**secret_service}
    env.pop("COMPANION_PASSPHRASE", None)
    remember(paths, tmp_path)
    result = companion(env, "memory", "encrypt")
    assert result.returncode == 0 and "OS keyring" in result.stdout, result.stderr
    assert not any(s.encode() in data_bytes(paths) for s in SECRETS)
    # The key is in the Secret Service (read back through it), never on disk.
    key = stored_key(env)
    assert len(key) == 64 and key.encode() not in data_bytes(paths)
    # A restart: a new process opens the file with the key from the keyring, no passphrase asked.
    listed = companion(env, "memory", "list")
    assert listed.returncode == 0 and SECRETS[2] in listed.stdout, listed.stderr
    doctor = companion(env, "doctor").stdout
    assert "SecretService" in doctor and "encrypted with SQLCipher" in doctor
    # The remote API key goes to the same keyring, and is found there.
    assert companion(env, "config", "set-api-key", "--stdin", stdin="sk-test-123\n").returncode == 0
    found = python(env, "from companion.secrets import get_api_key; print(get_api_key())")
    assert found.stdout.strip() == "sk-test-123"
    assert b"sk-test-123" not in b"".join(p.read_bytes() for p in paths.config_dir.rglob("*") if p.is_file())
    # Decrypting removes the key from the keyring.
    assert companion(env, "memory", "decrypt", "--yes").returncode == 0
    assert stored_key(env) == "None"


def test_a_locked_keyring_and_no_keyring_are_one_sentence(
    paths: Paths, tmp_path: Path, secret_service: dict[str, str]
) -> None:
    env = {**secret_service}
    env.pop("COMPANION_PASSPHRASE", None)
    remember(paths, tmp_path)
    assert companion(env, "memory", "encrypt").returncode == 0
    locked = python(
        env,
        "import secretstorage; c = secretstorage.get_default_collection(secretstorage.dbus_init()); c.lock();"
        " print(c.is_locked())",
    )
    assert locked.stdout.strip() == "True", locked.stderr
    one_sentence(companion(env, "memory", "list"), "OS keyring", "unlock the keyring")

    # No keyring at all (no session bus): encrypting offers the passphrase path, in one sentence.
    bare = {k: v for k, v in env.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    bare["COMPANION_HOME"] = str(tmp_path / "other-home")
    assert companion(bare, "memory", "add", "I keep bees").returncode == 0
    one_sentence(companion(bare, "memory", "encrypt"), "passphrase")
    assert "no OS keyring backend" in companion(bare, "doctor").stdout
    bare["COMPANION_PASSPHRASE"] = "correct horse battery"
    done = companion(bare, "memory", "encrypt")
    assert done.returncode == 0 and "passphrase" in done.stdout, done.stderr
