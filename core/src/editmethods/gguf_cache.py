"""GGUF checkpoints as ordinary models: dequantized once by transformers, cached as safetensors.

transformers reads a GGUF file (llama.cpp's quantized format) only as a "quantized" model: it
dequantizes every tensor at each load (tens of seconds for 135M parameters) and refuses
``save_pretrained``. :func:`cached_gguf_model` converts the file once into a plain float32
model folder (config, safetensors weights, tokenizer) under
``$EDITMETHODS_CACHE/models/<sha256 of the file>/`` and returns that folder, which later loads
read in about a second.

- Nothing half-written is ever under a final name: the folder is written under a temporary
  name in the same directory and renamed into place with ``os.replace``.
- The sha256 of each file is remembered by (path, size, mtime) in
  ``models/gguf-sha256.json``, so that a second load does not hash the file again.
- The cache holds float32 whatever ``dtype`` is asked for: dequantized values are exact in
  float32, and one folder then serves every dtype.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from editmethods.cache import CACHE_ENV, cache_root
from editmethods.errors import ModelLoadError

#: Written last into a converted folder; its presence (with this format) marks it complete.
MARKER = "editmethods-gguf.json"
#: Bumped when the conversion changes, so that folders written before are converted again.
FORMAT_VERSION = 1
#: The (path, size, mtime) -> sha256 index, in the models folder.
SHA_INDEX = "gguf-sha256.json"
_CHUNK = 1 << 20
#: Temporary folders older than this are left over from a killed conversion.
_STALE_SECONDS = 24 * 3600


def models_dir(cache_dir: str | Path | None = None) -> Path:
    """Where converted models go: ``cache_dir``, else ``$EDITMETHODS_CACHE/models``."""
    return Path(cache_dir) if cache_dir is not None else cache_root() / "models"


def file_sha256(path: Path, *, index: Path | None = None) -> str:
    """The sha256 of the file at ``path``, read in 1 MiB chunks.

    :param index: a JSON file remembering digests by (resolved path, size, mtime); a file
        whose size and mtime are unchanged is not read again. A read-only index is only
        slower, never an error.
    """
    stat = path.stat()
    key = str(path.resolve())
    known = _read_index(index).get(key) if index is not None else None
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        return str(known["sha256"])
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    sha = digest.hexdigest()
    if index is not None:
        _remember(index, key, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha})
    return sha


def _read_index(index: Path) -> dict[str, Any]:
    try:
        data = json.loads(index.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(index: Path, key: str, entry: dict[str, Any]) -> None:
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        data = _read_index(index)
        data[key] = entry
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=index.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the index from others sharing the cache
        os.replace(tmp, index)
    except OSError:
        pass  # the index only saves re-hashing; an unwritable cache is reported by the caller


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished conversion in the current format."""
    try:
        meta = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("format_version") == FORMAT_VERSION and meta.get("sha256") == folder.name


def cached_gguf_model(
    gguf_path: Path,
    *,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    trust_remote_code: bool = False,
    progress: bool = True,
) -> tuple[Path, str, bool]:
    """The cached safetensors folder of the GGUF file ``gguf_path``, converted first if needed.

    :param sha256: the file's expected sha256; any other file is refused before conversion.
    :param cache_dir: overrides the models folder (see :func:`models_dir`).
    :param progress: print what happens during a conversion (transformers adds its bars).
    :returns: ``(folder, sha256 of the file, whether this call converted it)``.
    :raises ModelLoadError: hash mismatch, unreadable file or architecture, unwritable cache.
    """
    root = models_dir(cache_dir)
    digest = file_sha256(gguf_path, index=root / SHA_INDEX)
    if sha256 is not None and digest != sha256.lower():
        raise ModelLoadError(
            f"{gguf_path}: sha256 is {digest}, expected {sha256.lower()}: the file is truncated "
            "or altered; download or install it again"
        )
    final = root / digest
    if is_complete(final):
        return final, digest, False
    _convert_into(final, gguf_path, trust_remote_code=trust_remote_code, progress=progress)
    return final, digest, True


def _convert_into(final: Path, gguf_path: Path, *, trust_remote_code: bool, progress: bool) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(
            f"reading {gguf_path.name} needs the gguf package: pip install gguf "
            "(or pip install 'editmethods[gguf]')"
        )
    root = final.parent
    try:  # before the slow part: an unwritable cache should fail in a second, not in a minute
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale(root)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name[:16]}-", dir=root))
    except OSError as exc:
        raise ModelLoadError(
            f"cannot write the model cache {root} to convert {gguf_path.name}: {exc}; "
            f"set {CACHE_ENV} to a writable folder"
        ) from None
    started = time.perf_counter()
    try:
        size = _size(gguf_path.stat().st_size)
        _say(progress, f"editmethods: converting {gguf_path.name} ({size}) to a float32 "
                       f"safetensors model, once: later loads read {final}")
        convert_gguf(gguf_path, tmp, trust_remote_code=trust_remote_code, progress=progress)
        meta = {"format_version": FORMAT_VERSION, "sha256": final.name, "source": str(gguf_path),
                "transformers_version": _transformers_version()}
        (tmp / MARKER).write_text(json.dumps(meta, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from others sharing the cache
        _publish(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, ModelLoadError):
            raise
        raise ModelLoadError(
            f"cannot write the converted {gguf_path.name} to {root}: {exc}; free some space or "
            f"set {CACHE_ENV} to another folder"
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _say(progress, f"editmethods: cached {gguf_path.name} at {final} "
                   f"({time.perf_counter() - started:.0f} s)")


def convert_gguf(gguf_path: Path, out_dir: Path, *, trust_remote_code: bool = False,
                 progress: bool = True) -> None:
    """Write the GGUF file ``gguf_path`` as a plain float32 transformers model into ``out_dir``
    (config, safetensors weights, generation config, tokenizer).

    :raises ModelLoadError: when transformers cannot read the file or its architecture.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    remote = {"trust_remote_code": trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=name, **remote)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, **remote)
        seq2seq = getattr(config, "is_encoder_decoder", False)
        auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        # float32 whatever the caller wants: exact for every GGUF type, and one cache per file.
        quantized = auto.from_pretrained(folder, gguf_file=name, config=config,
                                         dtype=torch.float32, **remote)
    except Exception as exc:
        raise _unreadable(gguf_path, exc) from exc
    model = plain_copy(quantized)
    del quantized
    n_params = sum(p.numel() for p in model.parameters())
    _say(progress, f"editmethods: writing {n_params / 1e6:.1f}M parameters "
                   f"({_size(4 * n_params)}) as float32 safetensors to {out_dir}")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def plain_copy(model: Any) -> Any:
    """A copy of a GGUF-loaded model as an ordinary one: same class and weights, no
    ``quantization_config`` (whose presence makes ``save_pretrained`` refuse)."""
    import copy

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict(), strict=True)
    if getattr(model, "generation_config", None) is not None:
        plain.generation_config = copy.deepcopy(model.generation_config)
    return plain.eval()


def _unreadable(gguf_path: Path, exc: Exception) -> ModelLoadError:
    """The error for a GGUF file transformers could not read: names the architecture when
    that is what it does not support."""
    import transformers

    text = str(exc)
    # transformers says "GGUF model with architecture X is not supported yet"; the names it
    # maps (qwen2moe -> qwen2_moe, ...) make a check of our own against its list unreliable.
    if "architecture" in text and "not supported" in text:
        architecture = _architecture(gguf_path)
        supported = ", ".join(_supported_architectures()) or "see the transformers GGUF docs"
        return ModelLoadError(
            f"{gguf_path}: transformers {transformers.__version__} cannot read GGUF files of "
            f"architecture {architecture!r} (it reads: {supported}); use a GGUF of one of "
            "those, or a safetensors copy of the model"
        )
    return ModelLoadError(
        f"cannot read {gguf_path} as a GGUF model ({type(exc).__name__}: {exc}); if it is "
        "truncated or altered, download it again"
    )


def _architecture(gguf_path: Path) -> str | None:
    try:
        from gguf import GGUFReader

        field = GGUFReader(str(gguf_path)).fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    except Exception:  # not a GGUF file at all: the caller reports the original error
        return None


def _supported_architectures() -> list[str]:
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    except ImportError:  # moved in another transformers version: report without the list
        return []
    # The list is the keys of a metadata mapping, which has two that are no architecture.
    return sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})


def _publish(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` to ``final``, replacing an incomplete or outdated folder."""
    try:
        os.replace(tmp, final)
        return
    except OSError:
        if is_complete(final):  # another process finished the same conversion first
            shutil.rmtree(tmp, ignore_errors=True)
            return
    old = Path(tempfile.mkdtemp(prefix=f".old-{final.name[:16]}-", dir=final.parent))
    os.replace(final, old / final.name)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale(root: Path) -> None:
    now = time.time()
    for entry in root.glob(".tmp-*"):
        try:
            if entry.is_dir() and now - entry.stat().st_mtime > _STALE_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


def _say(progress: bool, message: str) -> None:
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)  # between transformers' bars, not through them


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.0f} {unit}"
    return f"{n_bytes} bytes"


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
