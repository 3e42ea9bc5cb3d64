"""The Prefect flow over dvc.yaml's graph: one task per DVC stage.

DVC owns the graph and staleness: each task runs `dvc --wait-for-lock repro --single-item
<stage>` in a subprocess (DVC releases its lock while a stage's command runs, so independent
stages run concurrently), waits on the tasks of its upstream stages, and does no Prefect-side
caching (`NO_CACHE`) so a stage whose data changed is never skipped by Prefect. `dvc repro` and
this flow are two doors to the same DAG: after one ran, the other recomputes nothing.
Run once: `python -m flows.pipeline [--root DIR]`; serve the scheduled deployment:
`python -m flows.pipeline serve [--root DIR]` (cron from params `orchestration.cron`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from hubert_ee import run_report as rr
from hubert_ee.run_tracking import parent_run, publish, relay, stage_env, tag_run


def stage_graph(root: str | Path) -> dict[str, set[str]]:
    """Stage name → names of the stages it depends on, as DVC sees dvc.yaml."""
    from dvc.repo import Repo

    # DVC names stages relative to the working directory: read the graph from inside root so
    # the names work for `dvc repro` run there, whatever directory the flow was started in.
    with contextlib.chdir(root), Repo(".") as repo:
        g = repo.index.graph
        return {s.addressing: {u.addressing for u in g.successors(s)} for s in g.nodes}


def topological(graph: dict[str, set[str]]) -> list[str]:
    order, done = [], set()
    while len(order) < len(graph):
        ready = sorted(n for n in graph if n not in done and graph[n] <= done)
        if not ready:
            raise ValueError(f"dvc.yaml graph has a cycle among {sorted(set(graph) - done)}")
        order += ready
        done |= set(ready)
    return order


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def run_stage(root: str, stage: str, env: dict[str, str]) -> str:
    """`dvc repro` of one stage, its output streamed into the task's log."""
    log = get_run_logger()
    cmd = ["dvc", "--wait-for-lock", "repro", "--single-item", stage]
    log.info("%s$ %s", root, " ".join(cmd))
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    for line in proc.stdout:
        line = line.rstrip()
        if line and "\r" not in line:
            lines.append(line)
            log.info(line)
    if proc.wait() != 0:
        raise RuntimeError(
            f"stage {stage} failed (exit {proc.returncode}); last lines:\n" + "\n".join(lines[-20:])
        )
    return "skipped" if any("didn't change, skipping" in ln for ln in lines) else "ran"


@task(cache_policy=NO_CACHE)
def register_model(root: str, env: dict[str, str]) -> str:
    """Champion/challenger step (hubert_ee/registry.py) in its own process, like the stages."""
    log = get_run_logger()
    cmd = [str(Path(sys.executable).parent / "hubert-ee"), "register", "--root", root]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    for line in (proc.stdout + proc.stderr).splitlines():
        log.info(line)
    if proc.returncode != 0:
        raise RuntimeError(f"register failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


@flow(name="hubert-ee-pipeline", log_prints=True)
def pipeline(root: str = ".", max_parallel: int = 2, registry: bool = True) -> dict[str, str]:
    """Run the DAG, then (if `registry`) the registry step; returns stage → "ran" | "skipped"
    and `register` → the registry decision."""
    root = str(Path(root).resolve())
    from hubert_ee.config import check_project_params

    check_project_params(root)  # before any work: also the sections no changed stage reads
    graph = stage_graph(root)
    from prefect.runtime import flow_run

    parent = parent_run(root, {"prefect_flow_run_id": str(flow_run.id or "")})
    with parent as parent_id:
        env = {
            **os.environ,
            "DVC_NO_ANALYTICS": "1",
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        env.update(stage_env(root, parent_id))
        futures = {}
        with relay(root, parent_id), ThreadPoolTaskRunner(max_workers=max_parallel) as runner:
            for stage in topological(graph):
                futures[stage] = runner.submit(
                    run_stage.with_options(task_run_name=stage),
                    parameters={"root": root, "stage": stage, "env": env},
                    wait_for=[futures[u] for u in graph[stage]],
                )
            result = {stage: f.result() for stage, f in futures.items()}
        if registry:
            result["register"] = register_model(root, env)
            tag_run(parent.tracker, {"registry_decision": result["register"]})
        publish_report(root, parent.tracker)
        return result


def publish_report(root: str, tracker) -> dict[str, float]:
    """The headline figures on the parent MLflow run (`hubert_ee.run_tracking.publish`) and as a
    Prefect markdown artifact of the flow run (Artifacts tab of the Prefect UI)."""
    from prefect.artifacts import create_markdown_artifact

    figures = publish(root, tracker)
    create_markdown_artifact(
        markdown=rr.render_markdown(rr.table(figures), ["figure", "this run"], "hubert-ee run"),
        key="hubert-ee-run-report",
        description="headline figures of this pipeline run (metrics/*.json)",
    )
    return figures


def serve(root: str, name: str, cron: str | None, max_parallel: int, registry: bool) -> None:
    """Serve the flow as a deployment (cron schedule from params unless overridden); trigger
    a run with `prefect deployment run 'hubert-ee-pipeline/<name>'`."""
    pipeline.serve(
        name=name,
        cron=cron,
        parameters={"root": str(Path(root).resolve()), "max_parallel": max_parallel,
                    "registry": registry},
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("command", nargs="?", default="run", choices=["run", "serve"])
    ap.add_argument("--root", default=".")
    ap.add_argument("--max-parallel", type=int, default=None, help="default: params")
    ap.add_argument("--no-register", action="store_true", help="skip the registry step")
    ap.add_argument("--name", default="scheduled", help="deployment name (serve)")
    ap.add_argument("--cron", default=None, help="cron schedule (serve; default: params)")
    args = ap.parse_args()
    from hubert_ee.config import load_params

    orch = load_params(Path(args.root) / "params.yaml").orchestration
    parallel = args.max_parallel or orch.max_parallel
    if args.command == "serve":
        serve(args.root, args.name, args.cron or orch.cron, parallel, not args.no_register)
        return
    result = pipeline(args.root, parallel, not args.no_register)
    for stage, outcome in result.items():
        print(f"{stage}: {outcome}")


if __name__ == "__main__":
    main()
