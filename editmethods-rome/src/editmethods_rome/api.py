"""What other method packages may build on: ROME's locate-then-edit pieces.

MEMIT shares ROME's hyper-parameter base, context prefixes, key and value computation, key
statistics and layer choice. It imports them from this module only; the rest of
``editmethods_rome`` is ROME's own and may change without notice. A name listed here keeps
its meaning across ROME's 0.x releases; removing one is a breaking change for its users.

- hparams: :class:`LocateThenEditHyperParams` (the fields ROME and MEMIT share),
  :func:`optional_layers`, :func:`length_params` / :func:`check_length_params` (converter and
  validator of ``context_template_length_params``);
- context prefixes: :func:`generate_prefixes`, :data:`MEMIT_STARTS`;
- keys: :func:`averaged_keys`, :func:`context_sites`, :func:`module_io_at`;
- values: :func:`optimize_values`, :class:`ValueResult`;
- statistics: :func:`module_stats` (the key second moment of a module, from the core's cache);
- layers: :func:`memit_layers`, :func:`rome_layer`, :func:`warn_chosen` (depth rule),
  :func:`traced_layer` (causal tracing);
- checks and names: :func:`module_name`, :func:`check_module_templates`,
  :func:`check_loss_layer`.
"""

from __future__ import annotations

from editmethods_rome.contexts import MEMIT_STARTS, generate_prefixes
from editmethods_rome.depth import memit_layers, rome_layer, warn_chosen
from editmethods_rome.hparams_rome import (
    LocateThenEditHyperParams,
    check_length_params,
    length_params,
    optional_layers,
)
from editmethods_rome.keys import averaged_keys, context_sites, module_io_at
from editmethods_rome.method import (
    check_loss_layer,
    check_module_templates,
    module_name,
    traced_layer,
)
from editmethods_rome.update import module_stats
from editmethods_rome.values import ValueResult, optimize_values

__all__ = [
    "MEMIT_STARTS", "LocateThenEditHyperParams", "ValueResult", "averaged_keys",
    "check_length_params", "check_loss_layer", "check_module_templates", "context_sites",
    "generate_prefixes", "length_params", "memit_layers", "module_io_at", "module_name",
    "module_stats", "optimize_values", "optional_layers", "rome_layer", "traced_layer",
    "warn_chosen",
]
