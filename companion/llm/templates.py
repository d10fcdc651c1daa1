"""Chat templates: the GGUF's own when it has one, else a correct fallback by architecture.

The demo model (Gemma 3 270M base) ships no template; llama-cpp-python would fall back to the llama-2 format,
which Gemma does not know. These fallbacks follow each family's published format. They never raise on
role order (the official Gemma template does): prompt assembly already merges consecutive same-role turns.
"""

from __future__ import annotations

import re

GEMMA = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else 'user' -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') "
    "+ message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

CHATML = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

LLAMA2 = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = '<<SYS>>\n' + messages[0]['content'] + '\n<</SYS>>\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ bos_token + '[INST] ' + (system if loop.first else '') + message['content'] | trim + ' [/INST]' }}"
    "{%- else -%}{{ ' ' + message['content'] | trim + ' ' + eos_token }}{%- endif -%}"
    "{%- endfor -%}"
)

PHI3 = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)

FALLBACKS: dict[str, tuple[str, list[str]]] = {
    # Base models without a template (the demo model) start a new turn with a stray token and a bare role name.
    "gemma": (GEMMA, ["<end_of_turn>", "user\n", "model\n"]),
    "chatml": (CHATML, ["<|im_end|>"]),
    "llama-2": (LLAMA2, []),
    "phi3": (PHI3, ["<|end|>"]),
}

# general.architecture -> fallback format name
BY_ARCHITECTURE: dict[str, str] = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "llama": "llama-2",
    "qwen": "chatml",
    "qwen2": "chatml",
    "qwen3": "chatml",
    "phi3": "phi3",
}


def fallback_for(architecture: str) -> tuple[str, str, list[str]]:
    """(format name, Jinja template, extra stop strings) for a GGUF without a chat template."""
    name = BY_ARCHITECTURE.get(architecture, "chatml")
    template, stops = FALLBACKS[name]
    return name, template, stops


# Control tokens that open or close a turn in the common chat formats.
TURN_MARKERS = [
    "<start_of_turn>",
    "<end_of_turn>",
    "<|im_start|>",
    "<|im_end|>",
    "<|start_header_id|>",
    "<|eot_id|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
]


def stops_for_template(template: str) -> list[str]:
    """End-of-turn markers that appear in a template, so generation stops at the turn's end."""
    markers = ["<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "</s>"]
    return [marker for marker in markers if marker in template]


# What a control token looks like in the common chat formats: `<|im_start|>`, `<end_of_turn>`, `</s>`,
# `[INST]`, `<<SYS>>`… A server may parse such spellings in message content as real control tokens.
CONTROL_SPELLING = re.compile(
    r"<\|[^<>|\s]{1,40}\|>|</?s>|</?(?:start|end)_of_turn>|\[/?INST\]|<</?SYS>>|<unused\d+>|<bos>|<eos>",
    re.IGNORECASE,
)


def defang_spellings(text: str) -> str:
    """Text is data: every spelling of a control token gets a zero-width space after its first character, so
    no tokenizer reads it as one and no template can be forged by it (for backends without a tokenizer at
    hand; the local backend checks with its own tokenizer)."""
    return CONTROL_SPELLING.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)
