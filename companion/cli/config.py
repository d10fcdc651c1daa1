"""`companion config …`: show and change settings (one TOML file)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from companion import config as config_mod
from companion.paths import get_paths

app = typer.Typer(help="Show and change settings (a TOML file).", no_args_is_help=True)


@app.command("show")
def show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print every setting with its effective value."""
    settings = config_mod.load()
    if as_json:
        print(json.dumps(settings.to_dict(), indent=2))
        return
    for key in config_mod.setting_keys():
        print(f"{key} = {json.dumps(config_mod.get_value(settings, key))}")
    for name, path in settings.models.items():
        print(f"models.{name} = {json.dumps(path)}")


@app.command("get")
def get(key: str) -> None:
    """Print one setting, e.g. `companion config get chat.temperature`."""
    value = config_mod.get_value(config_mod.load(), key)
    print(value if isinstance(value, str) else json.dumps(value))


# A value may start with "-" (`model.n_gpu_layers -1`, `chat.seed -1`): it is the value, not an option.
@app.command("set", context_settings={"ignore_unknown_options": True})
def set_(key: str, value: str) -> None:
    """Change one setting, e.g. `companion config set chat.temperature 0.8`."""
    settings = config_mod.load()
    new = config_mod.set_value(settings, key, value)
    config_mod.save(settings)
    print(f"{key} = {json.dumps(new)}")


@app.command("path")
def path() -> None:
    """Print where the settings file lives."""
    print(get_paths().config_file)


@app.command("set-api-key")
def set_api_key(
    from_stdin: Annotated[bool, typer.Option("--stdin", help="Read the key from standard input.")] = False,
) -> None:
    """Store the remote server's API key in the OS keyring (never in the settings file)."""
    from companion.secrets import set_api_key as store_key

    key = sys.stdin.readline().strip() if from_stdin else typer.prompt("API key", hide_input=True)
    store_key(key)
    print("The API key is stored in the OS keyring.")


@app.command("delete-api-key")
def delete_api_key() -> None:
    """Remove the remote server's API key from the OS keyring."""
    from companion.secrets import delete_api_key as remove_key

    print("Removed the API key." if remove_key() else "No API key was stored.")
