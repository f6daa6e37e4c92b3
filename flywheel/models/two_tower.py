"""Two-tower retrieval: a user tower and an item tower trained with in-batch negatives.

The loss is the sampled softmax over the batch with the logQ correction of Yi et al. (2019):
items appear as in-batch negatives in proportion to their frequency among the positives, so
``log q(item)`` is subtracted from every logit; without it popular items are over-penalised.
The item tower reads only static content features (id, creator, genres, synopsis words): a new
item is embedded from its content before any interaction (its id is the unknown id, which id
dropout trains). The index over the catalog (:func:`catalog_index`) is exact (a matrix product and
top-k, recall 1) below ``candidates.ivf_min_titles`` titles, faiss's inverted-file index above: the
exact product is bound by memory bandwidth (at 100k titles x 64 dimensions it reads 25.6 MB a
query; bfloat16 and float16 were slower here) and grows with the catalog, 0.8-1.2 ms a query at
100k titles and 10.9 ms at 1M on one core, where the index takes 0.5-0.7 ms at both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from flywheel.config.recommender import CandidatesConfig
from flywheel.config.training import RetrievalConfig
from flywheel.models.early_stopping import EarlyStopping
from flywheel.models.encoding import CatalogTensors, FeatureSpec, encode_users


class UserTower(nn.Module):
    """User id + dense user features + mean of the recent watch history -> unit embedding."""

    def __init__(self, n_users: int, n_items: int, dense_dim: int, id_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.user = nn.Embedding(n_users, id_dim)
        self.history = nn.Embedding(n_items, id_dim, padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(2 * id_dim + dense_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, user_idx: torch.Tensor, user_dense: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Embed users: ``user_idx`` [B], ``user_dense`` [B, D], ``history`` [B, H] (0 = pad)."""
        mask = (history > 0).float().unsqueeze(-1)
        pooled = (self.history(history) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        x = torch.cat([self.user(user_idx), pooled, user_dense], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class ItemTower(nn.Module):
    """Item id + creator + genres + synopsis words -> unit embedding."""

    def __init__(
        self, n_items: int, n_creators: int, n_genres: int, buckets: int, id_dim: int, hidden: int, out_dim: int
    ):
        super().__init__()
        self.item = nn.Embedding(n_items, id_dim)
        self.creator = nn.Embedding(n_creators, id_dim)
        self.words = nn.EmbeddingBag(buckets + 1, id_dim, mode="mean", padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(3 * id_dim + n_genres, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(
        self, item_idx: torch.Tensor, creator_idx: torch.Tensor, genres: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
        """Embed items: ids [B], creators [B], genre multi-hot [B, G], synopsis word ids [B, T]."""
        x = torch.cat([self.item(item_idx), self.creator(creator_idx), self.words(tokens), genres], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class TwoTower(nn.Module):
    """The pair of towers; a pair's logit is cosine / temperature + the item's bias (learned
    popularity; new items share the unknown id's bias)."""

    def __init__(self, spec: FeatureSpec, config: RetrievalConfig):
        super().__init__()
        n_items = len(spec.contents) + 1
        self.user_tower = UserTower(
            len(spec.users) + 1, n_items, spec.user_dense_dim, config.id_dim, config.hidden, config.embedding_dim
        )
        self.item_tower = ItemTower(
            n_items,
            len(spec.creators) + 1,
            len(spec.genres),
            spec.synopsis_buckets,
            config.id_dim,
            config.hidden,
            config.embedding_dim,
        )
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        self.use_item_bias = config.item_bias
        self.temperature = config.temperature

    def bias(self, item_idx: torch.Tensor) -> torch.Tensor:
        """[B] logit bias of the items (zeros when the bias is switched off)."""
        if not self.use_item_bias:
            return torch.zeros(item_idx.shape[0])
        return self.item_bias(item_idx).squeeze(1)


def in_batch_softmax_loss(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    log_q: torch.Tensor | None,
    item_ids: torch.Tensor,
    temperature: float,
    item_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sampled softmax over in-batch negatives, with the logQ correction when ``log_q`` is given.

    Args:
        user_emb: [B, D] user embeddings.
        item_emb: [B, D] embeddings of each user's positive item.
        log_q: [B] log sampling probability of each item (None: no correction).
        item_ids: [B] ids of the items; a repeated item is not a negative of its own positive.
        temperature: Softmax temperature.
        item_bias: [B] logit bias of each item (None: none).
    """
    logits = user_emb @ item_emb.T / temperature
    if item_bias is not None:
        logits = logits + item_bias.unsqueeze(0)
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    same = item_ids.unsqueeze(0) == item_ids.unsqueeze(1)
    eye = torch.eye(len(item_ids), dtype=torch.bool)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(item_ids)))


def train_two_tower(
    train: pd.DataFrame,
    catalog: CatalogTensors,
    spec: FeatureSpec,
    config: RetrievalConfig,
    *,
    seed: int = 0,
    positive_label: str | None = None,
) -> TwoTower:
    """Train the towers on the positive (user, item) pairs of ``train`` (with ``history``).

    A pair is positive when its ``positive_label`` (``config.positive_label`` when None) is set.

    Raises:
        ValueError: No positive pairs, or positives on items missing from the catalog.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    label = positive_label or config.positive_label
    pos = train[train[label] > 0].sort_values("event_timestamp", kind="stable")
    rows = catalog.rows(pos["content_id"].astype(str).to_numpy())
    pos, rows = pos[rows >= 0], rows[rows >= 0]
    if len(pos) == 0:
        raise ValueError(f"no positive pairs to train retrieval on (no {label} on catalog items)")
    users = encode_users(pos, spec)
    counts = np.bincount(rows, minlength=len(catalog.content_ids)).astype(float)
    log_q_all = torch.from_numpy(np.log(counts / counts.sum() + 1e-12)).float()
    model = TwoTower(spec, config)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    row_t = torch.from_numpy(rows)
    # early stopping on the latest `validation_fraction` of the positives (they are in time order)
    n_val = int(len(pos) * config.validation_fraction) if len(pos) >= 200 else 0
    fit = np.arange(len(pos) - n_val)
    val = torch.arange(len(pos) - n_val, len(pos))

    def batch_loss(b: torch.Tensor, train: bool) -> torch.Tensor:
        r = row_t[b]
        item_idx = catalog.item_idx[r]
        if train:
            drop = torch.rand(len(b)) < config.id_dropout
            item_idx = torch.where(drop, torch.zeros_like(item_idx), item_idx)
        u = model.user_tower(users["user_idx"][b], users["user_dense"][b], users["history"][b])
        v = model.item_tower(item_idx, catalog.creator_idx[r], catalog.genres[r], catalog.tokens[r])
        return in_batch_softmax_loss(
            u,
            v,
            log_q_all[r] if config.logq_correction else None,
            r,
            config.temperature,
            item_bias=model.bias(item_idx),
        )

    stopping = EarlyStopping(patience=config.patience)
    for _ in range(config.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(fit))
        for start in range(0, len(order), config.batch_size):
            b = order[start : start + config.batch_size]
            if len(b) < 2:
                continue
            loss = batch_loss(b, train=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if n_val == 0:
            continue
        model.eval()
        with torch.no_grad():
            chunks = [val[i : i + config.batch_size] for i in range(0, len(val), config.batch_size)]
            val_loss = float(np.mean([batch_loss(c, train=False).item() for c in chunks if len(c) >= 2]))
        if stopping.should_stop(val_loss, model):
            break
    stopping.restore_best(model)
    model.eval()
    return model


class TopKIndex:
    """Exact maximum-inner-product search over the catalog's item embeddings."""

    def __init__(
        self,
        content_ids: np.ndarray,
        embeddings: torch.Tensor,
        bias: torch.Tensor | None = None,
        temperature: float = 1.0,
    ):
        self.content_ids = np.asarray(content_ids, dtype=object)
        self.embeddings = embeddings
        self.bias = torch.zeros(len(self.content_ids)) if bias is None else bias
        self.temperature = temperature
        self._scaled = (embeddings / temperature).T.contiguous()
        """[D, N]: the embeddings over the temperature, one title per column: one ``addmm`` with the
        biases (measured for one user on 100k titles: 0.92 ms against 1.81 ms for the product, the
        division and the sum, on a loaded machine)."""
        self._bias_row = self.bias.unsqueeze(0)

    @classmethod
    def build(cls, model: TwoTower, catalog: CatalogTensors) -> TopKIndex:
        """Embed every catalog item with the item tower."""
        with torch.no_grad():
            emb = model.item_tower(catalog.item_idx, catalog.creator_idx, catalog.genres, catalog.tokens)
            bias = model.bias(catalog.item_idx)
        return cls(catalog.content_ids, emb, bias, model.temperature)

    def scores(self, user_emb: torch.Tensor) -> torch.Tensor:
        """Logits of every item for each user: [U, N] (cosine / temperature + item bias)."""
        return torch.addmm(self._bias_row, user_emb, self._scaled)

    def search(self, user_emb: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` catalog rows and scores per user (k is capped at the catalog size)."""
        top = torch.topk(self.scores(user_emb), min(k, len(self.content_ids)), dim=1)
        return top.indices.numpy(), top.values.numpy()


class IvfIndex(TopKIndex):
    """Approximate maximum-inner-product search: faiss's inverted-file index (``IndexIVFFlat``).

    The logit ``u . v / T + b`` is an inner product of ``[u, 1]`` with ``[v / T, b]``; the titles'
    vectors get one more coordinate, ``sqrt(M - |x|^2)`` (``M`` the largest ``|x|^2``), so that the
    largest inner product is the nearest neighbour in L2 (Bachrach et al. 2014), which the index's
    k-means lists are built for. A query scores the titles of its ``probe`` nearest lists and keeps
    its ``depth`` best; their exact logits (recomputed here) are the two-tower source's scores,
    every other title scores -inf. The source's candidates, and the rank and z features of a ranker
    that reads the sources, are over these titles, alike in the batch and the request path: both
    call :meth:`scores`, which searches one query at a time, so a query gets the same numbers bit
    for bit whatever the batch.
    """

    def __init__(self, exact: TopKIndex, *, lists: int, probe: int, depth: int, seed: int = 0):
        """Index the titles of ``exact`` (whose embeddings, biases and temperature it takes)."""
        import faiss

        self.content_ids, self.embeddings = exact.content_ids, exact.embeddings
        self.bias, self.temperature = exact.bias, exact.temperature
        n = len(self.content_ids)
        self.lists = max(1, min(int(lists), n))
        self.probe = min(int(probe), self.lists)
        self.depth = min(int(depth), n)
        self._rows = exact._scaled.T.detach().contiguous()
        """[N, D]: the embeddings over the temperature, one title per row (the found titles' logits;
        the exact index's [D, N] copy, one title per column, is not kept)."""
        points = np.hstack([self._rows.numpy(), self.bias.detach().numpy()[:, None]]).astype(np.float32)
        norms = np.einsum("ij,ij->i", points, points)
        reduced = np.hstack([points, np.sqrt(norms.max() - norms)[:, None]]).astype(np.float32)
        self._index = faiss.IndexIVFFlat(faiss.IndexFlatL2(reduced.shape[1]), reduced.shape[1], self.lists)
        self._index.cp.seed = seed
        self._index.cp.min_points_per_centroid = 1  # a small catalog trains few lists without a warning
        self._index.train(reduced)
        self._index.add(reduced)
        self._index.nprobe = self.probe

    def found(self, user_emb: torch.Tensor) -> np.ndarray:
        """Catalog rows of one query's ``depth`` best titles among its ``probe`` lists."""
        query = np.zeros((1, user_emb.shape[1] + 2), dtype=np.float32)
        query[0, :-2] = user_emb.detach().numpy()[0]
        query[0, -2] = 1.0
        _, rows = self._index.search(query, self.depth)
        return rows[0][rows[0] >= 0]

    def found_logits(self, user_emb: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """One query's found titles (catalog rows, unique) and their exact logits (float32): the
        finite entries of its :meth:`scores` row, without the [N] row around them."""
        rows = torch.from_numpy(self.found(user_emb))
        # index_select copies the rows at once: a tensor index ran a per-element kernel (4x slower, 400 rows)
        bias, vectors = self.bias.index_select(0, rows), self._rows.index_select(0, rows)
        logits = torch.addmm(bias.unsqueeze(0), user_emb, vectors.T)[0]
        return rows.numpy(), logits.numpy()

    def scores(self, user_emb: torch.Tensor) -> torch.Tensor:
        """Logits of each user's found titles, -inf for the others: [U, N]."""
        out = torch.full((len(user_emb), len(self.content_ids)), -torch.inf)
        for q in range(len(user_emb)):
            rows, logits = self.found_logits(user_emb[q : q + 1])
            out[q, torch.from_numpy(rows)] = torch.from_numpy(logits)
        return out


def catalog_index(model: TwoTower, catalog: CatalogTensors, config: CandidatesConfig, seed: int = 0) -> TopKIndex:
    """The two-tower source's index over ``catalog``: exact or inverted-file (``config.index``)."""
    n = len(catalog.content_ids)
    kind = config.index if config.index != "auto" else ("ivf" if n >= config.ivf_min_titles else "exact")
    exact = TopKIndex.build(model, catalog)
    if kind == "exact":
        return exact
    lists = max(1, round(n / config.ivf_list_size))
    depth = max(config.ivf_depth, config.two_tower)
    return IvfIndex(exact, lists=lists, probe=config.ivf_probe, depth=depth, seed=seed)


def pair_scores(model: TwoTower, frame: pd.DataFrame, spec: FeatureSpec, catalog: CatalogTensors) -> np.ndarray:
    """The two-tower logit of each row's (user, item); 0 for items missing from the catalog."""
    rows = catalog.rows(frame["content_id"].astype(str).to_numpy())
    return pair_logits(model, embed_users(model, frame, spec), np.arange(len(frame)), rows, catalog)


def pair_logits(
    model: TwoTower, users: torch.Tensor, query_index: np.ndarray, rows: np.ndarray, catalog: CatalogTensors
) -> np.ndarray:
    """The two-tower logit (cosine / T + item bias) of flat (query, catalog row) pairs: ``users`` are
    the queries' embeddings, ``rows`` from :meth:`CatalogTensors.rows`; 0 where a row is -1 (missing)."""
    safe = torch.from_numpy(np.clip(rows, 0, None))
    with torch.no_grad():
        items = model.item_tower(
            catalog.item_idx[safe], catalog.creator_idx[safe], catalog.genres[safe], catalog.tokens[safe]
        )
        queries = users[torch.from_numpy(np.asarray(query_index, dtype=np.int64))]
        logit = ((queries * items).sum(1) / model.temperature + model.bias(catalog.item_idx[safe])).numpy()
    return np.where(rows >= 0, logit, 0.0)


def embed_users(model: TwoTower, frame: pd.DataFrame, spec: FeatureSpec) -> torch.Tensor:
    """User embeddings of the rows of ``frame`` (needs a ``history`` column)."""
    users = encode_users(frame, spec)
    with torch.no_grad():
        return model.user_tower(users["user_idx"], users["user_dense"], users["history"])
