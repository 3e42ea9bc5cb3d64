"""`hubert-ee` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hubert_ee.config import ParamsError


def _workspace(args: argparse.Namespace) -> None:
    from hubert_ee.profiles import init_git, materialize

    dest = args.dest or f"runs/{args.profile}"
    materialize(args.root, args.profile, dest, absolute_links=args.git)
    if args.git:
        init_git(dest)
    print(dest)


def _check_params(args: argparse.Namespace) -> None:
    from hubert_ee.config import check_project_params

    checked = check_project_params(args.root)
    print(f"params valid: {', '.join(checked)}")


def _transcribe(args: argparse.Namespace) -> None:
    import json

    from hubert_ee.inference import AudioError, load

    rec = load(args.model)
    if args.lexicon or args.beam or args.lm:
        words = Path(args.lexicon).read_text().split() if args.lexicon else None
        lm = None
        if args.lm:
            lm, lm_words = _language_model(args.lm, args.lm_order)
            if words is None and lm_words is None:
                sys.exit(f"--lm {args.lm}: a KenLM file names no lexicon; pass --lexicon too")
            words = words if words is not None else lm_words
        rec.use_beam(args.beam or 16, words, lm, args.lm_weight, args.word_score)
    failed = 0
    for t in rec.transcribe_each(args.paths, not args.no_exit, args.threshold):
        if isinstance(t, AudioError):
            print(f"error: {t}", file=sys.stderr)
            failed += 1
            continue
        for n in t.notices:
            print(f"notice: {t.path}: {n}", file=sys.stderr)
        if args.json:
            print(json.dumps(t.to_dict()), flush=True)
        else:
            print(f"{t.path}\t{t.text}", flush=True)
    if failed:
        print(f"{failed} input(s) failed; the others were transcribed", file=sys.stderr)
        sys.exit(1)


def _language_model(path: str, order: int):
    """A KenLM file (.arpa / .bin) as it is, or a text file of sentences (one per line) that a
    Kneser-Ney word n-gram LM is fitted on; the words it holds (None for a KenLM file)."""
    from hubert_ee.decode.ngram_lm import fit_kneser_ney

    if not Path(path).is_file():
        sys.exit(f"--lm {path}: no such file")
    if Path(path).suffix in {".arpa", ".bin", ".binary"}:
        return path, None
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines:
        sys.exit(f"--lm {path}: no sentences in it (one per line)")
    return fit_kneser_ney(lines, order), {w for line in lines for w in line.split()}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _register(args: argparse.Namespace) -> None:
    from hubert_ee.config import load_params
    from hubert_ee.data.manifest import load_split
    from hubert_ee.registry import register

    root = Path(args.root).resolve()
    params = load_params(root / "params.yaml")
    test = load_split(root / "data/prepared", "test")
    test = test[test["domain"] == params.data.target_domain]
    paths = [str(root / p) for p in test["path"]]  # manifest paths are relative to the root
    decision = register(root, test["text"].tolist(), paths)
    print(decision)


def _report(args: argparse.Namespace) -> None:
    from hubert_ee import run_report as rr

    root = Path(args.root)
    header = ["figure", "this run"]
    if args.run or args.champion:
        from hubert_ee.run_tracking import run_figures

        ours, header[1] = run_figures(root, args.run, args.champion)
    else:
        ours = rr.headline(rr.read_metrics(root / "metrics"))
    if not ours:
        raise FileNotFoundError(f"no metrics under {root / 'metrics'}: run `make repro` first")
    theirs = None
    if args.against:
        other = Path(args.against)
        theirs = rr.headline(
            rr.read_metrics(other)
            if other.is_dir()
            else rr.read_metrics_at(args.against, repo=root)
        )
        header += [args.against, "change"]
    rows = rr.table(ours, theirs)
    print(rr.render_text(rows, header))
    if args.markdown:
        out = Path(args.markdown)
        plots = sorted((root / "plots").glob("*.png"))
        rel = [Path(os.path.relpath(p, out.parent.resolve())) for p in (q.resolve() for q in plots)]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(rr.render_markdown(rows, header, "hubert-ee run report", rel))
        print(f"report in {out}")


def _run(args: argparse.Namespace) -> None:
    import subprocess

    from hubert_ee.run_tracking import run_tracked

    command = args.command_line[1:] if args.command_line[:1] == ["--"] else args.command_line
    try:
        run_tracked(args.root, command)
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hubert-ee", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ws = sub.add_parser("workspace", help="create/refresh the workspace of a params profile")
    ws.add_argument(
        "profile", help="profile name: default, smoke, base or any profiles/<name>.yaml"
    )
    ws.add_argument("dest", nargs="?", help="workspace directory (default: runs/<profile>)")
    ws.add_argument("--root", default=str(Path.cwd()), help="project root (default: cwd)")
    ws.add_argument(
        "--git",
        action="store_true",
        help="make it a git repository (absolute code links), for `dvc exp run` sweeps",
    )
    ws.set_defaults(func=_workspace)
    cp = sub.add_parser(
        "check-params",
        help="validate params.yaml and every profile overlay (make repro runs it before dvc)",
    )
    cp.add_argument("--root", default=str(Path.cwd()), help="project/workspace root")
    cp.set_defaults(func=_check_params)
    tr = sub.add_parser("transcribe", help="transcribe wav/flac files or folders")
    tr.add_argument("paths", nargs="+", help="audio files or folders (searched for .wav/.flac)")
    tr.add_argument(
        "--model", default="models/exits",
        help="model folder or file, or an MLflow URI such as models:/hubert-ee@champion "
        "(default: %(default)s, with the operating point of models/threshold_search)",
    )  # fmt: skip
    tr.add_argument("--threshold", type=float, help="override the chosen exit threshold")
    tr.add_argument("--no-exit", action="store_true", help="run the full model (no early exit)")
    tr.add_argument("--json", action="store_true", help="one JSON object per file")
    tr.add_argument(
        "--beam", type=_positive_int, help="beam search with this beam (default: greedy)"
    )
    tr.add_argument(
        "--lexicon", help="file of allowed words (whitespace-separated); implies beam search"
    )
    tr.add_argument(
        "--lm",
        help="word language model: a text file of sentences (one per line; a Kneser-Ney n-gram "
        "LM is fitted on it and its words are the lexicon unless --lexicon is given) or a KenLM "
        ".arpa/.bin file (needs --lexicon); implies beam search",
    )
    tr.add_argument("--lm-order", type=_positive_int, default=2, help="n of the fitted LM")
    tr.add_argument("--lm-weight", type=float, default=1.0, help="weight of the LM's log-prob")
    tr.add_argument("--word-score", type=float, default=0.0, help="score added per word")
    tr.set_defaults(func=_transcribe)
    rg = sub.add_parser(
        "register", help="register the pipeline's model in MLflow (challenger → champion if better)"
    )
    rg.add_argument("--root", default=str(Path.cwd()), help="project/workspace root")
    rg.set_defaults(func=_register)
    rp = sub.add_parser(
        "report", help="the run's headline figures (metrics/*.json), optionally against another run"
    )
    rp.add_argument("--root", default=str(Path.cwd()), help="project/workspace root")
    which = rp.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="ID", help="a pipeline run's figures from MLflow")
    which.add_argument(
        "--champion",
        action="store_true",
        help="the figures of the pipeline run that registered the current champion",
    )
    rp.add_argument(
        "--against",
        help="another run: a metrics folder, or a git revision whose committed metrics to compare "
        "(e.g. HEAD~1)",
    )
    rp.add_argument(
        "--markdown", help="also write a one-page Markdown report (with the plots) here"
    )
    rp.set_defaults(func=_report)
    rn = sub.add_parser(
        "run",
        help="run a command (`-- dvc repro`) under one parent MLflow run with the whole params, "
        "then put the run's headline figures on it",
    )
    rn.add_argument("--root", default=".", help="project/workspace root (default: cwd)")
    rn.add_argument("command_line", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    rn.set_defaults(func=_run)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ParamsError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
