"""Tiny random models and the helpers tests use with them; needs no pytest.

* :func:`tiny_tokenizer`, :func:`tiny_model` (every type in :data:`TINY_MODEL_TYPES`),
  :func:`write_tiny_gguf`: models and files built in a second, no download;
* :func:`state_copy` / :func:`assert_same_state` (bit-exact weights),
  :func:`model_trace` / :func:`assert_no_trace` (what an edit may not leave behind),
  :func:`logits_of` (next-token logits through the model as it is now);
* :class:`AddMethod`: a test double method for the core's mechanics;
  :func:`make_plugins`: a plugin manager without entry points.

The conformance kit (:mod:`editmethods.testing`, which needs pytest) is built on these and
re-exports them. Tiny random models prove mechanics, not quality.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import torch

from editmethods.editor import Editor
from editmethods.hookspecs import hookimpl
from editmethods.hparams import HyperParams
from editmethods.plugins import Plugins
from editmethods.scoring import model_config
from editmethods.types import Delta, MethodSpec, Update

#: Sentences the tiny tokenizer is trained on (and a corpus for tiny statistics).
CORPUS = [
    "The capital of France is Paris", "The capital of Italy is Rome",
    "The capital of Spain is Madrid", "Danielle Darrieux was born in Paris",
    "Danielle Darrieux speaks French", "The Eiffel Tower is in Paris",
    "Miles Davis plays the trumpet", "Toko Yasuda plays the piano",
    "The mother tongue of Danielle Darrieux is French", "Rome is a city in Italy",
    "Berlin is the capital of Germany", "The Colosseum is in Rome",
    "New Fact: Prompt: a b c d e f g h i j k l m n o p q r s t u v w x y z",
] * 3


@functools.cache
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return tok.to_str()


def tiny_tokenizer() -> Any:
    """A byte-level BPE tokenizer trained on a few sentences (pad id 0, eos id 1)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
                                   pad_token="<pad>", eos_token="<eos>")


def _tiny_configs(vocab: int) -> dict[str, Callable[[], Any]]:
    """One config builder per model type: 2 layers, width 32, 2 heads, 64 positions."""
    import transformers as tf

    # A wider init than the default 0.02 makes the random logits expressive enough that an
    # edit can move them (with 0.02 a tiny LLaMA's logits are nearly uniform).
    common: dict[str, Any] = dict(vocab_size=vocab, pad_token_id=0, eos_token_id=1, bos_token_id=1,
                  initializer_range=0.2)
    llama_like: dict[str, Any] = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                      **common)
    # (a generic config field that T5Config's signature does not list)
    t5_start: dict[str, Any] = {"decoder_start_token_id": 0}
    return {
        "gpt2": lambda: tf.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, **common),
        "gptj": lambda: tf.GPTJConfig(n_layer=2, n_embd=32, n_head=2, rotary_dim=8,
                                      n_positions=64, **common),
        "gpt_neox": lambda: tf.GPTNeoXConfig(num_hidden_layers=2, hidden_size=32,
                                             num_attention_heads=2, intermediate_size=64,
                                             max_position_embeddings=64, **common),
        "llama": lambda: tf.LlamaConfig(**llama_like),
        "mistral": lambda: tf.MistralConfig(**llama_like),
        "qwen2": lambda: tf.Qwen2Config(**llama_like),
        "t5": lambda: tf.T5Config(num_layers=2, num_decoder_layers=2, d_model=32, d_ff=64, d_kv=16,
                                  num_heads=2, vocab_size=vocab, pad_token_id=0, eos_token_id=1,
                                  **t5_start),
    }


#: The model types :func:`tiny_model` builds: every architecture the core knows without a
#: plugin (``editmethods.architectures.BUILTIN``; a core test keeps the two in step).
TINY_MODEL_TYPES: tuple[str, ...] = ("gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2", "t5")


def tiny_model(model_type: str, *, seed: int = 0) -> torch.nn.Module:
    """A randomly initialized tiny model of ``model_type`` (no download), in eval mode:
    2 layers, width 32, the :func:`tiny_tokenizer`'s vocabulary; one of
    :data:`TINY_MODEL_TYPES`.

    Biases start at zero whatever the seed (transformers' init): two seeds differ in their
    weight matrices only.
    """
    import transformers as tf

    if model_type not in TINY_MODEL_TYPES:
        raise ValueError(f"no tiny model of type {model_type!r}; choose from "
                         f"{', '.join(TINY_MODEL_TYPES)}")
    config = _tiny_configs(tiny_tokenizer().vocab_size + 2)[model_type]()
    torch.manual_seed(seed)
    if model_type == "t5":
        model = tf.T5ForConditionalGeneration(config)
    else:
        model = tf.AutoModelForCausalLM.from_config(config)
    return model.eval()


def write_tiny_gguf(path: Any, *, architecture: str = "llama", seed: int = 0) -> Any:
    """Write a tiny random LLaMA-shaped GGUF file (2 layers, width 16, a byte-level
    vocabulary of 258 tokens; about 40 kB) and return its path.

    ``architecture`` is what the file claims in ``general.architecture``: another name than
    ``llama`` makes a file that transformers refuses. Needs the ``gguf`` package.
    """
    from pathlib import Path

    import numpy as np
    from gguf import GGUFWriter
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path = Path(path)
    rng = np.random.default_rng(seed)
    spelled = bytes_to_unicode()
    # Every byte, one merge (so the BPE has one) and an end-of-text token marked control (3).
    tokens = [spelled[b] for b in range(256)] + ["\u0120t", "<|endoftext|>"]
    width, layers, heads, ffn = 16, 2, 2, 32
    writer = GGUFWriter(str(path), architecture)
    writer.add_name("editmethods tiny test model")
    writer.add_context_length(64)
    writer.add_embedding_length(width)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(width // heads)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (len(tokens) - 1) + [3])
    writer.add_token_merges(["\u0120 t"])
    writer.add_bos_token_id(len(tokens) - 1)
    writer.add_eos_token_id(len(tokens) - 1)

    def random(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.5).astype(np.float32))

    random("token_embd.weight", len(tokens), width)
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(width, np.float32))
        for part in ("q", "k", "v", "output"):
            random(f"blk.{i}.attn_{part}.weight", width, width)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(width, np.float32))
        random(f"blk.{i}.ffn_gate.weight", ffn, width)
        random(f"blk.{i}.ffn_up.weight", ffn, width)
        random(f"blk.{i}.ffn_down.weight", width, ffn)
    writer.add_tensor("output_norm.weight", np.ones(width, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every tensor of ``model.state_dict()`` (compare with
    :func:`assert_same_state`)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Fail unless ``model``'s state dict has the same keys as ``state`` (a
    :func:`state_copy`) and every tensor is bit-identical."""
    now = model.state_dict()
    assert set(now) == set(state), f"state dict keys changed: {set(now) ^ set(state)}"
    for k, v in state.items():
        assert torch.equal(now[k], v), f"{k} differs from before"


#: Each module's hook dictionaries a method must leave as it found them (the ``full``
#: backward ones are named so on some torch versions only; absent ones are skipped).
MODULE_HOOKS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_full_backward_hooks", "_full_backward_pre_hooks",
)
#: torch's process-wide module hooks (``register_module_forward_hook`` and friends).
GLOBAL_HOOKS = (
    "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


def model_trace(model: torch.nn.Module) -> dict[str, Any]:
    """What an edit must leave behind as it found it, apart from the weights' values.

    Per parameter: ``requires_grad``, whether ``.grad`` is ``None`` and its tensor hooks;
    per module (the model included, named ``<model>``): its ``training`` flag and the keys of
    its hook dictionaries (:data:`MODULE_HOOKS`); the set of module names (an attached
    submodule is a trace too); torch's global module hooks. Compare two with
    :func:`assert_no_trace`.
    """
    from torch.nn.modules import module as torch_module

    trace: dict[str, Any] = {"modules": tuple(n or "<model>" for n, _ in model.named_modules())}
    for name, p in model.named_parameters(remove_duplicate=False):
        hooks = tuple(getattr(p, "_backward_hooks", None) or ())
        post = tuple(getattr(p, "_post_accumulate_grad_hooks", None) or ())
        trace[f"parameter {name}"] = {"requires_grad": p.requires_grad,
                                      ".grad is None": p.grad is None,
                                      "tensor hooks": hooks + post}
    for name, m in model.named_modules():
        state: dict[str, Any] = {"training": m.training}
        for attr in MODULE_HOOKS:
            found = getattr(m, attr, None)
            if found is not None:
                state[attr] = tuple(found)
        trace[f"module {name or '<model>'}"] = state
    trace["global hooks"] = {attr: tuple(getattr(torch_module, attr, None) or ())
                             for attr in GLOBAL_HOOKS}
    return trace


def trace_differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Readable lines, one per difference between two :func:`model_trace` results."""
    lines = []
    if before["modules"] != after["modules"]:
        added = sorted(set(after["modules"]) - set(before["modules"]))
        removed = sorted(set(before["modules"]) - set(after["modules"]))
        lines.append(f"modules added {added[:5]}{' ...' if len(added) > 5 else ''}, "
                     f"removed {removed[:5]}{' ...' if len(removed) > 5 else ''}")
    for key in before:
        if key == "modules" or key not in after:
            continue
        if key.startswith("module ") and key[7:] not in after["modules"]:
            continue
        for field, was in before[key].items():
            now = after[key].get(field)
            if was != now:
                lines.append(f"{key}: {field} {was!r} -> {now!r}")
    return lines


def assert_no_trace(model: torch.nn.Module, before: Mapping[str, Any], when: str,
                    *, allow_attached: bool = False) -> None:
    """Fail, listing every difference, if ``model`` differs from ``before`` (a
    :func:`model_trace`) in a gradient, a ``requires_grad`` flag, a training flag, a hook
    or a submodule.

    :param allow_attached: hooks and added submodules are allowed (an attaching method's
        live edit); ``.grad``, ``requires_grad`` and training flags are still checked on the
        modules that were there before.
    """
    now = model_trace(model)
    lines = trace_differences(before, now)
    if allow_attached:
        hook_fields = tuple(f"{field} " for field in MODULE_HOOKS) + ("tensor hooks ",)
        lines = [line for line in lines if not line.startswith(("modules added", "global hooks"))
                 and not line.split(": ", 1)[1].startswith(hook_fields)]
        if before["modules"] != now["modules"]:
            removed = set(before["modules"]) - set(now["modules"])
            if removed:
                lines.append(f"modules removed {sorted(removed)[:5]}")
    if lines:
        shown = "\n  ".join(lines[:20])
        more = f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else ""
        raise AssertionError(f"{when}, the model is not as it was ({len(lines)} "
                             f"difference(s)):\n  {shown}{more}")


@torch.no_grad()
def logits_of(editor: Editor, prompts: list[str]) -> list[torch.Tensor]:
    """Next-token logits of each prompt, through the model as it answers now."""
    out = []
    model, tok = editor.model, editor.tokenizer
    config = model_config(model)
    for prompt in prompts:
        ids = torch.tensor([tok(prompt).input_ids])
        if getattr(config, "is_encoder_decoder", False):
            dec = torch.tensor([[config.decoder_start_token_id]])
            out.append(model(input_ids=ids, decoder_input_ids=dec).logits[0, -1].clone())
        else:
            out.append(model(input_ids=ids).logits[0, -1].clone())
    return out


@attrs.frozen
class AddHParams(HyperParams):
    """Hyper-parameters of the test method ``add``: adds ``value`` to one MLP weight."""

    layers: tuple[int, ...] = (0,)
    value: float = attrs.field(default=0.01, validator=attrs.validators.gt(0))


class AddMethod:
    """A test double for the core's mechanics: adds a constant to chosen MLP weights.

    It edits nothing meaningfully; it lets core and plugin tests exercise routing, rollback,
    pipelines and saving without a real method.
    """

    def __init__(self, name: str = "add", value_override: float | None = None) -> None:
        self.name = name
        self.value_override = value_override
        self.calls: list[str] = []

    @hookimpl
    def register_methods(self, register):
        register(MethodSpec(name=self.name, hparams_class=AddHParams, description="test", batch=True))

    @hookimpl
    def compute_update(self, method, model, hparams, location, architecture):
        self.calls.append(method)
        value = hparams.value if self.value_override is None else self.value_override
        deltas = []
        for layer in location.layers:
            name = architecture.path("mlp_out", layer) + ".weight"
            shape = model.get_parameter(name).shape
            deltas.append(Delta(param=name, dense=torch.full(tuple(shape), value)))
        return Update(method=method, deltas=tuple(deltas))


def make_plugins(*plugins: object) -> Plugins:
    """A plugin manager with the core's built-in plugins and ``plugins``, no entry points."""
    pm = Plugins(entry_points=False)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=getattr(plugin, "name", f"plugin{i}"))
    return pm


__all__ = [
    "CORPUS", "GLOBAL_HOOKS", "MODULE_HOOKS", "TINY_MODEL_TYPES", "AddHParams", "AddMethod",
    "assert_no_trace", "assert_same_state", "logits_of", "make_plugins", "model_trace",
    "state_copy", "tiny_model", "tiny_tokenizer", "trace_differences", "write_tiny_gguf",
]
