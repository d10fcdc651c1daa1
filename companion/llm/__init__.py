"""The language-model engine: one small interface (`base.ChatModel`), a local llama.cpp backend and a remote
OpenAI-compatible backend, the model registry, and KV-cache-friendly prompt assembly."""
