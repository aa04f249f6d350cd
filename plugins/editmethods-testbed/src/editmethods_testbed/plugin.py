"""The editmethods plugin: model aliases and the ``build-testbed`` command."""

from __future__ import annotations

from editmethods.hookspecs import hookimpl
from editmethods.types import ModelAlias
from editmethods_testbed import MODELS_DIR

DESCRIPTIONS = {
    "gpt2": "GPT-2 architecture reference model trained on the testbed fact world",
    "llama": "LLaMA architecture reference model trained on the testbed fact world",
}


@hookimpl
def register_models(register):
    for arch, text in DESCRIPTIONS.items():
        register(ModelAlias(name=f"testbed-{arch}", path=MODELS_DIR / arch, description=text,
                            examples="pkg:editmethods_testbed/data/test.json"))


@hookimpl
def register_commands(cli):
    from editmethods_testbed.build import build_command

    cli.add_command(build_command)
