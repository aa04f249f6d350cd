"""Tools that method packages build on: tracing activations, second-moment statistics (and
their corpora), causal tracing and restoration, the sentence encoder and context routing
(IKE, SERAC), finding a package's bundled checkpoints (MEND, SERAC). Code that two methods
share lives here rather than in one of them, so that no method package imports another.
They use the contract (``editmethods``) and know no method; no module here is imported by
the contract."""
