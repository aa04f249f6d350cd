"""The conformance kit: checks every method package runs on itself.

Subclass :class:`MethodConformance` in a test module of your package::

    from editmethods.testing import MethodConformance
    import my_package.plugin

    class TestMyMethod(MethodConformance):
        method = "mymethod"
        plugin = my_package.plugin
        hparams = {"layers": [0], "lr": 0.1}
        model_types = ("gpt2", "llama", "t5")

Each check builds a tiny random model (no download) of each model type and edits it:
apply changes the prediction for the prompt; rollback restores weights and logits exactly;
a failing hook leaves the model untouched; an edit and its rollback leave no trace (no
``.grad``, no changed ``requires_grad`` or training flag, no hook or submodule left behind);
bad requests and bad hyper-parameters are refused; handles round-trip to disk. Tiny random
models prove mechanics, not quality: quality tests belong on a reference model.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Mapping

import pytest
import torch

from editmethods.editor import Editor
from editmethods.errors import EditmethodsError, HyperParamsError, RequestError, RollbackError
from editmethods.hookspecs import hookimpl
from editmethods.plugins import Plugins
from editmethods.types import Delta, EditRequest, MethodSpec, Update
from editmethods.hparams import HyperParams
import attrs

CORPUS = [
    "The capital of France is Paris", "The capital of Italy is Rome",
    "The capital of Spain is Madrid", "Danielle Darrieux was born in Paris",
    "Danielle Darrieux speaks French", "The Eiffel Tower is in Paris",
    "Miles Davis plays the trumpet", "Toko Yasuda plays the piano",
    "The mother tongue of Danielle Darrieux is French", "Rome is a city in Italy",
    "Berlin is the capital of Germany", "The Colosseum is in Rome",
    "New Fact: Prompt: a b c d e f g h i j k l m n o p q r s t u v w x y z",
] * 3


@functools.lru_cache(maxsize=None)
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


def tiny_model(model_type: str, *, seed: int = 0) -> torch.nn.Module:
    """A randomly initialized tiny model of ``model_type`` (no download)."""
    import transformers as tf

    vocab = tiny_tokenizer().vocab_size + 2
    # A wider init than the default 0.02 makes the random logits expressive enough that an
    # edit can move them (with 0.02 a tiny LLaMA's logits are nearly uniform).
    common = dict(vocab_size=vocab, pad_token_id=0, eos_token_id=1, bos_token_id=1,
                  initializer_range=0.2)
    configs = {
        "gpt2": lambda: tf.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, **common),
        "gptj": lambda: tf.GPTJConfig(n_layer=2, n_embd=32, n_head=2, rotary_dim=8, n_positions=64, **common),
        "gpt_neox": lambda: tf.GPTNeoXConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                             intermediate_size=64, max_position_embeddings=64, **common),
        "llama": lambda: tf.LlamaConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                        num_key_value_heads=2, intermediate_size=64,
                                        max_position_embeddings=64, **common),
        "mistral": lambda: tf.MistralConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                            num_key_value_heads=2, intermediate_size=64,
                                            max_position_embeddings=64, **common),
        "qwen2": lambda: tf.Qwen2Config(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                                        num_key_value_heads=2, intermediate_size=64,
                                        max_position_embeddings=64, **common),
        "t5": lambda: tf.T5Config(num_layers=2, num_decoder_layers=2, d_model=32, d_ff=64, d_kv=16,
                                  num_heads=2, decoder_start_token_id=0, vocab_size=vocab,
                                  pad_token_id=0, eos_token_id=1),
    }
    if model_type not in configs:
        raise ValueError(f"no tiny config for {model_type!r}; choose from {sorted(configs)}")
    torch.manual_seed(seed)
    config = configs[model_type]()
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
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
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
            hooks = getattr(m, attr, None)
            if hooks is not None:
                state[attr] = tuple(hooks)
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
    for prompt in prompts:
        ids = torch.tensor([tok(prompt).input_ids])
        if getattr(model.config, "is_encoder_decoder", False):
            dec = torch.tensor([[model.config.decoder_start_token_id]])
            out.append(model(input_ids=ids, decoder_input_ids=dec).logits[0, -1].clone())
        else:
            out.append(model(input_ids=ids).logits[0, -1].clone())
    return out


class _FailingApply:
    """A wrapper plugin that lets the method apply its edit, then raises."""

    @hookimpl(wrapper=True)
    def apply(self):
        result = yield
        raise RuntimeError("injected failure after apply")


class MethodConformance:
    """Checks a method package must pass (see the module docstring)."""

    #: The method's registered name.
    method: ClassVar[str]
    #: The plugin object (module) that registers the method.
    plugin: ClassVar[Any]
    #: Hyper-parameters for tiny models (path, mapping or hparams object).
    hparams: ClassVar[Any] = None
    #: Model types to run on (a subset of gpt2, gptj, gpt_neox, llama, mistral, qwen2, t5).
    model_types: ClassVar[tuple[str, ...]] = ("gpt2", "llama")
    #: Methods that keep weights frozen must leave unrelated prompts' logits exactly as
    #: they were; weight-writing ones must move them less than the edited prompt's.
    writes_weights: ClassVar[bool] = True

    # -- fixtures -------------------------------------------------------------------------
    @pytest.fixture(params=["gpt2", "llama", "t5"])
    def model_type(self, request: pytest.FixtureRequest) -> str:
        if request.param not in self.model_types:
            pytest.skip(f"{self.method} is not checked on {request.param}")
        return request.param

    def make_plugins(self) -> Plugins:
        plugins = Plugins(entry_points=False)
        plugins.register(self.plugin, name=self.method)
        return plugins

    def make_editor(self, model_type: str) -> Editor:
        torch.manual_seed(0)
        return Editor(tiny_model(model_type), tiny_tokenizer(), plugins=self.make_plugins())

    @pytest.fixture
    def editor(self, model_type: str) -> Editor:
        return self.make_editor(model_type)

    def request(self) -> EditRequest:
        return EditRequest(prompt="The capital of France is", subject="France", target_new="Rome",
                           ground_truth="Paris", rephrase_prompts=["The capital of France is"])

    unrelated_prompts: ClassVar[list[str]] = [
        "Miles Davis plays the", "Berlin is the capital of", "The Colosseum is in",
        "Toko Yasuda plays the", "Rome is a city in",
    ]

    def _target_logprob(self, editor: Editor, req: EditRequest) -> float:
        from editmethods.scoring import score_targets

        s = score_targets(editor.model, editor.tokenizer, [req.prompt], [req.target_text])
        return float(s.logprobs[0].sum())

    # -- checks ---------------------------------------------------------------------------
    def test_apply_changes_prediction(self, editor: Editor) -> None:
        req = self.request()
        before = self._target_logprob(editor, req)
        editor.edit(req, self.method, self.hparams)
        after = self._target_logprob(editor, req)
        assert after > before + 0.5, f"target log-prob barely moved: {before:.3f} -> {after:.3f}"

    def test_rollback_restores_weights_and_logits_exactly(self, editor: Editor) -> None:
        state = state_copy(editor.model)
        prompts = [self.request().prompt] + self.unrelated_prompts
        logits = logits_of(editor, prompts)
        handle = editor.edit(self.request(), self.method, self.hparams)
        editor.rollback(handle)
        assert_same_state(editor.model, state)
        for a, b in zip(logits, logits_of(editor, prompts)):
            assert torch.equal(a, b)
        with pytest.raises(RollbackError):
            editor.rollback(handle)

    def test_two_edits_rolled_back_in_any_order(self, editor: Editor) -> None:
        state = state_copy(editor.model)
        first = editor.edit(self.request(), self.method, self.hparams)
        second = editor.edit(EditRequest(prompt="Miles Davis plays the", subject="Miles Davis",
                                         target_new="piano"), self.method, self.hparams)
        editor.rollback(first)
        editor.rollback(second)
        assert_same_state(editor.model, state)

    def test_unrelated_prompts_move_less_than_the_edited_one(self, editor: Editor) -> None:
        prompts = [self.request().prompt] + self.unrelated_prompts
        before = logits_of(editor, prompts)
        editor.edit(self.request(), self.method, self.hparams)
        after = logits_of(editor, prompts)
        moved = [float((a - b).abs().mean()) for a, b in zip(after, before)]
        if not self.writes_weights:
            assert moved[1:] == [0.0] * len(self.unrelated_prompts), "unrelated prompts changed"
        elif not editor.model.config.is_encoder_decoder:
            # (on a random encoder-decoder, decoder weights move every prompt alike)
            unrelated = sum(moved[1:]) / len(self.unrelated_prompts)
            assert unrelated < moved[0], f"unrelated prompts moved {unrelated:.4f} >= {moved[0]:.4f}"

    @pytest.mark.parametrize("mode", ["eval", "train", "mixed"])
    def test_edit_and_rollback_leave_no_trace(self, editor: Editor, mode: str) -> None:
        """No ``.grad`` on a parameter, no changed ``requires_grad``, no hook, no submodule
        and no changed training flag after an edit and after its rollback, from a model in
        eval mode and from one in train mode (a method that calls ``model.eval()`` and never
        restores the mode is caught), with one parameter frozen (a method that freezes every
        parameter and unfreezes them all is caught). A method that attaches its edit (it does
        not write weights, or its update carries no weight deltas: LoRA, IKE, SERAC) may add
        hooks and submodules while the edit is live; after the rollback they must be gone.

        In ``mixed`` mode every other module is in eval mode and the rest train (a method
        that restores the mode with ``model.train(flag)`` is caught: use
        :mod:`editmethods.modes`)."""
        model = editor.model
        model.train(mode != "eval")
        if mode == "mixed":
            for i, module in enumerate(model.modules()):
                if i % 2:
                    module.training = False
        next(iter(model.parameters())).requires_grad_(False)
        before = model_trace(model)
        handle = editor.edit(self.request(), self.method, self.hparams)
        attaches = (not editor.plugins.method(self.method).spec.writes_weights
                    or not handle.update.deltas)
        assert_no_trace(model, before, f"after a {self.method} edit ({mode} mode)",
                        allow_attached=attaches)
        editor.rollback(handle)
        assert_no_trace(model, before, f"after the rollback of a {self.method} edit ({mode} mode)")

    def test_failing_hook_leaves_model_untouched(self, editor: Editor) -> None:
        state = state_copy(editor.model)
        logits = logits_of(editor, [self.request().prompt])
        failing = _FailingApply()
        editor.plugins.register(failing, name="failing-wrapper")
        try:
            with pytest.raises(EditmethodsError, match="injected failure"):
                editor.edit(self.request(), self.method, self.hparams)
        finally:
            editor.plugins.unregister(failing)
        assert_same_state(editor.model, state)
        assert torch.equal(logits[0], logits_of(editor, [self.request().prompt])[0])
        assert editor.edits == []

    def test_bad_requests_refused(self, editor: Editor) -> None:
        with pytest.raises(RequestError, match="does not occur"):
            EditRequest(prompt="The capital of France is", subject="Spain", target_new="Rome")
        with pytest.raises(RequestError, match="target_new is empty"):
            EditRequest(prompt="The capital of France is", subject="France", target_new=" ")
        with pytest.raises(RequestError):
            editor.edit([], self.method, self.hparams)

    def test_bad_hparams_refused(self, editor: Editor) -> None:
        state = state_copy(editor.model)
        with pytest.raises(HyperParamsError, match="extra fields found"):
            editor.edit(self.request(), self.method, {"no_such_key_xyz": 1})
        assert_same_state(editor.model, state)

    def test_handle_round_trips_to_disk(self, editor: Editor, tmp_path: Any) -> None:
        prompts = [self.request().prompt] + self.unrelated_prompts
        handle = editor.edit(self.request(), self.method, self.hparams)
        edited = logits_of(editor, prompts)
        editor.save_edit(handle, tmp_path / "edit")
        editor.rollback(handle)
        fresh = Editor(tiny_model(editor.model.config.model_type), tiny_tokenizer(),
                       plugins=self.make_plugins())
        fresh.load_edit(tmp_path / "edit")
        for a, b in zip(edited, logits_of(fresh, prompts)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        other = Editor(tiny_model(editor.model.config.model_type, seed=1), tiny_tokenizer(),
                       plugins=self.make_plugins())
        with pytest.raises(EditmethodsError, match="different base model"):
            other.load_edit(tmp_path / "edit")


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
    pm = Plugins(entry_points=False)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=getattr(plugin, "name", f"plugin{i}"))
    return pm
