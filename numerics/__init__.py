"""sideman.numerics: torch-free numerics shared by training, evaluation and the runtime."""
