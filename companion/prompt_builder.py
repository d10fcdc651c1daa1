"""One conversation's prompts: its history as the model saw it, the lorebook entries the last turns call up,
what recall brings that is not already in view, the per-turn memory block, and token counts.

A user turn keeps the memory block it was sent with, so the prompt of turn N starts exactly like turn N-1's
prompt plus its reply and llama.cpp's KV cache stays warm. What an earlier turn still in view already recalled
is not recalled again. The builder lives as long as its conversation: a new conversation gets a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from companion import timeutil
from companion.llm.base import ChatMessage, ChatModel
from companion.llm.prompt import Assembled, MemoryItem, assemble, memory_block
from companion.memory.records import Hit, Message
from companion.persona.card import Card


def speaker_name(name: str, role: str) -> str:
    """How a speaker is called in a transcript: their name, or `User` when the user gave none."""
    return name.strip() or ("User" if role == "user" else "Companion")


class TokenCounter:
    """The model's token counts, cached: the same history is measured again every turn."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self._counts: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        count = self._counts.get(text)
        if count is None:
            if len(self._counts) > 20_000:
                self._counts.clear()
            count = self._counts[text] = self.model.count_tokens(text)
        return count


@dataclass
class SentBlock:
    """The memory block one user turn was sent with, and what it held."""

    text: str
    recalled: set[tuple[str, int]] = field(default_factory=set)  # (kind, id) of the hits in it
    lore: set[str] = field(default_factory=set)


RecallStatus = Literal["in", "shortened", "left out", "in view"]


@dataclass(frozen=True)
class Recalled:
    """One thing recall brought for a turn, and what became of it: in the prompt (whole or shortened), left
    out for lack of room, or already in view (in the conversation or an earlier turn's block)."""

    hit: Hit
    status: RecallStatus
    note: str = ""
    lorebook: bool = False  # a lorebook entry the turn called up (not a memory: nothing to pin or strengthen)

    @property
    def in_prompt(self) -> bool:
        """The prompt of this turn holds it (whole or shortened)."""
        return self.status in ("in", "shortened")


@dataclass
class Built:
    assembled: Assembled
    hits: list[Hit]  # what recall brought that was not already in view
    recall: list[Recalled] = field(default_factory=list)

    @property
    def shown(self) -> list[Hit]:
        """What recall brought that the prompt holds (what the model was shown, and recall strengthens)."""
        return [r.hit for r in self.recall if r.in_prompt and not r.lorebook]


class PromptBuilder:
    def __init__(self, count: Callable[[str], int], neighbours: Callable[[int], list[Message]]) -> None:
        """`count`: tokens of a text; `neighbours(message_id)`: the turn before a recalled message."""
        self.count = count
        self.neighbours = neighbours
        self.blocks: dict[int, SentBlock] = {}
        self.fold_start = 0

    def history(
        self, conversation: list[Message], names: tuple[str, str] = ("", "")
    ) -> tuple[list[int], list[ChatMessage]]:
        """The conversation as the model saw it: each user turn with the memory block it was sent with.
        `names`: the user's and the persona's, for transcript prompts."""
        ids, messages = [], []
        for m in conversation:
            if m.role not in ("user", "assistant") or not m.text.strip():
                continue
            block = self.blocks.get(m.id)
            ids.append(m.id)
            name = names[0] if m.role == "user" else names[1]
            messages.append(ChatMessage(m.role, m.text, name, block.text if block else ""))
        return ids, messages

    def lore(self, card: Card, user: str, history: list[ChatMessage], text: str) -> list[MemoryItem]:
        """Lorebook entries the last few turns call up, within the book's budget."""
        from companion.persona.library import fill
        from companion.persona.lorebook import triggered

        recent = "\n".join([*(m.content for m in history[-4:]), text])
        entries = triggered(card.character_book, recent, self.count)
        return [MemoryItem(fill(entry, card.name, user or "the user"), None, "lore") for entry in entries]

    def recalled_item(self, hit: Hit) -> MemoryItem:
        """A recalled message comes with the turn before it (its context), so the model sees what it
        answered; the context is what gives way first when the block is short of room."""
        when = None if hit.kind == "lore" else timeutil.parse(hit.time)
        if hit.kind != "message":
            return MemoryItem(hit.text, when, hit.kind)
        context = " / ".join(f"{m.who}: {m.text}" for m in self.neighbours(hit.id))
        said = f"{hit.speaker or hit.role}: {hit.text}"
        return MemoryItem(said, when, hit.kind, context, hit.spoken_of)

    def build(
        self,
        *,
        text: str,
        user_id: int,
        conversation: list[Message],
        hits: list[Hit],
        card: Card,
        user: str,
        persona: str,
        profile: str,
        now: datetime,
        n_ctx: int,
        reply_tokens: int,
        block_tokens: int,
    ) -> Built:
        """The prompt for the user's `text` (stored as `user_id`) after `conversation`."""
        history_ids, history = self.history(conversation, (speaker_name(user, "user"), card.name))
        visible = [self.blocks[mid] for mid in history_ids[self.fold_start :] if mid in self.blocks]
        # What an earlier turn in view already recalled is in the prompt, and a turn of the history itself (a
        # branch's shared start) is there already: not again.
        shown = {key for block in visible for key in block.recalled} | {
            ("message", mid) for mid in history_ids
        }
        shown_lore = {lore for block in visible for lore in block.lore}
        lore = [item for item in self.lore(card, user, history, text) if item.text not in shown_lore]
        lore_texts = {item.text for item in lore}
        # A lore entry recalled as a memory is the same text as the lorebook's: shown above, or shown now.
        lore_seen = lore_texts | shown_lore
        in_view = [h for h in hits if (h.kind, h.id) in shown or (h.kind == "lore" and h.text in lore_seen)]
        hits = [h for h in hits if h not in in_view]
        recalled = [self.recalled_item(h) for h in hits]
        block = memory_block(recalled, now, self.count, block_tokens, lore=lore)
        assembled = assemble(
            persona=persona,
            profile=profile,
            history=history,
            memory=block.text,
            user=text,
            n_ctx=n_ctx,
            reply_tokens=reply_tokens,
            count=self.count,
            fold_start=self.fold_start,
            user_name=speaker_name(user, "user"),
            char_name=card.name,
        )
        self.fold_start = assembled.fold_start
        sent = bool(block.text) and assembled.messages[-1].context == block.text
        report: list[Recalled] = []
        for hit, item in zip(hits, recalled, strict=True):
            placed = block.status(item)
            if not sent:
                report.append(Recalled(hit, "left out", "the memory block did not fit the model's context"))
            elif placed is not None:
                report.append(Recalled(hit, placed.status, placed.note))
        report += [Recalled(h, "in view", "already in the conversation above") for h in in_view]
        for item in lore:  # what the persona's lorebook put in, for the recall panel
            placed = block.status(item)
            entry = Hit(id=0, kind="lore", text=item.text, score=0.0, time="")
            if not sent:
                note = "the memory block did not fit the model's context"
                report.append(Recalled(entry, "left out", note, lorebook=True))
            elif placed is not None:
                note = placed.note or "from the persona's lorebook"
                report.append(Recalled(entry, placed.status, note, lorebook=True))
        if sent:
            self.blocks[user_id] = SentBlock(
                block.text,
                {(r.hit.kind, r.hit.id) for r in report if r.in_prompt and not r.lorebook},
                {p.item.text for p in block.placed if p.item.kind == "lore" and p.status != "left out"},
            )
        return Built(assembled, hits, report)
