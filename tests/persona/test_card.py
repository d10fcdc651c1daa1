"""Character Cards read and written faithfully: JSON V1/V2/V3, PNG chunks, unknown extensions, bad input."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.errors import CompanionError
from companion.persona.card import Card, card_from_json, card_from_png, card_to_png, png_chunks, read_card

V2 = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Luz",
        "description": "{{char}} is a lighthouse keeper who writes letters to {{user}}.",
        "personality": "patient, wry",
        "scenario": "A stormy night on the coast.",
        "first_mes": "The lamp is lit. What brings you here, {{user}}?",
        "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello, sailor.",
        "creator_notes": "made by hand for the tests",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": ["Another storm, another visitor."],
        "tags": ["cozy", "sea"],
        "creator": "tests",
        "character_version": "1.2",
        "character_book": {
            "name": "Coast",
            "token_budget": 200,
            "entries": [
                {
                    "keys": ["lighthouse"],
                    "secondary_keys": ["lamp"],
                    "selective": True,
                    "constant": False,
                    "enabled": True,
                    "insertion_order": 10,
                    "priority": 5,
                    "position": "before_char",
                    "content": "The lighthouse has 132 steps.",
                    "extensions": {"someone/else": {"x": 1}},
                },
            ],
            "extensions": {},
        },
        "extensions": {"talkativeness": "0.5", "depth_prompt": {"depth": 4, "prompt": "stay in character"}},
    },
}


def png(width: int = 1, height: int = 1) -> bytes:
    """A real, minimal PNG (one grey pixel), built by the book."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\x80" * width)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_v2_round_trip_keeps_every_field_and_unknown_extension() -> None:
    card = card_from_json(json.loads(json.dumps(V2)))
    assert card.name == "Luz" and card.character_book and card.extensions["depth_prompt"]["depth"] == 4
    assert card.to_json() == V2


def test_v1_flat_card_is_read_and_upgraded() -> None:
    v1 = {
        "name": "Old",
        "description": "d",
        "personality": "p",
        "scenario": "s",
        "first_mes": "hi",
        "mes_example": "",
    }
    card = card_from_json(v1)
    out = card.to_json()
    assert (
        out["spec"] == "chara_card_v2" and out["data"]["name"] == "Old" and out["data"]["first_mes"] == "hi"
    )


def test_v3_extra_fields_survive() -> None:
    v3 = json.loads(json.dumps(V2))
    v3["spec"], v3["spec_version"] = "chara_card_v3", "3.0"
    v3["data"]["nickname"] = "Lu"
    v3["data"]["assets"] = [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]
    assert card_from_json(v3).to_json() == v3


def test_png_round_trip(tmp_path: Path) -> None:
    card = card_from_json(V2)
    image = card_to_png(card, png())
    assert [kind for kind, _ in png_chunks(image, "x")] == [b"IHDR", b"IDAT", b"tEXt", b"IEND"]
    again = card_from_png(image, "card.png")
    assert again.to_json() == V2
    # Writing again replaces the card instead of adding a second one.
    renamed = card_from_json(json.loads(json.dumps(V2)) | {"data": V2["data"] | {"name": "Luz II"}})
    twice = card_to_png(renamed, image)
    assert sum(1 for kind, _ in png_chunks(twice, "x") if kind == b"tEXt") == 1
    file = tmp_path / "luz.png"
    file.write_bytes(twice)
    assert read_card(file).name == "Luz II"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (json.dumps({"spec": "chara_card_v2", "data": {"name": 7}}).encode(), "'name' must be text"),
        (
            json.dumps({"spec": "chara_card_v2", "data": {"name": "A", "tags": "x"}}).encode(),
            "'tags' must be a list",
        ),
        (
            json.dumps(
                {"spec": "chara_card_v2", "data": {"name": "A", "character_book": {"entries": [3]}}}
            ).encode(),
            "entry 1",
        ),
        (json.dumps({"hello": "world"}).encode(), "not a character card"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}', "larger than 2 MiB"),
    ],
)
def test_bad_cards_are_one_clear_error(tmp_path: Path, payload: bytes, words: str) -> None:
    file = tmp_path / "card.json"
    file.write_bytes(payload)
    with pytest.raises(CompanionError, match=words):
        read_card(file)


def test_png_without_a_card_and_damaged_png(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    plain.write_bytes(png())
    with pytest.raises(CompanionError, match="no character card inside"):
        read_card(plain)
    broken = tmp_path / "broken.png"
    broken.write_bytes(png()[:20])
    with pytest.raises(CompanionError, match="damaged PNG"):
        read_card(broken)
    bad64 = tmp_path / "bad64.png"
    image = png()
    text = struct.pack(">I", 8) + b"tEXtchara\x00!!" + struct.pack(">I", 0)
    bad64.write_bytes(image[:-12] + text + image[-12:])
    with pytest.raises(CompanionError, match="not valid base64"):
        read_card(bad64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_bytes_give_a_card_or_a_clear_error(tmp_path: Path, raw: bytes) -> None:
    for prefix in (b"", b"\x89PNG\r\n\x1a\n"):
        file = tmp_path / "fuzz.card"
        file.write_bytes(prefix + raw)
        try:
            card = read_card(file)
        except CompanionError:
            continue
        assert isinstance(card, Card) and card.name


@given(
    st.text(max_size=50).filter(str.strip), st.dictionaries(st.text(max_size=8), st.integers(), max_size=3)
)
def test_any_name_and_extensions_round_trip_through_png(name: str, extensions: dict) -> None:
    card = Card(name=name.strip(), extensions={"someone": extensions})
    assert card_from_png(card_to_png(card, png()), "x").to_json() == card.to_json()
    assert base64  # the module encodes the card as base64 JSON
