"""Multi-task ranker: sparse id embeddings + dense features -> DCN-v2 cross + MLP -> five heads.

Heads: P(click), P(watch > 50%), P(complete), P(like), P(add to list); the final score is a
configurable weighted sum of the heads' probabilities. Position bias is handled in training:

* ``shallow_tower``: the logged position is a training-only input; a per-position bias is added
  to every head's logit while training and fixed at position 1 when serving, so the deep part
  learns relevance rather than "was shown on top" (the YouTube "Watch Next" design);
* ``ipw``: each example's loss uses the unbiased pointwise estimator with weights
  1/propensity (clipped), from the logged examination propensities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from flywheel.config.training import HEAD_NAMES, RankerConfig
from flywheel.models.early_stopping import EarlyStopping
from flywheel.models.encoding import FeatureSpec, encode_ranker, sparse_cardinalities


class CrossLayer(nn.Module):
    """One DCN-v2 cross layer: x_{l+1} = x_0 * (W x_l + b) + x_l."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer."""
        return x0 * self.linear(x) + x


class MultiTaskRanker(nn.Module):
    """The ranker; ``forward`` returns one logit per head."""

    def __init__(self, cardinalities: tuple[int, ...], dense_dim: int, config: RankerConfig):
        super().__init__()
        self.embeddings = nn.ModuleList([nn.Embedding(n, config.id_dim) for n in cardinalities])
        # the recent watch history, pooled over the content id table, and its match with the candidate
        n_vectors = len(cardinalities) + 1  # the sparse fields and the pooled history
        n_pairs = n_vectors * (n_vectors - 1) // 2  # DLRM-style pairwise dot products
        width = (len(cardinalities) + 2) * config.id_dim + n_pairs + dense_dim
        rows, cols = torch.triu_indices(n_vectors, n_vectors, offset=1)
        self.register_buffer("pair_rows", rows, persistent=False)
        self.register_buffer("pair_cols", cols, persistent=False)
        self.cross = nn.ModuleList([CrossLayer(width) for _ in range(config.cross_layers)])
        layers: list[nn.Module] = []
        prev = width
        for h in config.hidden:
            layers += [nn.Linear(prev, h), nn.ReLU(), nn.Dropout(config.dropout)]
            prev = h
        self.deep = nn.Sequential(*layers)
        self.heads = nn.Linear(prev, len(HEAD_NAMES))
        self.position_bias = nn.Embedding(config.max_position + 1, len(HEAD_NAMES))
        nn.init.zeros_(self.position_bias.weight)
        self.max_position = config.max_position
        self.use_position = config.position_debiasing == "shallow_tower"
        self.use_retrieval_score = config.use_retrieval_score
        self.dense_dim = dense_dim

    def forward(
        self,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        history: torch.Tensor,
        position: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Head logits [B, H].

        Args:
            sparse: [B, 4] ids (user, content, creator, device).
            dense: [B, D] scaled dense features.
            history: [B, L] content ids of the recent watch history (0 = padding).
            position: [B] logged positions (training and evaluation on logged data); None = 1.
        """
        parts = [emb(sparse[:, i]) for i, emb in enumerate(self.embeddings)]
        content_table = self.embeddings[1]
        mask = (history > 0).float().unsqueeze(-1)
        pooled = (content_table(history) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        match = pooled * parts[1]
        vectors = torch.stack(parts + [pooled], dim=1)
        dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, self.pair_rows, self.pair_cols]  # type: ignore[index]
        x0 = torch.cat(parts + [pooled, match, dots, dense], dim=1)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        logits = self.heads(self.deep(x))
        if self.use_position:
            if position is None:
                position = torch.ones(sparse.shape[0], dtype=torch.long)
            logits = logits + self.position_bias(position.clamp(1, self.max_position))
        return logits


def build_ranker(spec: FeatureSpec, config: RankerConfig) -> MultiTaskRanker:
    """An untrained ranker sized for ``spec`` (one more dense input for the two-tower score)."""
    return MultiTaskRanker(sparse_cardinalities(spec), spec.ranker_dense_dim + int(config.use_retrieval_score), config)


def head_weight_vector(config: RankerConfig) -> torch.Tensor:
    """The head weights in head order (missing heads weigh 0)."""
    return torch.tensor([config.head_weights.get(h, 0.0) for h in HEAD_NAMES], dtype=torch.float32)


def init_position_bias(model: MultiTaskRanker, train: pd.DataFrame, max_position: int) -> None:
    """Start the position biases at log(mean logged propensity) of each position (1 for unseen)."""
    pos = train["position"].clip(1, max_position).astype(int)
    mean_p = train["propensity"].clip(1e-6, 1.0).groupby(pos).mean()
    bias = torch.zeros(max_position + 1)
    for position, value in mean_p.items():
        bias[int(position)] = float(np.log(value))
    with torch.no_grad():
        model.position_bias.weight.copy_(bias.unsqueeze(1).expand(-1, len(HEAD_NAMES)))


def split_validation(train: pd.DataFrame, config: RankerConfig) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows the ranker fits and of its validation rows: the latest
    ``validation_fraction`` of the rows by time (none below 200 rows), for early stopping."""
    n_val = int(len(train) * config.validation_fraction) if len(train) >= 200 else 0
    by_time = np.argsort(train["event_timestamp"].to_numpy(), kind="stable")
    return np.sort(by_time[: len(train) - n_val]), by_time[len(train) - n_val :]


def train_ranker(
    train: pd.DataFrame,
    catalog: pd.DataFrame,
    spec: FeatureSpec,
    config: RankerConfig,
    *,
    seed: int = 0,
) -> MultiTaskRanker:
    """Train the ranker on logged impressions (one row per impression, the five labels).

    With ``config.use_retrieval_score`` the frame needs ``retrieval_score`` (see
    :func:`flywheel.models.two_tower.pair_scores`).
    """
    if len(train) == 0:
        raise ValueError("no impressions to train the ranker on")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = encode_ranker(train, catalog, spec, retrieval_score=config.use_retrieval_score)
    labels = torch.from_numpy(train[list(HEAD_NAMES)].to_numpy(dtype=np.float32))
    position = torch.from_numpy(train["position"].to_numpy(dtype=np.int64))
    inv_p = torch.from_numpy(
        np.minimum(1.0 / np.clip(train["propensity"].to_numpy(dtype=float), 1e-6, None), config.ipw_clip)
    ).float()
    model = build_ranker(spec, config)
    if config.position_debiasing == "shallow_tower":
        init_position_bias(model, train, config.max_position)
    position_params = list(model.position_bias.parameters())
    others = [p for n, p in model.named_parameters() if not n.startswith("position_bias")]
    groups: list[dict[str, Any]] = [
        {"params": others},
        # a few hundred steps of Adam move a parameter by ~lr each: the position biases need
        # to travel several logits, so they learn faster and without decay
        {"params": position_params, "lr": config.learning_rate * 10, "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    fit, val = split_validation(train, config)
    fit_rows, val_rows = torch.from_numpy(fit), torch.from_numpy(val)
    n_val = len(val)
    stopping = EarlyStopping(patience=config.patience)
    for _ in range(config.epochs):
        model.train()
        order = fit_rows[torch.from_numpy(rng.permutation(len(fit_rows)))]
        for start in range(0, len(order), config.batch_size):
            b = order[start : start + config.batch_size]
            sparse = x["sparse"][b].clone()
            drop = torch.rand(len(b)) < config.id_dropout
            sparse[:, 1] = torch.where(drop, torch.zeros_like(sparse[:, 1]), sparse[:, 1])
            logits = model(sparse, x["dense"][b], x["history"][b], position[b])
            loss = _loss(logits, labels[b], inv_p[b], config)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if n_val == 0:
            continue
        model.eval()
        with torch.no_grad():
            v = val_rows
            val_loss = _loss(
                model(x["sparse"][v], x["dense"][v], x["history"][v], position[v]), labels[v], inv_p[v], config
            )
        if stopping.should_stop(float(val_loss.item()), model):
            break
    stopping.restore_best(model)
    model.eval()
    return model


def _loss(logits: torch.Tensor, y: torch.Tensor, inv_p: torch.Tensor, config: RankerConfig) -> torch.Tensor:
    if config.position_debiasing == "ipw":
        target = y * inv_p.unsqueeze(1)  # unbiased pointwise estimator: E[y / p] = relevance
        return -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)).mean()
    return F.binary_cross_entropy_with_logits(logits, y)


def predict_heads(
    model: MultiTaskRanker,
    frame: pd.DataFrame,
    catalog: pd.DataFrame,
    spec: FeatureSpec,
    *,
    logged_position: bool = False,
) -> np.ndarray:
    """Head probabilities [N, H]; with ``logged_position`` the position term uses the logged one."""
    x = encode_ranker(frame, catalog, spec, retrieval_score=model.use_retrieval_score)
    pos = torch.from_numpy(frame["position"].to_numpy(dtype=np.int64)) if logged_position else None
    with torch.no_grad():
        return torch.sigmoid(model(x["sparse"], x["dense"], x["history"], pos)).numpy()


def combined_score(probabilities: np.ndarray, config: RankerConfig | np.ndarray) -> np.ndarray:
    """The final score: the configured weighted sum of the heads' probabilities (``config``: the
    ranker's configuration, or its :func:`head_weight_vector` as a NumPy array, kept by a caller
    that scores one request at a time)."""
    weights = config if isinstance(config, np.ndarray) else head_weight_vector(config).numpy()
    return probabilities @ weights
