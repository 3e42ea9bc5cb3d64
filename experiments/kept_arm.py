"""What the experiments that retrain the student read from a finished default run: the trained
supernet and its chosen subnet, the distillation arm `distill` kept and its KD configuration,
the labeled target data with the cached teacher outputs, and the threshold search's result."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from hubert_ee.config import DistillParams, Params
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.models.supernet import Subnet, Supernet
from hubert_ee.train.distill import KDConfig, KDData
from hubert_ee.train.kd_arms import arms, kd_data


def retrain_parser(doc: str) -> argparse.ArgumentParser:
    """--root, --params, --seeds, --out: the arguments every such experiment takes."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="a workspace after `threshold_search`")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1234, 1235])
    ap.add_argument("--out", help="also write the JSON here")
    return ap


@dataclass
class KeptArm:
    supernet: Supernet
    chosen: Subnet
    arm: str  # metrics/distill.json best_arm
    dp: DistillParams  # the distill section, the student as the supernet search chose it
    kd: KDConfig
    data: dict[str, KDData]
    search: dict  # metrics/threshold_search.json


def kept_arm(root: Path, params: Params, vocab: CharVocab) -> KeptArm:
    domains, target = params.data.teacher_domains, params.data.target_domain
    dp = params.distill.model_copy(update={"student": {}})
    arm = json.loads((root / "metrics/distill.json").read_text())["best_arm"]
    return KeptArm(
        supernet=Supernet(load_encoder(root / "models/supernet/supernet.safetensors")),
        chosen=Subnet(**json.loads((root / "metrics/supernet.json").read_text())["subnet"]),
        arm=arm,
        dp=dp.for_arm(arm),  # the arm's own recipe (distill.arm_recipe), as the stage trains it
        kd=arms(dp, domains)[arm],
        data=kd_data(
            root / "data/prepared", root / "data/teacher_outputs", domains, target, False, vocab
        ),
        search=json.loads((root / "metrics/threshold_search.json").read_text()),
    )
