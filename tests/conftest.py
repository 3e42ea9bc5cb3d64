from __future__ import annotations

from pathlib import Path

import pytest

from hubert_ee.config import Params, profile_params, validate_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def smoke_raw() -> dict:
    return profile_params(ROOT, "smoke")


@pytest.fixture
def smoke_params(smoke_raw) -> Params:
    return validate_params(smoke_raw)
