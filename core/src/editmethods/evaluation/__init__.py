"""Measuring edits: the built-in metric plugins (``metrics``), dataset loaders, the benchmark
runner, its configuration, result store and reports. Built on the contract (``editmethods``);
the contract imports nothing from here (the built-in metrics reach the Editor as plugins)."""
