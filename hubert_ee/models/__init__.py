"""Model parts: encoder, pretraining head (one file per part, configuration as dataclasses)."""
