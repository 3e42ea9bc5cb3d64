"""CTC vocabulary and decoding (greedy, beam search)."""
