"""How many cores a stage takes: OMP_NUM_THREADS when set (parallel test workers, several jobs on
one machine), else the process's CPU set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hubert_ee.device import cpu_threads, float32_outputs, uses_bf16


def test_omp_num_threads_is_honoured(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads() == 3


@pytest.mark.parametrize("bad", ["", "0", "two", "-1"])
def test_unset_or_unusable_omp_num_threads_means_the_cpu_set(monkeypatch, bad):
    monkeypatch.setenv("OMP_NUM_THREADS", bad)
    assert cpu_threads() == len(os.sched_getaffinity(0))


def test_a_narrowed_cpu_set_is_what_a_stage_gets():
    """`taskset`-style narrowing (as container CPU sets do): os.cpu_count() would still say
    every core of the host."""
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from hubert_ee.device import cpu_threads; print(cpu_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_importing_it_does_not_import_torch():
    """`prepare`'s worker processes import the module that uses it and must stay torch-free."""
    code = "import sys, hubert_ee.data.prepare; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_amp_auto_is_a_gpu_and_native_is_wherever_the_hardware_computes_bf16(monkeypatch):
    import torch

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert uses_bf16("bf16", cpu) and not uses_bf16("off", cuda)
    assert uses_bf16("auto", cuda) and not uses_bf16("auto", cpu)
    assert uses_bf16("native", cuda)  # every CUDA device the pipeline targets has bf16 units
    for native in (True, False):  # AVX-512 BF16 / AMX vs an AVX2-only CPU (emulated: slower)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda n=native: n)
        assert uses_bf16("native", cpu) is native
        assert not uses_bf16("auto", cpu)
    with pytest.raises(ValueError, match="auto, native, bf16 or off"):
        uses_bf16("fp16", cpu)


def test_float32_outputs_casts_every_floating_tensor_of_a_nested_output():
    import dataclasses

    import torch

    @dataclasses.dataclass
    class Out:
        logits: torch.Tensor
        lengths: torch.Tensor
        exits: dict

    out = Out(torch.ones(2, dtype=torch.bfloat16), torch.tensor([3, 4]),
              {1: torch.zeros(1, dtype=torch.bfloat16), 2: None})  # fmt: skip
    got = float32_outputs(out)
    assert got.logits.dtype == torch.float32 and torch.equal(got.logits, torch.ones(2))
    assert got.lengths.dtype == torch.int64  # integer tensors stay as they are
    assert got.exits[1].dtype == torch.float32 and got.exits[2] is None
    assert out.logits.dtype == torch.bfloat16  # the input is not changed in place
    assert float32_outputs((torch.ones(1, dtype=torch.bfloat16),))[0].dtype == torch.float32
