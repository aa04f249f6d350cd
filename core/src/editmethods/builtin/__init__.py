"""Plugins the core registers itself, exactly as third-party plugins are registered."""

BUILTIN_PLUGINS = (
    "editmethods.builtin.weights",
    "editmethods.builtin.architectures",
    "editmethods.metrics.target",
    "editmethods.metrics.counterfact",
    "editmethods.metrics.answers",
    "editmethods.metrics.fluency",
    "editmethods.metrics.wild",
)
