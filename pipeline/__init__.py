"""sideman.pipeline: the whole-stack pipeline (train all, recipes, its report)."""
