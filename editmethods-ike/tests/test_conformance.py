"""editmethods-ike against the core's conformance kit, on tiny GPT-2 and LLaMA."""

from pathlib import Path

import editmethods_ike.plugin
from editmethods.testing import MethodConformance

DATA = Path(__file__).parent / "data" / "counterfact-mini.json"


class TestIKE(MethodConformance):
    method = "ike"
    plugin = editmethods_ike.plugin
    # The tiny models have 64 positions: demonstrations would not fit before the query
    # (the router would drop them with a warning); k=0 is the new fact alone.
    hparams = {"k": 0, "demonstrations": str(DATA)}
    model_types = ("gpt2", "llama")
    writes_weights = False

