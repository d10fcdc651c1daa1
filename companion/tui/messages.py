"""Typed messages that workers post back to the app."""

from __future__ import annotations

from textual.message import Message


class ModelLoaded(Message):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ModelFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class ReplyFinished(Message):
    def __init__(self, incomplete: bool, tokens: int, tok_s: float, seconds: float, error: str) -> None:
        super().__init__()
        self.incomplete = incomplete
        self.tokens = tokens
        self.tok_s = tok_s
        self.seconds = seconds
        self.error = error
