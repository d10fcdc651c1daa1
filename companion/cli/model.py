"""`companion model …`: choose, add and download language models (GGUF files)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from companion import config as config_mod
from companion.errors import CompanionError
from companion.paths import get_paths

app = typer.Typer(help="Choose, add and download language models (GGUF files).", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """List the models companion knows; the one in use is marked with *."""
    from companion.llm.models import registered

    settings = config_mod.load()
    current = settings.model.name
    for name, path in registered(settings).items():
        mark = "*" if name == current and settings.model.backend == "local" else " "
        print(f"{mark} {name}\t{path}")
    if settings.model.backend == "remote":
        print(f"* remote\t{settings.remote.base_url} ({settings.remote.model or 'server default'})")


@app.command("add")
def add(
    path: Path,
    name: Annotated[str | None, typer.Option("--name", help="A short name for it.")] = None,
) -> None:
    """Register a GGUF file you already have."""
    from companion.llm.gguf_header import inspect_gguf
    from companion.llm.models import check_new_name, default_name_for

    settings = config_mod.load()
    info = inspect_gguf(path)
    name = name or default_name_for(info.path)
    check_new_name(settings, name)
    settings.models[name] = str(info.path)
    config_mod.save(settings)
    print(f"Added '{name}' ({info.architecture}, {info.file_type}, {info.size_bytes / 2**20:.0f} MiB).")
    print(f"Use it with: companion model use {name}")


def check_registered(settings: config_mod.Settings, name: str) -> None:
    from companion.llm.models import registered

    if name not in registered(settings):
        raise CompanionError(
            f"There is no model named '{name}' (known: {', '.join(registered(settings))}); "
            "add one with `companion model add PATH`."
        )


@app.command("use")
def use(name: str) -> None:
    """Choose the model to chat with."""
    settings = config_mod.load()
    check_registered(settings, name)
    settings.model.name = name
    settings.model.backend = "local"
    config_mod.save(settings)
    print(f"Now using '{name}'.")


@app.command("pull")
def pull(
    repo: str,
    filename: str,
    name: Annotated[str | None, typer.Option("--name", help="A short name for it.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="A branch, tag or commit.")] = None,
) -> None:
    """Download a GGUF from the Hugging Face hub (resumable) and register it."""
    from companion.llm.models import check_new_name, default_name_for
    from companion.llm.models import pull as download

    settings = config_mod.load()
    name = name or default_name_for(Path(filename))
    check_new_name(settings, name)
    path = download(repo, filename, get_paths().ensure(), revision=revision)
    settings.models[name] = str(path)
    config_mod.save(settings)
    print(f"Downloaded and added '{name}': {path}")
    print(f"Use it with: companion model use {name}")


@app.command("info")
def info(
    name: Annotated[str | None, typer.Argument(help="A model name; default: the one in use.")] = None,
) -> None:
    """Show a model's file, architecture, size, quantization, context length and chat template."""
    from companion.llm.gguf_header import inspect_gguf
    from companion.llm.models import DEMO_NOTE, resolve

    settings = config_mod.load()
    model_name, path = resolve(settings, get_paths().ensure(), name)
    details = inspect_gguf(path)
    print(f"name: {model_name}")
    for key, value in details.as_dict().items():
        print(f"{key}: {value}")
    for key, value in template_report(details.chat_template, details.architecture, settings).items():
        print(f"{key}: {value}")
    if model_name == config_mod.DEMO_MODEL:
        print(f"note: {DEMO_NOTE}")


def template_report(source: str | None, architecture: str, settings: config_mod.Settings) -> dict[str, str]:
    """What the chat template says, read from the file's header (the model is not loaded): its family, how
    the conversation is shaped for it, its reasoning format, how thinking is set, where a reply stops, and how
    much of a turn's prompt the next one reuses."""
    from companion.llm.templates import TemplateRenderer

    style = settings.model.prompt_style
    if style == "transcript" or (style == "auto" and not source):
        return {
            "prompt": "a plain transcript (`Name: text` lines); stops at a new line with a speaker's name"
        }
    renderer = TemplateRenderer(source, architecture)
    profile = renderer.profile
    report = {
        "template_family": profile.family + ("" if renderer.name == "gguf" else f" ({renderer.name})"),
        "conversation_shape": profile.shape.describe(),
        "reasoning": profile.reasoning.describe(),
        "thinking": f"{settings.model.thinking} (set by {profile.thinking_control()})",
        "stops": ", ".join(profile.stops) + " and llama.cpp's end-of-generation tokens",
        "prompt_reuse": f"{profile.reuse:.0%} of a turn's prompt is the start of the next one's",
    }
    if renderer.notice:
        report["note"] = renderer.notice
    return report
