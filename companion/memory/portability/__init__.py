"""The portability room: files memory enters and leaves as (`formats.py`), imports (`imports.py`), exports
(`exports.py`) and exports sealed with a passphrase (`sealed.py`)."""
