"""Character Cards: the format companion front-ends share (SillyTavern and others), read and written faithfully.

- V2 JSON: `{"spec": "chara_card_v2", "spec_version": "2.0", "data": {...}}`; V1: the same fields, flat;
  V3 (`chara_card_v3`): read best effort, its extra fields kept and written back.
- PNG cards: the card as base64 JSON in a tEXt chunk named `chara` (V2) or `ccv3` (V3). Chunks are read and
  written here directly (the PNG layout is simple and stable), so no image library is needed.
- Unknown `extensions` keys survive import -> export unchanged, as the spec requires; companion's own additions
  go under the one namespaced key `companion`.
A card's text is data: it fills the persona's voice and nothing else (it cannot carry settings).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from companion import jsontext
from companion.errors import CompanionError

MAX_CARD_BYTES = 2 * 1024 * 1024  # a card's JSON; real cards are a few KiB, lorebooks a few hundred
MAX_PNG_BYTES = 20 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OWN_EXTENSION = "companion"
TEXT_FIELDS = (
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "creator",
    "character_version",
)
LIST_FIELDS = ("alternate_greetings", "tags")


@dataclass
class Card:
    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    creator_notes: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    creator: str = ""
    character_version: str = ""
    alternate_greetings: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    character_book: dict[str, Any] | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    spec: str = "chara_card_v2"
    extra: dict[str, Any] = field(
        default_factory=dict
    )  # fields of the card's `data` this version does not know

    def to_json(self) -> dict[str, Any]:
        """The card as Character Card V2 (or V3 when it came as V3), every field and extension kept."""
        data: dict[str, Any] = {name: getattr(self, name) for name in TEXT_FIELDS}
        data |= {name: list(getattr(self, name)) for name in LIST_FIELDS}
        if self.character_book is not None:
            data["character_book"] = self.character_book
        data["extensions"] = self.extensions
        data |= self.extra
        version = "3.0" if self.spec == "chara_card_v3" else "2.0"
        return {"spec": self.spec, "spec_version": version, "data": data}


def _text(data: dict[str, Any], name: str, where: str) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CompanionError(
            f"The card's '{name}' must be text, not {type(value).__name__} ({where}); nothing was imported."
        )
    return value


def _strings(data: dict[str, Any], name: str, where: str) -> list[str]:
    value = data.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CompanionError(f"The card's '{name}' must be a list of texts ({where}); nothing was imported.")
    return list(value)


def _book(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("entries", []), list):
        raise CompanionError(
            f"The card's character_book must be an object with a list of entries ({where}); nothing was imported."
        )
    for number, entry in enumerate(value.get("entries", []), start=1):
        if not isinstance(entry, dict):
            raise CompanionError(f"Lorebook entry {number} is not an object ({where}); nothing was imported.")
        if not isinstance(entry.get("keys", []), list) or not isinstance(entry.get("content", ""), str):
            raise CompanionError(
                f"Lorebook entry {number} needs a list of keys and text content ({where}); nothing was imported."
            )
    return value


def card_from_json(obj: Any, where: str = "the card") -> Card:
    """A Card from parsed JSON: V2, V3 or V1 (flat). Wrong types give one clear error; nothing half-read."""
    if not isinstance(obj, dict):
        raise CompanionError(f"{where} is not a JSON object; is it a character card?")
    spec = obj.get("spec")
    if spec in ("chara_card_v2", "chara_card_v3"):
        data = obj.get("data")
        if not isinstance(data, dict):
            raise CompanionError(f"{where} says it is {spec} but has no 'data' object; nothing was imported.")
    elif spec is None and "name" in obj:
        data, spec = obj, "chara_card_v2"  # V1: flat fields, upgraded on export
    else:
        raise CompanionError(
            f"{where} is not a character card (no 'spec' of chara_card_v2/v3 and no 'name')."
        )
    name = _text(data, "name", where).strip()
    if not name:
        raise CompanionError(f"The card has no name ({where}); nothing was imported.")
    extensions = data.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise CompanionError(f"The card's 'extensions' must be an object ({where}); nothing was imported.")
    known = {*TEXT_FIELDS, *LIST_FIELDS, "character_book", "extensions"}
    extra = {k: v for k, v in data.items() if k not in known} if obj.get("spec") else {}
    return Card(
        **{f: _text(data, f, where) for f in TEXT_FIELDS if f != "name"},
        name=name,
        alternate_greetings=_strings(data, "alternate_greetings", where),
        tags=_strings(data, "tags", where),
        character_book=_book(data.get("character_book"), where),
        extensions=dict(extensions),
        spec=str(spec),
        extra=extra,
    )


def parse_json_bytes(raw: bytes, where: str) -> Card:
    if len(raw) > MAX_CARD_BYTES:
        raise CompanionError(
            f"{where} is larger than 2 MiB, too large for a character card; nothing was imported."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CompanionError(
            f"{where} is not UTF-8 text (byte {error.start}); nothing was imported."
        ) from None
    try:
        obj = jsontext.loads(text, where)
    except json.JSONDecodeError as error:
        raise CompanionError(
            f"{where} is not valid JSON (line {error.lineno}: {error.msg}); nothing was imported."
        ) from None
    return card_from_json(obj, where)


# -- PNG ------------------------------------------------------------------------------------------------------
def png_chunks(raw: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk; a damaged PNG gives a clear error."""
    if not raw.startswith(PNG_SIGNATURE):
        raise CompanionError(f"{where} is not a PNG image.")
    chunks = []
    position = len(PNG_SIGNATURE)
    while position < len(raw):
        if position + 8 > len(raw):
            raise CompanionError(f"{where} is a damaged PNG (it ends inside a chunk header).")
        length, kind = struct.unpack(">I4s", raw[position : position + 8])
        end = position + 8 + length + 4
        if end > len(raw):
            raise CompanionError(f"{where} is a damaged PNG (a chunk runs past the end of the file).")
        data = raw[position + 8 : position + 8 + length]
        chunks.append((kind, data))
        position = end
        if kind == b"IEND":
            break
    return chunks


def card_from_png(raw: bytes, where: str) -> Card:
    if len(raw) > MAX_PNG_BYTES:
        raise CompanionError(
            f"{where} is larger than 20 MiB, too large for a card image; nothing was imported."
        )
    texts: dict[str, bytes] = {}
    for kind, data in png_chunks(raw, where):
        if kind == b"tEXt" and b"\x00" in data:
            keyword, _, value = data.partition(b"\x00")
            texts[keyword.decode("latin-1")] = value
    payload = texts.get("ccv3") or texts.get("chara")
    if payload is None:
        raise CompanionError(
            f"{where} has no character card inside (no 'chara' or 'ccv3' text chunk); nothing was imported."
        )
    try:
        decoded = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise CompanionError(f"The card inside {where} is not valid base64; nothing was imported.") from None
    return parse_json_bytes(decoded, f"the card inside {where}")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def card_to_png(card: Card, image: bytes, where: str = "the image") -> bytes:
    """The image with the card in a tEXt chunk (`chara`, or `ccv3` for V3), replacing any card it carried."""
    chunks = png_chunks(image, where)
    keyword = b"ccv3" if card.spec == "chara_card_v3" else b"chara"
    payload = base64.b64encode(json.dumps(card.to_json(), ensure_ascii=False).encode("utf-8"))
    out = [PNG_SIGNATURE]
    for kind, data in chunks:
        if kind == b"tEXt" and data.split(b"\x00", 1)[0] in (b"chara", b"ccv3"):
            continue
        if kind == b"IEND":
            out.append(_chunk(b"tEXt", keyword + b"\x00" + payload))
        out.append(_chunk(kind, data))
    return b"".join(out)


def read_card(path: Path) -> Card:
    """A card file: JSON (V1, V2, V3) or PNG with the card embedded."""
    if not path.exists():
        raise CompanionError(f"{path} does not exist; check the path.")
    try:
        raw = path.read_bytes() if path.stat().st_size <= MAX_PNG_BYTES else b"x" * (MAX_PNG_BYTES + 1)
    except OSError as error:
        raise CompanionError(f"{path} cannot be read ({error.strerror}).") from None
    if raw.startswith(PNG_SIGNATURE):
        return card_from_png(raw, path.name)
    return parse_json_bytes(raw, path.name)
