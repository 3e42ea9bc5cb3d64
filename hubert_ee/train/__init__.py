"""Training loops, batching, masking, checkpoint/resume, distributed helpers."""
