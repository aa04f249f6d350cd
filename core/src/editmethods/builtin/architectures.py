"""Registers the architectures the core knows (GPT-2, GPT-J, GPT-NeoX, LLaMA, Mistral, Qwen2, T5)."""

from editmethods.architectures import BUILTIN
from editmethods.hookspecs import hookimpl


@hookimpl
def register_architectures(register):
    for arch in BUILTIN.values():
        register(arch)
