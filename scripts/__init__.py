"""Scripts run from the repository root; ``chaos`` as a module (``python -m scripts.chaos``),
so that it imports the fault helpers of the package ``tests``."""
