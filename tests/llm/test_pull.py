"""`companion model pull` through the real huggingface-hub client against a small hub on 127.0.0.1.

The Hugging Face hub cannot be reached from here, so the test serves the two endpoints the client uses
(`resolve` for the file, `paths-info` for its sha256) from a local HTTP server and points HF_ENDPOINT at it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import tiny_gguf

REPO = "someone/tiny-GGUF"
FILE = "tiny-Q8_0.gguf"
COMMIT = "a" * 40


class Hub:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.sha = hashlib.sha256(payload).hexdigest()
        self.advertised_sha = self.sha


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, Hub]]:
    state = Hub(tiny_gguf(tmp_path / "source.gguf"))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _resolve(self, body: bool) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            repo, rest = "/".join(parts[:2]), parts[2:]
            if repo != REPO:
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if rest[:1] != ["resolve"] or rest[2:] != [FILE]:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = state.payload
            start = 0
            header = self.headers.get("Range")
            if header and header.startswith("bytes="):
                start = int(header[6:].split("-")[0])
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{state.sha}"')
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if body:
                self.wfile.write(data[start:])

        def do_HEAD(self) -> None:  # noqa: N802
            self._resolve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._resolve(body=True)

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if f"/api/models/{REPO}/paths-info/" not in self.path:
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            info = [
                {
                    "type": "file",
                    "path": FILE,
                    "size": len(state.payload),
                    "oid": "b" * 40,
                    "lfs": {"oid": state.advertised_sha, "size": len(state.payload), "pointerSize": 134},
                }
            ]
            body = json.dumps(info).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def pull(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"} | {"HF_ENDPOINT": endpoint}
    return subprocess.run(
        [sys.executable, "-m", "companion", "model", "pull", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pull_downloads_checks_and_registers(hub: tuple[str, Hub], home: Path) -> None:
    endpoint, state = hub
    result = pull(endpoint, REPO, FILE, "--name", "tiny")
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "companion", "model", "list"], capture_output=True, text=True
    )
    line = next(row for row in listing.stdout.splitlines() if "tiny" in row)
    path = Path(line.split("\t")[1])
    assert path.read_bytes() == state.payload
    assert home in path.parents
    info = subprocess.run(
        [sys.executable, "-m", "companion", "model", "info", "tiny"], capture_output=True, text=True
    )
    assert "architecture: llama" in info.stdout


def test_pull_refuses_a_checksum_mismatch(hub: tuple[str, Hub], home: Path) -> None:
    endpoint, state = hub
    state.advertised_sha = "0" * 64
    result = pull(endpoint, REPO, FILE, "--name", "tiny")
    assert result.returncode == 1
    assert "checksum" in result.stderr and "Traceback" not in result.stderr
    assert not list(home.rglob(FILE))
    assert (
        "tiny"
        not in subprocess.run(
            [sys.executable, "-m", "companion", "model", "list"], capture_output=True, text=True
        ).stdout
    )


def test_pull_unknown_repo_and_file(hub: tuple[str, Hub]) -> None:
    endpoint, _ = hub
    result = pull(endpoint, "nobody/nothing", FILE)
    assert result.returncode == 1 and "was not found" in result.stderr and "Traceback" not in result.stderr
    result = pull(endpoint, REPO, "other.gguf")
    assert result.returncode == 1 and "is not in the repository" in result.stderr


def test_pull_with_no_network(home: Path) -> None:
    from tests.conftest import free_port

    result = pull(f"http://127.0.0.1:{free_port()}", REPO, FILE)
    assert result.returncode == 1
    assert "could not be reached" in result.stderr and "Traceback" not in result.stderr
