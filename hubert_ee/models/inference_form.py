"""The inference form of a model: the same function, computed the way that is fastest at
batch size 1 on a CPU (DESIGN §8). Every model a speed figure compares is put in this form, so
a ratio measures architectures, not kernels.

Parts with a faster form: the log-mel front end (power spectrum without a complex abs) and
the convolutional positional embedding (weight norm applied once, grouped conv as one matmul).
Outputs equal the training form's to float rounding; checkpoints are unchanged (the folded
weight is not saved) and `model.train()` returns every part to its training form.
"""

from __future__ import annotations

from torch import nn

from hubert_ee.models.logmel_frontend import LogMelFrontend
from hubert_ee.models.transformer import ConvPositionalEmbedding


def inference_form(model: nn.Module) -> nn.Module:
    """`model` in eval mode with every part in its inference form (in place; returns it)."""
    model.eval()
    for part in model.modules():
        if isinstance(part, ConvPositionalEmbedding | LogMelFrontend):
            part.fold()
    return model
