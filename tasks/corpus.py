"""Stage `corpus`: a fingerprint of the source data that `prepare` depends on.

DVC runs it on every `dvc repro` (`always_changed`); it stats the files the params point at and
rewrites `data/corpus.json`. When nothing changed the file is byte-identical and `prepare` (and
everything after it) is skipped; new or changed utterances re-run exactly what they feed. No
MLflow run: it is a check, not a result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hubert_ee.config import ParamsError, load_params
from hubert_ee.corpus_fingerprint import corpus_fingerprint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/corpus.json")
    args = ap.parse_args()
    try:
        fp = corpus_fingerprint(load_params(args.params).data)
    except (ParamsError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fp, indent=1, sort_keys=True) + "\n")
    print(f"{out}: " + ", ".join(f"{k}={v}" for k, v in fp.items()))


if __name__ == "__main__":
    main()
