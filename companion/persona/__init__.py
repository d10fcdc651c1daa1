"""Personas: Character Card V2 import and export (the persona issue builds the rest on this)."""
