"""The recall room: embeddings (`embed.py`), the FAISS index that follows the vectors table (`index.py`), the
one recall function (`retrieve.py`, reads only), time words (`timewords.py`) and the forgetting curve
(`retention.py`)."""
