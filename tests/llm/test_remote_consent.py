"""A remote backend and upkeep: consolidation would send whole conversations to the server, so it does only
with the user's yes (`remote.consolidate`); until then summaries and facts are written without a model. Against
a real HTTP server on 127.0.0.1, through `companion maintain` as cron runs it (no terminal)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.llm.openai_server import Scripted, serve, words
from tests.llm.test_remote_reasoning import companion, use_server

SAID = "My sister Marta moved to Porto with her cat Bolacha last spring."


def test_maintain_sends_no_conversation_to_a_remote_server_without_a_yes(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        "".join(
            json.dumps({"session": "a", "time": f"2024-03-01T10:0{i}:00", "role": role, "text": text}) + "\n"
            for i, (role, text) in enumerate(
                [("user", SAID), ("assistant", "How lovely!"), ("user", "I work as a nurse in Lisbon.")]
            )
        )
    )
    with serve(Scripted([words('{"summary": "Ana talked about Marta.", "facts": []}')])) as server:
        use_server(server.url)
        assert companion("memory", "import", str(log)).returncode == 0
        result = companion("maintain", "--only", "consolidate", "--now", "2024-03-02T10:00:00")
        assert result.returncode == 0, result.stderr
        assert "remote.consolidate yes" in result.stderr
        sent = json.dumps(server.requests)
        assert "Marta" not in sent and "nurse" not in sent, "a transcript went to the server"
        assert companion("memory", "list", "--kind", "summary").stdout.strip()  # written without the model

        assert companion("config", "set", "remote.consolidate", "yes").returncode == 0
        log2 = tmp_path / "log2.jsonl"
        log2.write_text(log.read_text().replace('"a"', '"b"').replace("2024-03-01", "2024-03-05"))
        assert companion("memory", "import", str(log2)).returncode == 0
        companion("maintain", "--only", "consolidate", "--now", "2024-03-06T10:00:00")
        assert "nurse" in json.dumps(server.requests)  # with the yes, the model writes them


def test_show_prompt_prints_exactly_what_the_server_is_sent(home: Path) -> None:
    with serve(Scripted([words("Hello, Ana.")])) as server:
        use_server(server.url)
        assert companion("memory", "add", "My cat is called Bolacha").returncode == 0
        result = companion("ask", "--show-prompt", "How is my cat Bolacha?")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "Hello, Ana."
        shown = result.stderr.split("--- the prompt ---\n", 1)[1].split("\n--- end of the prompt ---", 1)[0]
        (chat,) = [r for r in server.requests if r.get("messages")]
        assert json.loads(shown) == chat["messages"]  # word for word what went over the wire
        assert "Bolacha" in shown and "You are Sam" in shown
