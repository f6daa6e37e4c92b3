"""Configuration of training, evaluation, gates, registry and export (owned by flywheel.models)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flywheel.config.base import Section
from flywheel.config.recommender import CandidatesConfig, EvaluationConfig

#: The ranking heads, in output order.
HEAD_NAMES: tuple[str, ...] = ("click", "watch_50", "complete", "like", "add_to_list")


class RetrievalConfig(Section):
    """The two-tower retrieval model."""

    embedding_dim: int = Field(default=64, ge=64, le=128)
    """Dimension of the user and item embeddings (64-128)."""
    id_dim: int = Field(default=32, ge=4)
    """Dimension of the id embeddings inside the towers."""
    hidden: int = Field(default=128, ge=8)
    """Width of the hidden layer of each tower."""
    temperature: float = Field(default=0.1, gt=0)
    """Softmax temperature of the in-batch loss."""
    item_bias: bool = True
    """Add a learned per-item logit bias (popularity) to the dot product; it is one more index dimension."""
    logq_correction: bool = True
    """Subtract log(sampling probability) from in-batch logits (popular items are over-sampled)."""
    positive_label: str = "click"
    """The label that makes a logged (user, item) pair a positive of the towers (one of the heads)."""
    id_dropout: float = Field(default=0.3, ge=0, lt=1)
    """Probability of replacing an item id by the unknown id during training (cold-start path)."""
    history_length: int = Field(default=20, ge=1)
    """Recent positively engaged items in the user tower."""
    epochs: int = Field(default=10, ge=1)
    """Most passes over the positive pairs (early stopping may end sooner)."""
    validation_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    """Latest share of the positives held out for early stopping (0: off)."""
    patience: int = Field(default=1, ge=0)
    """Epochs without a better validation loss tolerated before stopping."""
    batch_size: int = Field(default=256, ge=8)
    """Pairs per batch (= in-batch negatives + 1)."""
    learning_rate: float = Field(default=3e-3, gt=0)
    """Adam learning rate."""
    candidates: int = Field(default=50, ge=1)
    """Candidates the retrieval stage hands to the ranker."""

    @model_validator(mode="after")
    def _known_label(self) -> RetrievalConfig:
        if self.positive_label not in HEAD_NAMES:
            raise ValueError(f"positive_label: {self.positive_label!r} is not one of {list(HEAD_NAMES)}")
        return self


class RankerConfig(Section):
    """The multi-task ranker."""

    id_dim: int = Field(default=8, ge=2)
    """Dimension of each sparse id embedding."""
    cross_layers: int = Field(default=1, ge=0, le=6)
    """DCN-v2 cross layers (0: plain MLP)."""
    hidden: tuple[int, ...] = (128, 64)
    """Widths of the deep MLP."""
    retrieval_blend: float = Field(default=0.5, ge=0)
    """Two-stage score = log(weighted head score) + this x the retrieval logit (cosine / T + item bias):
    the ranker predicts clicks given an impression, the towers which items a user engages with at
    all; 0 ranks by the ranker alone."""
    source_blend: float | None = Field(default=None, ge=0)
    """Where the ranker reads the candidate sources (imported interactions): the two-stage score is
    log(weighted head score) + this x the item-to-item source's z-score of the candidate, a blend of
    two different models. None: chosen at training from :data:`~flywheel.models.stack.BLEND_GRID`
    by NDCG@10 on the ranker's validation users (the version keeps the number); 0: the ranker alone."""
    use_retrieval_score: bool = False
    """Feed the two-tower score of each (user, item) pair to the ranker as a feature (in-sample
    scores on the training rows: measured no better on simulated data, so off by default)."""
    position_debiasing: Literal["shallow_tower", "ipw", "none"] = "shallow_tower"
    """`shallow_tower`: position is a training-only input; `ipw`: weights 1/propensity; `none`."""
    max_position: int = Field(default=50, ge=1)
    """Positions above this share the last bucket of the position tower."""
    ipw_clip: float = Field(default=20.0, ge=1)
    """Largest inverse-propensity weight."""
    id_dropout: float = Field(default=0.1, ge=0, lt=1)
    """Probability of replacing a content id by the unknown id during training."""
    head_weights: dict[str, float] = {
        "click": 0.2,
        "watch_50": 0.4,
        "complete": 0.2,
        "like": 0.1,
        "add_to_list": 0.1,
    }
    """Weights of the heads' probabilities in the final score."""
    epochs: int = Field(default=8, ge=1)
    """Most passes over the impressions (early stopping may end sooner)."""
    validation_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    """Latest share of the training rows held out for early stopping (0: off)."""
    patience: int = Field(default=0, ge=0)
    """Epochs without a better validation loss tolerated before stopping."""
    batch_size: int = Field(default=512, ge=8)
    """Impressions per batch."""
    learning_rate: float = Field(default=2e-3, gt=0)
    """Adam learning rate."""
    weight_decay: float = Field(default=1e-2, ge=0)
    """AdamW weight decay (the id embeddings overfit small windows without it)."""
    dropout: float = Field(default=0.3, ge=0, lt=1)
    """Dropout after each hidden layer of the deep MLP."""

    @model_validator(mode="after")
    def _known_heads(self) -> RankerConfig:
        unknown = sorted(set(self.head_weights) - set(HEAD_NAMES))
        if unknown:
            raise ValueError(f"head_weights: unknown heads {unknown}; heads are {list(HEAD_NAMES)}")
        return self


class QualityConfig(Section):
    """The data-quality gate (circuit breaker) run on every training window."""

    min_rows: int = Field(default=1000, ge=1)
    """A window with fewer rows fails."""
    min_volume_ratio: float = Field(default=0.5, ge=0)
    """Rows must be at least this share of the median volume of past windows."""
    max_volume_ratio: float = Field(default=3.0, gt=0)
    """... and at most this multiple of it."""
    max_staleness_hours: float = Field(default=48.0, gt=0)
    """The newest event must be at most this old relative to the window end."""
    max_null_rate: float = Field(default=0.01, ge=0, le=1)
    """Largest share of nulls in any required column."""
    max_duplicate_rate: float = Field(default=0.01, ge=0, le=1)
    """Largest share of duplicated (user_id, content_id, event_timestamp) rows."""
    max_drift_share: float = Field(default=0.5, ge=0, le=1)
    """Largest share of drifted columns (Evidently) against the reference window."""
    drift_sample_rows: int = Field(default=5000, ge=100)
    """Rows sampled from each side for the drift test."""
    retraining_drift: Literal["warn", "block"] = "warn"
    """In a retraining run, drift against the champion's window beyond ``max_drift_share`` is the
    reason for the run, not a fault: `warn` records it in the report and goes on (broken data --
    schema, volume, freshness, nulls, ranges, duplicates -- still stops the run); `block` stops it
    as it stops a first training."""


class PromotionConfig(Section):
    """What a new model must show to be registered as challenger."""

    metric: str = "two_stage.ndcg@10"
    """The metric compared with the champion's on the same holdout."""
    min_relative_gain: float = Field(default=0.01, ge=-1)
    """The candidate must reach champion * (1 + this)."""
    min_absolute_gain: float = Field(default=0.0)
    """... and champion + this."""
    max_ece: float = Field(default=0.1, gt=0)
    """Guardrail: the largest expected calibration error of any head."""
    max_auc_drop: float = Field(default=0.02, ge=0)
    """Guardrail: no head's AUC may fall more than this below the champion's."""
    max_latency_ms_p99: float = Field(default=50.0, gt=0)
    """Guardrail: p99 latency of ranking 100 candidates for one request (CPU, one thread)."""
    min_ndcg_vs_popularity: float = Field(default=1.0, ge=0)
    """Guardrail: two-stage NDCG@10 must reach this multiple of the popularity baseline."""


class TrainingConfig(Section):
    """Training, evaluation, promotion gates, the MLflow registry and export."""

    seed: int = 7
    """Seed of every random generator of a run."""
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    """The latest share of the window (by time) held out for evaluation."""
    eval_k: tuple[int, ...] = (5, 10, 20, 50)
    """Cut-offs of the ranking metrics."""
    calibration_bins: int = Field(default=10, ge=2)
    """Bins of the calibration curves and the ECE."""
    simulated_label_draws: int = Field(default=5, ge=1)
    """On simulated data, how many times the simulator's response to every (user, title) pair is
    drawn for the full-information view (``sim.*`` metrics, averaged over the draws)."""
    synopsis_buckets: int = Field(default=4096, ge=16)
    """Hash buckets of the synopsis words."""
    synopsis_tokens: int = Field(default=32, ge=1)
    """Words of a synopsis kept."""
    id_embeddings: Literal["validate", "none", "items", "users_and_items"] = "validate"
    """Per-user and per-item id embeddings (in both models): ``validate`` trains the two towers with
    each choice on an inner split of the training part and keeps the best (:mod:`flywheel.models.ids`;
    the choice and the scores are logged as ``ids.*``); or fixed: ``none`` (users are their features
    and history, titles their content), ``items`` (title ids only), ``users_and_items``."""
    evaluation: EvaluationConfig = EvaluationConfig()
    """The split and the relevance of the evaluation (and of the ranker's training labels)."""
    candidates: CandidatesConfig = CandidatesConfig()
    """The candidate sources (two-tower, item-to-item, popular now, new releases) and their ranker."""
    retrieval: RetrievalConfig = RetrievalConfig()
    """The two-tower retrieval model."""
    ranker: RankerConfig = RankerConfig()
    """The multi-task ranker."""
    quality: QualityConfig = QualityConfig()
    """The data-quality gate."""
    promotion: PromotionConfig = PromotionConfig()
    """Margins and guardrails of promotion."""
    tracking_uri: str = "sqlite:///.flywheel/mlflow.db"
    """MLflow tracking and registry URI (SQLite locally, http(s)://... for a server)."""
    artifact_root: str = ".flywheel/mlartifacts"
    """Artifact location of new MLflow experiments (a folder, or s3://... on a cluster)."""
    experiment: str = "flywheel-recommender"
    """MLflow experiment of the runs."""
    model_name: str = "flywheel-recommender"
    """Registered model name (versions move between the `champion` and `challenger` aliases)."""


def parse_training_config(text: str) -> TrainingConfig:
    """A TrainingConfig from its JSON text (the defaults when ``text`` is empty)."""
    return TrainingConfig.model_validate_json(text) if text.strip() else TrainingConfig()
