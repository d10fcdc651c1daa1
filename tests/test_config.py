from __future__ import annotations

import stat
from pathlib import Path

import pytest

from companion import config
from companion.errors import ConfigError
from companion.paths import Paths, get_paths


def test_home_moves_everything(home: Path) -> None:
    paths = get_paths()
    for directory in (paths.config_dir, paths.data_dir, paths.cache_dir):
        assert home in directory.parents


def test_defaults_without_a_file(paths: Paths) -> None:
    settings = config.load(paths)
    assert settings.model.name == "demo"
    assert settings.model.n_gpu_layers == "auto"


def test_set_saves_only_changes_privately(paths: Paths) -> None:
    settings = config.load(paths)
    config.set_value(settings, "chat.temperature", "0.3")
    config.set_value(settings, "model.n_gpu_layers", "20")
    file = config.save(settings, paths)
    text = file.read_text()
    assert "temperature = 0.3" in text
    assert "max_tokens" not in text
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.config_dir.stat().st_mode) == 0o700
    again = config.load(paths)
    assert again.chat.temperature == 0.3
    assert again.model.n_gpu_layers == "20"


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("chat.temperature", "hot", "needs a number, not"),
        ("chat.temperature", "9", "between 0 and 2"),
        ("model.backend", "cloud", "one of: local, remote"),
        ("model.n_gpu_layers", "-5", "'auto'"),
        ("remote.base_url", "ftp://x", "http://"),
        ("chat.max_tokens", "1.5", "needs a whole number"),
        ("nope.key", "1", "Unknown setting"),
    ],
)
def test_bad_values_are_refused(paths: Paths, key: str, value: str, words: str) -> None:
    settings = config.load(paths)
    with pytest.raises(ConfigError, match=words):
        config.set_value(settings, key, value)


def test_broken_file_gives_a_clear_error(paths: Paths) -> None:
    paths.config_file.write_text("[chat\ntemperature = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(paths)
    paths.config_file.write_text("[chat]\ntemperature = 'warm'\n")
    with pytest.raises(ConfigError, match="chat.temperature"):
        config.load(paths)


def test_every_key_round_trips(paths: Paths) -> None:
    settings = config.load(paths)
    for key in config.setting_keys():
        value = config.get_value(settings, key)
        config.set_value(settings, key, str(value))
        assert config.get_value(settings, key) == value


def test_settings_that_make_chat_impossible_are_refused_through_the_cli(paths: Paths) -> None:
    from tests.test_cli import assert_clean_error, run

    assert_clean_error(run("config", "set", "model.n_ctx", "256"), "model.n_ctx 256 leaves no room to chat")
    assert_clean_error(run("config", "set", "chat.max_tokens", "4096"), "raise model.n_ctx")
    assert config.load(paths).chat.max_tokens == 256  # nothing changed
    assert not paths.config_file.exists()
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text("[model]\nn_ctx = 300\n")  # a file written by hand
    assert_clean_error(run("config", "show"), "leaves no room to chat", str(paths.config_file))


def test_negative_values_are_values_not_options(paths: Paths) -> None:
    from tests.test_cli import run

    result = run("config", "set", "model.n_gpu_layers", "-1")  # documented: all layers on the GPU
    assert result.returncode == 0, result.stderr
    assert config.load(paths).model.n_gpu_layers == "-1"
    assert run("config", "set", "chat.seed", "-1").returncode == 0


def test_a_persona_of_ones_own_before_the_first_chat_leaves_the_default(paths: Paths) -> None:
    from tests.test_cli import run

    assert run("persona", "new", "Luna", "--description", "A night owl.").returncode == 0
    listed = run("persona", "list").stdout
    assert "Sam" in listed and "Luna" in listed
    from companion.engine import Engine
    from tests.scripted import ScriptedModel

    engine = Engine(config.load(paths), paths, model=ScriptedModel(replies=["Hello."]))
    assert engine.ask("Hi")[0] == "Hello."
    engine.close()
