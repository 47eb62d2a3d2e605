"""Training runs: config, loop, checkpoints, evaluation and export (import the submodules)."""
