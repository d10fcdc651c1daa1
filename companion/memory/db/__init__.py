"""The db room: the memory file itself — connections, transactions, the file's identity, migrations
(`schema.py`), SQLCipher connections (`cipher.py`) and the lock every process holds (`lock.py`)."""
