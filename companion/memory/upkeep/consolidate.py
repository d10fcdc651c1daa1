"""Consolidation: the local model turns conversations into summaries, facts, a profile of the user and digests.

Every job asks the model for JSON that fits a schema (llama.cpp grammar), so even a small model returns valid
structure; the content is then validated and clamped in Python (schemas bound arrays and strings, since small
models repeat items until `max_tokens`, and llama.cpp does not enforce `minimum`/`maximum`). Each unit of work
(a session, a profile update, a digest) asks the model everything first and then writes in one transaction with
its marker, so a job cut off by exit leaves nothing half-written and resumes next time without duplicates.

- Session summary and facts (with provenance to their turns, importance, event time). A new fact is compared with
  what is known (embedding similarity, then the model decides ADD / UPDATE / SUPERSEDE / NOOP); a contradiction
  supersedes the old fact (valid-to set, kept in history), never deletes it. A fact about a future event is an
  open thread.
- The profile (MemoryBank's user portrait): traits, preferences, relationships, concerns, style; versioned with
  a diff and provenance; vetoed lines never come back.
- Daily and weekly digests above session summaries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from companion import timeutil
from companion.english import plural
from companion.errors import JobInterrupted, ModelError, ModelUnavailable
from companion.llm.base import ChatMessage, ChatModel, GenerationOptions
from companion.memory.operations import LongTermMemory
from companion.memory.records import (
    VARIANT_MEMORY,
    Action,
    Decision,
    DigestPlan,
    Fact,
    Said,
    SessionPlan,
    split_key,
)
from companion.memory.tables import memories, meta, plans, profile, sessions
from companion.memory.tables import messages as message_table
from companion.memory.upkeep import extractive, grounding
from companion.paths import assets_dir

PROFILE_SECTIONS = profile.SECTIONS
PORTRAIT_FACTS = 500  # the facts and notes a profile without a model is written from (most important first)
PORTRAIT_LINES = 8  # per section
SAME = 0.97  # cosine above which a new fact is the same fact
SIMILAR = 0.80  # cosine above which the model decides what a new fact does to an old one
# Token budgets: a string can cost a token per character in the worst case (a small model spelling digits), so
# each answer's max_tokens covers its schema's longest possible output.
MAX_FACTS = 5
MAX_TURNS = 40  # turns per transcript chunk, so a fact can name its turns
THREAD_DAYS = 7  # an open thread closes this many days after its date: the moment to ask about it has passed

SUMMARY_SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string", "minLength": 10, "maxLength": 400}},
    "required": ["summary"],
}
FACTS_SCHEMA = {
    "type": "object",
    "properties": {
        "facts": {
            "type": "array",
            "maxItems": MAX_FACTS,
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "minLength": 5, "maxLength": 140},
                    # An enum, not an integer: an unbounded number lets a small model write digits forever.
                    "turns": {
                        "type": "array",
                        "items": {"type": "integer", "enum": list(range(1, MAX_TURNS + 1))},
                        "maxItems": 4,
                    },
                    "importance": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
                    "date": {"type": "string", "maxLength": 10},
                    "future": {"type": "boolean"},
                },
                "required": ["text", "turns", "importance", "date", "future"],
            },
        }
    },
    "required": ["facts"],
}
DECISION_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["ADD", "UPDATE", "SUPERSEDE", "NOOP"]},
        "fact": {"type": "integer", "enum": [0, 1, 2, 3]},
        "text": {"type": "string", "maxLength": 160},
    },
    "required": ["action", "fact", "text"],
}
PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        name: {"type": "array", "items": {"type": "string", "minLength": 3, "maxLength": 80}, "maxItems": 3}
        for name in PROFILE_SECTIONS
    },
    "required": list(PROFILE_SECTIONS),
}
DIGEST_SCHEMA = {
    "type": "object",
    "properties": {"digest": {"type": "string", "minLength": 10, "maxLength": 400}},
    "required": ["digest"],
}


def prompt(name: str, **values: str) -> str:
    template = (assets_dir() / "prompts" / f"{name}.txt").read_text(encoding="utf-8")
    return template.format(**values)


def clean(text: Any, limit: int) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()[:limit] if isinstance(text, str) else ""


@dataclass(frozen=True)
class Known:
    """A known fact close to a new one, and how close."""

    id: int
    score: float
    text: str


def content_words(text: str) -> set[str]:
    from companion.memory.recall.retrieve import query_terms

    return set(query_terms(text))


@dataclass
class Report:
    sessions: int = 0
    summaries: int = 0
    facts_added: int = 0
    facts_updated: int = 0
    facts_superseded: int = 0
    facts_unchanged: int = 0
    digests: int = 0
    profile_version: int | None = None
    threads_closed: int = 0
    dropped: int = 0  # summaries, facts and profile lines the model wrote that their sources do not say
    by_model: int = 0  # sessions the model consolidated
    extractive: int = 0  # sessions consolidated without it (no model needed, or the model failed)
    notes: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        """Which way consolidation went, for `maintain --status`."""
        if self.extractive and self.by_model:
            return f"the model, and extractive for {plural(self.extractive, 'session')} it could not do"
        return "extractive (no model)" if self.extractive else "the model"

    def line(self) -> str:
        line = (
            f"{plural(self.sessions, 'session')}: {plural(self.summaries, 'summary', 'summaries')}, facts "
            f"+{self.facts_added} ~{self.facts_updated} superseded {self.facts_superseded} unchanged "
            f"{self.facts_unchanged}"
        )
        if self.dropped:
            line += f", {self.dropped} ungrounded dropped"
        return line + (f"; via {self.path}" if self.sessions else "")


class Consolidator:
    def __init__(
        self,
        memory: LongTermMemory,
        model: ChatModel,
        *,
        user: str = "the user",
        char: str = "the companion",
        wait_turn: Callable[[], None] | None = None,
        seed: int = 7,
        mode: str = "auto",
    ) -> None:
        """`mode`: "model" (the model writes summaries, facts and the profile), "extractive" (no model: central
        sentences and first-person statements), or "auto": the model when it has a chat template, extractive
        for a base model (which never learned to follow the instructions), and extractive for a session the
        model fails on."""
        self.memory = memory
        self.store = memory.store
        self.model = model
        self.user = user or "the user"
        self.char = char
        self.wait_turn = wait_turn or (lambda: None)
        self.seed = seed
        self.mode = mode

    @property
    def model_writes(self) -> bool:
        if self.mode == "auto":
            return getattr(self.model, "prompt_style", "chat") != "transcript"
        return self.mode == "model"

    # -- the model ------------------------------------------------------------------------------------------
    def ask(self, text: str, schema: dict[str, Any], max_tokens: int) -> dict[str, Any]:
        """One structured question; a chat turn goes first (the job waits between questions)."""
        answer: Any = None
        for attempt in range(2):  # a small model can run out of tokens mid-JSON: one more try, another seed
            self.wait_turn()
            options = GenerationOptions(
                max_tokens=max_tokens,
                temperature=0.2,
                top_p=0.9,
                repeat_penalty=1.15,
                seed=self.seed + attempt,
            )
            try:
                answer = self.model.complete_json([ChatMessage("user", text)], schema, options)
                break
            except ModelError:
                if attempt == 1:
                    raise
        if not isinstance(answer, dict):
            raise ModelError("The model's answer was not a JSON object.")
        return answer

    def transcript_chunks(self, rows: list[Said], reserve: int) -> list[list[Said]]:
        """Split turns into chunks whose numbered transcript fits the context."""
        budget = max(self.model.n_ctx - reserve, 256)
        chunks: list[list[Said]] = [[]]
        used = 0
        for row in rows:
            cost = self.model.count_tokens(f"[{len(chunks[-1]) + 1}] {row.who}: {row.text}") + 2
            if chunks[-1] and (used + cost > budget or len(chunks[-1]) >= MAX_TURNS):
                chunks.append([])
                used = 0
            chunks[-1].append(row)
            used += cost
        return [c for c in chunks if c]

    @staticmethod
    def numbered(chunk: list[Said]) -> str:
        return "\n".join(f"[{i}] {row.who}: {row.text}" for i, row in enumerate(chunk, start=1))

    # -- sessions -------------------------------------------------------------------------------------------
    def pending_sessions(self, now: datetime, idle: timedelta, exclude: int | None = None) -> list[int]:
        """Sessions that have ended (closed, or idle for `idle`) and hold messages not yet consolidated."""
        pending = []
        for session in sessions.with_messages(self.store):
            if (
                session.id == exclude
                or plans.consolidated_up_to(self.store, session.id) >= session.last_message
            ):
                continue
            last = timeutil.parse(session.last_time)
            if session.ended_at or (last is not None and now - last >= idle):
                pending.append(session.id)
        return pending

    def consolidate_session(self, session_id: int, now: datetime, report: Report) -> None:
        after = plans.consolidated_up_to(self.store, session_id)
        # The companion in this session is the persona it was held with (the speaker of its replies). What
        # the user threw away (a regenerated reply, the turns a branch replaced) is not part of it.
        char = sessions.persona(self.store, session_id) or self.char
        whole = message_table.said(self.store, session_id, char)
        rows = [row for row in whole if row.id > after]  # what was said since the last consolidation
        if not rows:
            return
        # The summary covers the whole session (a session that goes on is summarized anew); facts come from
        # what is new.
        if self.model_writes:
            try:
                summaries, decisions = self._by_model(whole, rows, char, now, report)
                report.by_model += 1
                self.write_session(session_id, whole, rows, summaries, decisions, report)
                return
            except (JobInterrupted, ModelUnavailable):
                raise  # gave way to a chat turn, or the model is out of reach: it runs again later, with it
            except ModelError:
                if self.mode != "auto":
                    raise
        summaries, decisions, quoted = self._extractive(whole, rows, char)
        report.extractive += 1
        self.write_session(session_id, whole, rows, summaries, decisions, report, summary_sources=quoted)

    def _by_model(
        self, whole: list[Said], rows: list[Said], char: str, now: datetime, report: Report
    ) -> tuple[list[str], list[Decision]]:
        """The session's summary and the new turns' facts, written by the model; each kept only when its
        sources say it."""
        day = timeutil.local(timeutil.parse(whole[0].time) or now).date()
        when = f"{day.day} {day.strftime('%B %Y')}"
        speakers = [self.user, char, "You"]
        summaries: list[str] = []
        for chunk in self.transcript_chunks(whole, reserve=700):
            answer = self.ask(
                prompt("summary", user=self.user, char=char, date=when, transcript=self.numbered(chunk)),
                SUMMARY_SCHEMA,
                440,
            )
            summary = clean(answer.get("summary"), 700)
            if summary and grounding.grounded_summary(summary, "\n".join(r.text for r in chunk), speakers):
                summaries.append(summary)
            elif summary:
                report.dropped += 1
        facts: list[Fact] = []
        for chunk in self.transcript_chunks(rows, reserve=700):
            answer = self.ask(
                prompt(
                    "facts", user=self.user, char=char, date=day.isoformat(), transcript=self.numbered(chunk)
                ),
                FACTS_SCHEMA,
                900,
            )
            texts = {row.id: row.text for row in chunk}
            for fact in self.valid_facts(answer, chunk, day):
                if grounding.grounded(fact.text, "\n".join(texts[m] for m in fact.sources), speakers):
                    facts.append(fact)
                else:
                    report.dropped += 1
        return summaries, self.plan_facts(self.dedupe(facts))

    def _extractive(
        self, whole: list[Said], new: list[Said], char: str
    ) -> tuple[list[str], list[Decision], list[int]]:
        """The session's summary and the new turns' facts without a model: the session's central sentences
        (and the messages they quote, its sources), the user's first-person statements (one about a day ahead
        becomes an open thread)."""

        def said(raw: list[Said]) -> list[extractive.Said]:
            return [
                s
                for row in raw
                for s in extractive.sentences(
                    row.id, self.user if row.role == "user" else row.who, row.role, row.text, row.time
                )
            ]

        summary, quoted = extractive.summary(said(whole), self.memory.embedder)
        facts = [
            Fact(
                statement.text,
                [statement.message_id],
                0.6,
                statement.event.isoformat() if statement.event else None,
                statement.event is not None,
            )
            for statement in extractive.statements(
                said(new), self.user, scene=extractive.is_scene([r.text for r in whole if r.role == "user"])
            )
        ]
        return ([summary] if summary else []), self.plan_facts(self.dedupe(facts), decide=False), quoted

    def valid_facts(self, answer: dict[str, Any], chunk: list[Said], day: date) -> list[Fact]:
        out = []
        raw = answer.get("facts")
        for item in raw if isinstance(raw, list) else []:
            if not isinstance(item, dict):
                continue
            text = clean(item.get("text"), 200)
            if len(text) < 5:
                continue
            turns = [t for t in item.get("turns") or [] if isinstance(t, int) and 1 <= t <= len(chunk)]
            sources = sorted({chunk[t - 1].id for t in turns}) or [r.id for r in chunk]
            importance = min(max(int(item.get("importance") or 2), 1), 5) / 5
            when = None
            raw_date = item.get("date")
            if isinstance(raw_date, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw_date.strip()):
                try:
                    when = date.fromisoformat(raw_date.strip()).isoformat()
                except ValueError:
                    when = None
            future = bool(item.get("future")) and when is not None and when > day.isoformat()
            out.append(Fact(text, sources, importance, when, future))
        return out

    def dedupe(self, facts: list[Fact]) -> list[Fact]:
        """Drop repeats within one batch (small models repeat themselves)."""
        seen: set[str] = set()
        out = []
        for fact in facts:
            key = re.sub(r"\W+", " ", fact.text.lower()).strip()
            if key not in seen:
                seen.add(key)
                out.append(fact)
        return out

    def plan_facts(self, facts: list[Fact], decide: bool = True) -> list[Decision]:
        """What each new fact does, by similarity first, then by the model's decision. A fact that says the same
        as a known one (nearly the same vector and no word the known one lacks) only adds its turns as sources;
        one that is close but says more, or something else, is the model's to decide."""
        if not facts:
            return []
        vectors = self.memory.embedder.encode([f.text for f in facts])
        plan: list[Decision] = []
        accepted: list[np.ndarray] = []
        for fact, vector in zip(facts, vectors, strict=True):
            if any(float(vector @ v) >= SAME for v in accepted):
                continue
            similar = self.similar_facts(vector)
            if not similar:
                plan.append(Decision("ADD", fact, None, fact.text))
                accepted.append(vector)
                continue
            best = similar[0]
            if best.score >= SAME and content_words(fact.text) <= content_words(best.text):
                plan.append(Decision("NOOP", fact, best.id, fact.text))
                continue
            if not decide:  # without a model, what is not the same is kept beside what is known
                plan.append(Decision("ADD", fact, None, fact.text))
                accepted.append(vector)
                continue
            existing = "\n".join(f"{i}. {known.text}" for i, known in enumerate(similar[:3], start=1))
            answer = self.ask(
                prompt("decide", user=self.user, existing=existing, new=fact.text), DECISION_SCHEMA, 200
            )
            raw_action = answer.get("action")
            action: Action = raw_action if raw_action in ("ADD", "UPDATE", "SUPERSEDE", "NOOP") else "ADD"
            raw_number = answer.get("fact")
            number = raw_number if isinstance(raw_number, int) else 0
            target = similar[number - 1].id if 1 <= number <= min(len(similar), 3) else best.id
            text = clean(answer.get("text"), 200) or fact.text
            if action == "ADD":
                plan.append(Decision("ADD", fact, None, fact.text))
                accepted.append(vector)
            else:
                plan.append(Decision(action, fact, target, text if action == "UPDATE" else fact.text))
        return plan

    def similar_facts(self, vector: np.ndarray) -> list[Known]:
        """Facts in use whose vectors are close to `vector`, closest first."""
        scores, keys = self.memory.index.search(vector, 20)
        out = []
        for score, key in zip(scores.tolist(), keys.tolist(), strict=True):
            item, variant = split_key(int(key))
            if variant != VARIANT_MEMORY or score < SIMILAR:
                continue
            memory = memories.get(self.store, item)
            if memory and memory.kind == "fact" and memory.active:
                out.append(Known(item, float(score), memory.text))
        return out

    def write_session(
        self,
        session_id: int,
        whole: list[Said],
        rows: list[Said],
        summaries: list[str],
        decisions: list[Decision],
        report: Report,
        summary_sources: list[int] | None = None,
    ) -> None:
        """The session's plan, with the vectors of what it writes, applied in one transaction with its
        marker (nothing when another process consolidated it meanwhile). A model's summary comes from the
        whole session; an extractive one from the messages it quotes (`summary_sources`)."""
        summary = " ".join(summaries) or None
        texts = [t for t in dict.fromkeys([summary, *(d.text for d in decisions if d.action != "NOOP")]) if t]
        found = self.memory.embedder.encode(texts) if texts else np.zeros((0, 0), dtype=np.float32)
        plan = SessionPlan(
            session_id=session_id,
            summary=summary,
            summary_time=whole[0].time,
            summary_sources=summary_sources or [row.id for row in whole],
            decisions=decisions,
            last_message=rows[-1].id,
            vectors=dict(zip(texts, found, strict=True)),
        )
        with self.memory.write() as w:
            counts = plans.apply_session(w, plan, self.memory.embed_model)
        if counts is None:
            return
        report.sessions += 1
        report.summaries += counts["summaries"]
        report.facts_added += counts["added"]
        report.facts_updated += counts["updated"]
        report.facts_superseded += counts["superseded"]
        report.facts_unchanged += counts["unchanged"]

    # -- profile --------------------------------------------------------------------------------------------
    def update_profile(self, now: datetime, report: Report) -> None:
        if not self.model_writes:
            self.portrait(now, report)
            return
        current = profile.current(self.store)
        learned = memories.facts_since(self.store, current.created_at or "")
        if not learned:
            return
        vetoed = profile.vetoed_lines(self.store)
        facts = "\n".join(m.text for m in learned)
        shown = "\n".join(f"{name}: {'; '.join(lines)}" for name, lines in current.sections.items() if lines)
        answer = self.ask(
            prompt(
                "profile",
                user=self.user,
                char=self.char,
                profile=shown or "(nothing yet)",
                facts="\n".join(f"- {m.text}" for m in learned),
                vetoed="; ".join(vetoed) or "(nothing)",
            ),
            PROFILE_SCHEMA,
            1300,
        )
        fresh: dict[str, list[str]] = {}
        for name in PROFILE_SECTIONS:
            raw_lines = answer.get(name)
            lines = raw_lines if isinstance(raw_lines, list) else []
            kept: list[str] = []
            for line in lines:
                text = clean(line, 120)
                if len(text) < 3 or text in kept or profile.is_vetoed(text, vetoed):
                    continue
                if grounding.grounded(text, facts, [self.user, self.char]):  # "traits: Ana" says nothing
                    kept.append(text)
                else:
                    report.dropped += 1
            fresh[name] = kept[:6]
        report.profile_version = profile.save(
            self.store, fresh, [m.id for m in learned], "updated from new facts", now
        )

    def portrait(self, now: datetime, report: Report) -> None:
        """The profile without a model: what the user said about themselves (extractive facts, notes) sorted
        into the same sections, each line with the memory it comes from. A line whose memories are no longer
        in use goes; lines a model wrote earlier stay; a vetoed line is never written again."""
        current = profile.current(self.store)
        vetoed = profile.vetoed_lines(self.store)
        in_use = memories.facts_since(self.store, "", limit=PORTRAIT_FACTS)
        alive = {m.id for m in in_use}
        said = []
        for item in sorted(in_use, key=lambda m: m.id):
            words = item.text if item.kind == "note" else extractive.quoted(item.text)
            if words:
                said.append((item.id, words))
        fresh: dict[str, list[str]] = {name: [] for name in PROFILE_SECTIONS}
        sources: dict[str, list[int]] = {}
        for name, lines in current.sections.items():
            for line in lines:
                key = f"{name}: {line}"
                known = current.sources.get(key)
                if known is not None and not alive.intersection(known):
                    continue  # what it was written from was forgotten, corrected or archived
                fresh.setdefault(name, []).append(line)
                if known is not None:
                    sources[key] = [m for m in known if m in alive]
        for drawn in extractive.portrait(said, self.user):
            key = f"{drawn.section}: {drawn.text}"
            taken = {text.lower() for text in fresh[drawn.section]}
            if drawn.text.lower() in taken or profile.is_vetoed(drawn.text, vetoed):
                continue
            fresh[drawn.section].append(drawn.text)
            sources[key] = [drawn.memory_id]
        for name, lines in fresh.items():  # the newest lines of a long section
            for dropped in lines[:-PORTRAIT_LINES]:
                sources.pop(f"{name}: {dropped}", None)
            fresh[name] = lines[-PORTRAIT_LINES:]
        report.profile_version = profile.save(
            self.store, fresh, sources, "written from what the user said (no model)", now
        )

    # -- threads --------------------------------------------------------------------------------------------
    def close_past_threads(self, now: datetime, report: Report) -> None:
        """An open thread closes `THREAD_DAYS` after its date: the companion had its chance to ask."""
        cutoff = timeutil.iso(now - timedelta(days=THREAD_DAYS))
        due = memories.threads(self.store, "open", due_before=cutoff)
        if not due:
            return
        with self.memory.write() as w:
            for item in due:
                memories.close_thread(w, item.id, "thread closed: its date passed")
        report.threads_closed += len(due)

    # -- digests --------------------------------------------------------------------------------------------
    def make_digests(self, now: datetime, report: Report, limit: int = 10) -> None:
        """Daily digests of finished days with session summaries; weekly digests of finished weeks."""
        days: dict[str, list[tuple[int, str]]] = {}
        for summary in memories.dated(self.store, "summary"):
            moment = timeutil.parse(summary.event_time)
            if moment and timeutil.local(moment).date() < timeutil.local(now).date():
                days.setdefault(timeutil.local(moment).date().isoformat(), []).append(
                    (summary.id, summary.text)
                )
        made = 0
        for day, items in days.items():
            if made >= limit:
                return
            if meta.get(self.store, plans.digest_marker("day", day)):
                continue
            self.write_digest(day, "day", f"{date.fromisoformat(day):%A %d %B %Y}", items, report)
            made += 1
        weeks: dict[str, list[tuple[int, str]]] = {}
        for digest in memories.dated(self.store, "digest", period="day"):
            moment = timeutil.parse(digest.event_time)
            if moment is None:
                continue
            moment = timeutil.local(moment)
            start = moment.date() - timedelta(days=moment.weekday())
            if start + timedelta(days=7) <= timeutil.local(now).date():
                weeks.setdefault(start.isoformat(), []).append((digest.id, digest.text))
        for week, items in weeks.items():
            if made >= limit:
                return
            if meta.get(self.store, plans.digest_marker("week", week)):
                continue
            self.write_digest(week, "week", f"the week of {date.fromisoformat(week):%d %B %Y}", items, report)
            made += 1

    def _digest_text(self, items: list[tuple[int, str]], period: str, period_text: str) -> str:
        """The model's digest of the summaries when it writes them (kept only when they say it), else their
        most central sentences."""
        texts = [text for _, text in items]
        if self.model_writes:
            try:
                answer = self.ask(
                    prompt(
                        "digest",
                        user=self.user,
                        char=self.char,
                        period=period_text,
                        unit=period,
                        summaries="\n".join(f"- {text}" for text in texts),
                    ),
                    DIGEST_SCHEMA,
                    440,
                )
                text = clean(answer.get("digest"), 700)
                if grounding.grounded_summary(text, "\n".join(texts), [self.user, self.char]):
                    return text
            except (JobInterrupted, ModelUnavailable):
                raise
            except ModelError:
                if self.mode != "auto":
                    raise
        return extractive.digest(texts, self.memory.embedder)

    def write_digest(
        self, day: str, period: str, period_text: str, items: list[tuple[int, str]], report: Report
    ) -> None:
        """One digest of a day's summaries (or a week's daily digests), marked done in the same transaction."""
        text = self._digest_text(items, period, period_text)
        if not text:
            raise ModelError("The model wrote an empty digest.")
        assert period in ("day", "week")
        written = f"Week of {day}: {text}" if period == "week" else text
        plan = DigestPlan(
            day,
            "week" if period == "week" else "day",
            text,
            memories.source_ids(self.store, [memory_id for memory_id, _ in items]),
            self.memory.embedder.encode_one(written),
        )
        with self.memory.write() as w:
            made = plans.apply_digest(w, plan, self.memory.embed_model)
        if made is not None:
            report.digests += 1
