"""Where a stage computes: the GPU when the machine has one, else the CPU.

Pretraining always took the GPU when there was one (torchrun/DDP convention); fine-tuning,
distillation, exit training, teacher outputs and model-layer features follow the same rule, so
one `dvc repro` runs the whole DAG on a GPU box without a flag. Latency measurements (the
teacher/student speed ratio, the early-exit threshold search) stay on the CPU at batch size 1:
that is the deployment they stand for, and a GPU's batch-1 time is launch overhead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def compute_device() -> torch.device:
    """CUDA device 0 (TF32 matmuls allowed, as fairseq and torchaudio recipes train) or the CPU."""
    import torch  # here, so that cpu_threads() is usable where torch is not imported

    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_threads() -> int:
    """Cores a stage may use: `OMP_NUM_THREADS` when it is set (the OpenMP/torch convention for
    sharing a machine between jobs, e.g. parallel test workers), else the CPUs this process may
    run on (its affinity mask, which `taskset` and container CPU sets narrow)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity masks on this OS
        return max(1, os.cpu_count() or 1)
