"""Run the DAG of a profile (default `gpu`) on a machine that has torch but no DVC, then the GPU
benchmarks, and collect what a user looks at: metrics, plots, the headline and a log.

The lent GPU machine has torch/torchaudio and the scientific stack but no network: DVC, MLflow
and Prefect are not there, and the few other packages travel as wheels (`make gpu-wheels`).
So this program reads dvc.yaml itself: every stage in file order (the file lists them in
dependency order; `foreach` stages expanded), each `cmd` run in the profile's workspace
(`hubert_ee.profiles.materialize`, as `make repro PROFILE=gpu` makes it) with tracking off.
A preflight imports every stage program first, so a missing wheel fails in seconds.

One command there may run 10 minutes: run this detached (`setsid nohup ... &`) and poll, or
give `--deadline-min` and call again. A finished stage is marked done
(`<workspace>/.gpu_done/<stage>` holds its command) and skipped by the next call; a stage cut
at the deadline resumes from its own checkpoint; a failed stage ends the DAG with its log tail
in the report. Benchmarks before or after the DAG (`--bench-before`, `--bench-after`):
pretraining throughput and measured-FLOP MFU vs torchaudio (bf16), k-means on the GPU vs
sklearn's recipe and faiss on the profile's own features, inference speed on the GPU.

Run: `python benchmarks/gpu_profile.py --out DIR [--deadline-min 24]
      [--bench-before pretrain_base_bf16] [--bench-after kmeans_iter1,inference_cuda]`.
DIR gets `gpu_profile.json` (stage times and status of every call, headline, benchmark rows),
`gpu_profile.log` and `gpu_profile_outputs.tar.gz` (metrics/, plots/, summary/, reports/ and
the stage logs of the workspace), rewritten after every stage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hubert_ee.profiles import materialize  # noqa: E402

COLLECT = ("metrics", "plots", "summary", "reports")


def expand_stages(dvc_yaml: dict, params: dict) -> list[tuple[str, str]]:
    """(stage name, command) in file order; `foreach: ${a.b}` + `${item}` as DVC expands it."""
    out = []
    for name, st in dvc_yaml["stages"].items():
        if "foreach" not in st:
            out.append((name, st["cmd"]))
            continue
        ref = st["foreach"].strip()
        if not (ref.startswith("${") and ref.endswith("}")):
            raise ValueError(f"stage {name}: foreach {ref!r} is not a ${{params.key}} reference")
        items = params
        for part in ref[2:-1].split("."):
            items = items[part]
        out.extend(
            (f"{name}@{item}", st["do"]["cmd"].replace("${item}", str(item))) for item in items
        )
    return out


def preflight(modules: list[str]) -> list[str]:
    """What would break a stage minutes into the run, found in seconds: every stage program
    imports (so a missing wheel shows now, not after a training loop), and the optional
    pieces imported lazily deep inside a stage (the first GPU run lost a fine-tuned teacher to
    the beam decoder's flashlight-text, imported only after training)."""
    import importlib

    problems = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 (collect them all)
            problems.append(f"{name}: {type(err).__name__}: {err}")
    try:
        from torchaudio.models.decoder import ctc_decoder  # noqa: F401 (BeamDecoder's backend)
    except Exception as err:  # noqa: BLE001
        problems.append(f"beam search (flashlight-text): {type(err).__name__}: {err}")
    return problems


def stage_modules(stages: list[tuple[str, str]]) -> list[str]:
    """`tasks.<x>` of every `python -m tasks.<x>` command, in order, once."""
    mods = []
    for _, cmd in stages:
        argv = cmd.split()
        if "-m" in argv and argv[argv.index("-m") + 1] not in mods:
            mods.append(argv[argv.index("-m") + 1])
    return mods


class Log:
    def __init__(self, path: Path):
        self.f = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the run)

    def __call__(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        self.f.write(line + "\n")


def run_logged(
    cmd: list[str], cwd: Path, env: dict, log: Log, stage_log: Path, timeout: float
) -> tuple[int, str]:
    """Run, streaming output to the stage's log; (returncode, last lines). 124 on timeout."""
    with open(stage_log, "a") as f:
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
        try:
            rc = p.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
            rc = 124
    tail = stage_log.read_text(errors="replace").splitlines()[-25:]
    return rc, "\n".join(tail)


def run_dag(
    ws: Path,
    params: dict,
    deadline: float,
    env: dict,
    log: Log,
    only: set[str] | None,
    on_progress: Callable[[list[dict]], None],
) -> list[dict]:
    stages = expand_stages(yaml.safe_load((ws / "dvc.yaml").read_text()), params)
    rows: list[dict] = []
    on_progress(rows)
    done_dir, logs = ws / ".gpu_done", ws / "logs"
    done_dir.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)
    for name, cmd in stages:
        marker = done_dir / name.replace("@", "_")
        if only and name.split("@")[0] not in only:
            continue
        if marker.exists() and marker.read_text() == cmd:
            rows.append({"stage": name, "status": "done earlier"})
            continue
        left = deadline - time.time()
        if left < 20:
            log(f"{name}: not started, {left:.0f} s left before the deadline (run again to go on)")
            rows.append({"stage": name, "status": "not started (deadline)"})
            break
        argv = cmd.split()
        if argv[0] == "python":
            argv[0] = sys.executable  # the machine may have only python3
        log(f"{name}: {' '.join(argv[1:])}")
        t0 = time.time()
        rc, tail = run_logged(argv, ws, env, log, logs / f"{name.replace('@', '_')}.log", left)
        row = {"stage": name, "seconds": round(time.time() - t0, 1), "returncode": rc}
        if rc == 0:
            marker.write_text(cmd)
            row["status"] = "ok"
            log(f"{name}: ok in {row['seconds']} s")
            rows.append(row)
            on_progress(rows)
            continue
        row["status"] = "cut at the deadline (resumes)" if rc == 124 else "failed"
        row["tail"] = tail
        log(f"{name}: {row['status']} after {row['seconds']} s\n{tail}")
        rows.append(row)
        on_progress(rows)
        break
    return rows


def bench(ws: Path, env: dict, log: Log, deadline: float, names: list[str]) -> dict:
    """The GPU figures of benchmarks/report.json, each in its own process, as far as time allows."""
    py, here = sys.executable, str(ROOT / "benchmarks")
    jobs = {
        "pretrain_base_bf16": [py, f"{here}/pretrain.py", "--preset", "base", "--batch", "8", "--seconds", "15", "--repeats", "5"],
        "pretrain_base_bf16_b32": [py, f"{here}/pretrain.py", "--preset", "base", "--batch", "32", "--seconds", "15", "--repeats", "5", "--bf16-only"],
        "pretrain_base_bf16_compiled": [py, f"{here}/pretrain.py", "--preset", "base", "--batch", "8", "--seconds", "15", "--repeats", "5", "--bf16-only", "--compile"],
        "pretrain_base_8layers_bf16": [py, f"{here}/pretrain.py", "--preset", "base", "--layers", "8", "--batch", "8", "--seconds", "15", "--repeats", "5"],
        "kmeans_iter1": [py, f"{here}/kmeans.py", "--params", f"{ws}/params.yaml", "--iteration", "1",
                         "--features", f"{ws}/data/features/iter1", "--manifests", f"{ws}/data/prepared",
                         "--arms", "torch,sklearn,faiss"],
        "kmeans_iter2": [py, f"{here}/kmeans.py", "--params", f"{ws}/params.yaml", "--iteration", "2",
                         "--features", f"{ws}/data/features/iter2", "--manifests", f"{ws}/data/prepared",
                         "--arms", "torch,faiss"],
        "inference_cuda": [py, f"{here}/inference.py", "--root", str(ws), "--device", "cuda", "--utterances", "40"],
    }  # fmt: skip
    out = {}
    unknown = sorted(set(names) - set(jobs))
    if unknown:
        raise SystemExit(f"unknown benchmarks {unknown}; choose from {sorted(jobs)}")
    for name, cmd in ((n, jobs[n]) for n in names):
        left = deadline - time.time()
        if left < 30:
            out[name] = {"error": "not run: deadline"}
            continue
        log(f"bench {name}")
        t0 = time.time()
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=left)
        except subprocess.TimeoutExpired:
            out[name] = {"error": "deadline"}
            continue
        rows = [
            json.loads(x) for x in p.stdout.splitlines() if x.startswith("{") and x.endswith("}")
        ]
        if not rows and p.stdout.strip().startswith("{"):
            rows = [json.loads(p.stdout)]
        out[name] = {"seconds": round(time.time() - t0, 1), "rows": rows}
        if p.returncode:
            out[name]["error"] = p.stderr[-3000:]
        log(f"bench {name}: rc {p.returncode}, {json.dumps(rows)[:1500]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", default="gpu")
    ap.add_argument("--workspace", default=None, help="default: runs/<profile>")
    ap.add_argument("--out", required=True, help="folder for the report, the log and the outputs")
    ap.add_argument("--deadline-min", type=float, default=9.0, help="stop starting work after this")
    ap.add_argument(
        "--bench-before", default="", help="benchmarks to run before the DAG (comma-separated)"
    )
    ap.add_argument(
        "--bench-after", default="", help="benchmarks to run after it (they use its outputs)"
    )
    ap.add_argument("--stages", default=None, help="comma-separated stage names (default: all)")
    args = ap.parse_args()
    t_start = time.time()
    deadline = t_start + 60 * args.deadline_min
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "gpu_profile.log")
    ws = materialize(ROOT, args.profile, args.workspace or ROOT / "runs" / args.profile)
    params = yaml.safe_load((ws / "params.yaml").read_text())
    env = {**os.environ, "HUBERT_EE_TRACKING": "off", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    report_path = ws / "gpu_profile.json"  # kept across calls (the out folder may be emptied)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    try:
        import torch

        report["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        report["torch"] = torch.__version__
    except Exception as err:  # noqa: BLE001 (report, don't stop)
        report["device"] = f"unknown ({err})"
    report["cpus"] = os.cpu_count()
    log(f"profile {args.profile} in {ws} on {report['device']}, {report['cpus']} CPUs")
    stages = expand_stages(yaml.safe_load((ws / "dvc.yaml").read_text()), params)
    problems = preflight(stage_modules(stages))
    if problems:
        log("preflight failed (carry the missing wheels: make gpu-wheels):\n" + "\n".join(problems))
        raise SystemExit(2)
    call = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "stages": []}
    report.setdefault("calls", []).append(call)

    def save(stages: list[dict] | None = None) -> None:
        """Write what is known so far (a poll, or a kill, still finds a report)."""
        if stages is not None:
            call["stages"] = stages
        headline = ws / "summary" / "headline.json"
        if headline.exists():
            report["headline"] = json.loads(headline.read_text())
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        (out / "gpu_profile.json").write_text(report_path.read_text())
        with tarfile.open(out / "gpu_profile_outputs.tar.gz", "w:gz") as tar:
            for name in (*COLLECT, "logs"):
                if (ws / name).exists():
                    tar.add(ws / name, arcname=name)

    def benchmarks(names: str) -> None:
        if names:
            got = bench(ws, env, log, deadline, names.split(","))
            report["bench"] = {**report.get("bench", {}), **got}
            save()

    benchmarks(args.bench_before)
    only = set(args.stages.split(",")) if args.stages else None
    run_dag(ws, params, deadline, env, log, only, save)
    benchmarks(args.bench_after)
    save()
    log(f"report in {report_path} ({time.time() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
