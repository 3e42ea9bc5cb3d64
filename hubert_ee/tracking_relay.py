"""Stage runs through a spool: stage processes append their tracking events to a file, and the
process that owns the pipeline's parent run forwards them to MLflow while the pipeline runs.

Why: importing mlflow and opening its store costs a stage process seconds (about 3 s here),
the whole run of most smoke-profile stages; through the spool it is paid once per pipeline.
A pipeline started by `hubert-ee run` or the Prefect flow sets `HUBERT_EE_TRACKING_SPOOL`; a
stage run by a bare `dvc repro` (no spool) logs to MLflow itself (hubert_ee.tracking).

Files: `<spool>/<ns>-<pid>-<stage>.jsonl`, one JSON event per line (start, metrics, artifact,
end; the time of each is when it happened, so the MLflow run keeps the stage's real times),
and the artifacts copied beside it (a stage's plot may be rewritten before the relay reads
it). A forwarded file is deleted. A relay that cannot reach the store leaves the files for the
next one; a stage that died without an end event is ended KILLED by the relay's last pass.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SPOOL_ENV = "HUBERT_EE_TRACKING_SPOOL"


def _now_ms() -> int:
    return int(time.time() * 1000)


class SpoolWriter:
    """The stage side: no mlflow import, one append per event."""

    def __init__(self, folder: str | Path, stage: str):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{time.time_ns()}-{os.getpid()}-{stage}.jsonl"
        self.files = self.path.with_suffix(".files")
        self._copies = 0

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": _now_ms(), **fields}) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)

    def artifact(self, path: Path) -> None:
        self._copies += 1
        dst = self.files / str(self._copies) / path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, dst)
        else:
            shutil.copy2(path, dst)
        self.write("artifact", path=str(dst), dir=path.is_dir())


class SpoolRelay:
    """`with SpoolRelay(folder, uri, experiment):` forwards every spool file in `folder` to the
    store at `uri`, every `interval` seconds and once more on exit."""

    def __init__(self, folder: str | Path, uri: str, experiment: str, interval: float = 2.0):
        self.folder, self.uri, self.experiment = Path(folder), uri, experiment
        self.interval = interval
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._files: dict[Path, dict] = {}  # spool file → {"offset", "run_id"}
        self._client = None
        self.failed = False

    def __enter__(self) -> SpoolRelay:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="tracking-relay", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.drain(final=True)

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            self.drain()

    def drain(self, final: bool = False) -> None:
        """Forward what the spool files hold now; `final`: end the runs that never ended."""
        if self.failed:
            return
        try:
            for path in sorted(self.folder.glob("*.jsonl")):
                self._forward(path, final)
        except Exception as err:  # noqa: BLE001 - tracking never fails the pipeline
            self.failed = True
            print(
                f"warning: MLflow tracking relay stopped ({type(err).__name__}: {err}); the stage "
                f"events stay in {self.folder} for the next pipeline run, and every stage's "
                "metrics are in its DVC metrics file",
                file=sys.stderr,
            )

    def _forward(self, path: Path, final: bool) -> None:
        state = self._files.setdefault(path, {"offset": 0, "run_id": None})
        with open(path, "rb") as f:
            f.seek(state["offset"])
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written waits for the next pass
        ended = False
        for line in complete.splitlines():
            ended = self._event(state, json.loads(line)) or ended
        state["offset"] += len(complete)
        if not ended and final:
            if state["run_id"] is not None:
                self._store().set_terminated(state["run_id"], "KILLED", end_time=_now_ms())
            ended = True
        if ended:
            path.unlink()
            shutil.rmtree(path.with_suffix(".files"), ignore_errors=True)
            del self._files[path]

    def _event(self, state: dict, ev: Mapping[str, Any]) -> bool:
        client, kind = self._store(), ev["event"]
        if kind == "start":
            state["run_id"] = start_run(client, self.uri, self.experiment, ev)
            return False
        run_id = state["run_id"]
        if run_id is None:  # a spool file without its start event: skipped, deleted at its end
            return kind == "end"
        if kind == "metrics":
            from mlflow.entities import Metric

            client.log_batch(
                run_id,
                metrics=[
                    Metric(k, v, ev["time"], ev["step"] or 0) for k, v in ev["metrics"].items()
                ],
            )
        elif kind == "artifact":
            if ev["dir"]:
                client.log_artifacts(run_id, ev["path"], artifact_path=Path(ev["path"]).name)
            else:
                client.log_artifact(run_id, ev["path"])
        elif kind == "end":
            client.set_terminated(run_id, ev["status"], end_time=ev["time"])
            return True
        return False

    def _store(self):
        if self._client is None:
            from hubert_ee.tracking import import_mlflow

            mlflow = import_mlflow()
            self._client = mlflow.MlflowClient(self.uri)
        return self._client


PARAM_VALUE_CHARS = 500  # what the stage runs have always kept of a long param value


def param_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow stores them: strings, long values cut to PARAM_VALUE_CHARS."""
    return {k: str(v)[:PARAM_VALUE_CHARS] for k, v in params.items()}


def start_run(client, uri: str, experiment: str, ev: Mapping[str, Any]) -> str:
    """A stage's run from its spooled start event: nested, named, tagged and with its params."""
    from mlflow.entities import Param

    from hubert_ee.tracking import experiment_id

    tags = {"stage": ev["stage"], **ev["tags"]}
    if ev.get("parent"):
        tags["mlflow.parentRunId"] = ev["parent"]
    run = client.create_run(
        experiment_id(client, uri, experiment),
        start_time=ev["time"],
        tags=tags,
        run_name=ev["stage"],
    )
    params = [Param(k, v) for k, v in param_values(ev["params"]).items()]
    if params:
        client.log_batch(run.info.run_id, params=params)
    return run.info.run_id
