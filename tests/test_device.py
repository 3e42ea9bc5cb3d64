"""How many cores a stage takes: OMP_NUM_THREADS when set (parallel test workers, several jobs on
one machine), else the process's CPU set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hubert_ee.device import cpu_threads


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
