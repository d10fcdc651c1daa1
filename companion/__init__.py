"""companion: a private personal companion for the terminal that remembers you."""

__version__ = "0.1.0"
