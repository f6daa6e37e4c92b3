"""A trained model version: feature spec + two-tower retrieval + ranker; training and two-stage recommend."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from flywheel.config.recommender import CandidatesConfig, EvaluationConfig
from flywheel.config.training import RankerConfig, RetrievalConfig, TrainingConfig
from flywheel.models.contract import CONTENT_DENSE, USER_DENSE, USER_VECTOR
from flywheel.models.dataset import INTEREST_LABELS, content_snapshot, pair_frame, pair_rows
from flywheel.models.encoding import CatalogTensors, FeatureSpec, encode_catalog
from flywheel.models.ids import fixed_spec, select_id_vocabularies
from flywheel.models.ranker import MultiTaskRanker, build_ranker, combined_score, predict_heads
from flywheel.models.sources import ItemToItem
from flywheel.models.two_tower import TopKIndex, TwoTower, embed_users, pair_logits, pair_scores, train_two_tower


@dataclass
class ModelBundle:
    """Everything a version needs to recommend: spec, towers, ranker and their configs."""

    spec: FeatureSpec
    retrieval: TwoTower
    ranker: MultiTaskRanker
    retrieval_config: RetrievalConfig
    ranker_config: RankerConfig
    candidates_config: CandidatesConfig = CandidatesConfig()
    evaluation_config: EvaluationConfig = EvaluationConfig()
    item_to_item: ItemToItem | None = None
    """The EASE weights of the item-to-item source (None in bundles from before the sources)."""
    state: pd.DataFrame | None = None
    """The training interactions the sources and the top-K function read (histories, popularity,
    latest user features, content snapshot): :data:`STATE_COLUMNS` of the training rows."""

    def training_config(self) -> TrainingConfig:
        """The parts of the training configuration the bundle was trained with."""
        return TrainingConfig(
            retrieval=self.retrieval_config,
            ranker=self.ranker_config,
            candidates=self.candidates_config,
            evaluation=self.evaluation_config,
        )

    def save(self, folder: str | Path) -> Path:
        """Write the bundle to ``folder`` (spec.json, configs.json, retrieval.pt, ranker.pt, and
        item_to_item.npz + state.parquet when present)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.spec.save(folder / "spec.json")
        (folder / "configs.json").write_text(
            json.dumps(
                {
                    "retrieval": self.retrieval_config.model_dump(mode="json"),
                    "ranker": self.ranker_config.model_dump(mode="json"),
                    "candidates": self.candidates_config.model_dump(mode="json"),
                    "evaluation": self.evaluation_config.model_dump(mode="json"),
                }
            ),
            encoding="utf-8",
        )
        torch.save(self.retrieval.state_dict(), folder / "retrieval.pt")
        torch.save(self.ranker.state_dict(), folder / "ranker.pt")
        if self.item_to_item is not None:
            self.item_to_item.save(folder / "item_to_item.npz")
        if self.state is not None:
            self.state.to_parquet(folder / "state.parquet")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ModelBundle:
        """Read a bundle written by :meth:`save`."""
        folder = Path(folder)
        spec = FeatureSpec.load(folder / "spec.json")
        configs = json.loads((folder / "configs.json").read_text(encoding="utf-8"))
        rc = RetrievalConfig.model_validate(configs["retrieval"])
        kc = RankerConfig.model_validate(configs["ranker"])
        retrieval = TwoTower(spec, rc)
        retrieval.load_state_dict(torch.load(folder / "retrieval.pt", weights_only=True))
        ranker = build_ranker(spec, kc)
        ranker.load_state_dict(torch.load(folder / "ranker.pt", weights_only=True))
        retrieval.eval()
        ranker.eval()
        i2i = ItemToItem.load(folder / "item_to_item.npz") if (folder / "item_to_item.npz").exists() else None
        state = pd.read_parquet(folder / "state.parquet") if (folder / "state.parquet").exists() else None
        return cls(
            spec,
            retrieval,
            ranker,
            rc,
            kc,
            CandidatesConfig.model_validate(configs.get("candidates", {})),
            EvaluationConfig.model_validate(configs.get("evaluation", {})),
            i2i,
            state,
        )


STATE_COLUMNS: tuple[str, ...] = (
    "user_id",
    "content_id",
    "event_timestamp",
    "device_type",
    *INTEREST_LABELS,
    *USER_DENSE,
    USER_VECTOR,
    *CONTENT_DENSE,
)
"""The training columns a bundle keeps for its top-K function."""


def training_state(train: pd.DataFrame) -> pd.DataFrame:
    """The :data:`STATE_COLUMNS` of the training rows."""
    return train[[c for c in STATE_COLUMNS if c in train.columns]].reset_index(drop=True)


def fit_feature_spec(train: pd.DataFrame, catalog: pd.DataFrame, config: TrainingConfig) -> FeatureSpec:
    """The feature spec of a training window under ``config`` (the id vocabularies chosen by
    validation when ``config.id_embeddings`` is ``validate``, see :mod:`flywheel.models.ids`)."""
    if config.id_embeddings == "validate":
        return select_id_vocabularies(train, catalog, config)
    return fixed_spec(train, catalog, config, config.id_embeddings)


def with_retrieval_score(bundle: ModelBundle, frame: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the bundle's two-tower score of each row (what its ranker reads)."""
    cat = encode_catalog(catalog, bundle.spec)
    return frame.assign(retrieval_score=pair_scores(bundle.retrieval, frame, bundle.spec, cat))


def train_bundle(train: pd.DataFrame, catalog: pd.DataFrame, config: TrainingConfig) -> ModelBundle:
    """Fit the spec, train retrieval, the item-to-item source and the ranker on ``train``
    (prepared, with ``history``): the same steps as the training pipeline, in one call."""
    from flywheel.models.stack import train_stacked_ranker, with_sources

    spec = fit_feature_spec(train, catalog, config)
    cat = encode_catalog(catalog, spec)
    retrieval = train_two_tower(train, cat, spec, config.retrieval, seed=config.seed)
    if config.ranker.use_retrieval_score:
        train = train.assign(retrieval_score=pair_scores(retrieval, train, spec, cat))
    ranker, info = train_stacked_ranker(train, catalog, spec, retrieval, config)
    chosen = with_blend(config.ranker, info.get("ranker.source_blend"))
    return with_sources(ModelBundle(spec, retrieval, ranker, config.retrieval, chosen), train, catalog, config)


def two_stage_score(ranker_score: np.ndarray, retrieval_logit: np.ndarray, *, blend: float) -> np.ndarray:
    """log(ranker score) + blend x retrieval logit (the ranker's order when blend is 0)."""
    return np.log(np.clip(ranker_score, 1e-12, None)) + blend * retrieval_logit


def with_blend(config: RankerConfig, blend: float | None) -> RankerConfig:
    """``config`` with the item-to-item blend the ranker's training chose
    (:func:`~flywheel.models.stack.train_stacked_ranker`; None: none chosen, logged traffic), as the
    version keeps it."""
    return config if blend is None else config.model_copy(update={"source_blend": float(blend)})


def two_stage_scores(ranker_scores: np.ndarray, item_to_item_z: np.ndarray, blend: float) -> np.ndarray:
    """The two-stage score of a version whose ranker reads the sources: :func:`two_stage_score` with
    the item-to-item source's z-score in float64 (the batch and request paths give the same bits);
    at blend 0 the ranker's scores themselves."""
    if blend == 0:
        return ranker_scores
    return two_stage_score(
        np.asarray(ranker_scores, dtype=np.float64), np.asarray(item_to_item_z, dtype=np.float64), blend=blend
    )


@dataclass(frozen=True)
class Recommendations:
    """Ranked catalog rows per query for retrieval alone and for the two stages."""

    content_ids: np.ndarray
    retrieval: np.ndarray
    two_stage: np.ndarray


def recommend(
    bundle: ModelBundle,
    queries: pd.DataFrame,
    catalog: pd.DataFrame,
    history: pd.DataFrame,
    *,
    k: int,
    candidates: int | None = None,
    catalog_tensors: CatalogTensors | None = None,
) -> Recommendations:
    """Top-``k`` items per query: by the towers alone, and retrieved then re-ranked by the ranker.

    Args:
        bundle: The model version.
        queries: One row per request with the user columns and ``history`` and ``event_timestamp``.
        catalog: The catalog to recommend from.
        history: Logged impressions before the queries (for the content features snapshot).
        k: Items returned.
        candidates: Items retrieved for the ranker (the configured number when None).
        catalog_tensors: Pre-encoded catalog (encoded here when None).
    """
    cat = catalog_tensors or encode_catalog(catalog, bundle.spec)
    index = TopKIndex.build(bundle.retrieval, cat)
    n_cand = max(k, candidates or bundle.retrieval_config.candidates)
    rows, similarity = index.search(embed_users(bundle.retrieval, queries, bundle.spec), n_cand)
    snapshot = content_snapshot(history, queries["event_timestamp"].min())
    pairs = pair_frame(queries, cat.content_ids[rows], catalog, snapshot)
    pairs["retrieval_score"] = similarity.reshape(-1)
    scores = two_stage_score(
        combined_score(predict_heads(bundle.ranker, pairs, catalog, bundle.spec), bundle.ranker_config),
        similarity.reshape(-1),
        blend=bundle.ranker_config.retrieval_blend,
    )
    order = np.argsort(-scores.reshape(rows.shape), axis=1, kind="stable")[:, :k]
    return Recommendations(
        content_ids=cat.content_ids,
        retrieval=rows[:, :k],
        two_stage=np.take_along_axis(rows, order, axis=1),
    )


def score_candidates(
    bundle: ModelBundle,
    queries: pd.DataFrame,
    query_index: np.ndarray,
    content_ids: np.ndarray,
    catalog: pd.DataFrame,
    history: pd.DataFrame,
    *,
    catalog_tensors: CatalogTensors | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Retrieval logits and two-stage scores of given (query, item) pairs, given flat.

    The two-stage score is the one :func:`recommend` re-ranks the retrieved candidates by, so
    that a fixed candidate list per query (e.g. the items a user was shown) is ordered as the
    deployed system would order it. Items missing from the catalog get a retrieval logit of 0.

    Returns:
        ``(retrieval_logit, two_stage_score)``, each [N].
    """
    cat = catalog_tensors or encode_catalog(catalog, bundle.spec)
    query_index = np.asarray(query_index, dtype=np.int64)
    content_ids = np.asarray(content_ids).astype(str)
    users = embed_users(bundle.retrieval, queries, bundle.spec)
    logit = pair_logits(bundle.retrieval, users, query_index, cat.rows(content_ids), cat)
    snapshot = content_snapshot(history, queries["event_timestamp"].min())
    pairs = pair_rows(queries, query_index, content_ids, catalog, snapshot)
    pairs["retrieval_score"] = logit
    scores = two_stage_score(
        combined_score(predict_heads(bundle.ranker, pairs, catalog, bundle.spec), bundle.ranker_config),
        logit,
        blend=bundle.ranker_config.retrieval_blend,
    )
    return logit, scores
