"""Yardsticks we did not train: basic-pitch note transcription (notes, key and time) and
the musicnn audio embedding, used to measure what Sideman's models make."""
