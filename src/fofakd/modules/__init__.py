"""Training-only building blocks: region-aware attention, aligners, prompts, projectors (import the submodules)."""
