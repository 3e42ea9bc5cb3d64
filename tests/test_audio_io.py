"""Resampling: our cached-filter `resample_poly` must give scipy's samples bit for bit, since
the corpus (and every stage after it) is built from them."""

import numpy as np
import pytest
from scipy import signal

from hubert_ee.data.audio_io import resample, resample_poly


@pytest.mark.parametrize("up,down", [(1, 2), (2, 1), (320, 441), (10, 9), (4, 6), (3, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_resample_poly_equals_scipy_bit_for_bit(up, down, dtype):
    x = (np.random.default_rng(up * 1000 + down).standard_normal(4001) * 1000).astype(dtype)
    ours = resample_poly(x, up, down)
    ref = signal.resample_poly(x, up, down)
    assert ours.dtype == ref.dtype
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(resample_poly(x, up, down), ref)  # cached filter, same again


def test_resample_keeps_a_tone_and_the_duration():
    sr_in, sr_out = 22050, 16000
    t = np.arange(sr_in) / sr_in
    y = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), sr_in, sr_out)
    assert y.dtype == np.float32 and len(y) == sr_out
    ref = np.sin(2 * np.pi * 440 * np.arange(sr_out) / sr_out)
    assert np.max(np.abs(y[200:-200] - ref[200:-200])) < 1e-3
