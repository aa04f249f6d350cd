"""Tools that method packages build on: tracing activations, second-moment statistics (and
their corpora), causal tracing and restoration. They use the contract (``editmethods``) and
know no method; no module here is imported by the contract."""
