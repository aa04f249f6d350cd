"""Computing a MEND edit: the gradient factors of the edit on the model, mapped through
the editor network into low-rank weight deltas (no optimization at edit time)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from editmethods.architectures import Architecture
from editmethods.errors import EditError, HyperParamsError
from editmethods.types import Delta, EditRequest, Location, Update
from editmethods_mend.checkpoint import (
    bundled_folders,
    check_base,
    find_bundled,
    load_editor,
    model_hash,
)
from editmethods_mend.factors import collect_factors, encode, param_specs
from editmethods_mend.hparams_mend import AUTO, UNTRAINED, MENDHyperParams
from editmethods_mend.network import MENDEditor

#: Layers an untrained editor edits when ``layers`` is empty: the last two.
DEFAULT_LAST_LAYERS = 2

_untrained_cache: dict[tuple, MENDEditor] = {}


def untrained_editor(model: torch.nn.Module, arch: Architecture, hp: MENDHyperParams) -> MENDEditor:
    """A fresh identity-initialized editor for ``hp.layers`` × ``hp.roles`` (deterministic:
    its random parts are drawn from a fixed seed without touching the global RNG)."""
    n = arch.n_layers(model)
    layers = hp.layers or tuple(range(max(0, n - DEFAULT_LAST_LAYERS), n))
    specs = param_specs(model, arch, layers, hp.roles)
    key = (tuple(specs), hp.rank, hp.edit_lr)
    if key not in _untrained_cache:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            _untrained_cache[key] = MENDEditor(specs, hp.rank, hp.edit_lr).eval().requires_grad_(False)
    return _untrained_cache[key]


def resolve_editor(model: torch.nn.Module, arch: Architecture,
                   hp: MENDHyperParams) -> tuple[MENDEditor, tuple[str, ...], str]:
    """The editor, the weights this edit writes, and where the editor came from."""
    if hp.checkpoint == UNTRAINED:
        editor = untrained_editor(model, arch, hp)
        return editor, editor.param_names, UNTRAINED
    if hp.checkpoint == AUTO:
        this = model_hash(model)
        folder = find_bundled(this)
        if folder is None:
            shipped = ", ".join(p.name for p in bundled_folders()) or "none"
            raise EditError(
                f"mend: no bundled editor was trained for this model (hash {this}; bundled: "
                f"{shipped}). Train one with `editmethods train mend --model ... --data ... "
                "--out FOLDER` and pass hparams checkpoint=FOLDER, or checkpoint='untrained' "
                "for a plain gradient step"
            )
    else:
        folder = Path(hp.checkpoint).expanduser()
        if not folder.exists():
            raise HyperParamsError(
                f"mend: checkpoint folder {folder} does not exist @ hparams.checkpoint: give a "
                "folder written by `editmethods train mend`, 'auto' or 'untrained'"
            )
    editor, config = load_editor(folder)
    check_base(config, folder, model)
    trained = editor.param_names
    if not hp.layers:
        wanted = trained
    else:
        wanted = tuple(s.name for s in param_specs(model, arch, hp.layers, hp.roles))
        missing = [w for w in wanted if w not in trained]
        if missing:
            raise HyperParamsError(
                f"mend: the editor {folder} was not trained for weight(s) {missing} named by "
                f"hparams layers={list(hp.layers)} roles={list(hp.roles)} @ hparams.layers; it "
                f"edits {list(trained)}: leave layers empty to use them all, or train an editor "
                "for those weights"
            )
    for name in wanted:
        expected = editor.spec(name)
        actual = param_specs(model, arch, [_layer_of(arch, name)], [_role_of(arch, name)])[0]
        if actual != expected:
            raise EditError(f"mend: weight {name} is {actual}, the editor expects {expected}")
    return editor, wanted, str(folder)


def _layer_role(arch: Architecture, param: str) -> tuple[int, str]:
    module = param.rsplit(".", 1)[0]
    for role in ("mlp_in", "mlp_out", "mlp_gate"):
        template = getattr(arch, role, None)
        if not template:
            continue
        prefix, _, suffix = template.partition("{}")
        if module.startswith(prefix) and module.endswith(suffix):
            middle = module[len(prefix): len(module) - len(suffix)]
            if middle.isdigit():
                return int(middle), role
    raise EditError(f"mend: cannot tell which layer and role weight {param!r} is")


def _layer_of(arch: Architecture, param: str) -> int:
    return _layer_role(arch, param)[0]


def _role_of(arch: Architecture, param: str) -> str:
    return _layer_role(arch, param)[1]


def locate_mend(model: torch.nn.Module, hp: MENDHyperParams, arch: Architecture) -> Location:
    editor, params, source = resolve_editor(model, arch, hp)
    layers = sorted({_layer_of(arch, p) for p in params})
    return Location(layers=tuple(layers), modules=tuple(p.rsplit(".", 1)[0] for p in params),
                    info={"editor": source})


def compute_mend_update(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                        hp: MENDHyperParams, arch: Architecture) -> Update:
    """One edit or a batch: the factors of all requests' tokens go through the editor
    together (MEND's batched edit sums the pseudo-gradients of the batch)."""
    editor, params, source = resolve_editor(model, arch, hp)
    batch = encode(tokenizer, [(r.prompt, r.target_text) for r in requests], hp.max_length)
    factors = collect_factors(model, batch, params)
    deltas = []
    with torch.no_grad():
        for name in params:
            u, d = factors[name]
            if u.shape[0] == 0:
                raise EditError(f"mend: the edit's loss has no gradient at {name}; nothing to edit")
            left, right = editor.low_rank_update(name, u, d)
            deltas.append(Delta(name, left=left.contiguous(), right=right.contiguous()))
    update = Update(method="mend", deltas=tuple(deltas), meta={"editor": source})
    # refuse here too (the core checks again): a NaN factor would otherwise reach the model
    update.check_finite()
    return update
