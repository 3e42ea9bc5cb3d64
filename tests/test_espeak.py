import subprocess
import sys

import numpy as np
import pytest

from hubert_ee.data.espeak import EspeakEngine, available_variants, validate_voice


@pytest.fixture(scope="module")
def engine():
    return EspeakEngine()


def test_synthesis_and_phone_alignment_cover_the_audio(engine):
    s = engine.synthesize("the old king found a map", "en-us+m1", 170, 50, 50, seed=3)
    assert s.sample_rate == 22050 and s.audio.dtype == np.int16
    assert 0.8 < len(s.audio) / s.sample_rate < 3.5
    starts = [p.start for p in s.phones]
    assert starts == sorted(starts)
    assert all(p.end > p.start for p in s.phones)
    # Consecutive phones tile the utterance (each ends where the next starts).
    assert all(a.end == b.start for a, b in zip(s.phones, s.phones[1:], strict=False))
    assert s.phones[-1].end == len(s.audio)
    speech = [p for p in s.phones if not p.phone.startswith("_")]
    assert len(speech) >= 12  # ~16 phones in "the old king found a map"


def test_faster_rate_gives_shorter_audio(engine):
    slow = engine.synthesize("the old king found a map", "en-us", 120, 50, 50, 1)
    fast = engine.synthesize("the old king found a map", "en-us", 300, 50, 50, 1)
    assert len(fast.audio) < 0.6 * len(slow.audio)


def test_same_sequence_in_fresh_processes_is_bit_exact():
    code = (
        "import hashlib\n"
        "from hubert_ee.data.espeak import EspeakEngine\n"
        "e = EspeakEngine()\n"
        "h = hashlib.sha1()\n"
        "for i in range(3):\n"
        "    h.update(e.synthesize('a quick test number %d' % i, 'en-gb-scotland+f4', 200, 40, 50, i).audio.tobytes())\n"
        "print(h.hexdigest())\n"
    )
    out = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(out) == 1


def test_misspelled_voice_is_an_error_not_a_silent_fallback():
    assert "f3" in available_variants()
    validate_voice("en-us+f3")
    with pytest.raises(ValueError, match="unknown espeak-ng voice"):
        validate_voice("en-xx+f3")
    with pytest.raises(ValueError, match="variant 'fx'"):
        validate_voice("en-us+fx")
