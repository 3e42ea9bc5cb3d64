"""Typed schema for params.yaml and the profile overlays.

Every stage validates the whole file before doing any work, so a typo in a section that a
later stage reads fails the first stage, not the fifth one an hour later.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

SPLITS = ("unlabeled", "train", "dev", "test")
Split = Literal["unlabeled", "train", "dev", "test"]
PROFILES_DIR = "profiles"


class ParamsError(ValueError):
    """params.yaml (or a profile) does not satisfy the schema."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(lo_hi: tuple[float, float], what: str) -> tuple[float, float]:
    if lo_hi[0] > lo_hi[1]:
        raise ValueError(f"{what} range must be [low, high] with low <= high, got {list(lo_hi)}")
    return lo_hi


Wpm = Annotated[int, Field(ge=80, le=450)]
Percent = Annotated[int, Field(ge=0, le=100)]
Snr = Annotated[float, Field(ge=-5.0, le=60.0)]
Rt60 = Annotated[float, Field(gt=0.0, le=2.0)]


class NoiseConfig(_Strict):
    """Additive noise mixed at an SNR drawn uniformly from `snr_db`."""

    kinds: list[Literal["white", "pink", "babble"]] = Field(min_length=1)
    snr_db: tuple[Snr, Snr]
    prob: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _range(self) -> NoiseConfig:
        _ordered(self.snr_db, "snr_db")
        return self


class ReverbConfig(_Strict):
    """Synthetic room reverb: exponentially decaying noise impulse response."""

    rt60_s: tuple[Rt60, Rt60]
    prob: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _range(self) -> ReverbConfig:
        _ordered(self.rt60_s, "rt60_s")
        return self


class DomainConfig(_Strict):
    """One acoustic domain: who speaks, how fast and high, and through what channel."""

    voices: list[str] = Field(min_length=1)
    rate_wpm: tuple[Wpm, Wpm]
    pitch: tuple[Percent, Percent]
    pitch_range: tuple[Percent, Percent] = (40, 60)
    noise: NoiseConfig | None = None
    reverb: ReverbConfig | None = None
    telephone: bool = False

    @model_validator(mode="after")
    def _check(self) -> DomainConfig:
        from hubert_ee.data.espeak import validate_voice

        for name in ("rate_wpm", "pitch", "pitch_range"):
            _ordered(getattr(self, name), name)
        for voice in self.voices:
            validate_voice(voice)
        return self


class SyntheticConfig(_Strict):
    """Sizes are audio amounts; the planner turns them into utterance counts."""

    domains: dict[str, DomainConfig] = Field(min_length=1)
    unlabeled_hours: float = Field(gt=0, le=10_000)
    train_hours: dict[str, Annotated[float, Field(ge=0, le=10_000)]]
    dev_minutes: float = Field(gt=0, le=600)
    test_minutes: float = Field(gt=0, le=600)
    words_per_utterance: tuple[
        Annotated[int, Field(ge=2, le=60)], Annotated[int, Field(ge=2, le=60)]
    ]
    shard_utterances: int = Field(ge=1, le=10_000)

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        _ordered(self.words_per_utterance, "words_per_utterance")
        unknown = sorted(set(self.train_hours) - set(self.domains))
        if unknown:
            raise ValueError(
                f"train_hours names unknown domains {unknown}; known: {sorted(self.domains)}"
            )
        return self


class RealCorpusConfig(_Strict):
    """Where a real corpus lies and which of its parts make each split.

    `parts` holds corpus part names for librispeech/tedlium (e.g. `dev-clean`) and manifest
    paths (TSV, CSV, JSONL or a Kaldi data dir) for `corpus: manifest`.
    """

    root: str = "."
    parts: dict[Split, list[str]] = Field(default_factory=dict)
    part_domains: dict[str, str] = Field(default_factory=dict)
    default_domain: str = "main"


class DataConfig(_Strict):
    corpus: Literal["synthetic", "librispeech", "tedlium", "manifest"]
    sample_rate: Literal[16000]
    min_duration_s: float = Field(ge=0.025, le=60)
    max_duration_s: float = Field(gt=0, le=3600)
    teacher_domains: list[str] = Field(min_length=1)
    target_domain: str
    synthetic: SyntheticConfig | None = None
    real: RealCorpusConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.min_duration_s >= self.max_duration_s:
            raise ValueError("min_duration_s must be below max_duration_s")
        if self.target_domain in self.teacher_domains:
            raise ValueError(f"target_domain {self.target_domain!r} must not be a teacher domain")
        if self.corpus == "synthetic":
            if self.synthetic is None:
                raise ValueError("corpus: synthetic needs a `synthetic:` section")
            known = set(self.synthetic.domains)
            missing = sorted({*self.teacher_domains, self.target_domain} - known)
            if missing:
                raise ValueError(
                    f"domains {missing} are not defined under synthetic.domains {sorted(known)}"
                )
        elif self.real is None:
            raise ValueError(f"corpus: {self.corpus} needs a `real:` section (root and parts)")
        return self

    @property
    def domains(self) -> list[str]:
        return [*self.teacher_domains, self.target_domain]


class FeaturesConfig(_Strict):
    """Frame features for k-means (one store per split and iteration)."""

    splits: list[Split]
    num_shards: int = Field(ge=1, le=100_000)
    float16: bool
    cmvn: bool  # per-utterance mean/variance normalisation before k-means (DESIGN §4)


class KMeansConfig(_Strict):
    implementation: Literal["faiss", "torch", "sklearn"]
    init: Literal["kmeans++", "random"]
    fit_splits: list[Split] = Field(min_length=1)
    eval_split: Split
    fit_fraction: float = Field(gt=0, le=1)
    max_fit_frames: int = Field(ge=1000)
    max_iter: int = Field(ge=1, le=10_000)
    n_init: int = Field(ge=1, le=100)


class IterationConfig(_Strict):
    """One HuBERT iteration: what the k-means targets are computed from, and K."""

    features: Literal["mfcc", "layer"]
    layer: int | None = Field(default=None, ge=1, le=48)
    k: int = Field(ge=2, le=32767)

    @model_validator(mode="after")
    def _check(self) -> IterationConfig:
        if (self.features == "layer") != (self.layer is not None):
            raise ValueError("`layer` is required with features: layer and not allowed with mfcc")
        return self


class ModelConfig(_Strict):
    """The encoder: a preset (`tiny` for the CPU demo, `base` = HuBERT-Base) plus overrides of
    any `hubert_ee.models.config.EncoderConfig` field."""

    preset: Literal["tiny", "base"]
    overrides: dict[str, Any]
    init_checkpoint: str | None = Field(
        default=None,
        description="encoder weights to start iteration 1 from: our .safetensors or a torchaudio-layout "
        ".pt state dict (e.g. public HuBERT-Base); with pretrain.max_steps 0 pretraining is skipped",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        self.encoder_config()  # unknown fields or inconsistent sizes fail here
        return self

    def encoder_config(self):
        from dataclasses import fields, replace

        from hubert_ee.models import config as mc

        cfg = mc.base() if self.preset == "base" else mc.tiny()
        known = {f.name for f in fields(cfg)} - {"extra"}
        unknown = sorted(set(self.overrides) - known)
        if unknown:
            raise ValueError(f"unknown encoder field(s) {unknown}; known: {sorted(known)}")
        over = dict(self.overrides)
        if "conv_layers" in over:
            over["conv_layers"] = tuple(tuple(c) for c in over["conv_layers"])
        return replace(cfg, **over)


def _amp_word(value: Any) -> Any:
    """YAML 1.1 reads an unquoted `off` as false: take it for the word it was written as."""
    return "off" if value is False else value


Amp = Annotated[Literal["auto", "native", "bf16", "off"], BeforeValidator(_amp_word)]


class TrainLoop(_Strict):
    """The optimisation loop every training stage shares (pretrain_iter<N>, finetune, distill,
    exits): the training functions take their section itself (DESIGN §2)."""

    max_steps: int = Field(ge=0, le=10_000_000)
    max_batch_seconds: float = Field(gt=0, le=100_000, description="padded audio per micro-batch")
    lr: float = Field(gt=0, le=1)
    warmup_steps: int = Field(ge=1)
    weight_decay: float = Field(ge=0, le=1)
    clip_norm: float = Field(gt=0)


class Wav2Vec2Objective(_Strict):
    """wav2vec 2.0's objective (DESIGN §5; fairseq's wav2vec2_base values in params.yaml)."""

    codebook_groups: int = Field(ge=1, le=64, description="G")
    codebook_entries: int = Field(ge=2, le=65536, description="V per group")
    temp: tuple[float, float, float] = Field(
        description="Gumbel temperature: max, min, decay per update"
    )
    num_negatives: int = Field(ge=1, le=10_000, description="distractors per masked frame")
    logit_temp: float = Field(gt=0, le=10, description="temperature of the cosine logits")
    diversity_weight: float = Field(ge=0)
    feature_penalty_weight: float = Field(ge=0)

    @model_validator(mode="after")
    def _check(self) -> Wav2Vec2Objective:
        hi, lo, decay = self.temp
        if not (0 < lo <= hi and 0 < decay <= 1):
            raise ValueError(
                f"temp must be (max, min, decay) with 0 < min <= max, 0 < decay <= 1: {self.temp}"
            )
        return self


class PretrainConfig(TrainLoop):
    """Masked-prediction pretraining (DESIGN §5); the same for every iteration."""

    grad_accum: int = Field(ge=1, le=1024)
    mask_prob: float = Field(gt=0, lt=1)
    mask_span: int = Field(ge=1, le=100)
    final_dim: int = Field(ge=8, le=4096)
    feature_grad_mult: float = Field(ge=0, le=1)
    checkpoint_every: int = Field(ge=1)
    log_every: int = Field(ge=1)
    eval_batches: int = Field(ge=1)
    amp: Amp = Field(
        description="bf16 autocast: auto = on a GPU, native = where the hardware computes bf16, "
        "bf16 = always, off (hubert_ee/device.py)"
    )
    init_from_previous: bool = Field(
        description="iteration >= 2 starts from the previous iteration's encoder (else from scratch)"
    )
    objective: Literal["hubert", "wav2vec2"] = Field(
        description="hubert: predict k-means labels; wav2vec2: contrastive, Gumbel quantiser"
    )
    wav2vec2: Wav2Vec2Objective
    launcher: Literal["local", "torchrun"]
    nproc: int = Field(ge=1, le=1024, description="processes per node with launcher: torchrun")
    nnodes: int = Field(ge=1, le=4096, description="nodes with launcher: torchrun")
    rdzv_endpoint: str | None = Field(description="host:port of the c10d rendezvous, nnodes > 1")


class CTCLoop(TrainLoop):
    """The CTC training loop (hubert_ee/train/finetune.py) of fine-tuning, distillation and the
    exit branches: head-only phase, encoder lr scale, schedule, SpecAugment-style masks, early
    stopping on dev."""

    freeze_encoder_steps: int = Field(
        ge=0, description="steps at the start that train only the output heads"
    )
    encoder_lr_scale: float = Field(
        gt=0, le=1, description="the encoder's peak lr as a fraction of the heads'"
    )
    schedule: Literal["linear", "tri_stage"] = Field(
        description="linear: warm-up then linear decay; tri_stage: warm-up, hold to half, "
        "exponential decay to 5% (fairseq's fine-tuning schedule)"
    )
    mask_time_prob: float = Field(ge=0, lt=1)
    mask_time_span: int = Field(ge=1, le=100)
    mask_channel_prob: float = Field(ge=0, lt=1)
    mask_channel_span: int = Field(ge=1, le=4096)
    eval_every: int = Field(ge=1)
    patience: int = Field(ge=1, description="evaluations without dev-WER improvement")
    eval_batch_seconds: float = Field(gt=0)
    amp: Amp = Field(
        description="bf16 autocast of the training forward: auto = on a GPU, native = where the "
        "hardware computes bf16 (a GPU, a CPU with AVX-512 BF16 / AMX), bf16 = always, off"
    )

    def with_fields(self, **overrides: Any):
        """This section with some fields replaced (an arm's own recipe, a probed lr), values
        as validated where they were read; an unknown name is an error."""
        known = set(type(self).model_fields)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown training field(s) {unknown}; known: {sorted(known)}")
        return self.model_copy(update=overrides)


class CTCTrainParams(CTCLoop):
    """The CTC model's own training settings shared by fine-tuning and distillation."""

    final_dropout: float = Field(ge=0, lt=1)
    uncertainty: bool
    uncertainty_samples: int = Field(ge=0, le=64)
    uncertainty_loss: Literal["sequence", "frame"] = Field(
        description="integrate the likelihood over σ per utterance (sequence) or per frame against "
        "the CTC alignment posterior (frame); hubert_ee.train.losses"
    )

    @property
    def noise_samples(self) -> int:
        """Draws of f + σ·ε the training loss integrates over (0 without an uncertainty head)."""
        return self.uncertainty_samples if self.uncertainty else 0


def _check_recipe(where: str, section: CTCTrainParams, overrides: dict[str, Any]) -> None:
    """An arm's own recipe (`where`: its params path) may override only training fields, and
    must leave them valid: the section with the overrides applied validates."""
    known = set(CTCTrainParams.model_fields)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {unknown}; known: {sorted(known)}")
    CTCTrainParams(**{**section.model_dump(include=known), **overrides})  # values valid?


class AugmentParams(_Strict):
    """Training-time corruption of the teachers' labeled audio (hubert_ee.data.augment.corrupt):
    speed perturbation, then room, noise and telephone channel, each with its own probability."""

    prob: float = Field(ge=0, le=1, description="share of utterances corrupted at all")
    speeds: list[Annotated[float, Field(ge=0.5, le=2.0)]] = Field(min_length=1)
    noise_prob: float = Field(ge=0, le=1)
    noise_kinds: list[Literal["white", "pink", "babble"]] = Field(min_length=1)
    snr_db: tuple[Snr, Snr]
    reverb_prob: float = Field(ge=0, le=1)
    rt60_s: tuple[Rt60, Rt60]
    telephone_prob: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ranges(self) -> AugmentParams:
        _ordered(self.snr_db, "augment.snr_db")
        _ordered(self.rt60_s, "augment.rt60_s")
        return self

    def chain(self):
        from hubert_ee.data.augment import TrainAugmentation

        d = self.model_dump()
        return TrainAugmentation(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        )


class VarianceRefitParams(_Strict):
    """The teacher's uncertainty head refitted on its logits after training (issue 14;
    hubert_ee.train.variance_fit): Kendall & Gal's integrated likelihood per frame against the
    CTC alignment posterior, logits fixed, on the teacher's train split."""

    hidden: int = Field(ge=1, le=4096, description="the MLP's hidden width")
    steps: int = Field(ge=1, description="Adam steps")
    lr: float = Field(gt=0, le=1)
    samples: int = Field(ge=1, le=64, description="noise draws the likelihood integrates over")
    frames_per_step: int = Field(ge=1, description="frames drawn (with replacement) per step")


class FinetuneParams(CTCTrainParams):
    """CTC fine-tuning of one teacher per domain (DESIGN §6), and its from-scratch ablation."""

    reinit_top_layers: int = Field(
        ge=0, description="re-initialise the top N pretrained Transformer layers"
    )
    scratch_arm: bool = Field(description="also fine-tune from random init with the same budget")
    ablation_domains: list[str] | None = Field(
        default=None,
        description="teacher domains that also train the scratch and low-label arms "
        "(null: every teacher domain); the others train the pretrained arm only",
    )
    scratch: dict[str, Any] = Field(
        description="the scratch arm's own recipe: overrides of this section's training fields "
        "(e.g. no head-only phase, encoder_lr_scale 1)"
    )
    lr_grid: list[float] = Field(
        description="peak-lr candidates each arm chooses from on dev (empty: `lr` only)"
    )
    lr_probe_steps: int = Field(
        ge=1, description="steps each lr candidate trains before the dev choice"
    )
    low_label_minutes: float = Field(
        ge=0, description="also fine-tune both arms on this many minutes (0: off)"
    )
    low_label_max_steps: int = Field(ge=1)
    beam_size: int = Field(ge=1, le=10_000)
    lm_order: int = Field(
        ge=0,
        le=6,
        description="word n-gram LM (Kneser-Ney) over the teacher's training transcripts, fused "
        "into the lexicon beam for wer_lm/<domain> (0: no LM figures)",
    )
    lm_weight: float = Field(ge=0, le=10, description="the LM's log-probability weight")
    lm_word_score: float = Field(ge=-10, le=10, description="score added per emitted word")
    augment: AugmentParams | None = Field(
        default=None,
        description="training-time corruption of every arm's labeled audio (null: the corpus as it is)",
    )
    variance_refit: VarianceRefitParams | None = Field(
        default=None,
        description="refit the teacher's uncertainty head on its logits after training (null: "
        "keep the head trained with the model, σ² = softplus(W h))",
    )

    @model_validator(mode="after")
    def _check_arms(self) -> FinetuneParams:
        _check_recipe("finetune.scratch", self, self.scratch)
        if any(not 0 < lr <= 1 for lr in self.lr_grid):
            raise ValueError(f"finetune.lr_grid values must be in (0, 1], got {self.lr_grid}")
        if len(self.lr_grid) > 1 and self.lr_probe_steps >= self.max_steps:
            raise ValueError(
                f"finetune.lr_probe_steps ({self.lr_probe_steps}) must be below max_steps "
                f"({self.max_steps}) for the lr grid to leave training after the choice"
            )
        if self.variance_refit is not None and not self.uncertainty:
            raise ValueError(
                "finetune.variance_refit refits the uncertainty head, but finetune.uncertainty is "
                "false: set uncertainty: true or variance_refit: null"
            )
        return self

    def runs_ablations(self, domain: str) -> bool:
        """Whether `domain`'s teacher stage also trains the scratch and low-label arms."""
        return self.ablation_domains is None or domain in self.ablation_domains


class DistillParams(CTCTrainParams):
    """Uncertainty-matching KD into a small student on the target domain (DESIGN §7)."""

    student: dict[str, Any] = Field(
        description="EncoderConfig overrides of the teacher's configuration (width, heads, FFN, depth)"
    )
    init_from_pretrained: bool
    use_unlabeled: bool = Field(
        description="add target-domain unlabeled audio with teacher targets only"
    )
    alpha: float = Field(ge=0, le=1)
    beta: float = Field(ge=0)
    temperature: float = Field(gt=0)
    teacher_weights: Literal["equal", "uncertainty", "frame_uncertainty"] | list[float] = Field(
        description="r_k: equal, a list, or by each teacher's certainty (1 / mean Σσ²) per "
        "utterance (uncertainty) or per frame (frame_uncertainty)"
    )
    uncertainty_match: Literal["classes", "size", "profile"] = Field(
        description="L_unc: classes = ‖σ̂^k − σ̂^s‖² with σ̂ = σ²/‖σ²‖ per frame (DESIGN §7); "
        "size = (log Σσ²^k − log Σσ²^s)² per frame, the part of σ² that ranks the teachers' "
        "errors; profile = the same with log Σσ² centred over each utterance's frames"
    )
    single_teacher_arms: bool = Field(
        description="also train one unc_kd arm per teacher (ablation; one more arm each)"
    )
    extra_seeds: list[int] = Field(
        description="seeds beyond `seed` on which student_only, tok_kd and unc_kd train again: "
        "the seed spread that decides whether an arm beats the student alone ([]: one seed)"
    )
    teacher_output_shards: int = Field(ge=1, le=100_000)
    speed_repeats: int = Field(ge=1, le=1000)
    speed_utterances: int = Field(ge=1)
    arm_recipe: dict[str, dict[str, Any]] = Field(
        description="an arm's own recipe: overrides of this section's training fields per arm "
        "(student_only, tok_kd, unc_kd, unc_kd_<teacher>), on every seed of that arm",
    )

    @model_validator(mode="after")
    def _check_arm_recipe(self) -> DistillParams:
        for arm, overrides in self.arm_recipe.items():
            if arm not in ("student_only", "tok_kd", "unc_kd") and not arm.startswith("unc_kd_"):
                raise ValueError(
                    f"distill.arm_recipe names an unknown arm {arm!r}; arms: student_only, "
                    "tok_kd, unc_kd, unc_kd_<teacher>"
                )
            _check_recipe(f"distill.arm_recipe.{arm}", self, overrides)
        return self

    def for_arm(self, arm: str) -> DistillParams:
        """This section with `arm`'s own recipe applied (the section itself without one)."""
        overrides = self.arm_recipe.get(arm)
        return self.model_copy(update=overrides) if overrides else self


class SupernetSpace(_Strict):
    """The subnets the supernet trains and the search scores (DESIGN §9): every combination
    that the width's heads and the positional conv's groups divide."""

    embed_dims: list[Annotated[int, Field(ge=8)]] = Field(min_length=1)
    heads: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    ffn_ratios: list[Annotated[float, Field(gt=0, le=16)]] = Field(
        min_length=1, description="FFN width as a multiple of the subnet's own width"
    )
    depths: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)


class SupernetParams(_Strict):
    """LightHuBERT once-for-all training from the last pretrained encoder, then the subnet
    search whose choice is the distillation student (DESIGN §9). The loop's masks, batches and
    optimiser settings not named here are `pretrain`'s."""

    num_layers: int | None = Field(
        ge=1,
        description="the supernet's depth (null: the teacher's); layers beyond the "
        "teacher's start random",
    )
    space: SupernetSpace
    target_layers: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=1,
        description="teacher layers (1-based) whose instance-normalised average "
        "every subnet predicts on masked frames",
    )
    stage1_steps: int = Field(ge=0, description="updates of the largest subnet only")
    stage2_steps: int = Field(ge=0, description="updates with a subnet drawn per micro-batch")
    lr: float = Field(gt=0, le=1)
    warmup_steps: int = Field(ge=1)
    max_batch_seconds: float = Field(gt=0, le=100_000)
    eval_batches: int = Field(ge=1, description="dev batches each candidate is scored on")
    max_params_ratio: float = Field(
        gt=0, le=1, description="size budget: subnet parameters / the teacher's"
    )
    latency_budget_rel: float = Field(
        gt=0,
        description="latency budget: subnet / teacher median time at batch 1, same "
        "process (a ratio, so that it means the same on every host)",
    )
    latency_budget_ms: float | None = Field(
        gt=0, description="an absolute batch-1 budget per utterance on top (null: none)"
    )
    latency_utterances: int = Field(ge=1, description="dev utterances timed at batch 1")
    latency_batch: int = Field(ge=1, description="utterances per padded batch (batched timing)")
    latency_repeats: int = Field(ge=1)

    @model_validator(mode="after")
    def _check(self) -> SupernetParams:
        if self.num_layers is not None and max(self.space.depths) > self.num_layers:
            raise ValueError(
                f"supernet.space.depths go to {max(self.space.depths)}, deeper than "
                f"supernet.num_layers {self.num_layers}"
            )
        return self


class ExitsParams(CTCLoop):
    """Early-exit branches on the student (DESIGN §8)."""

    layers: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        description="Transformer layers with a branch; null = every layer but the last",
    )
    mode: Literal["two_stage", "joint"]
    branch: Literal["attention", "linear"] = Field(
        description="attention: a narrow self-attention block + CTC head; linear: LayerNorm + "
        "CTC head from the student's (branch_dim/heads/ffn/dropout then unused)"
    )
    branch_dim: int = Field(ge=8)
    branch_heads: int = Field(ge=1)
    branch_ffn: int = Field(ge=8)
    branch_dropout: float = Field(ge=0, lt=1)
    kd_weight: float = Field(ge=0, description="KL towards the final layer (two_stage)")
    kd_temperature: float = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> ExitsParams:
        if self.branch_dim % self.branch_heads:
            raise ValueError("branch_dim must be divisible by branch_heads")
        return self


class ThresholdSearchParams(_Strict):
    """Operating-point search for early exit (DESIGN §8)."""

    entropy_grid: list[float] = Field(min_length=1)
    confidence_grid: list[float] = Field(min_length=1)
    quantile_points: int = Field(
        ge=0, le=1000, description="extra thresholds at quantiles of the dev scores"
    )
    max_wer_increase_rel: float = Field(ge=0)
    speed_utterances: int = Field(ge=1)
    speed_repeats: int = Field(ge=1)
    threads: int = Field(ge=0, description="torch threads while timing; 0 = all cores")


class OrchestrationParams(_Strict):
    """The Prefect deployment (flows/pipeline.py) and the engine of the sharded stages."""

    cron: str = Field(description="retraining schedule of the deployment")
    max_parallel: int = Field(ge=1, le=256, description="stages run at once")
    executor: Literal["local", "dask"] = Field(
        description="where the per-shard work of features and labelling runs"
    )
    dask_address: str | None = Field(
        description="scheduler of an existing Dask cluster (tcp://host:8786); null: a "
        "LocalCluster of num_workers processes"
    )

    @model_validator(mode="after")
    def _check(self) -> OrchestrationParams:
        if len(self.cron.split()) != 5:
            raise ValueError(f"cron must have 5 fields (m h dom mon dow), got {self.cron!r}")
        return self


class Params(_Strict):
    seed: int = Field(ge=0, le=2**31 - 1)
    num_workers: int = Field(ge=0, le=1024, description="0 = one per CPU core")
    data: DataConfig
    features: FeaturesConfig
    kmeans: KMeansConfig
    model: ModelConfig
    pretrain: PretrainConfig
    finetune: FinetuneParams
    supernet: SupernetParams
    distill: DistillParams
    exits: ExitsParams
    orchestration: OrchestrationParams
    threshold_search: ThresholdSearchParams
    # Keyed iter1, iter2, ... so that a DVC stage can depend on exactly one iteration.
    iterations: dict[str, IterationConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_iterations(self) -> Params:
        want = [f"iter{i}" for i in range(1, len(self.iterations) + 1)]
        if list(self.iterations) != want:
            raise ValueError(
                f"iterations must be keyed {want} in order, got {list(self.iterations)}"
            )
        if self.iterations["iter1"].features != "mfcc":
            raise ValueError(
                "iterations.iter1 must use features: mfcc (there is no previous model yet)"
            )
        return self

    @model_validator(mode="after")
    def _check_ablation_domains(self) -> Params:
        chosen = self.finetune.ablation_domains
        if chosen is not None and not set(chosen) <= set(self.data.teacher_domains):
            raise ValueError(
                f"finetune.ablation_domains {chosen} must be among data.teacher_domains "
                f"{self.data.teacher_domains}; name some of them, or null for every teacher"
            )
        return self

    @model_validator(mode="after")
    def _check_arm_recipe_teachers(self) -> Params:
        teachers = self.data.teacher_domains
        for arm in self.distill.arm_recipe:
            if arm.startswith("unc_kd_") and arm.removeprefix("unc_kd_") not in teachers:
                raise ValueError(
                    f"distill.arm_recipe names {arm!r}, but {arm.removeprefix('unc_kd_')!r} is not "
                    f"among data.teacher_domains {teachers}: that recipe would never be used"
                )
        return self

    @model_validator(mode="after")
    def _check_extra_seeds(self) -> Params:
        extra = self.distill.extra_seeds
        if self.seed in extra or len(set(extra)) != len(extra):
            raise ValueError(
                f"distill.extra_seeds {extra} must be distinct and leave out seed ({self.seed})"
            )
        return self

    def iteration(self, n: int) -> IterationConfig:
        key = f"iter{n}"
        if key not in self.iterations:
            raise ValueError(f"iteration {n} is not configured; params has {list(self.iterations)}")
        return self.iterations[key]


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Overlay wins; mappings merge recursively, everything else (lists too) is replaced."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source} is invalid ({err.error_count()} problem(s)):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        if e["type"] == "missing":
            lines.append(f"  - {key}: missing; set it in params.yaml (the schema has no default)")
        elif e["type"] == "extra_forbidden":
            lines.append(
                f"  - {key}: unknown key (value {e['input']!r}); remove it or fix its spelling"
            )
        else:
            lines.append(f"  - {key}: got {e['input']!r}: {e['msg']}")
    return "\n".join(lines)


def validate_params(raw: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_errors(err, source)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping at the top level, got {type(raw).__name__}")
    return raw


def load_params(path: str | Path = "params.yaml") -> Params:
    return validate_params(read_yaml(path), str(path))


def profile_params(project_root: str | Path, profile: str) -> dict[str, Any]:
    """params.yaml with `profiles/<profile>.yaml` merged over it (`default` = params.yaml).

    `a+b` merges overlay a, then b: an objective or a size switch composes with a scale
    (`smoke+w2v2` is the smoke run with wav2vec 2.0 pretraining) without a file per pair."""
    root = Path(project_root)
    merged = read_yaml(root / "params.yaml")
    if profile == "default":
        return merged
    paths = [root / PROFILES_DIR / f"{name}.yaml" for name in profile.split("+")]
    for path in paths:
        if not path.exists():
            known = sorted(p.stem for p in (root / PROFILES_DIR).glob("*.yaml"))
            raise ParamsError(
                f"unknown profile {path.stem!r} in {profile!r}; known: {['default', *known]} "
                "(combine overlays with '+', e.g. smoke+w2v2)"
            )
        merged = deep_merge(merged, read_yaml(path))
    validate_params(merged, "params.yaml + " + " + ".join(str(p) for p in paths))
    return merged


def check_project_params(project_root: str | Path) -> list[str]:
    """Validate params.yaml and every profile overlay merged over it; the names checked.

    Run before any work by `make repro` and the flow: a stage validates the file only when DVC
    runs it, so a misspelled section that no stage declares would otherwise pass unnoticed."""
    root = Path(project_root)
    load_params(root / "params.yaml")
    checked = ["default"]
    profiles = root / PROFILES_DIR
    if (root / "params.yaml").is_file() and profiles.is_dir():  # a workspace has no overlays
        for overlay in sorted(profiles.glob("*.yaml")):
            profile_params(root, overlay.stem)
            checked.append(overlay.stem)
    return checked


def select_params(params: Params, keys: Sequence[str]) -> dict[str, Any]:
    """The values of `keys` (top-level sections or dotted keys, as dvc.yaml spells them),
    flattened to {key: value} as JSON-ready data."""
    raw = params.model_dump(mode="json")
    out: dict[str, Any] = {}
    for key in keys:
        node: Any = raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ParamsError(f"stage declares params key {key!r}, which params do not have")
            node = node[part]
        out[key] = node
    return out


class ParamsView:
    """Params limited to the keys a stage declares: reading anything else raises, so a stage
    cannot depend on a value that DVC (and its resume key) does not know it uses.

    `ParamsView(params, ["seed", "data.target_domain"]).data.target_domain` works;
    `.data.teacher_domains` raises ParamsError naming the key and where to declare it."""

    def __init__(self, node: Any, declared: Sequence[str], prefix: str = ""):
        object.__setattr__(self, "_node", node)
        object.__setattr__(self, "_declared", tuple(declared))
        object.__setattr__(self, "_prefix", prefix)

    def _child(self, name: str, value: Any) -> Any:
        key = f"{self._prefix}{name}"
        if key in self._declared:
            return value
        if any(d.startswith(key + ".") for d in self._declared):
            return ParamsView(value, self._declared, key + ".")
        raise ParamsError(
            f"this stage reads params key {key!r} but does not declare it: add it to the "
            "stage's `params:` in dvc.yaml and to the sections the stage program passes to "
            "run_stage (an undeclared key is one whose change DVC would not see)"
        )

    def __getattr__(self, name: str) -> Any:
        node = self._node
        fields = type(node).model_fields if isinstance(node, BaseModel) else {}
        if name not in fields:  # a method or property of a partly declared section
            raise ParamsError(
                f"params.{self._prefix}{name} is not a params key; only declared keys can be "
                f"read through this stage's view (declared: {list(self._declared)})"
            )
        return self._child(name, getattr(node, name))

    def __getitem__(self, name: str) -> Any:
        return self._child(name, self._node[name])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("params are read-only")
