"""Recognition metrics (WER/CER) and speed measurement."""
