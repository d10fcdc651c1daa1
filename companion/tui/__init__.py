"""The Textual face of companion. Nothing below `tui/` imports from here."""
