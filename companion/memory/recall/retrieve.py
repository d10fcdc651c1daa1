"""Retrieval: what the companion recalls for a question. One function, used by chat, the CLI and the TUI.

How a hit is scored (no language model in the path):
  1. Candidates from FTS5 BM25 over each message (stopwords dropped, Porter stems), BM25 over the message read
     together with the turns it is read with (`records.read_with`: its burst and the turn it answers), BM25
     over derived memories, and FAISS over the embeddings of the message, of the message with those turns,
     and of derived memories.
  2. Every candidate gets all its scores exactly (dense scores from the stored vectors), each feature is
     z-scored over the candidates, and they are fused by value, not rank:
         base = bm25 + max(dense, dense-with-context) + 0.4 * bm25-with-context
  3. Context: a turn inherits part of how strongly the rest of its session answers (the mean base score of
     its session's three best other candidates) and of how strongly the turn just before or after it does —
     an answer often sits next to the turn that shares the question's words.
  4. Priors: a time window found in the question ("last week", "in May") relative to `now`, matched against
     when a message was said and the day it speaks of ("last Saturday", resolved when it was stored); for a
     question about *when*, a message that speaks of a day; a speaker the question names; pins; and memory
     retention (a gentle weight; archived memories are never here).
The weights (`Weights`) were chosen by cross-validation over the LoCoMo development conversations
(`benchmarks/locomo_tune.py`, see docs/benchmarks.md). Every hit carries its score, the parts of it (`why`) and
its provenance (`source_ids`: the external ids, else message ids, of the messages it comes from). FTS5 syntax
in a query is never interpreted: each word is quoted.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from companion import timeutil
from companion.memory.db.store import Store
from companion.memory.recall.retention import DEFAULT_TAU_DAYS, retention
from companion.memory.recall.timewords import find_window
from companion.memory.records import (
    VARIANT_MEMORY,
    VARIANT_MESSAGE,
    VARIANT_MESSAGE_CONTEXT,
    Hit,
    base_key,
    split_key,
    vector_key,
)
from companion.memory.tables import terms as terms_table

if TYPE_CHECKING:
    from companion.memory.recall.embed import Embedder
    from companion.memory.recall.index import VectorIndex

STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before being below
    between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
    few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
    him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out over own same shan't
    she she'd she'll she's should shouldn't so some such than that that's the their theirs them themselves then
    there there's these they they'd they'll they're they've this those through to too under until up very was
    wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while who who's whom
    why why's with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves also just
    did does ever get got go going gone like likely kind sort thing things would will yes yeah really much many
    s t d ll m re ve""".split()
)
# Words that ask about a time rather than a subject ("what happened in May?", "what did we talk about last
# week?"): with a time window and nothing else, the question is about that time.
ABOUT_WORDS = frozenset(
    "happen happened happens happening talk talked talking say said tell told discuss discussed remember"
    " mention mentioned up new".split()
)
CANDIDATES = 150
# In a large memory, a word more than this share of messages hold weighs almost nothing in BM25 (its inverse
# document frequency is near zero) yet costs a scan of its whole posting list: it is left out of the keyword
# search (the dense search still reads the whole question). Small memories keep every word.
COMMON_SHARE = 0.2
COMMON_MIN_MESSAGES = 20_000
# And the keyword search reads at most this many postings (about 25 ms on machine B, half a microsecond each):
# past it, the most common of the remaining words are left out first; the rarest, which rank, stay.
POSTINGS_BUDGET = 50_000
WHEN_QUESTION = re.compile(
    r"^\s*(when|how long ago|what (date|day|month|year|time))\b|\bwhen did\b", re.IGNORECASE
)
# A question that gathers ("What sports does she watch?", "Which cities has Jon visited?", "What kind of books
# does she read?"): what/which, a plural noun, then its verb. Its answer is usually spread over sessions.
AGGREGATE_QUESTION = re.compile(
    r"^\s*(?:what|which)\s+(?:(?:kinds?|types?|sorts?)\s+of\s+)?(?:[a-z]+\s+)?[a-z]+[^s\W]s\s+"
    r"(?:do|does|did|has|have|had|is|are|was|were|would|will|can|could)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Weights:
    """How the features of a candidate are fused into its score. The defaults were chosen by
    cross-validation over the LoCoMo development conversations (`benchmarks/locomo_tune.py`)."""

    bm25: float = 1.0  # BM25 over the message alone
    dense: float = 1.0  # max(dense of the message alone, dense of it read with its turns)
    context: float = 0.4  # BM25 over the message read with its turns (`records.read_with`)
    time: float = 1.0  # inside the time window a question names ("last week", "in May")
    speaker: float = 1.0  # said by a speaker the question names
    pin: float = 0.5
    retention: float = 0.3  # times (retention - 1): faded memories rank a little lower
    session: float = 0.4  # how strongly the rest of its session answers the question
    neighbour: float = 0.6  # how strongly the turn just before or after it answers the question
    when: float = 0.5  # for a question about when: the message speaks of a day ("last Saturday")
    # For a question that gathers (`AGGREGATE_QUESTION`): each further hit from a session already in the list
    # ranks this much lower, so the evidence of other sessions comes in (one strong hit per session first).
    spread: float = 0.5


DEFAULT_WEIGHTS = Weights()


@dataclass(frozen=True)
class Bar:
    """When a hit is relevant, from features that do not depend on the other candidates (the score does:
    its parts are z-scored over them, so the best of nothing still scores high):
        relevance = cosine + cover * (share of the question's words it holds, weighted by rarity)
                    - unknown * (share of the question's words no message holds)
                    - stranger * (1 when the question names someone or something no message holds)
                    + window * (1 when the question is only a time, "what did I do last week?", and the hit
                                was said in it or speaks of it)
    A question is one this memory can answer when one of its `GATE_DEPTH` best candidates reaches `question`;
    then each hit at or above `floor` is recalled. Otherwise nothing is. Chosen by leave-one-out over the
    LoCoMo development conversations, each asked its own questions and the other conversations' questions
    (`benchmarks/relevance_tune.py`, docs/benchmarks.md)."""

    cover: float = 0.2
    unknown: float = 0.2
    stranger: float = 0.3
    question: float = 0.28
    floor: float = 0.14
    window: float = 1.0  # not from LoCoMo (its questions always name more than a time): what it says is there

    def value(self, features: dict[str, float]) -> float:
        return (
            features["cosine"]
            + self.cover * features["cover"]
            - self.unknown * features["unknown"]
            - self.stranger * features["stranger"]
            + self.window * features.get("window", 0.0)
        )


DEFAULT_BAR = Bar()
GATE_DEPTH = 20


@dataclass(frozen=True)
class Word:
    """A word of the question as the keyword index knows it."""

    text: str
    stem: str  # Porter, as the FTS index stems it
    documents: int  # messages that hold it
    weight: float  # its inverse document frequency (BM25's): a word few messages hold weighs more

    def found_in(self, text: str) -> bool:
        """Whether a word of `text` has this word's stem (Porter writes a final y as i: "family" -> "famili")."""
        stem = self.stem
        pattern = re.escape(stem) if not stem.endswith("i") else f"{re.escape(stem[:-1])}[iy]"
        return re.search(rf"(?<!\w){pattern}", text) is not None


def query_terms(query: str) -> list[str]:
    words = re.findall(r"\w+(?:'\w+)?", query.lower())
    out: list[str] = []
    for word in words:
        word = re.sub(r"'s$", "", word)
        if word in STOPWORDS or len(word) < 2 or word in out:
            continue
        out.append(word)
    return out


def fts_match(terms: Iterable[str]) -> str:
    """An FTS5 query that ORs the words, each quoted so that no FTS5 operator survives."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def _z(values: dict[int, float], keys: list[int], missing: float | None = None) -> dict[int, float]:
    present = [values[k] for k in keys if k in values]
    if not present:
        return {k: 0.0 for k in keys}
    floor = min(present) if missing is None else missing
    filled = np.array([values.get(k, floor) for k in keys], dtype=np.float64)
    std = float(filled.std()) or 1.0
    mean = float(filled.mean())
    return {k: (v - mean) / std for k, v in zip(keys, filled, strict=True)}


# The rows a hit is built from, for messages and for memories (`{marks}`: one `?` per id).
MESSAGE_ROWS = (
    "select m.id, 'message' as kind, m.text, m.created_at as time, m.source_id, m.session_id,"
    " m.speaker, m.role, 0 as pinned, m.archived, s.off_record, s.persona, m.event_time"
    " from messages m join sessions s on s.id = m.session_id where m.id in ({marks})"
)
MEMORY_ROWS = (
    "select id, kind, text, coalesce(event_time, created_at) as time, null as source_id, session_id,"
    " '' as speaker, '' as role, pinned, archived, strength, last_recalled_at, created_at, valid_to, persona,"
    " null as event_time, 0 as off_record from memories where id in ({marks})"
)


class Retriever:
    def __init__(
        self, store: Store, embedder: Embedder, index: VectorIndex, tau_days: float = DEFAULT_TAU_DAYS
    ) -> None:
        self.store = store
        self.tau_days = tau_days
        self.embedder = embedder
        self.index = index
        self._speakers: set[str] | None = None
        self._counts: dict[str, int] = {}  # stemmed word -> messages that hold it (a cache)
        self._messages = 0
        self._counted = 0.0

    def speakers(self) -> set[str]:
        if self._speakers is None:
            rows = self.store.conn.execute("select distinct lower(speaker) from messages where speaker != ''")
            self._speakers = {r[0] for r in rows if r[0]}
        return self._speakers

    def forget_caches(self) -> None:
        self._speakers = None
        self._counts.clear()

    def words(self, terms: list[str]) -> dict[str, Word]:
        """Each query word with its stem and how many messages hold it (counts cached until messages are
        added or removed, or ten minutes pass)."""
        rows = terms_table.message_rows(self.store)
        if rows != self._messages or time.monotonic() - self._counted > 600:
            self._counts.clear()
            self._messages = rows
            self._counted = time.monotonic()
        if not terms:
            return {}
        stems = terms_table.stems(self.store, terms)
        out: dict[str, Word] = {}
        for term in terms:
            stem = stems.get(term)
            if stem is None:
                continue
            if stem not in self._counts:
                self._counts[stem] = terms_table.documents(self.store, stem)
            count = self._counts[stem]
            weight = math.log((self._messages - count + 0.5) / (count + 0.5) + 1.0)
            out[term] = Word(term, stem, count, weight)
        return out

    def common_words(self, words: dict[str, Word]) -> set[str]:
        """The words left out of the keyword search (none in a small memory): those a large share of
        messages hold, then the most common of the rest while their postings together exceed the budget."""
        if self._messages < COMMON_MIN_MESSAGES or not words:
            return set()
        counts = {term: word.documents for term, word in words.items()}
        common = {word for word, count in counts.items() if count > COMMON_SHARE * self._messages}
        kept = sorted((count, word) for word, count in counts.items() if word not in common)
        postings = sum(count for count, _ in kept)
        while kept and postings > POSTINGS_BUDGET:
            count, word = kept.pop()
            common.add(word)
            postings -= count
        return common

    def search(
        self,
        query: str,
        *,
        now: datetime | None = None,
        limit: int = 10,
        query_vector: np.ndarray | None = None,
        exclude_session: int | Collection[int] | None = None,
        kinds: set[str] | None = None,
        persona: str | None = None,
        separate: bool = False,
        weights: Weights = DEFAULT_WEIGHTS,
        bar: Bar | None = None,
    ) -> list[Hit]:
        """The best `limit` candidates, ranked, each marked `relevant` or not by the bar (`Bar`).
        `exclude_session`: a session (or several: a branch and its parents) whose messages are not recalled.
        `persona`: lore of other personas is never recalled; with `separate`, neither are their
        conversations and what was learned in them."""
        w = weights
        bar = bar or DEFAULT_BAR
        now = now or timeutil.now()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        terms = query_terms(query)
        window = find_window(query, now)
        content = [t for t in terms if not window or (t not in window.words and t not in ABOUT_WORDS)]
        if window:
            terms = content or terms
        want_messages = kinds is None or "message" in kinds
        want_memories = kinds is None or bool(kinds - {"message"})
        # The question's words as the memory knows them; a speaker's name is known though no text holds it.
        words = {
            term: replace(word, documents=max(word.documents, 1)) if term in self.speakers() else word
            for term, word in self.words(content).items()
        }
        common = self.common_words(words) if want_messages else set()
        terms = [t for t in terms if t not in common]  # all common: the dense search alone
        named = {s for s in self.speakers() if re.search(rf"\b{re.escape(s)}\b", query.lower())}

        bm25: dict[int, float] = {}  # key -> score (higher is better)
        bm25_ctx: dict[int, float] = {}
        if terms:
            self._bm25(terms, want_messages, want_memories, bm25, bm25_ctx)
        if query_vector is None:
            query_vector = self.embedder.encode_one(query)
        dense: dict[int, float] = {}
        scores, keys = self.index.search(query_vector, CANDIDATES * 2)
        for score, key in zip(scores.tolist(), keys.tolist(), strict=True):
            scored = base_key(int(key))
            dense[scored] = max(dense.get(scored, -1.0), float(score))

        candidates = list(dict.fromkeys([*bm25, *dense]))
        if not candidates:
            return []
        excluded = {exclude_session} if isinstance(exclude_session, int) else set(exclude_session or ())
        self._fill_dense(candidates, dense, query_vector)
        rows = self._rows(candidates)
        candidates = [
            k
            for k in candidates
            if k in rows and self._allowed(rows[k], excluded, kinds) and _visible(rows[k], persona, separate)
        ]
        if not candidates:
            return []
        z_bm25 = _z(bm25, candidates, missing=0.0)
        z_ctx = _z(bm25_ctx, candidates, missing=0.0)
        z_dense = _z(dense, candidates)
        base = {k: w.bm25 * z_bm25[k] + w.dense * z_dense[k] + w.context * z_ctx[k] for k in candidates}
        extra: dict[str, dict[int, float]] = {}
        if w.session:
            extra["session"] = self._session_strength(candidates, base, rows)
        if w.neighbour:
            extra["neighbour"] = self._neighbour_strength(candidates, base, rows)

        asks_when = bool(WHEN_QUESTION.search(query))
        unknown = _unknown(words)
        stranger = _unknown_name(query, words)
        hits = []
        for key in candidates:
            row = rows[key]
            why = {"bm25": z_bm25[key], "dense": z_dense[key], "context": z_ctx[key]}
            features = {
                "cosine": dense.get(key, 0.0),
                "cover": _cover(row, words),
                "unknown": unknown,
                "stranger": stranger,
                "window": 0.0,
            }
            score = base[key]
            for name, values in extra.items():
                if values.get(key):
                    why[name] = values[key]
                    score += getattr(w, name) * values[key]
            when = timeutil.parse(row["time"])
            spoken_of = timeutil.parse(row.get("event_time"))
            if window and ((when and window.contains(when)) or (spoken_of and window.contains(spoken_of))):
                why["time"] = w.time
                score += w.time
                if not words:  # a question that is only a time ("what did I do last week?")
                    features["window"] = 1.0
            if asks_when and spoken_of is not None and w.when:
                why["when"] = w.when
                score += w.when
            if named and row["speaker"] and row["speaker"].lower() in named:
                why["speaker"] = w.speaker
                score += w.speaker
            if row["pinned"]:
                why["pinned"] = w.pin
                score += w.pin
            if row["kind"] != "message":
                kept = retention(
                    row["strength"],
                    timeutil.parse(row["last_recalled_at"] or row["created_at"]),
                    now,
                    self.tau_days,
                )
                why["retention"] = kept
                score += w.retention * (kept - 1.0)
            hits.append((score, key, why, features))
        hits.sort(key=lambda h: -h[0])
        if w.spread and AGGREGATE_QUESTION.search(query):
            hits = _spread(hits, rows, w.spread, limit)
        # Relevance: the question is one this memory can answer when one of its best candidates clears the
        # bar; then each hit is recalled when it clears the floor.
        answerable = any(bar.value(f) >= bar.question for _, _, _, f in hits[:GATE_DEPTH])
        top = hits[:limit]
        sources = self._sources([split_key(k)[0] for _, k, _, _ in top if rows[k]["kind"] != "message"])
        out = []
        for score, key, why, features in top:
            row = rows[key]
            item = split_key(key)[0]
            if row["kind"] == "message":
                source_ids = [row["source_id"] or str(item)]
            else:
                source_ids = sources.get(item, [])
            out.append(
                Hit(
                    id=item,
                    kind=row["kind"],
                    text=row["text"],
                    score=score,
                    time=row["time"] or "",
                    source_ids=source_ids,
                    session_id=row["session_id"],
                    speaker=row["speaker"] or "",
                    role=row["role"] or "",
                    why=why,
                    event_time=row.get("event_time"),
                    relevance=bar.value(features),
                    relevant=answerable and bar.value(features) >= bar.floor,
                    features=features,
                )
            )
        return out

    def _bm25(
        self,
        terms: list[str],
        messages: bool,
        memories: bool,
        bm25: dict[int, float],
        bm25_ctx: dict[int, float],
    ) -> None:
        """BM25 candidates: messages (alone and read with their turns), and derived memories."""
        match = fts_match(terms)
        if messages:
            for rowid, text_score, ctx_score in self.store.conn.execute(
                "select rowid, -bm25(messages_fts, 1.0, 0.0), -bm25(messages_fts, 0.0, 1.0) from messages_fts"
                " where messages_fts match ? order by bm25(messages_fts, 1.0, 0.4) limit ?",
                (match, CANDIDATES * 2),
            ):
                key = vector_key(rowid, VARIANT_MESSAGE)
                bm25[key] = text_score
                bm25_ctx[key] = ctx_score
        if memories:
            for rowid, score in self.store.conn.execute(
                "select rowid, -bm25(memories_fts) from memories_fts where memories_fts match ?"
                " order by bm25(memories_fts) limit ?",
                (match, CANDIDATES),
            ):
                key = vector_key(rowid, VARIANT_MEMORY)
                bm25[key] = score
                bm25_ctx[key] = score

    @staticmethod
    def _session_strength(
        candidates: list[int], base: dict[int, float], rows: dict[int, dict[str, Any]]
    ) -> dict[int, float]:
        """How strongly the rest of a candidate's session answers the question: the mean of the best other
        candidates of the same session (its summary among them), z-scored."""
        by_session: dict[int, list[tuple[float, int]]] = {}
        for key in candidates:
            session = rows[key].get("session_id")
            if session is not None:
                by_session.setdefault(session, []).append((base[key], key))
        strength: dict[int, float] = {}
        for members in by_session.values():
            members.sort(reverse=True)
            for _, key in members:
                others = [s for s, k in members if k != key][:3]
                strength[key] = sum(others) / 3 if others else 0.0
        return _z(strength, candidates, missing=0.0)

    def _neighbour_strength(
        self, candidates: list[int], base: dict[int, float], rows: dict[int, dict[str, Any]]
    ) -> dict[int, float]:
        """How strongly the turn just before or just after a message answers the question (when it is a
        candidate too): an answer often sits next to the turn that shares the question's words."""
        by_id = {split_key(k)[0]: k for k in candidates if rows[k]["kind"] == "message"}
        strength: dict[int, float] = {}
        for item, key in by_id.items():
            near = [
                base[by_id[n]]
                for n in (item - 1, item + 1)
                if n in by_id and rows[by_id[n]]["session_id"] == rows[key]["session_id"]
            ]
            if near:
                strength[key] = max(near)
        return _z(strength, candidates, missing=min(strength.values(), default=0.0))

    def _fill_dense(self, candidates: list[int], dense: dict[int, float], query: np.ndarray) -> None:
        """Exact dense scores for candidates that came from BM25 only (vectors read from SQLite)."""
        missing = [k for k in candidates if k not in dense]
        wanted: list[int] = []
        for key in missing:
            item, variant = split_key(key)
            if variant == VARIANT_MEMORY:
                wanted.append(key)
            else:
                wanted += [key, vector_key(item, VARIANT_MESSAGE_CONTEXT)]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.store.conn.execute(
                f"select key, vector from vectors where model = ? and key in ({marks})",
                (self.index.model, *chunk),
            ).fetchall()
            for key, blob in rows:
                base = base_key(key)
                score = float(np.frombuffer(blob, dtype=np.float32) @ query)
                dense[base] = max(dense.get(base, -1.0), score)

    def _rows(self, keys: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        messages = [split_key(k)[0] for k in keys if split_key(k)[1] != VARIANT_MEMORY]
        memories = [split_key(k)[0] for k in keys if split_key(k)[1] == VARIANT_MEMORY]
        for ids, sql, variant in (
            (messages, MESSAGE_ROWS, VARIANT_MESSAGE),
            (memories, MEMORY_ROWS, VARIANT_MEMORY),
        ):
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for row in self.store.db.query(sql.format(marks=",".join("?" * len(chunk))), chunk):
                    out[vector_key(row["id"], variant)] = row
        return out

    @staticmethod
    def _allowed(row: dict[str, Any], excluded: set[int], kinds: set[str] | None) -> bool:
        if row.get("off_record"):
            return False
        if row.get("archived") or (row["kind"] != "message" and row.get("valid_to")):
            return False
        if row["kind"] == "message" and row["session_id"] in excluded:
            return False
        return kinds is None or row["kind"] in kinds

    def _sources(self, memory_ids: list[int]) -> dict[int, list[str]]:
        if not memory_ids:
            return {}
        rows = self.store.conn.execute(
            "select s.memory_id, coalesce(m.source_id, cast(m.id as text)) from memory_sources s"
            f" join messages m on m.id = s.message_id where s.memory_id in ({','.join('?' * len(memory_ids))})"
            " order by m.id",
            memory_ids,
        ).fetchall()
        out: dict[int, list[str]] = {}
        for memory_id, source in rows:
            out.setdefault(memory_id, []).append(source)
        return out


def _cover(row: dict[str, Any], words: dict[str, Word]) -> float:
    """The share of the question's words (weighted by how rare they are) that a candidate holds: its text,
    and for a message who said it."""
    total = sum(word.weight for word in words.values())
    if not total:
        return 0.0
    text = f"{row.get('speaker') or ''} {row['text']}".lower()
    return sum(word.weight for word in words.values() if word.found_in(text)) / total


def _unknown(words: dict[str, Word]) -> float:
    """The share of the question's words (weighted by how rare they are) that no message holds: a question
    about someone or something this memory never heard of."""
    total = sum(word.weight for word in words.values())
    return sum(word.weight for word in words.values() if not word.documents) / total if total else 0.0


NAME = re.compile(r"(?<![.!?:]\s)(?<!^)(?<!\w)([A-Z][a-z]+)\b")


def _unknown_name(query: str, words: dict[str, Word]) -> float:
    """1.0 when the question names someone or something (a capitalised word inside a sentence) that no
    message holds: "When did Caroline move?" asked of a memory that never heard of a Caroline."""
    for name in NAME.findall(query.strip()):
        word = words.get(name.lower())
        if word is not None and not word.documents:
            return 1.0
    return 0.0


def _visible(row: dict[str, Any], persona: str | None, separate: bool) -> bool:
    owner = (row.get("persona") or "").lower()
    if persona is None or not owner:
        return True  # imported conversations and the user's own notes belong to everyone
    if row["kind"] == "lore":
        return owner == persona.lower()
    return not separate or owner == persona.lower()


def _spread(hits: list[Any], rows: dict[int, dict[str, Any]], penalty: float, limit: int) -> list[Any]:
    """The first `limit` hits re-ordered greedily: each pick is the best score less `penalty` for every hit of its
    session already picked (memories, which gather across sessions themselves, are not held back)."""
    picked: list[Any] = []
    taken: dict[int, int] = {}
    pool = hits[: max(limit * 4, GATE_DEPTH)]
    while pool and len(picked) < limit:

        def value(hit: Any) -> float:
            row = rows[hit[1]]
            same = taken.get(row["session_id"], 0) if row["kind"] == "message" else 0
            return float(hit[0]) - penalty * same

        best = max(pool, key=value)
        pool.remove(best)
        picked.append(best)
        row = rows[best[1]]
        if row["kind"] == "message":
            taken[row["session_id"]] = taken.get(row["session_id"], 0) + 1
    chosen = {id(h) for h in picked}
    return picked + [h for h in hits if id(h) not in chosen]
