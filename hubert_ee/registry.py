"""The MLflow model registry: the pipeline's final model as a pyfunc, champion/challenger.

Besides hubert_ee/tracking.py this is the only module that imports mlflow. The registered
model is a pyfunc whose `predict` takes audio (file paths, or sample arrays at 16 kHz or with
a `sample_rate` column) and returns one transcript per input; `mlflow models serve -m
models:/hubert-ee@champion --env-manager local` serves it over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from hubert_ee.metrics.speed import Speedup, interleaved_times, paired_speedup
from hubert_ee.tracking import EXPERIMENT, PARENT_ENV, default_tracking_uri

MODEL_NAME = "hubert-ee"


class HubertEEPyfunc(mlflow.pyfunc.PythonModel):
    """predict(DataFrame with `path`, or `audio` [+ `sample_rate`]; or a list/array of samples)
    → a DataFrame with one row per input: `text`, and `error` (None, or why that input could not
    be transcribed). One bad input never fails the others."""

    def load_context(self, context) -> None:
        from hubert_ee.inference import Recognizer

        self.recognizer = Recognizer.load(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        from hubert_ee.inference import AudioError

        rec = self.recognizer
        if isinstance(model_input, pd.DataFrame):
            if "path" in model_input.columns:
                items = rec.transcribe_each([str(p) for p in model_input["path"]])
                return _records([(None, i) if isinstance(i, AudioError) else (i.text, None)
                                 for i in items])  # fmt: skip
            if "audio" not in model_input.columns:
                raise ValueError("input needs a `path` or an `audio` column")
            rates = model_input.get("sample_rate", pd.Series([16000] * len(model_input)))
            arrays = list(zip(model_input["audio"], rates, strict=True))
        else:
            x = np.asarray(model_input, dtype=np.float32)
            arrays = [(x, 16000)] if x.ndim == 1 else [(row, 16000) for row in x]
        out = []
        for a, sr in arrays:
            try:
                out.append(
                    (rec.transcribe_array(np.asarray(a, dtype=np.float32), int(sr)).text, None)
                )
            except AudioError as err:
                out.append((None, str(err)))
        return _records(out)


def _records(rows: list[tuple[str | None, object]]) -> pd.DataFrame:
    # object columns: pandas' string dtype would turn a missing text or error into NaN
    return pd.DataFrame(
        {
            "text": pd.Series([t for t, _ in rows], dtype=object),
            "error": pd.Series([None if e is None else str(e) for _, e in rows], dtype=object),
        }
    )


def bundle(exits_dir: Path, threshold_dir: Path, dest: Path) -> str:
    """Model + operating point in one folder; returns their content hash."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(exits_dir / "model.safetensors", dest / "model.safetensors")
    shutil.copy2(threshold_dir / "operating_point.json", dest / "operating_point.json")
    h = hashlib.sha256()
    for name in ("model.safetensors", "operating_point.json"):
        h.update((dest / name).read_bytes())
    return h.hexdigest()


def download_model(uri: str) -> Path:
    """Local folder holding model.safetensors for an MLflow model URI."""
    mlflow.set_tracking_uri(default_tracking_uri())
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    found = sorted(local.rglob("model.safetensors"))
    if not found:
        raise FileNotFoundError(f"{uri} holds no model.safetensors (not a hubert-ee model)")
    return found[0].parent


@dataclass
class Evaluation:
    wer: float
    seconds: float  # median per-utterance processing time
    utterances: int


@dataclass
class Decision:
    version: str | None
    promoted: bool
    reason: str
    challenger: dict | None
    champion: dict | None


def evaluate(rec, refs: list[str], paths: list[str]) -> Evaluation:
    """WER and median per-utterance time of a loaded Recognizer on the test files."""
    from hubert_ee.metrics.wer import wer

    out = rec.transcribe(paths)
    return Evaluation(
        round(wer(refs, [t.text for t in out]), 5),
        float(np.median([t.processing_s for t in out])),
        len(out),
    )


def compare_speed(challenger, champion, paths: list[str], n: int = 20, repeats: int = 5) -> Speedup:
    """Champion time / challenger time (loaded Recognizers) on the same audio, interleaved and
    paired by repeat."""
    from hubert_ee.inference import load_audio

    recs = {"champion": champion, "challenger": challenger}
    audio = [load_audio(p)[0] for p in paths[:n]]
    times = interleaved_times(
        {name: (lambda x, r=rec: r.transcribe_array(x)) for name, rec in recs.items()},
        audio,
        repeats,
    )
    return paired_speedup(times["champion"], times["challenger"])


def promotion(challenger_wer: float, champion_wer: float | None, speed: Speedup | None):
    """(promote?, reason). Lower WER wins; on equal WER the challenger must be faster in every
    paired repeat (a speed "win" inside the timing noise promotes nothing)."""
    if champion_wer is None:
        return True, "no champion yet"
    if challenger_wer < champion_wer:
        return True, f"lower WER ({challenger_wer} < {champion_wer})"
    if challenger_wer == champion_wer and speed is not None:
        spread = f"{speed.median:.3f}x, range {speed.low:.3f}-{speed.high:.3f} over repeats"
        if speed.clearly_faster:
            return True, f"same WER, faster ({spread})"
        return False, f"champion stays: same WER, speed difference within noise ({spread})"
    return False, f"champion stays (WER {champion_wer} vs {challenger_wer})"


def register(
    root: Path, refs: list[str], paths: list[str], tags: dict[str, str] | None = None
) -> Decision:
    """Register models/exits + models/threshold_search as `challenger`; move `champion` to it
    only if its test WER is lower (ties: faster). A model already registered is not registered
    again, so re-running an unchanged pipeline promotes nothing."""
    mlflow.set_tracking_uri(default_tracking_uri(root))
    mlflow.set_experiment(EXPERIMENT)
    client = MlflowClient()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model_dir"
        digest = bundle(root / "models/exits", root / "models/threshold_search", model_dir)
        try:
            existing = client.search_model_versions(f"name='{MODEL_NAME}'")
        except Exception:  # noqa: BLE001 - no registered model yet
            existing = []
        same = [v for v in existing if v.tags.get("content_sha256") == digest]
        if same:
            return Decision(
                same[0].version, False, "unchanged: this model is already registered", None, None
            )
        with mlflow.start_run(
            run_name="register", parent_run_id=os.environ.get(PARENT_ENV) or None,
            tags={"stage": "register", **(tags or {})},
        ):  # fmt: skip
            from hubert_ee.inference import Recognizer

            challenger_rec = Recognizer.load(model_dir)
            challenger = evaluate(challenger_rec, refs, paths)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),  # no pickle
                artifacts={"model_dir": str(model_dir)},
                registered_model_name=MODEL_NAME,
                pip_requirements=["hubert-ee"],
            )
            version = str(info.registered_model_version)
            client.set_model_version_tag(MODEL_NAME, version, "content_sha256", digest)
            client.set_registered_model_alias(MODEL_NAME, "challenger", version)
            champion = None
            try:
                champ_v = client.get_model_version_by_alias(MODEL_NAME, "champion")
                champion_rec = Recognizer.load(download_model(f"models:/{MODEL_NAME}@champion"))
                champion = evaluate(champion_rec, refs, paths)
            except Exception:  # noqa: BLE001 - no champion yet
                champ_v = None
            speed = None
            if champion is not None and challenger.wer == champion.wer:
                speed = compare_speed(challenger_rec, champion_rec, paths)
            promote, reason = promotion(challenger.wer, champion.wer if champion else None, speed)
            if champ_v is not None and not promote:
                reason = f"v{champ_v.version}: {reason}"
            if promote:
                client.set_registered_model_alias(MODEL_NAME, "champion", version)
            mlflow.log_metrics(
                {"challenger_wer": challenger.wer, "challenger_seconds": challenger.seconds}
                | ({"champion_wer": champion.wer} if champion else {})
            )
            mlflow.set_tags({"decision": reason, "promoted": str(promote), "version": version})
            lock = root / "dvc.lock"
            if lock.exists():
                mlflow.log_artifact(str(lock))
            decision = Decision(
                version, promote, reason, asdict(challenger), asdict(champion) if champion else None
            )
            mlflow.log_text(json.dumps(asdict(decision), indent=2), "decision.json")
    return decision
