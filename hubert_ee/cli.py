"""`hubert-ee` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hubert_ee.config import ParamsError


def _workspace(args: argparse.Namespace) -> None:
    from hubert_ee.profiles import materialize

    dest = args.dest or f"runs/{args.profile}"
    materialize(args.root, args.profile, dest)
    print(dest)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hubert-ee", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ws = sub.add_parser("workspace", help="create/refresh the workspace of a params profile")
    ws.add_argument(
        "profile", help="profile name: default, smoke, base or any profiles/<name>.yaml"
    )
    ws.add_argument("dest", nargs="?", help="workspace directory (default: runs/<profile>)")
    ws.add_argument("--root", default=str(Path.cwd()), help="project root (default: cwd)")
    ws.set_defaults(func=_workspace)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
