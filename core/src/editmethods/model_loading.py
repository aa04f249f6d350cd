"""Loading a model and its tokenizer: from a local folder, a hub id, or a GGUF file.

>>> from editmethods.model_loading import load_pretrained                  # doctest: +SKIP
>>> loaded = load_pretrained("path/to/folder", gguf_file="model.Q4_1.gguf")  # doctest: +SKIP
>>> loaded.model, loaded.tokenizer, loaded.from_cache                      # doctest: +SKIP

A GGUF file is dequantized once and cached as an ordinary safetensors model (see
:mod:`editmethods.gguf_cache`); every later load reads the cached folder. Every failure is a
:class:`~editmethods.errors.ModelLoadError` naming what is wrong and how to fix it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from editmethods.errors import ModelLoadError
from editmethods.gguf_cache import cached_gguf_model

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Names accepted for ``dtype`` (besides ``torch.dtype`` objects); "auto" = the checkpoint's.
DTYPE_NAMES = ("float32", "float16", "bfloat16", "float64", "auto")
_DTYPE_SYNONYMS = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16",
                   "float": "float32", "double": "float64"}
#: A hub id: ``name`` or ``owner/name``; anything else that does not exist is a missing path.
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


@attrs.frozen
class LoadedModel:
    """A model and tokenizer, and where they came from."""

    model: Any
    tokenizer: Any
    #: What transformers loaded: the folder or hub id given, or the cached folder of a GGUF.
    source: str
    #: The GGUF file, when the model came from one.
    gguf: Path | None = None
    gguf_sha256: str | None = None
    #: Whether this call converted the GGUF file (the first load) rather than reading the cache.
    converted: bool = False

    @property
    def from_cache(self) -> bool:
        """Whether this came from an earlier conversion of a GGUF file."""
        return self.gguf is not None and not self.converted


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    """A ``torch.dtype`` (or ``"auto"``, or ``None``) from a dtype or its name.

    >>> resolve_dtype("bfloat16")
    torch.bfloat16
    >>> resolve_dtype("float33")
    Traceback (most recent call last):
    ...
    editmethods.errors.ModelLoadError: unknown dtype 'float33': use one of float32, float16, bfloat16, float64, auto
    """
    import torch

    if dtype is None or isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str):
        name = dtype.strip().lower().removeprefix("torch.")
        name = _DTYPE_SYNONYMS.get(name, name)
        if name == "auto":
            return "auto"
        if name in DTYPE_NAMES:
            return getattr(torch, name)
    raise ModelLoadError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPE_NAMES)}")


def resolve_device(device: str | torch.device | None) -> torch.device | None:
    """A ``torch.device`` from ``"cpu"``, ``"cuda:1"``, ... (``None`` stays ``None``)."""
    import torch

    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(
            f"bad device {device!r} ({exc}): use cpu, cuda, cuda:1, mps, ..."
        ) from None
    # Checked before loading, so that a missing GPU fails in a second, not after a conversion.
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r}: CUDA is not available here; use --device cpu")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device {device!r}: MPS is not available here; use --device cpu")
    return parsed


def looks_local(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` can only be a local path (it is not shaped like a hub id)."""
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or text.startswith(("~", ".")) or not _HUB_ID.match(text)


def locate_gguf(name_or_path: str | Path, gguf_file: str | Path | None) -> Path | None:
    """The local GGUF file to load, or ``None`` when this is no GGUF load.

    :param name_or_path: a folder or hub repo holding ``gguf_file``, or a ``.gguf`` file.
    :param gguf_file: the file's name in that folder or repo, or a path to it. From a hub
        repo it is downloaded into the hub cache, as transformers does.
    """
    where = str(name_or_path)
    if gguf_file is None:
        if not where.lower().endswith(".gguf"):
            return None
        path = Path(where).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"no such GGUF file: {where}")
        return path
    folder = Path(where).expanduser()
    if folder.is_dir():
        path = folder / gguf_file
        if not path.is_file():
            found = sorted(p.name for p in folder.glob("*.gguf"))
            raise ModelLoadError(
                f"{folder} has no GGUF file {str(gguf_file)!r}; "
                + (f"it has: {', '.join(found)}" if found else "it has no .gguf file at all")
            )
        return path
    direct = Path(gguf_file).expanduser()
    if direct.is_absolute() or looks_local(where):
        if direct.is_absolute() and direct.is_file():
            return direct
        missing = direct if direct.is_absolute() else folder
        raise ModelLoadError(
            f"no such {'GGUF file' if missing is direct else 'folder'}: {missing}; give the "
            "folder that holds the GGUF file (or a hub repo id) and the file's name"
        )
    return _download(where, str(gguf_file))


def _download(repo_id: str, filename: str) -> Path:
    """``filename`` from the hub repo ``repo_id``, through transformers' own hub cache."""
    from transformers.utils import cached_file

    try:
        path = cached_file(repo_id, filename)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot get GGUF file {filename!r} from hub repo {repo_id!r}: {exc}"
        ) from None
    if path is None:
        raise ModelLoadError(f"hub repo {repo_id!r} has no file {filename!r}")
    return Path(path)


def load_pretrained(
    name_or_path: str | Path,
    *,
    gguf_file: str | Path | None = None,
    gguf_sha256: str | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
) -> LoadedModel:
    """Load a model (in eval mode) and its tokenizer from a folder, a hub id or a GGUF file.

    :param gguf_file: a GGUF checkpoint in the folder or hub repo ``name_or_path`` (a
        ``.gguf`` path as ``name_or_path`` works too). Converted once, then read from the
        cache folder.
    :param gguf_sha256: the GGUF file's expected sha256.
    :param dtype: ``torch.float16``, ``"bfloat16"``, ...; the checkpoint's own by default
        (float32 for a GGUF file).
    :param device: where to put the model.
    :param trust_remote_code: run code shipped with the checkpoint; off unless you ask.
    :param cache_dir: where converted GGUF models go (default ``$EDITMETHODS_CACHE/models``).
    :param progress: print the conversion's steps; by default when transformers shows its
        progress bars.
    :raises ModelLoadError: on every problem, naming the file and the fix.
    """
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
        raise ModelLoadError(
            f"name_or_path must be a non-empty str or Path, got {type(name_or_path).__name__} "
            f"{name_or_path!r}: give a model folder, a .gguf file, an alias (see `editmethods "
            "models`) or a hub id (owner/name)"
        )
    torch_dtype = resolve_dtype(dtype)
    torch_device = resolve_device(device)
    gguf = locate_gguf(name_or_path, gguf_file)
    digest, converted = None, False
    if gguf is None:
        if gguf_sha256 is not None:
            raise ModelLoadError(f"gguf_sha256 was given, but {name_or_path} is no GGUF file: "
                                 "pass gguf_file too")
        if looks_local(name_or_path) and not Path(name_or_path).expanduser().exists():
            raise ModelLoadError(
                f"no such model folder: {name_or_path}; give an existing folder, a .gguf file, "
                "an alias (see `editmethods models`) or a hub id (owner/name)"
            )
        source = str(name_or_path)
    else:
        if progress is None:
            from transformers.utils import logging as hf_logging

            progress = hf_logging.is_progress_bar_enabled()
        folder, digest, converted = cached_gguf_model(
            gguf, sha256=gguf_sha256, cache_dir=cache_dir, trust_remote_code=trust_remote_code,
            progress=progress)
        source = str(folder)
    model, tokenizer = _load_folder(source, torch_dtype, trust_remote_code)
    if torch_device is not None:
        try:
            model = model.to(torch_device)
        except (RuntimeError, AssertionError) as exc:  # torch asserts when CUDA is absent
            raise ModelLoadError(f"cannot move the model to {torch_device}: {exc}") from None
    return LoadedModel(model=model, tokenizer=tokenizer, source=source, gguf=gguf,
                       gguf_sha256=digest, converted=converted)


#: Held while a model is built from a checkpoint, here and wherever a plugin loads one (a
#: sentence encoder, a trained checkpoint): transformers swaps process-wide state while it
#: builds a model (default device and dtype, init functions), so two loads at once in two
#: threads could leave a model with meta tensors.
LOADING_LOCK = threading.RLock()


def _load_folder(source: str, dtype: Any, trust_remote_code: bool) -> tuple[Any, Any]:
    with LOADING_LOCK:
        return _load_folder_unlocked(source, dtype, trust_remote_code)


def _load_folder_unlocked(source: str, dtype: Any, trust_remote_code: bool) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        seq2seq = getattr(config, "is_encoder_decoder", False)
        auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if dtype is not None:
            kwargs["dtype"] = dtype
        model = auto.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load model {source!r}: {exc} (see `editmethods models` for aliases)"
        ) from exc
    model.eval()
    return model, tokenizer
