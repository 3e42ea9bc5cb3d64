"""Where a stage computes: the GPU when the machine has one, else the CPU.

Pretraining always took the GPU when there was one (torchrun/DDP convention); fine-tuning,
distillation, exit training, teacher outputs and model-layer features follow the same rule, so
one `dvc repro` runs the whole DAG on a GPU box without a flag. Latency measurements (the
teacher/student speed ratio, the early-exit threshold search) stay on the CPU at batch size 1:
that is the deployment they stand for, and a GPU's batch-1 time is launch overhead.

A training section's `amp` says where its forward runs under bf16 autocast: `auto` on a GPU only,
`native` wherever the hardware computes bf16 natively (a GPU, or a CPU whose oneDNN kernels use
AVX-512 BF16 / AMX; elsewhere bf16 is emulated and slower than fp32), `bf16` always, `off`
never. Losses and evaluation stay in fp32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import TYPE_CHECKING, Any

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


def bf16_native(device: torch.device) -> bool:
    """Whether `device` computes bf16 matmuls natively (CUDA, or a CPU with AVX-512 BF16 / AMX)."""
    import torch

    if device.type == "cuda":
        return True
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def uses_bf16(amp: str, device: torch.device) -> bool:
    """The `amp` setting of a training section on `device` (auto | native | bf16 | off)."""
    if amp not in ("auto", "native", "bf16", "off"):
        raise ValueError(f"amp must be auto, native, bf16 or off, not {amp!r}")
    if amp == "auto":
        return device.type == "cuda"
    return amp == "bf16" or (amp == "native" and bf16_native(device))


def autocast(amp: str, device: torch.device):
    """bf16 autocast for a training forward pass, or a no-op context (see `uses_bf16`)."""
    import torch

    if uses_bf16(amp, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def float32_outputs(out: Any) -> Any:
    """`out` (a tensor, a dict or a dataclass of them) with every floating tensor in fp32: the
    losses (CTC, KD) run outside autocast on what the autocast forward returned."""
    import torch

    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, dict):
        return {k: float32_outputs(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)) and not hasattr(out, "_fields"):
        return type(out)(float32_outputs(v) for v in out)
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        changes = {f.name: float32_outputs(getattr(out, f.name)) for f in dataclasses.fields(out)
                   if f.init}  # fmt: skip
        return dataclasses.replace(out, **changes)
    return out
