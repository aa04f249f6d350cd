"""Second-moment statistics of a module's inputs over a text corpus, cached on disk.

Locate-then-edit methods (ROME, MEMIT, AlphaEdit, ...) need ``C = E[k kᵀ]``, the uncentered
second moment of the *inputs* ``k`` of the weight they rewrite (GPT-2: the input of
``mlp.c_proj``, i.e. the activation output of width 4d; LLaMA: the input of ``down_proj``),
estimated over generic text::

    from editmethods.toolkit.stats import second_moment
    stats = second_moment(model, tokenizer, "transformer.h.1.mlp.c_proj", "corpus.txt",
                          n_samples=10_000)
    stats.matrix            # [d_in, d_in], float64 by default
    stats.solve(k, ridge=0.1)   # (C + 0.1·mean(diag C)·I)⁻¹ k, in float64

The forward pass stops right after the module (no logits are computed), sequences are capped
at ``max_length`` tokens and batched by a token budget, and progress is shown with tqdm.
The result is cached as safetensors + JSON under ``$EDITMETHODS_CACHE/stats`` (default
``~/.cache/editmethods/stats``), keyed by a sha256 of: the weights the module's input depends
on (or all weights), the module name, the tokenizer's vocabulary, the corpus's identity
(hashes of its texts, or of its files' paths, sizes and mtimes) and the sample count, length
cap and dtype. A folder's name is never part of the key, so two models stored under the same
name never share statistics, and an edit to weights upstream of the module invalidates them.

Corpora: a path to a text file (one sample per non-empty line), a folder (every ``*.txt``
below it, sorted, one sample per non-empty line), a Hugging Face ``datasets`` object (its
``text`` column; duck-typed, ``datasets`` is not a dependency), any iterable of strings, or,
for hparams files, which hold strings: ``model-samples`` (texts the model samples itself, see
:mod:`editmethods.toolkit.model_samples`), ``wikipedia`` / ``wikitext`` / ``hf:NAME[:CONFIG]``
(streamed from the Hugging Face hub: the first texts only, no full download), a name given
to :func:`register_corpus` (``NAME:k=v,...`` passes options to its factory), a
``"module:function"`` import spec, or ``"facts:DATA"`` (sentences stating the true facts of
an edit dataset, e.g. ``facts:pkg:editmethods_testbed/data/train.json``). ``npz:PATH`` is not a
corpus but precomputed statistics (ROME's/EasyEdit's files, see
:mod:`editmethods.toolkit.stats_import`), which :func:`second_moment` loads as they are.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from editmethods.architectures import get_module
from editmethods.fingerprint import model_fingerprint
from editmethods.modes import restore_training_modes, training_modes
from editmethods.toolkit._moments import (
    FORMAT_VERSION,
    Corpus,
    SecondMoment,
    StatisticsError,
    cache_dir,
    tokenizer_hash,
)
from editmethods.toolkit.model_samples import MODEL_SAMPLES
from editmethods.toolkit.model_samples import factory as _model_samples_factory
from editmethods.toolkit.stats_import import NPZ_PREFIX, import_second_moment
from editmethods.toolkit.tracing import trace

__all__ = [
    "Corpus", "HF_CORPORA", "SecondMoment", "StatisticsError", "cache_dir", "import_second_moment",
    "known_corpora", "register_corpus", "resolve_corpus", "second_moment", "tokenizer_hash",
    "upstream_parameters",
]

# -- corpora ------------------------------------------------------------------------------
_REGISTERED: dict[str, Callable[..., Any]] = {}

#: What a corpus factory may ask for, by parameter name (it takes any subset, as pluggy hooks do).
FACTORY_ARGUMENTS = ("model", "tokenizer", "n_samples", "options", "cache", "cache_folder",
                     "progress")

#: Hugging Face datasets known by a short name: (path, config), streamed.
HF_CORPORA: Mapping[str, tuple[str, str | None]] = {
    "wikipedia": ("wikimedia/wikipedia", "20231101.en"),
    "wikitext": ("wikitext", "wikitext-103-raw-v1"),
}


def register_corpus(name: str, factory: Callable[..., Any] | Any) -> None:
    """Give a corpus a name that hparams files can use (``mom2_dataset: NAME``).

    :param factory: the corpus itself, or a callable returning one (an iterable of strings,
        a path, a dataset, a :class:`Corpus`). It may take any of the keyword arguments
        ``model``, ``tokenizer`` (the model whose statistics are computed: for corpora made
        from it), ``n_samples``, ``options`` (the ``k=v`` pairs of a spec ``NAME:k=v,...``, as
        strings), ``cache``, ``cache_folder`` and ``progress``; it receives those it names.
    """
    _REGISTERED[name] = factory if callable(factory) else (lambda: factory)


register_corpus(MODEL_SAMPLES, _model_samples_factory)


def known_corpora() -> list[str]:
    """The corpus names and spec forms that :func:`resolve_corpus` accepts, for messages."""
    return ([MODEL_SAMPLES, *HF_CORPORA, "hf:NAME[:CONFIG]", "facts:DATA", "module:function"]
            + sorted(n for n in _REGISTERED if n != MODEL_SAMPLES))


def _call_factory(factory: Callable[..., Any], context: Mapping[str, Any]) -> Any:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: call them bare
        return factory()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return factory(**context)
    return factory(**{k: v for k, v in context.items() if k in params})


def _parse_options(name: str, text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise StatisticsError(
                f"corpus {name!r}: options are written key=value separated by commas, got "
                f"{part!r} (e.g. {name}:tokens=128,top_k=50)"
            )
        options[key.strip()] = value.strip()
    return options


def _has_text(paths: Sequence[Path]) -> bool:
    """Whether any line of the files holds more than whitespace (stops at the first)."""
    return next(_lines(paths), None) is not None


def _lines(paths: Sequence[Path]) -> Iterator[str]:
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.rstrip("\n")
                if line.strip():
                    yield line


def _files_identity(paths: Sequence[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}\x1f{st.st_size}\x1f{st.st_mtime_ns}\x1e".encode())
    return h.hexdigest()


def _texts_identity(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\x00")
    return h.hexdigest()


def _hf_corpus(name: str, path: str, config: str | None) -> Corpus:
    """The ``text`` column of a Hugging Face dataset's train split, *streamed*: reading the
    first n texts downloads a few shards' worth, not the whole dataset (Wikipedia is ~20 GB).

    Nothing is contacted until the texts are read, i.e. on a statistics cache miss: cached
    statistics need neither ``datasets`` nor a network. The identity is the dataset's path,
    config and split (a dated dump such as ``20231101.en`` does not change).
    """
    fix = (f"use mom2_dataset: {MODEL_SAMPLES} (texts sampled from the model itself, offline), "
           "a local text file or folder, or precomputed statistics (npz:PATH)")

    def read() -> Iterator[str]:
        try:
            datasets = importlib.import_module("datasets")
        except ImportError:
            raise StatisticsError(
                f"corpus {name!r} is a Hugging Face dataset, but the `datasets` package is not "
                f"installed: `pip install datasets`, or {fix}"
            ) from None
        try:
            stream = datasets.load_dataset(path, *([config] if config else []), split="train",
                                           streaming=True)
            for row in stream:
                if not isinstance(row, Mapping) or "text" not in row:
                    columns = sorted(row) if isinstance(row, Mapping) else type(row).__name__
                    raise StatisticsError(
                        f"corpus {name!r}: the dataset has no 'text' column (columns: {columns}); "
                        "register a corpus that selects one"
                    )
                yield row["text"]
        except StatisticsError:
            raise
        except Exception as exc:  # no network, unknown dataset, ...: say what to do instead
            raise StatisticsError(
                f"corpus {name!r}: streaming {path}{':' + config if config else ''} from the "
                f"Hugging Face hub failed ({type(exc).__name__}: {exc}); offline, {fix}"
            ) from exc

    label = f"{path}{':' + config if config else ''}"
    return Corpus(f"hf:{label}:train", f"Hugging Face {label} (streamed)", read)


def _unknown_corpus(corpus: str) -> StatisticsError:
    return StatisticsError(
        f"corpus {corpus!r} is neither an existing file or folder nor a known corpus (known: "
        f"{', '.join(known_corpora())}); give the path of a text file (one sample per line) or "
        f"a folder of .txt files, use {MODEL_SAMPLES} to sample texts from the model, or "
        "register the name with editmethods.toolkit.stats.register_corpus"
    )


def _facts_corpus(spec: str) -> Corpus:
    """Sentences stating the true facts of edit datasets (every prompt with a true answer:
    edit prompts, paraphrases, locality pairs), e.g. a reference model's own world.
    ``spec``: data files (paths or ``pkg:`` specs) separated by ``;``."""
    from editmethods.evaluation.loaders import load_requests, resolve_data_path

    paths = [resolve_data_path(part.strip()) for part in spec.split(";") if part.strip()]
    for path in paths:
        if not path.is_file():
            raise StatisticsError(f"corpus facts:{spec}: no data file at {path}")

    def read() -> Iterator[str]:
        seen: set[str] = set()
        for r in (r for path in paths for r in load_requests(path)):
            pairs = []
            if r.ground_truth:
                pairs += [(r.prompt, r.ground_truth)] + [(p, r.ground_truth) for p in r.rephrase_prompts]
            pairs += [(p.prompt, p.answer) for p in r.locality]
            for prompt, answer in pairs:
                text = f"{prompt} {answer.strip()}."
                if text not in seen:
                    seen.add(text)
                    yield text

    return Corpus("facts:" + _files_identity(paths, paths[0].parent),
                  f"true facts of {', '.join(p.name for p in paths)}", read)


def resolve_corpus(corpus: Any, n_samples: int | None = None, *, model: Any = None,
                   tokenizer: Any = None, cache: bool = True,
                   cache_folder: str | Path | None = None, progress: bool = True) -> Corpus:
    """A :class:`Corpus` from a path, a dataset object, an iterable of strings or a name.

    :param n_samples: how many texts will be read (plain iterables are read and hashed up to
        this; corpora made by a factory, such as ``model-samples``, make this many).
    :param model: the model whose statistics the corpus is for, and ``tokenizer`` its
        tokenizer: passed to factories that ask for them (``model-samples`` needs both).
    :param cache: ``cache_folder``, ``progress``: passed to factories that ask for them.
    :raises StatisticsError: when ``corpus`` is none of these, naming the known corpora.
    """
    if isinstance(corpus, Corpus):
        return corpus
    context = dict(model=model, tokenizer=tokenizer, n_samples=n_samples, options={},
                   cache=cache, cache_folder=cache_folder, progress=progress)
    again = dict(model=model, tokenizer=tokenizer, cache=cache, cache_folder=cache_folder,
                 progress=progress)
    if isinstance(corpus, str):
        name, sep, rest = corpus.partition(":")
        if corpus in _REGISTERED:
            return resolve_corpus(_call_factory(_REGISTERED[corpus], context), n_samples, **again)
        if sep and name in _REGISTERED:
            context["options"] = _parse_options(name, rest)
            return resolve_corpus(_call_factory(_REGISTERED[name], context), n_samples, **again)
        if name == "facts" and sep:
            return _facts_corpus(rest)
        if name == "hf" and sep:
            dataset, _, config = rest.partition(":")
            if not dataset:
                raise StatisticsError("corpus 'hf:': give a dataset, e.g. hf:wikitext:wikitext-2-raw-v1")
            return _hf_corpus(corpus, dataset, config or None)
        if corpus.startswith(NPZ_PREFIX):
            raise StatisticsError(
                f"{corpus!r} names precomputed statistics, not a corpus of texts: pass it to "
                "second_moment (mom2_dataset in hparams), which loads it as it is"
            )
        if corpus in HF_CORPORA:
            return _hf_corpus(corpus, *HF_CORPORA[corpus])
        if sep and not Path(corpus).exists() and "/" not in corpus:
            try:
                target = getattr(importlib.import_module(name), rest)
            except (ImportError, AttributeError) as exc:
                raise StatisticsError(
                    f"corpus {corpus!r}: cannot import {rest!r} from {name!r} ({exc}); known "
                    f"corpora: {', '.join(known_corpora())}"
                ) from None
            if callable(target):
                target = _call_factory(target, context)
            return resolve_corpus(target, n_samples, **again)
    if isinstance(corpus, (str, Path)):
        path = Path(corpus).expanduser()
        if path.is_file():
            if not _has_text([path]):
                raise StatisticsError(
                    f"corpus file {path} holds no text: every line is blank (the file is read as "
                    "one sample per non-empty line)"
                )
            return Corpus(_files_identity([path], path.parent), f"file {path}",
                          lambda: _lines([path]))
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not files:
                raise StatisticsError(f"corpus folder {path} holds no .txt files")
            if not _has_text(files):
                raise StatisticsError(
                    f"corpus folder {path} holds no text: every line of its {len(files)} .txt "
                    "files is blank"
                )
            return Corpus(_files_identity(files, path), f"folder {path} ({len(files)} files)",
                          lambda: _lines(files))
        if isinstance(corpus, str) and "/" not in corpus and "\\" not in corpus:
            raise _unknown_corpus(corpus)
        raise StatisticsError(f"corpus path {path} does not exist")
    if hasattr(corpus, "column_names") and hasattr(corpus, "__getitem__"):
        # a datasets.Dataset: its fingerprint changes whenever its content does
        columns = list(corpus.column_names)
        column = "text" if "text" in columns else None
        if column is None:
            raise StatisticsError(
                f"dataset has no 'text' column (columns: {columns}): select or rename one"
            )
        fingerprint = getattr(corpus, "_fingerprint", None)
        n = len(corpus)

        def read() -> Iterator[str]:
            for i in range(n):
                yield corpus[i][column]

        if fingerprint is None:
            texts = [corpus[i][column] for i in range(min(n, n_samples or n))]
            fingerprint = _texts_identity(texts)
        return Corpus(f"dataset:{fingerprint}:{n}", f"dataset ({n} rows)", read)
    if isinstance(corpus, Iterable):
        texts = []
        for t in corpus:
            if isinstance(t, Mapping) and isinstance(t.get("text"), str):
                t = t["text"]  # rows of a streamed datasets.IterableDataset
            if not isinstance(t, str):
                raise StatisticsError(
                    f"corpus items must be strings, got {type(t).__name__}: pass texts"
                )
            if t.strip():
                texts.append(t)
            if n_samples is not None and len(texts) >= n_samples:
                break
        if not texts:
            raise StatisticsError("the corpus holds no non-empty text")
        frozen = tuple(texts)
        return Corpus(f"texts:{_texts_identity(frozen)}", f"{len(frozen)} given texts",
                      lambda: iter(frozen))
    raise StatisticsError(
        f"cannot read a corpus from {type(corpus).__name__}: give a text file, a folder of "
        ".txt files, a datasets.Dataset, an iterable of strings, or a registered name"
    )


# -- weights ------------------------------------------------------------------------------
def _forward(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> None:
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids,
              decoder_attention_mask=mask)
    else:
        model(input_ids=ids, attention_mask=mask)


@torch.no_grad()
def upstream_parameters(model: torch.nn.Module, module: str) -> list[str]:
    """Names of the parameters that run before ``module`` in a forward pass: those its input
    can depend on (found by recording the order in which modules run on a tiny input).

    The module's own parameters are not included (its input does not depend on them), so
    rewriting the module itself keeps its statistics valid.
    """
    target = get_module(model, module)
    names = {id(m): n for n, m in model.named_modules()}
    seen: list[torch.nn.Module] = []

    class _Reached(Exception):
        pass

    def pre(mod: torch.nn.Module, args: Any) -> None:
        if mod is target:
            raise _Reached
        seen.append(mod)

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
    device = next(model.parameters()).device
    ids = torch.zeros((1, 2), dtype=torch.long, device=device)
    try:
        _forward(model, ids, torch.ones_like(ids))
    except _Reached:
        pass
    else:
        raise StatisticsError(f"module {module!r} did not run during a forward pass")
    finally:
        for h in handles:
            h.remove()
    out: list[str] = []
    done: set[int] = set()
    for mod in seen:
        if id(mod) in done:
            continue
        done.add(id(mod))
        prefix = names[id(mod)]
        for pname, _ in mod.named_parameters(recurse=False):
            out.append(f"{prefix}.{pname}" if prefix else pname)
    return list(dict.fromkeys(out))


# -- the statistics -----------------------------------------------------------------------
def _batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices grouped so that rows × longest row ≤ budget (longest first: little padding)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        w = max(width, lengths[i])
        if current and w * (len(current) + 1) > budget:
            batches.append(current)
            current, w = [], lengths[i]
        current.append(i)
        width = w
    if current:
        batches.append(current)
    return batches


def _cache_paths(folder: Path, key: str) -> tuple[Path, Path]:
    return folder / f"{key[:40]}.safetensors", folder / f"{key[:40]}.json"


def second_moment(
    model: torch.nn.Module,
    tokenizer: Any,
    module: str,
    corpus: Any,
    *,
    n_samples: int = 10_000,
    max_length: int = 256,
    token_budget: int = 8192,
    dtype: torch.dtype | str = torch.float64,
    weights: str = "upstream",
    original_weights: Mapping[str, torch.Tensor] | None = None,
    cache: bool = True,
    cache_folder: str | Path | None = None,
    progress: bool = True,
) -> SecondMoment:
    """``E[k kᵀ]`` of the inputs of ``module`` over ``corpus`` (loaded from cache when the
    same weights, module, tokenizer, corpus and settings were seen before).

    :param module: the fully qualified module name (e.g. ``arch.path("mlp_out", layer)``).
    :param corpus: see the module docstring. ``npz:PATH`` loads precomputed statistics as
        they are (:func:`import_second_moment`): the corpus settings below (``n_samples``,
        ``max_length``, ``token_budget``, ``weights``) do not apply to them, and the result's
        ``n_samples``/``n_tokens`` are the file's.
    :param n_samples: how many texts to use; a corpus with fewer is used whole, with a
        warning naming both counts.
    :param max_length: tokens per text are capped at this.
    :param token_budget: at most this many (padded) tokens per forward pass.
    :param dtype: accumulation dtype, ``float64`` (default) or ``float32``.
    :param weights: ``"upstream"`` hashes only the parameters that run before ``module``
        (edits elsewhere keep the cache valid); ``"all"`` hashes every parameter.
    :param original_weights: parameter tensors that stand for the model's current ones, e.g.
        the originals of live edits (``Ledger.of(model).originals``), so that statistics
        describe the unedited model: they are copied in for the duration of the call (and
        back, whatever happens), so that the key, the statistics and a corpus sampled from
        the model (``model-samples``) all describe the unedited model.
    :param cache: read and write the on-disk cache.
    :param cache_folder: overrides the cache folder (see :func:`cache_dir`).
    :param progress: show a tqdm progress bar.
    :raises StatisticsError: on an empty or unknown corpus or a module that never runs.
    """
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise StatisticsError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        dtype = getattr(torch, dtype)
    if dtype not in (torch.float32, torch.float64):
        raise StatisticsError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if n_samples < 1:
        raise StatisticsError(f"n_samples must be >= 1, got {n_samples}")
    if weights not in ("upstream", "all"):
        raise StatisticsError(f"weights must be 'upstream' or 'all', got {weights!r}")
    get_module(model, module)
    if isinstance(corpus, str) and corpus.startswith(NPZ_PREFIX):
        return import_second_moment(corpus, model, module, dtype=dtype)
    swapped = _swap_in(model, original_weights or {})
    try:
        return _second_moment(model, tokenizer, module, corpus, n_samples=n_samples,
                              max_length=max_length, token_budget=token_budget, dtype=dtype,
                              weights=weights, cache=cache, cache_folder=cache_folder,
                              progress=progress)
    finally:
        with torch.no_grad():
            for name, current in swapped.items():
                model.get_parameter(name).data.copy_(current)


@torch.no_grad()
def _swap_in(model: torch.nn.Module, originals: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy ``originals`` into the model; returns the tensors they replaced (to copy back)."""
    swapped: dict[str, torch.Tensor] = {}
    try:
        for name, original in originals.items():
            param = model.get_parameter(name)
            if not torch.equal(param.detach().cpu(), original.cpu()):
                swapped[name] = param.detach().clone()
                param.data.copy_(original.to(param.device, param.dtype))
    except BaseException:
        for name, current in swapped.items():
            model.get_parameter(name).data.copy_(current)
        raise
    return swapped


def _warn_capped(description: str, found: int, wanted: int) -> None:
    warnings.warn(
        f"the corpus ({description}) has {found} texts, fewer than the {wanted} asked for "
        f"(n_samples, mom2_n_samples in hparams): the statistics use all {found}",
        stacklevel=4,
    )


def _second_moment(model: torch.nn.Module, tokenizer: Any, module: str, corpus: Any, *,
                   n_samples: int, max_length: int, token_budget: int, dtype: torch.dtype,
                   weights: str, cache: bool, cache_folder: str | Path | None,
                   progress: bool) -> SecondMoment:
    """:func:`second_moment` on the model as it is (originals already swapped in)."""
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    source = resolve_corpus(corpus, n_samples, model=model, tokenizer=tokenizer, cache=cache,
                            cache_folder=cache_folder, progress=progress)
    names = (upstream_parameters(model, module) if weights == "upstream"
             else [n for n, _ in model.named_parameters()])
    model_hash = model_fingerprint(model, names)
    settings = {
        "format": FORMAT_VERSION, "module": module, "weights": model_hash, "scope": weights,
        "tokenizer": tokenizer_hash(tokenizer), "corpus": source.identity,
        "n_samples": n_samples, "max_length": max_length, "dtype": str(dtype),
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    folder = cache_dir(cache_folder)
    tensor_path, meta_path = _cache_paths(folder, key)
    if cache and tensor_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            matrix = load_file(str(tensor_path))["second_moment"]
            found = int(meta.get("n_texts", meta["n_used"]))
            if found < n_samples:
                _warn_capped(meta.get("corpus_description", source.description), found, n_samples)
            return SecondMoment(module=module, matrix=matrix, n_samples=meta["n_used"],
                                n_tokens=meta["n_tokens"], key=key, corpus=source.description,
                                from_cache=True)

    texts = source.texts(n_samples)
    if not texts:
        raise StatisticsError(f"corpus {source.description} holds no non-empty text")
    if len(texts) < n_samples:
        _warn_capped(source.description, len(texts), n_samples)
    rows = [list(tokenizer(t, truncation=True, max_length=max_length).input_ids) for t in texts]
    rows = [r for r in rows if r]
    if not rows:
        raise StatisticsError(f"corpus {source.description}: no text has any token")
    pad = next((int(v) for v in (getattr(tokenizer, a, None) for a in
                                 ("pad_token_id", "eos_token_id", "bos_token_id")) if v is not None), 0)
    device = next(model.parameters()).device
    total: torch.Tensor | None = None
    n_tokens = 0
    modes = training_modes(model)
    model.eval()
    started = time.perf_counter()
    try:
        with torch.no_grad():
            batches = _batches([len(r) for r in rows], max(token_budget, max_length))
            for batch in tqdm(batches, desc=f"statistics {module}", disable=not progress,
                              unit="batch"):
                width = max(len(rows[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for j, i in enumerate(batch):
                    ids[j, : len(rows[i])] = torch.tensor(rows[i])
                    mask[j, : len(rows[i])] = 1
                ids, mask = ids.to(device), mask.to(device)
                with trace(model, [module], retain_input=True, retain_output=False,
                           stop_after=module) as rec:
                    _forward(model, ids, mask)
                k = rec[module].input
                if k is None:
                    raise StatisticsError(f"module {module!r} did not run during the forward pass")
                k = k[mask.bool()].to(dtype)
                total = k.T @ k if total is None else total.addmm_(k.T, k)
                n_tokens += int(k.shape[0])
    finally:
        restore_training_modes(modes)
    assert total is not None
    matrix = (total / n_tokens).cpu().contiguous()
    result = SecondMoment(module=module, matrix=matrix, n_samples=len(rows), n_tokens=n_tokens,
                          key=key, corpus=source.description)
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = tensor_path.with_suffix(".tmp")
        save_file({"second_moment": matrix}, str(tmp))
        os.replace(tmp, tensor_path)  # atomic: a crashed run never leaves half a file
        meta = dict(settings, key=key, n_used=len(rows), n_texts=len(texts), n_tokens=n_tokens,
                    corpus_description=source.description, dim=int(matrix.shape[0]),
                    seconds=round(time.perf_counter() - started, 3), created=time.time())
        meta_path.write_text(json.dumps(meta, indent=2))
    return result
