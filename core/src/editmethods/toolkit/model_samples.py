"""The ``model-samples`` corpus: texts the model writes itself, for statistics without a download.

Locate-then-edit methods need ``C = E[k kᵀ]`` over text like the model's pretraining data.
When that data is out of reach (no network, no ``datasets``), the model's own samples are
the next best thing: a language model is a fitted estimate of its training distribution, so
what it writes unprompted approximates what it was trained on::

    from editmethods.toolkit.model_samples import SamplingSettings, model_samples
    corpus = model_samples(model, tokenizer, 1_000, SamplingSettings(tokens=64))
    second_moment(model, tokenizer, module, corpus)       # or mom2_dataset: model-samples

How a sample is drawn (every choice is a field of :class:`SamplingSettings`):

- **Start**: the tokenizer's BOS token alone (its EOS token when it has no BOS, as GPT-2's
  ``<|endoftext|>`` is both): the model's unconditional distribution, with no topic chosen by
  us. ``openings`` may give a small fixed set of neutral openings instead (used round-robin,
  after the BOS token); they bias every sample's first words, so the default has none.
- **Sampling**: temperature ``1.0`` with top-k ``50``: temperature 1 keeps the model's own
  probabilities, and the top-k cut drops the long tail of unlikely tokens that small models
  put real mass on, which would otherwise fill the corpus with noise no training text has.
  ``top_k=0`` samples the full distribution.
- **Length**: exactly ``tokens`` new tokens per sample. Special tokens (BOS/EOS/pad...) are
  never sampled, so a sample never ends early and never holds a document boundary; where the
  model would end a document, it continues it instead.
- **Batches**: ``batch_size`` samples are generated together (left-padded when openings differ
  in length, positions counted from each row's first real token) with the key/value cache, so
  each step runs one token per row through the model.
- **Seeds**: batch ``b`` draws from its own ``torch.Generator`` seeded from ``(seed, b)``, so
  the samples do not depend on how many are asked for (a longer run extends a shorter one) and
  the global random state is never touched.

Samples are cached under ``<statistics cache>/samples/`` as JSON lines, keyed by a sha256 of
all the model's weights, the tokenizer and the settings (not the count: the file grows when
more samples are asked for, and an interrupted run keeps the batches it finished). Hashing
every weight costs about 0.4 s per 135M float32 parameters. A different device may draw
different texts for the same key; either set is a sample of the same distribution.

Bias: the samples are the model's distribution, not the data's. They over-represent what the
model finds likely (more so with a small top-k), under-represent rare text, and inherit its
quirks (an instruct model's chat style, repetitions of a small model). Statistics from them
are a good stand-in where C only needs the rough shape of typical keys (ROME/MEMIT's C⁻¹);
they are not a measurement of the pretraining data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import attrs
import torch
from attrs import validators as v

from editmethods.modes import restore_training_modes, training_modes

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from editmethods.toolkit._moments import Corpus

__all__ = ["MODEL_SAMPLES", "SamplingSettings", "factory", "generate_token_ids", "model_samples",
           "sample_batch", "samples_key"]

#: The corpus name hparams files use (``mom2_dataset: model-samples``).
MODEL_SAMPLES = "model-samples"
#: Bumped when the way samples are drawn changes, so that old sample files are not reused.
SAMPLES_FORMAT = 1


def _openings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(s for s in value.split("|") if s)
    return tuple(value)


@attrs.frozen
class SamplingSettings:
    """How ``model-samples`` draws its texts (see the module docstring for why)."""

    #: New tokens per sample (the start token not counted).
    tokens: int = attrs.field(default=64, validator=v.ge(1))
    #: Sample among the ``top_k`` most likely tokens; ``0`` = the full distribution.
    top_k: int = attrs.field(default=50, validator=v.ge(0))
    temperature: float = attrs.field(default=1.0, validator=v.gt(0))
    seed: int = 0
    #: Samples generated together (part of the cache key: rows of one batch share a generator).
    batch_size: int = attrs.field(default=32, validator=v.ge(1))
    #: Openings used round-robin after the BOS token; empty = start from the BOS token alone.
    openings: tuple[str, ...] = attrs.field(default=(), converter=_openings)

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> SamplingSettings:
        """From the options of a corpus spec such as ``model-samples:tokens=128,top_k=0``
        (``openings=The|In|A``).

        :raises StatisticsError: on an unknown option or a bad value, naming the valid ones.
        """
        from editmethods.toolkit._moments import StatisticsError

        fields = attrs.fields_dict(cls)
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise StatisticsError(
                f"corpus {MODEL_SAMPLES!r}: unknown option(s) {', '.join(unknown)}; the options "
                f"are {', '.join(fields)} (e.g. model-samples:tokens=128,top_k=50)"
            )
        kwargs: dict[str, Any] = {}
        try:
            for key, raw in options.items():
                kind = fields[key].type
                if key == "openings":
                    kwargs[key] = raw
                elif kind in ("float", float):
                    kwargs[key] = float(raw)
                else:
                    kwargs[key] = int(raw)
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise StatisticsError(f"corpus {MODEL_SAMPLES!r}: bad option value: {exc}") from None

    def key_fields(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "top_k": self.top_k, "temperature": self.temperature,
                "seed": self.seed, "batch_size": self.batch_size, "openings": list(self.openings)}


def _batch_generator(seed: int, batch: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}\x1f{batch}".encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:7], "little"))


def _next_token(logits: torch.Tensor, banned: Sequence[int], top_k: int, temperature: float,
                generator: torch.Generator) -> torch.Tensor:
    logits = logits.float()
    if banned:
        logits[:, list(banned)] = float("-inf")
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        values, index = logits.topk(top_k, dim=-1)
    else:
        values, index = logits, None
    # drawn on the CPU from our own generator: no global RNG, the same draws on any device
    probs = torch.softmax(values, dim=-1).cpu()
    choice = torch.multinomial(probs, 1, generator=generator).to(logits.device)
    return (index.gather(1, choice) if index is not None else choice)[:, 0]


@torch.no_grad()
def generate_token_ids(model: torch.nn.Module, starts: Sequence[Sequence[int]], new_tokens: int,
                       *, generator: torch.Generator, top_k: int = 50, temperature: float = 1.0,
                       banned: Sequence[int] = (), pad_id: int = 0) -> list[list[int]]:
    """``new_tokens`` sampled tokens after each start, all rows in one batch.

    Rows are left-padded to the longest start, with an attention mask and position ids that
    count from each row's first real token (GPT-2's absolute positions need them), and each
    step feeds one token per row through the key/value cache.

    :param starts: token ids each row starts from (at least one each).
    :param banned: token ids never sampled (e.g. the special tokens).
    :returns: the new tokens of each row (the start not included).
    """
    if not starts or any(len(s) == 0 for s in starts):
        raise ValueError("every row needs at least one start token")
    device = next(model.parameters()).device
    width = max(len(s) for s in starts)
    ids = torch.tensor([[pad_id] * (width - len(s)) + list(s) for s in starts], device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in starts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    past = getattr(out, "past_key_values", None)
    new: list[torch.Tensor] = []
    for step in range(new_tokens):
        token = _next_token(out.logits[:, -1], banned, top_k, temperature, generator)
        new.append(token)
        if step == new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
        if past is not None:
            out = model(input_ids=token[:, None], attention_mask=mask,
                        position_ids=positions[:, -1:], past_key_values=past, use_cache=True)
            past = out.past_key_values
        else:  # a model that returns no cache: run the whole sequence again
            ids = torch.cat([ids, token[:, None]], dim=1)
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions)
    return torch.stack(new, dim=1).tolist()


def _banned_ids(model: torch.nn.Module, tokenizer: Any) -> list[int]:
    """Special tokens, and ids past the tokenizer's vocabulary (padded embedding rows)."""
    # a transformers model's output layer (None when it has none); nn.Module alone would
    # type the method as a Tensor attribute
    head = cast("PreTrainedModel", model).get_output_embeddings()
    width = int(head.weight.shape[0]) if head is not None else None
    special = {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or [])}
    known = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    banned = {i for i in special if width is None or i < width}
    if width is not None and known is not None and known < width:
        banned.update(range(known, width))
    return sorted(banned)


def _start_ids(tokenizer: Any, settings: SamplingSettings) -> list[list[int]]:
    from editmethods.toolkit._moments import StatisticsError

    bos = next((int(i) for i in (getattr(tokenizer, "bos_token_id", None),
                                 getattr(tokenizer, "eos_token_id", None)) if i is not None), None)
    head = [bos] if bos is not None else []
    if not settings.openings:
        if not head:
            raise StatisticsError(
                f"corpus {MODEL_SAMPLES!r}: the tokenizer has neither a BOS nor an EOS token to "
                "start from; give openings (e.g. model-samples:openings=The|In|A)"
            )
        return [head]
    starts = []
    for text in settings.openings:
        ids = head + [int(i) for i in tokenizer(text, add_special_tokens=False).input_ids]
        if not ids:
            raise StatisticsError(f"corpus {MODEL_SAMPLES!r}: opening {text!r} has no tokens")
        starts.append(ids)
    return starts


def sample_batch(model: torch.nn.Module, tokenizer: Any, settings: SamplingSettings,
                 batch: int) -> list[str]:
    """The texts of batch number ``batch`` (samples ``batch·batch_size`` onwards): the same
    model, tokenizer, settings and batch number always give the same texts on one device."""
    starts = _start_ids(tokenizer, settings)
    first = batch * settings.batch_size
    rows = [starts[(first + j) % len(starts)] for j in range(settings.batch_size)]
    pad = next((int(i) for i in (getattr(tokenizer, "pad_token_id", None),
                                 getattr(tokenizer, "eos_token_id", None)) if i is not None), 0)
    modes = training_modes(model)
    model.eval()
    try:
        new = generate_token_ids(
            model, rows, settings.tokens, generator=_batch_generator(settings.seed, batch),
            top_k=settings.top_k, temperature=settings.temperature,
            banned=_banned_ids(model, tokenizer), pad_id=pad)
    finally:
        restore_training_modes(modes)
    return [tokenizer.decode(start + ids, skip_special_tokens=True)
            for start, ids in zip(rows, new)]


# -- the cache ------------------------------------------------------------------------------
def _read_cached(path: Path) -> list[str]:
    """Texts 0, 1, 2, ... of a sample file; a torn last line (a crash) or a batch two runs
    both appended is skipped."""
    texts: list[str] = []
    if not path.is_file():
        return texts
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and row.get("i") == len(texts) and isinstance(row.get("text"), str):
                texts.append(row["text"])
    return texts


def _append(path: Path, first: int, texts: Sequence[str]) -> None:
    lines = "".join(json.dumps({"i": first + j, "text": t}, ensure_ascii=False) + "\n"
                    for j, t in enumerate(texts))
    with path.open("a", encoding="utf-8") as fh:  # one write per batch: whole lines
        fh.write(lines)
        fh.flush()
        os.fsync(fh.fileno())


def samples_key(model: torch.nn.Module, tokenizer: Any, settings: SamplingSettings) -> str:
    """sha256 of every weight of the model, the tokenizer and the sampling settings."""
    from editmethods.fingerprint import model_fingerprint
    from editmethods.toolkit._moments import tokenizer_hash

    names = [n for n, _ in model.named_parameters()]
    blob = {"format": SAMPLES_FORMAT, "weights": model_fingerprint(model, names),
            "tokenizer": tokenizer_hash(tokenizer), "settings": settings.key_fields()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def model_samples(model: torch.nn.Module, tokenizer: Any, n_samples: int,
                  settings: SamplingSettings | None = None, *, cache: bool = True,
                  cache_folder: str | Path | None = None, progress: bool = True) -> Corpus:
    """A :class:`~editmethods.toolkit.stats.Corpus` of ``n_samples`` texts sampled from the model.

    Nothing is generated here: texts are read from the cache, and the missing ones sampled
    (with a progress bar), only when the corpus is read, i.e. when the statistics are not
    cached already.

    :param settings: how to sample (defaults: 64 tokens, top-k 50, temperature 1, seed 0,
        batches of 32, from the BOS token).
    :param cache: read and append the sample file.
    :param cache_folder: the statistics cache folder (see ``editmethods.toolkit.stats.cache_dir``);
        samples go to its ``samples/`` subfolder.
    :raises StatisticsError: for an encoder-decoder model, or a tokenizer with nothing to
        start from.
    """
    from tqdm.auto import tqdm

    from editmethods.toolkit._moments import Corpus, StatisticsError, cache_dir

    settings = settings or SamplingSettings()
    if n_samples < 1:
        raise StatisticsError(f"corpus {MODEL_SAMPLES!r}: n_samples must be >= 1, got {n_samples}")
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        raise StatisticsError(
            f"corpus {MODEL_SAMPLES!r} samples a decoder-only language model; this model is an "
            "encoder-decoder: give a text corpus (a file, a folder, wikipedia)"
        )
    _start_ids(tokenizer, settings)  # fail now, not half-way through the statistics
    key = samples_key(model, tokenizer, settings)
    folder = cache_dir(cache_folder) / "samples"
    path = folder / f"{key[:40]}.jsonl"
    bs = settings.batch_size

    def read() -> Iterator[str]:
        texts = _read_cached(path) if cache else []
        yield from texts[:n_samples]
        done = min(len(texts), n_samples)
        if done >= n_samples:
            return
        if cache:
            folder.mkdir(parents=True, exist_ok=True)
            meta = folder / f"{key[:40]}.json"
            if not meta.is_file():
                meta.write_text(json.dumps({"key": key, "format": SAMPLES_FORMAT,
                                            **settings.key_fields()}, indent=2))
        bar = tqdm(total=n_samples, initial=done, desc=MODEL_SAMPLES, unit="text",
                   disable=not progress)
        try:
            batch = done // bs
            while done < n_samples:
                new = sample_batch(model, tokenizer, settings, batch)
                if cache:  # rows the file has already are skipped when it is read
                    _append(path, batch * bs, new)
                # a cache that ended mid-batch (a torn write) has the batch's first rows
                new = new[done - batch * bs:][: n_samples - done]
                done += len(new)
                bar.update(len(new))
                batch += 1
                yield from new
        finally:
            bar.close()

    describe = (f"{n_samples} texts sampled from the model ({settings.tokens} tokens, top-k "
                f"{settings.top_k or 'off'}, temperature {settings.temperature}, seed {settings.seed})")
    return Corpus(f"{MODEL_SAMPLES}:{key}", describe, read)


def factory(*, model: torch.nn.Module | None = None, tokenizer: Any = None,
            n_samples: int | None = None, options: Mapping[str, str] | None = None,
            cache: bool = True, cache_folder: str | Path | None = None,
            progress: bool = True) -> Corpus:
    """The corpus factory registered as ``model-samples`` (``register_corpus`` passes the
    model and tokenizer at hand)."""
    from editmethods.toolkit._moments import StatisticsError

    if model is None or tokenizer is None:
        raise StatisticsError(
            f"corpus {MODEL_SAMPLES!r} is sampled from the model: resolve it with the model at "
            "hand (second_moment(model, tokenizer, module, 'model-samples'), or "
            "resolve_corpus('model-samples', n, model=model, tokenizer=tokenizer))"
        )
    if n_samples is None:
        raise StatisticsError(f"corpus {MODEL_SAMPLES!r}: say how many samples (n_samples)")
    settings = SamplingSettings.from_options(options or {})
    return model_samples(model, tokenizer, n_samples, settings, cache=cache,
                         cache_folder=cache_folder, progress=progress)
