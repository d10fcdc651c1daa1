"""The memory file's schema: migrations as a list of functions, tracked by `PRAGMA user_version`.

Each migration runs once, in order, in one transaction together with the version bump, so a crash leaves the
old schema or the new one, never half of it; the list only ever grows. The FTS5 tables and their triggers are
written statement by statement (sqlite-utils' `enable_fts` uses executescript, which would commit the
migration's transaction half-way).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlite_utils

from companion import timeutil

# `PRAGMA application_id` of a companion memory file ("CMPN"): another application's SQLite file is refused.
APPLICATION_ID = 0x434D504E
# Every column that holds a time; each is stored in `timeutil`'s one form (UTC, milliseconds).
TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": ("started_at", "ended_at"),
    "messages": ("created_at",),
    "memories": ("event_time", "created_at", "updated_at", "last_recalled_at", "valid_from", "valid_to"),
    "audit": ("at",),
    "profile_versions": ("created_at",),
    "profile_vetoes": ("created_at",),
    "personas": ("created_at", "updated_at"),
}


def row_uid(*parts: object) -> str:
    """A stable identity for a row that has none of its own (from before identities, or from an export of
    that time): the same content gives the same id in every file, so importing it again adds nothing."""
    joined = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha1(joined.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def session_uid(started_at: str | None, external_id: str | None) -> str:
    return row_uid("session", timeutil.normalize(started_at) or started_at, external_id or "")


def memory_uid(kind: str | None, text: str | None, created_at: str | None) -> str:
    return row_uid("memory", kind, text, timeutil.normalize(created_at) or created_at)


def m001_sessions_and_messages(db: sqlite_utils.Database) -> None:
    db["sessions"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "persona": str,
            "title": str,
            "started_at": str,
            "ended_at": str,
            "off_record": int,
            "external_id": str,
        },
        pk="id",
        not_null={"started_at"},
        defaults={"off_record": 0, "title": "", "persona": ""},
    )
    db["messages"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "session_id": int,
            "role": str,
            "speaker": str,
            "text": str,
            "created_at": str,
            "source_id": str,
            "token_count": int,
            "incomplete": int,
            "model": str,
        },
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
        not_null={"session_id", "role", "text", "created_at"},
        defaults={"incomplete": 0, "speaker": ""},
    )
    db["messages"].create_index(["session_id", "id"])  # type: ignore[union-attr]
    db["messages"].create_index(["created_at"])  # type: ignore[union-attr]


def fts_table(db: sqlite_utils.Database, table: str, columns: list[str]) -> None:
    """An external-content FTS5 table kept in sync by triggers (what sqlite-utils' `enable_fts` writes, issued
    statement by statement: `enable_fts` uses executescript, which would commit the migration's transaction)."""
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    fts = f"{table}_fts"
    db.execute(
        f"create virtual table {fts} using fts5({cols}, content={table}, content_rowid=id, "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    db.execute(f"insert into {fts} (rowid, {cols}) select id, {cols} from {table}")
    db.execute(
        f"create trigger {table}_ai after insert on {table} begin "
        f"insert into {fts} (rowid, {cols}) values (new.id, {new}); end"
    )
    db.execute(
        f"create trigger {table}_ad after delete on {table} begin "
        f"insert into {fts} ({fts}, rowid, {cols}) values ('delete', old.id, {old}); end"
    )
    db.execute(
        f"create trigger {table}_au after update of {cols} on {table} begin "
        f"insert into {fts} ({fts}, rowid, {cols}) values ('delete', old.id, {old}); "
        f"insert into {fts} (rowid, {cols}) values (new.id, {new}); end"
    )


def m002_long_term_memory(db: sqlite_utils.Database) -> None:
    # The neighbouring turn, for recall: a question often matches a reply only together with what it answered.
    db.execute("alter table messages add column context text not null default ''")
    db.execute("create index messages_source_id on messages(source_id)")
    db.execute("create index sessions_external_id on sessions(external_id)")
    db["memories"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "kind": str,  # fact | summary | digest | profile | note
            "text": str,
            "event_time": str,
            "created_at": str,
            "updated_at": str,
            "importance": float,
            "strength": float,
            "last_recalled_at": str,
            "recall_count": int,
            "pinned": int,
            "archived": int,
            "valid_from": str,
            "valid_to": str,
            "superseded_by": int,
            "session_id": int,
            "persona": str,
        },
        pk="id",
        not_null={"kind", "text", "created_at"},
        defaults={
            "importance": 0.5,
            "strength": 1.0,
            "recall_count": 0,
            "pinned": 0,
            "archived": 0,
            "persona": "",
        },
    )
    db.execute("create index memories_kind on memories(kind, archived)")
    db["memory_sources"].create(  # type: ignore[union-attr]
        {"memory_id": int, "message_id": int},
        pk=("memory_id", "message_id"),
        foreign_keys=[("memory_id", "memories", "id"), ("message_id", "messages", "id")],
    )
    db.execute("create index memory_sources_message on memory_sources(message_id)")
    db["audit"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "at": str,
            "action": str,
            "target": str,
            "target_id": int,
            "old_text": str,
            "new_text": str,
            "reason": str,
        },
        pk="id",
        not_null={"at", "action", "target"},
    )
    db.execute("create index audit_target on audit(target, target_id)")
    # Every embedding, so the SQLite file alone is the whole memory; FAISS is a cache rebuilt from here.
    db["vectors"].create(  # type: ignore[union-attr]
        {"key": int, "kind": str, "item_id": int, "variant": int, "model": str, "vector": bytes},
        pk="key",
        not_null={"kind", "item_id", "variant", "model", "vector"},
    )
    db.execute("create index vectors_item on vectors(kind, item_id)")
    db["meta"].create({"key": str, "value": str}, pk="key")  # type: ignore[union-attr]
    # Personas the user talks with; the card (Character Card V2 JSON) is the persona issue's to fill.
    db["personas"].create(  # type: ignore[union-attr]
        {"id": int, "name": str, "card": str, "created_at": str, "updated_at": str},
        pk="id",
        not_null={"name", "created_at"},
    )
    db.execute("create unique index personas_name on personas(name)")
    fts_table(db, "messages", ["text", "context"])
    fts_table(db, "memories", ["text"])


def m003_profile_and_threads(db: sqlite_utils.Database) -> None:
    # The user's portrait, one row per version: sections as JSON, the diff against the version before, and the
    # memories it was built from.
    db["profile_versions"].create(  # type: ignore[union-attr]
        {"id": int, "created_at": str, "sections": str, "diff": str, "sources": str, "reason": str},
        pk="id",
        not_null={"created_at", "sections"},
    )
    db["profile_vetoes"].create({"line": str, "created_at": str}, pk="line")  # type: ignore[union-attr]
    # A fact about a future event is an open thread until it is closed ("open" | "closed" | null).
    db.execute("alter table memories add column thread text")


def m004_archived_messages(db: sqlite_utils.Database) -> None:
    # Only when the user turns on `memory.archive_messages`: a faded message leaves recall, stays in the file.
    db.execute("alter table messages add column archived integer not null default 0")


def m005_branches(db: sqlite_utils.Database) -> None:
    # Editing an earlier message branches the conversation: the new session continues the parent's messages
    # before `branch_at`, and the old branch stays as it was. A regenerated reply is kept, marked replaced.
    db.execute("alter table sessions add column parent_id integer")
    db.execute("alter table sessions add column branch_at integer")
    db.execute("alter table messages add column replaced integer not null default 0")


def m006_digest_period(db: sqlite_utils.Database) -> None:
    # Daily and weekly digests are told apart by their period, not by how their text begins.
    db.execute("alter table memories add column period text")
    db.execute(
        "update memories set period = case when text like 'Week of%' then 'week' else 'day' end"
        " where kind = 'digest'"
    )


def m007_times_in_utc_and_identities(db: sqlite_utils.Database) -> None:
    # One form for every time (UTC, milliseconds): times imported with offsets were kept as written, and
    # comparing them as text put 20:00-05:00 before 02:00+05:00 of the next day.
    conn = db.conn
    conn.create_function("companion_time", 1, lambda v: timeutil.normalize(v) or v, deterministic=True)
    for table, columns in TIME_COLUMNS.items():
        for column in columns:
            db.execute(
                f"update {table} set {column} = companion_time({column})"
                f" where {column} is not null and {column} != companion_time({column})"
            )
    # Identities that travel with exports, so importing the same export twice adds nothing the second time.
    conn.create_function("session_uid", 2, session_uid, deterministic=True)
    conn.create_function("memory_uid", 3, memory_uid, deterministic=True)
    db.execute("alter table sessions add column uid text")
    db.execute("alter table memories add column uid text")
    db.execute("update sessions set uid = session_uid(started_at, external_id)")
    db.execute("update memories set uid = memory_uid(kind, text, created_at)")
    db.execute("create index sessions_uid on sessions(uid)")
    db.execute("create index memories_uid on memories(uid)")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def m008_event_times(db: sqlite_utils.Database) -> None:
    # The day a message speaks of ("last Saturday", "next month"), resolved against when it was said: recall
    # uses it for questions about when something happened.
    from companion.memory.recall.timewords import event_time

    db.conn.create_function("event_time", 2, event_time, deterministic=True)
    db.execute("alter table messages add column event_time text")
    db.execute("update messages set event_time = event_time(text, created_at)")


def m009_vector_fingerprints(db: sqlite_utils.Database) -> None:
    # How many vectors each embedding model has, and a checksum of their keys, kept by triggers: what a saved
    # FAISS index must match is then read in microseconds, not by scanning millions of rows at every start.
    db.execute(
        "create table vector_fingerprints (model text primary key, count integer not null, checksum integer not null)"
    )
    db.execute(
        "insert into vector_fingerprints (model, count, checksum)"
        " select model, count(*), coalesce(sum(key % 1000003), 0) from vectors group by model"
    )
    db.execute(
        "create trigger vectors_fingerprint_ai after insert on vectors begin"
        " insert into vector_fingerprints (model, count, checksum) values (new.model, 1, new.key % 1000003)"
        " on conflict(model) do update set count = count + 1, checksum = checksum + new.key % 1000003; end"
    )
    db.execute(
        "create trigger vectors_fingerprint_ad after delete on vectors begin"
        " update vector_fingerprints set count = count - 1, checksum = checksum - old.key % 1000003"
        " where model = old.model; end"
    )
    db.execute(
        "create trigger vectors_fingerprint_au after update of key, model on vectors begin"
        " update vector_fingerprints set count = count - 1, checksum = checksum - old.key % 1000003"
        " where model = old.model;"
        " insert into vector_fingerprints (model, count, checksum) values (new.model, 1, new.key % 1000003)"
        " on conflict(model) do update set count = count + 1, checksum = checksum + new.key % 1000003; end"
    )


def m010_term_counts(db: sqlite_utils.Database) -> None:
    # How many messages hold each (stemmed) word, read from the FTS index itself: recall leaves out the words
    # most messages hold, which weigh nothing in BM25 and cost a scan of their whole posting list.
    db.execute("create virtual table messages_fts_terms using fts5vocab(messages_fts, 'row')")


def m011_kept_reasoning(db: sqlite_utils.Database) -> None:
    # A reasoning model's reasoning beside its reply, only when the user keeps it (`model.keep_reasoning`):
    # never the message's text, so never searched, embedded, recalled, consolidated or sent back.
    db.execute("alter table messages add column reasoning text")


def m012_checkins(db: sqlite_utils.Database) -> None:
    # A check-in: the companion's first message of a new session, about an open thread that came due (opt-in,
    # `checkins.enabled`). Ids and times only: the text is the message, forgotten with it.
    db.execute(
        "create table checkins (id integer primary key, memory_id integer, session_id integer not null,"
        " message_id integer, made_at text not null, notified_at text)"
    )
    db.execute("create index checkins_made on checkins(made_at)")
    db.execute("create index checkins_session on checkins(session_id)")


def m013_vector_rewrites(db: sqlite_utils.Database) -> None:
    # A vector rewritten under its own key (a memory edited, a message read again with other turns) changes
    # neither the count nor the checksum of keys: this counter does, so a process holding the FAISS index (the
    # app, while `memory edit` or `maintain` runs in a shell) and a saved index know they are behind.
    db.execute("alter table vector_fingerprints add column rewrites integer not null default 0")
    db.execute(
        "create trigger vectors_fingerprint_av after update of vector on vectors"
        " when old.vector is not new.vector begin"
        " update vector_fingerprints set rewrites = rewrites + 1 where model in (old.model, new.model); end"
    )


# Each migration runs once, in order, in one transaction with the version bump; the list only ever grows.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_sessions_and_messages,
    m002_long_term_memory,
    m003_profile_and_threads,
    m004_archived_messages,
    m005_branches,
    m006_digest_period,
    m007_times_in_utc_and_identities,
    m008_event_times,
    m009_vector_fingerprints,
    m010_term_counts,
    m011_kept_reasoning,
    m012_checkins,
    m013_vector_rewrites,
]
