"""Long-term memory: the SQLite memory file, embeddings, the FAISS index and retrieval."""
