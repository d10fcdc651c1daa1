"""How many messages hold each word, from the FTS index's own vocabulary (`messages_fts_terms`): recall leaves
out the words most messages hold. A word is stemmed the way the index stems it, through a temporary FTS table
of this connection (nothing is written to the file)."""

from __future__ import annotations

from companion.memory.db.store import Store


def stems(store: Store, words: list[str]) -> dict[str, str]:
    """Each word's stem as the messages' FTS index stores it (Porter, unicode61, diacritics removed)."""
    conn = store.conn
    conn.execute(
        "create virtual table if not exists temp.query_words using fts5(word,"
        " tokenize='porter unicode61 remove_diacritics 2')"
    )
    conn.execute(
        "create virtual table if not exists temp.query_stems using fts5vocab(temp, query_words, 'instance')"
    )
    conn.executemany("insert into temp.query_words (rowid, word) values (?, ?)", list(enumerate(words, 1)))
    by_position = {doc: term for term, doc in conn.execute("select term, doc from temp.query_stems")}
    conn.execute("delete from temp.query_words")
    return {word: by_position[position] for position, word in enumerate(words, 1) if position in by_position}


def documents(store: Store, stem: str) -> int:
    """How many messages hold a stem."""
    row = store.conn.execute("select doc from messages_fts_terms where term = ?", (stem,)).fetchone()
    return int(row[0]) if row else 0


def message_rows(store: Store) -> int:
    return int(store.scalar("select coalesce(max(rowid), 0) from messages") or 0)
