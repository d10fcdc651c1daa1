"""The one exception type a face turns into a clear sentence for the user.

Everything the user can cause (a bad file, a wrong key, an unknown name) is raised as a `CompanionError`
whose message says what is wrong and what to do. Anything else is a bug and may show a traceback.
"""


class CompanionError(Exception):
    """A problem the user can fix; `str(error)` is the sentence to show them."""


class ModelError(CompanionError):
    """The language model could not be loaded or stopped answering."""


class ConfigError(CompanionError):
    """A setting has a bad key or value."""
