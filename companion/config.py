"""Settings: one TOML file, a typed object in memory, every key validated.

The file lives in the platform config directory (or under `COMPANION_HOME`). Only values that differ from the
defaults need to be in it; `companion config show` prints the full effective settings. The remote backend's API
key is never here: it lives in the OS keyring (see `secrets.py`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from companion import timeutil
from companion.english import kind_name
from companion.errors import CompanionError, ConfigError
from companion.paths import Paths, get_paths, write_private_text

DEMO_MODEL = "demo"


@dataclass
class ModelSettings:
    name: str = DEMO_MODEL
    backend: str = "local"
    n_ctx: int = 4096
    n_gpu_layers: str = "auto"
    threads: int = 0
    flash_attn: str = "auto"
    # "auto": the GGUF's chat template, or a plain transcript when it has none (a base model, like the demo).
    prompt_style: str = "auto"
    # How much a reasoning model thinks before it answers: "auto" is off where the model can turn it off,
    # else its lowest effort (a companion's first word matters more than a benchmark's score).
    thinking: str = "auto"
    # Keep a reasoning model's reasoning beside its reply in the memory file (never recalled, consolidated or
    # sent back; exported only when kept). Off by default: the reasoning is shown while it streams, then gone.
    keep_reasoning: bool = False


@dataclass
class ChatSettings:
    temperature: float = 0.7
    top_p: float = 0.95
    repeat_penalty: float = 1.1
    max_tokens: int = 256
    seed: int = -1


@dataclass
class RemoteSettings:
    base_url: str = ""
    model: str = ""
    n_ctx: int = 8192
    timeout: float = 60.0
    # Whether upkeep may send finished conversations to the server to write summaries, facts and the profile:
    # "ask" (the default: `companion maintain` asks once in a terminal; until then nothing is sent and they are
    # written without a model), "yes", or "no".
    consolidate: str = "ask"


@dataclass
class MemorySettings:
    embedding_model: str = "all-MiniLM-L6-v2"
    recall_limit: int = 5
    block_tokens: int = 256
    tau_days: float = 5.0
    archive_below: float = 0.05
    session_idle_minutes: int = 30
    archive_messages: bool = False
    # Who writes summaries, facts and the profile: "model", "extractive" (no model: central sentences and
    # what the user says in the first person), or "auto": the model unless it is a base model or fails.
    consolidation: str = "auto"


@dataclass
class PersonaSettings:
    name: str = "Sam"
    # "shared": every persona recalls all of the user's memories (the default: one person, one memory);
    # "separate": a persona recalls only its own conversations and what was learned in them (and shared notes).
    memory: str = "shared"


@dataclass
class UserSettings:
    name: str = ""


@dataclass
class UiSettings:
    theme: str = "dark"
    # The welcome screen is shown until the user has been through it once.
    welcomed: bool = False


@dataclass
class CheckinSettings:
    # A short message from the companion when something the user mentioned has come due (opt-in).
    enabled: bool = False
    per_week: int = 3  # at most this many in seven days, and never more than one a day
    quiet_hours: str = "22:00-08:00"  # local time: no check-in is made or shown then
    preview: bool = False  # the notification shows the question (default: only that there is one)
    timezone: str = ""  # an IANA name (Europe/Lisbon); empty: the system's


@dataclass
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    remote: RemoteSettings = field(default_factory=RemoteSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    persona: PersonaSettings = field(default_factory=PersonaSettings)
    user: UserSettings = field(default_factory=UserSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    checkins: CheckinSettings = field(default_factory=CheckinSettings)
    # Key bindings the user remapped: action id (see the help screen, F1) -> key, e.g. regenerate = "ctrl+g".
    keys: dict[str, str] = field(default_factory=dict)
    # Registered GGUF files: name -> absolute path. Managed by `companion model add/pull`.
    models: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _choice(*allowed: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of: {', '.join(allowed)}"

    return check


def _number(value: float) -> str:
    """A bound as people write it: 1048576 as 1,048,576, 0.5 as 0.5 (never 1.04858e+06)."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def _range(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {_number(low)} and {_number(high)}"

    return check


def _gpu_layers(value: Any) -> str | None:
    if value == "auto":
        return None
    try:
        number = int(value)
    except ValueError:
        return "must be 'auto' or a whole number of layers (-1 for all, 0 for CPU only)"
    return None if number >= -1 else "must be 'auto', -1 (all layers), 0 (CPU only) or a positive number"


def _sentence(parse: Callable[[str], Any]) -> Callable[[Any], str | None]:
    """A check whose parser says what is wrong in a sentence of its own."""

    def check(value: Any) -> str | None:
        try:
            parse(value)
        except CompanionError as error:
            return f"is not usable: {str(error).rstrip('.')}"
        return None

    return check


def _url(value: Any) -> str | None:
    if value == "" or str(value).startswith(("http://", "https://")):
        return None
    return "must start with http:// or https:// (for example http://127.0.0.1:8080/v1)"


VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "model.backend": _choice("local", "remote"),
    "model.n_ctx": _range(256, 1_048_576),
    "model.n_gpu_layers": _gpu_layers,
    "model.threads": _range(0, 1024),
    "model.flash_attn": _choice("auto", "on", "off"),
    "model.prompt_style": _choice("auto", "chat", "transcript"),
    "model.thinking": _choice("auto", "off", "low", "high"),
    "chat.temperature": _range(0.0, 2.0),
    "chat.top_p": _range(0.0, 1.0),
    "chat.repeat_penalty": _range(0.5, 2.0),
    "chat.max_tokens": _range(1, 32_768),
    "chat.seed": _range(-1, 2**31 - 1),
    "remote.base_url": _url,
    "remote.n_ctx": _range(256, 1_048_576),
    "remote.timeout": _range(1.0, 3600.0),
    "remote.consolidate": _choice("ask", "yes", "no"),
    "memory.recall_limit": _range(0, 50),
    "persona.memory": _choice("shared", "separate"),
    "memory.consolidation": _choice("auto", "model", "extractive"),
    "memory.block_tokens": _range(0, 8192),
    "memory.tau_days": _range(0.1, 3650.0),
    "memory.archive_below": _range(0.0, 1.0),
    "memory.session_idle_minutes": _range(1, 100_000),
    "ui.theme": _choice("dark", "light"),
    "checkins.per_week": _range(1, 7),
    "checkins.quiet_hours": _sentence(timeutil.hours),
    "checkins.timezone": _sentence(timeutil.zone),
}

# Read only by the check-ins: a value that stopped working (a time zone this machine does not know) must not
# keep the user from chatting. `config set` refuses it; in the file it is kept, and check-ins say what is wrong.
CHECKED_WHEN_USED = {"checkins.quiet_hours", "checkins.timezone"}

TABLES = ("models", "keys")  # free-form tables: name -> string


def setting_keys() -> list[str]:
    """Every `section.key` a user may get or set."""
    keys = []
    for section in fields(Settings):
        if section.name in TABLES:
            continue
        for item in fields(getattr(Settings(), section.name)):
            keys.append(f"{section.name}.{item.name}")
    return keys


def _split(key: str) -> tuple[str, str]:
    if key not in setting_keys():
        raise ConfigError(
            f"Unknown setting '{key}'. Run `companion config show` to see the settings there are."
        )
    section, name = key.split(".", 1)
    return section, name


def _coerce(key: str, raw: Any, kind: type) -> Any:
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in {"true", "1", "yes", "on"}:
                return True
            if lowered in {"false", "0", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"Setting '{key}' needs {kind_name(kind)}, not {raw!r}.") from None


def _field_type(section: str, name: str) -> type:
    type_names = {"int": int, "float": float, "str": str, "bool": bool}
    for item in fields(getattr(Settings(), section)):
        if item.name == name:
            return type_names[str(item.type)]
    raise ConfigError(f"Unknown setting '{section}.{name}'.")


def _typed(key: str, raw: Any) -> Any:
    section, name = _split(key)
    return _coerce(key, raw, _field_type(section, name))


def validate(key: str, raw: Any) -> Any:
    """Return `raw` converted to the key's type, or raise a ConfigError that says what is allowed."""
    section, name = _split(key)
    value = _coerce(key, raw, _field_type(section, name))
    check = VALIDATORS.get(key)
    problem = check(value) if check else None
    if problem:
        raise ConfigError(f"Setting '{key}' {problem}; got {raw!r}.")
    return value


ROOM_TOKENS = 512  # what a turn needs besides the reply and the memory block: persona, profile, the message


def check_together(settings: Settings) -> None:
    """Settings that are each fine but together make chat impossible: the context must hold the reply, the
    memory block and the rest of a turn."""
    need = settings.chat.max_tokens + settings.memory.block_tokens + ROOM_TOKENS
    for key, n_ctx in (("model.n_ctx", settings.model.n_ctx), ("remote.n_ctx", settings.remote.n_ctx)):
        if key.startswith("remote") and settings.model.backend != "remote":
            continue
        if n_ctx < need:
            raise ConfigError(
                f"{key} {n_ctx} leaves no room to chat: it must hold chat.max_tokens "
                f"({settings.chat.max_tokens}), memory.block_tokens ({settings.memory.block_tokens}) and "
                f"{ROOM_TOKENS} tokens for the persona and the conversation ({need} in all); raise {key} or "
                "lower chat.max_tokens."
            )


def from_dict(data: dict[str, Any], source: str = "the config file") -> Settings:
    settings = Settings()
    for section_name, section in data.items():
        if section_name in TABLES:
            what = "names to file paths" if section_name == "models" else "action names to keys"
            if not isinstance(section, dict) or not all(isinstance(v, str) for v in section.values()):
                raise ConfigError(f"The [{section_name}] table in {source} must map {what}.")
            setattr(settings, section_name, dict(section))
            continue
        if not isinstance(section, dict) or section_name not in {f.name for f in fields(Settings)}:
            raise ConfigError(
                f"Unknown section [{section_name}] in {source}; remove it or run `companion config show`."
            )
        for name, raw in section.items():
            key = f"{section_name}.{name}"
            try:
                value = validate(key, raw) if key not in CHECKED_WHEN_USED else _typed(key, raw)
            except ConfigError as error:
                raise ConfigError(f"{error} (in {source}; fix it with `companion config set`)") from None
            setattr(getattr(settings, section_name), name, value)
    try:
        check_together(settings)
    except ConfigError as error:
        raise ConfigError(f"{str(error).rstrip('.')} (in {source}).") from None
    return settings


def load(paths: Paths | None = None) -> Settings:
    paths = paths or get_paths()
    file = paths.config_file
    if not file.exists():
        return Settings()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
        return from_dict(data, source=str(file))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"The config file {file} is not valid TOML ({error}); fix or delete it.") from None
    except RecursionError:
        raise ConfigError(
            f"The config file {file} is nested too deeply to be settings; fix or delete it."
        ) from None
    except OSError as error:
        raise ConfigError(
            f"The config file {file} cannot be read ({error.strerror}); check its permissions."
        ) from None


def save(settings: Settings, paths: Paths | None = None) -> Path:
    """Write only what differs from the defaults, atomically, 0600."""
    paths = (paths or get_paths()).ensure()
    defaults = Settings().to_dict()
    current = settings.to_dict()
    out: dict[str, Any] = {}
    for section, values in current.items():
        if section in TABLES:
            if values:
                out[section] = values
            continue
        changed = {k: v for k, v in values.items() if defaults[section][k] != v}
        if changed:
            out[section] = changed
    write_private_text(paths.config_file, tomli_w.dumps(out))
    return paths.config_file


def get_value(settings: Settings, key: str) -> Any:
    section, name = _split(key)
    return getattr(getattr(settings, section), name)


def set_value(settings: Settings, key: str, raw: Any) -> Any:
    """Set one key; a value that makes chat impossible with the others is refused and nothing changes."""
    value = validate(key, raw)
    section, name = _split(key)
    before = getattr(getattr(settings, section), name)
    setattr(getattr(settings, section), name, value)
    try:
        check_together(settings)
    except ConfigError:
        setattr(getattr(settings, section), name, before)
        raise
    return value
