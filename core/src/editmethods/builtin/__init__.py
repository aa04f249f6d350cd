"""Plugins the core registers itself, exactly as third-party plugins are registered."""

BUILTIN_PLUGINS = (
    "editmethods.builtin.weights",
    "editmethods.builtin.architectures",
    "editmethods.evaluation.metrics.target",
    "editmethods.evaluation.metrics.counterfact",
    "editmethods.evaluation.metrics.answers",
    "editmethods.evaluation.metrics.fluency",
    "editmethods.evaluation.metrics.wild",
)
