"""editmethods-mend against the core's conformance kit, on a tiny model of every type its
MethodSpec declares.

A tiny random model has no trained editor, so the kit runs a freshly initialized one
(``checkpoint: untrained``): the identity editor turns the edit into a gradient step, which
exercises the whole path (factor capture, editor, low-rank deltas, exact rollback).
"""

import editmethods_mend.plugin
from editmethods.testing import MethodConformance


class TestMEND(MethodConformance):
    method = "mend"
    plugin = editmethods_mend.plugin
    hparams = {"checkpoint": "untrained", "edit_lr": 0.1}
