from tests.tui.conftest import make_app  # noqa: F401 - the TUI fixture, for the fault tests of the app
