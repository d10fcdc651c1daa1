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

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from companion import timeutil
from companion.english import plural
from companion.errors import JobInterrupted, ModelError, ModelUnavailable
from companion.llm.base import ChatMessage, ChatModel, GenerationOptions
from companion.memory import extractive, grounding, profile
from companion.memory.index import VARIANT_MEMORY, split_key, vector_key
from companion.memory.operations import LongTermMemory
from companion.memory.store import ACTIVE
from companion.paths import assets_dir

PROFILE_SECTIONS = profile.SECTIONS
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


@dataclass
class Fact:
    text: str
    sources: list[int]
    importance: float
    when: str | None
    future: bool


@dataclass(frozen=True)
class Decision:
    """What a new fact does to what is known: ADD it, UPDATE `target` with `text`, SUPERSEDE `target`, or
    NOOP (`target`, when there is one, gains the fact's turns as sources)."""

    action: str
    fact: Fact
    target: int | None
    text: str


def content_words(text: str) -> set[str]:
    from companion.memory.retrieve import query_terms

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

    def transcript_chunks(
        self, rows: list[tuple[int, str, str, str]], reserve: int
    ) -> list[list[tuple[int, str, str, str]]]:
        """Split (id, who, text, time) turns into chunks whose numbered transcript fits the context."""
        budget = max(self.model.n_ctx - reserve, 256)
        chunks: list[list[tuple[int, str, str, str]]] = [[]]
        used = 0
        for row in rows:
            cost = self.model.count_tokens(f"[{len(chunks[-1]) + 1}] {row[1]}: {row[2]}") + 2
            if chunks[-1] and (used + cost > budget or len(chunks[-1]) >= MAX_TURNS):
                chunks.append([])
                used = 0
            chunks[-1].append(row)
            used += cost
        return [c for c in chunks if c]

    @staticmethod
    def numbered(chunk: list[tuple[int, str, str, str]]) -> str:
        return "\n".join(f"[{i}] {who}: {text}" for i, (_, who, text, _) in enumerate(chunk, start=1))

    # -- sessions -------------------------------------------------------------------------------------------
    def pending_sessions(self, now: datetime, idle: timedelta, exclude: int | None = None) -> list[int]:
        """Sessions that have ended (closed, or idle for `idle`) and hold messages not yet consolidated."""
        rows = self.store.conn.execute(
            "select s.id, s.ended_at, max(m.created_at), max(m.id) from sessions s join messages m"
            " on m.session_id = s.id where s.off_record = 0 group by s.id order by s.id"
        ).fetchall()
        pending = []
        for session_id, ended, last_time, last_id in rows:
            if session_id == exclude:
                continue
            marker = self.store.get_meta(f"consolidated.session.{session_id}")
            if marker and json.loads(marker).get("last_message", 0) >= last_id:
                continue
            last = timeutil.parse(last_time)
            if ended or (last is not None and now - last >= idle):
                pending.append(session_id)
        return pending

    def consolidate_session(self, session_id: int, now: datetime, report: Report) -> None:
        marker = self.store.get_meta(f"consolidated.session.{session_id}")
        after = json.loads(marker).get("last_message", 0) if marker else 0
        # The companion in this session is the persona it was held with (the speaker of its replies).
        char = self.store.session_persona(session_id) or self.char
        every = self.store.conn.execute(
            "select id, speaker, role, text, created_at from messages where session_id = ? order by id",
            (session_id,),
        ).fetchall()
        raw = [r for r in every if r[0] > after]  # what was said since the last consolidation
        if not raw:
            return
        # The summary covers the whole session (a session that goes on is summarized anew); facts come from
        # what is new.
        whole = [(r[0], r[1] or ("You" if r[2] == "user" else char), r[3], r[4]) for r in every]
        rows = [row for row in whole if row[0] > after]
        if self.model_writes:
            try:
                summaries, plan = self._by_model(whole, rows, char, now, report)
                report.by_model += 1
                self.write_session(session_id, whole, rows, summaries, plan, now, report)
                return
            except (JobInterrupted, ModelUnavailable):
                raise  # gave way to a chat turn, or the model is out of reach: it runs again later, with it
            except ModelError:
                if self.mode != "auto":
                    raise
        summaries, plan = self._extractive(every, raw, char)
        report.extractive += 1
        self.write_session(session_id, whole, rows, summaries, plan, now, report)

    def _by_model(
        self,
        whole: list[tuple[int, str, str, str]],
        rows: list[tuple[int, str, str, str]],
        char: str,
        now: datetime,
        report: Report,
    ) -> tuple[list[str], list[Decision]]:
        """The session's summary and the new turns' facts, written by the model; each kept only when its
        sources say it."""
        day = (timeutil.parse(whole[0][3]) or now).date()
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
            if summary and grounding.grounded_summary(summary, "\n".join(r[2] for r in chunk), speakers):
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
            texts = {message_id: text for message_id, _, text, _ in chunk}
            for fact in self.valid_facts(answer, chunk, day):
                if grounding.grounded(fact.text, "\n".join(texts[m] for m in fact.sources), speakers):
                    facts.append(fact)
                else:
                    report.dropped += 1
        return summaries, self.plan_facts(self.dedupe(facts))

    def _extractive(
        self,
        every: list[tuple[int, str, str, str, str]],
        new: list[tuple[int, str, str, str, str]],
        char: str,
    ) -> tuple[list[str], list[Decision]]:
        """The session's summary and the new turns' facts without a model: the session's central sentences,
        the user's first-person statements (one about a day ahead becomes an open thread)."""

        def said(raw: list[tuple[int, str, str, str, str]]) -> list[extractive.Said]:
            return [
                s
                for message_id, speaker, role, text, time in raw
                for s in extractive.sentences(
                    message_id, speaker or (self.user if role == "user" else char), role, text, time
                )
            ]

        summary = extractive.summary(said(every), self.memory.embedder)
        facts = [
            Fact(
                statement.text,
                [statement.message_id],
                0.6,
                statement.event.isoformat() if statement.event else None,
                statement.event is not None,
            )
            for statement in extractive.statements(said(new), self.user)
        ]
        return ([summary] if summary else []), self.plan_facts(self.dedupe(facts), decide=False)

    def valid_facts(
        self, answer: dict[str, Any], chunk: list[tuple[int, str, str, str]], day: date
    ) -> list[Fact]:
        out = []
        raw = answer.get("facts")
        for item in raw if isinstance(raw, list) else []:
            if not isinstance(item, dict):
                continue
            text = clean(item.get("text"), 200)
            if len(text) < 5:
                continue
            turns = [t for t in item.get("turns") or [] if isinstance(t, int) and 1 <= t <= len(chunk)]
            sources = sorted({chunk[t - 1][0] for t in turns}) or [r[0] for r in chunk]
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
            best, score, known = similar[0]
            if score >= SAME and content_words(fact.text) <= content_words(known):
                plan.append(Decision("NOOP", fact, best, fact.text))
                continue
            if not decide:  # without a model, what is not the same is kept beside what is known
                plan.append(Decision("ADD", fact, None, fact.text))
                accepted.append(vector)
                continue
            existing = "\n".join(f"{i}. {text}" for i, (_, _, text) in enumerate(similar[:3], start=1))
            answer = self.ask(
                prompt("decide", user=self.user, existing=existing, new=fact.text), DECISION_SCHEMA, 200
            )
            raw_action = answer.get("action")
            action = str(raw_action) if raw_action in ("ADD", "UPDATE", "SUPERSEDE", "NOOP") else "ADD"
            raw_number = answer.get("fact")
            number = raw_number if isinstance(raw_number, int) else 0
            target = similar[number - 1][0] if 1 <= number <= min(len(similar), 3) else best
            text = clean(answer.get("text"), 200) or fact.text
            if action == "ADD":
                plan.append(Decision("ADD", fact, None, fact.text))
                accepted.append(vector)
            else:
                plan.append(Decision(action, fact, target, text if action == "UPDATE" else fact.text))
        return plan

    def similar_facts(self, vector: np.ndarray) -> list[tuple[int, float, str]]:
        scores, keys = self.memory.index.search(vector, 20)
        out = []
        for score, key in zip(scores.tolist(), keys.tolist(), strict=True):
            item, variant = split_key(int(key))
            if variant != VARIANT_MEMORY or score < SIMILAR:
                continue
            memory = self.store.get_memory(item)
            if memory and memory.kind == "fact" and memory.active:
                out.append((item, float(score), memory.text))
        return out

    def write_session(
        self,
        session_id: int,
        whole: list[tuple[int, str, str, str]],
        rows: list[tuple[int, str, str, str]],
        summaries: list[str],
        plan: list[Decision],
        now: datetime,
        report: Report,
    ) -> None:
        stamp = timeutil.iso(now)
        touched: list[int] = []
        superseded: list[int] = []
        with self.store.transaction() as conn:
            if summaries:
                for (old,) in conn.execute(
                    "select id from memories where kind = 'summary' and session_id = ? and valid_to is null",
                    (session_id,),
                ).fetchall():
                    conn.execute("update memories set valid_to = ? where id = ?", (stamp, old))
                    superseded.append(old)
                    self.store.audit(
                        conn, "supersede", "memory", old, None, None, "the session went on; summarized anew"
                    )
                all_ids = [
                    r[0] for r in conn.execute("select id from messages where session_id = ?", (session_id,))
                ]
                summary_id = self.store.add_memory(
                    "summary",
                    " ".join(summaries),
                    sources=all_ids,
                    event_time=whole[0][3],
                    importance=0.6,
                    reason="session summary",
                    session_id=session_id,
                    conn=conn,
                )
                touched.append(summary_id)
                report.summaries += 1
            for decision in plan:
                action, fact, old, text = decision.action, decision.fact, decision.target, decision.text
                if action == "ADD":
                    new_id = self._add_fact(conn, fact, text, "learned in conversation", session_id)
                    if fact.future:
                        conn.execute("update memories set thread = 'open' where id = ?", (new_id,))
                    touched.append(new_id)
                    report.facts_added += 1
                elif action == "UPDATE" and old is not None:
                    before = self.store.get_memory(old)
                    conn.execute(
                        "update memories set text = ?, updated_at = ? where id = ?", (text, stamp, old)
                    )
                    self.store.add_sources(old, fact.sources, conn)
                    self.store.audit(
                        conn,
                        "update",
                        "memory",
                        old,
                        before.text if before else None,
                        text,
                        "more detail learned",
                    )
                    touched.append(old)
                    report.facts_updated += 1
                elif action == "SUPERSEDE" and old is not None:
                    new_id = self._add_fact(conn, fact, text, "replaces an older fact", session_id)
                    before = self.store.get_memory(old)
                    conn.execute(
                        "update memories set valid_to = ?, superseded_by = ?, updated_at = ? where id = ?",
                        (stamp, new_id, stamp, old),
                    )
                    superseded.append(old)
                    self.store.audit(
                        conn,
                        "supersede",
                        "memory",
                        old,
                        before.text if before else None,
                        text,
                        "contradicted by a newer fact",
                    )
                    touched.append(new_id)
                    report.facts_superseded += 1
                elif old is not None:
                    self.store.add_sources(old, fact.sources, conn)
                    report.facts_unchanged += 1
            # What was learned in a persona's conversation belongs to that persona (`persona.memory = separate`).
            conn.execute(
                "update memories set persona = (select persona from sessions where id = ?) where session_id = ?"
                " and persona = ''",
                (session_id, session_id),
            )
            # Superseded memories leave recall: their vectors go with them, so the index matches the file.
            keys = [vector_key(i, VARIANT_MEMORY) for i in superseded]
            conn.executemany("delete from vectors where key = ?", [(k,) for k in keys])
            self.store.set_meta(
                f"consolidated.session.{session_id}",
                json.dumps({"last_message": rows[-1][0], "at": stamp}),
                conn=conn,
            )
        report.sessions += 1
        if keys:
            self.memory.index.remove(keys)
        self.memory.embed_memories(touched, add_to_index=True)

    def _add_fact(self, conn: sqlite3.Connection, fact: Fact, text: str, reason: str, session_id: int) -> int:
        return self.store.add_memory(
            "fact",
            text,
            sources=fact.sources,
            event_time=fact.when,
            importance=fact.importance,
            reason=reason,
            session_id=session_id,
            conn=conn,
        )

    # -- profile --------------------------------------------------------------------------------------------
    def update_profile(self, now: datetime, report: Report) -> None:
        current = profile.current(self.store)
        rows = self.store.conn.execute(
            f"select id, text from memories where kind in ('fact', 'note') and {ACTIVE}"
            " and created_at > ? order by importance desc, id limit 30",
            (current.created_at or "",),
        ).fetchall()
        if not rows:
            return
        vetoed = profile.vetoed_lines(self.store)
        facts = "\n".join(text for _, text in rows)
        shown = "\n".join(f"{name}: {'; '.join(lines)}" for name, lines in current.sections.items() if lines)
        answer = self.ask(
            prompt(
                "profile",
                user=self.user,
                char=self.char,
                profile=shown or "(nothing yet)",
                facts="\n".join(f"- {text}" for _, text in rows),
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
            self.store, fresh, [r[0] for r in rows], "updated from new facts", now
        )

    # -- threads --------------------------------------------------------------------------------------------
    def close_past_threads(self, now: datetime, report: Report) -> None:
        """An open thread closes `THREAD_DAYS` after its date: the companion had its chance to ask."""
        cutoff = timeutil.iso(now - timedelta(days=THREAD_DAYS))
        due = self.store.threads("open", due_before=cutoff)
        if not due:
            return
        with self.store.transaction() as conn:
            for item in due:
                conn.execute(
                    "update memories set thread = 'closed', updated_at = ? where id = ?",
                    (timeutil.iso(now), item.id),
                )
                self.store.audit(
                    conn, "update", "memory", item.id, None, None, "thread closed: its date passed"
                )
        report.threads_closed += len(due)

    # -- digests --------------------------------------------------------------------------------------------
    def make_digests(self, now: datetime, report: Report, limit: int = 10) -> None:
        """Daily digests of finished days with session summaries; weekly digests of finished weeks."""
        rows = self.store.conn.execute(
            "select id, text, event_time from memories where kind = 'summary' and valid_to is null"
            " and event_time is not null order by event_time"
        ).fetchall()
        days: dict[str, list[tuple[int, str]]] = {}
        for memory_id, text, when in rows:
            moment = timeutil.parse(when)
            if moment and moment.date() < now.date():
                days.setdefault(moment.date().isoformat(), []).append((memory_id, text))
        made = 0
        for day, items in days.items():
            if made >= limit:
                return
            if self.store.get_meta(f"digest.day.{day}"):
                continue
            self.write_digest(day, "day", f"{date.fromisoformat(day):%A %d %B %Y}", items, report)
            made += 1
        weeks: dict[str, list[tuple[int, str]]] = {}
        for memory_id, text, when in self.store.conn.execute(
            "select id, text, event_time from memories where kind = 'digest' and period = 'day'"
            " and valid_to is null"
        ).fetchall():
            moment = timeutil.parse(when)
            if moment is None:
                continue
            start = moment.date() - timedelta(days=moment.weekday())
            if start + timedelta(days=7) <= now.date():
                weeks.setdefault(start.isoformat(), []).append((memory_id, text))
        for week, items in weeks.items():
            if made >= limit:
                return
            if self.store.get_meta(f"digest.week.{week}"):
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
        sources = sorted({m.id for memory_id, _ in items for m in self.store.memory_sources(memory_id)})
        with self.store.transaction() as conn:
            new_id = self.store.add_memory(
                "digest",
                f"Week of {day}: {text}" if period == "week" else text,
                sources=sources,
                event_time=day,
                importance=0.6,
                reason=f"{period} digest",
                period=period,
                conn=conn,
            )
            self.store.set_meta(f"digest.{period}.{day}", timeutil.now_iso(), conn=conn)
        self.memory.embed_memories([new_id])
        report.digests += 1
