"""foo against the core's conformance kit: a tiny random model (no download) of every type
the MethodSpec declares (``("*",)``: all the kit builds).

Run with ``pytest`` after ``pip install -e ".[test]"``: the kit edits each model, checks the target
moves, rollback is exact, failures leave the model untouched, bad input is refused and
saved edits reload only on their own base model.
"""

import editmethods_foo.plugin
from editmethods.testing import MethodConformance


class TestFoo(MethodConformance):
    method = "foo"
    plugin = editmethods_foo.plugin
    hparams = {"layer": 1, "step_norm": 1.0, "num_steps": 8}
