"""MLflow tracking for stage processes — the only module of the library that imports mlflow.

- Store: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<absolute cwd>/mlflow.db` (absolute: a
  relative URI is lost under `dvc exp run --temp`); artifacts beside it in `mlartifacts/`.
- Nesting: a pipeline run passes its parent run id in `HUBERT_EE_PARENT_RUN_ID`; each stage
  is then a nested run under it. Without it every stage is a top-level run.
- Never a lost result: if the store cannot be reached (at start or mid-run) the stage prints
  one warning and goes on; its DVC metrics files are written either way.
- `HUBERT_EE_TRACKING=off` turns tracking off.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PARENT_ENV = "HUBERT_EE_PARENT_RUN_ID"
EXPERIMENT = "hubert-ee"


def default_tracking_uri(root: str | Path | None = None) -> str:
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{Path(root or Path.cwd()).resolve()}/mlflow.db"
    )


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "/"))
        else:
            out[key] = v
    return out


class StageTracker:
    """`with StageTracker("kmeans_iter1", params) as t: ... t.log_metrics({...})`."""

    def __init__(
        self,
        stage: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ):
        self.stage = stage
        self.params = flatten(params or {})
        self.tags = dict(tags or {})
        self.active = False
        self.run_id: str | None = None
        self._mlflow = None
        self._warned = False

    def _disable(self, err: BaseException) -> None:
        if not self._warned:
            self._warned = True
            print(
                f"warning: MLflow tracking unavailable for stage {self.stage} ({type(err).__name__}: {err}); "
                "continuing without it — metrics are still written to the DVC metrics files",
                file=sys.stderr,
            )
        self.active = False

    def __enter__(self) -> StageTracker:
        if os.environ.get("HUBERT_EE_TRACKING", "on").lower() in ("off", "0", "false"):
            return self
        if int(os.environ.get("RANK", "0")) != 0:
            return self  # under torchrun only rank 0 tracks
        # Fail fast against a dead server instead of MLflow's minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import mlflow
            self._mlflow = mlflow
            uri = default_tracking_uri()
            mlflow.set_tracking_uri(uri)
            if mlflow.get_experiment_by_name(EXPERIMENT) is None:
                artifacts = None
                if uri.startswith("sqlite:///"):
                    artifacts = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
                mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
            mlflow.set_experiment(EXPERIMENT)
            run = mlflow.start_run(
                run_name=self.stage,
                parent_run_id=os.environ.get(PARENT_ENV) or None,
                tags={"stage": self.stage, **self.tags},
            )
            self.run_id = run.info.run_id
            self.active = True
            if self.params:
                mlflow.log_params({k: str(v)[:500] for k, v in self.params.items()})
        except Exception as err:  # noqa: BLE001 - any tracking failure must not fail the stage
            self._disable(err)
        return self

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self.active:
            return
        flat = {
            k: float(v)
            for k, v in flatten(metrics).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        try:
            self._mlflow.log_metrics(flat, step=step)
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def log_artifact(self, path: str | Path) -> None:
        if not self.active or not Path(path).exists():
            return
        try:
            if Path(path).is_dir():
                self._mlflow.log_artifacts(str(path), artifact_path=Path(path).name)
            else:
                self._mlflow.log_artifact(str(path))
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.active:
            try:
                self._mlflow.end_run(status="FAILED" if exc_type else "FINISHED")
            except Exception as err:  # noqa: BLE001
                self._disable(err)


class pipeline_run:  # noqa: N801 (used as a context manager, like mlflow.start_run)
    """The parent MLflow run of one pipeline run; yields its id (None if tracking is off or down).

    Tags: git revision and dvc.lock hash of `root`, plus `tags` (e.g. the Prefect flow-run id).
    """

    def __init__(self, root: str | Path, tags: Mapping[str, str] | None = None):
        import hashlib
        import subprocess

        root = Path(root)
        lock = root / "dvc.lock"
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        self.tracker = StageTracker(
            "pipeline",
            tags={
                "git_revision": rev or "unknown",
                "dvc_lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest()
                if lock.exists()
                else "none",
                **dict(tags or {}),
            },
        )
        self.root = root

    def __enter__(self) -> str | None:
        cwd = Path.cwd()
        os.chdir(self.root)  # the default store is the project root's mlflow.db
        try:
            self.tracker.__enter__()
        finally:
            os.chdir(cwd)
        return self.tracker.run_id if self.tracker.active else None

    def __exit__(self, exc_type, exc, tb) -> None:
        self.tracker.__exit__(exc_type, exc, tb)
