"""Behavioural product embedding for id-only logs: session co-occurrence -> PPMI -> truncated SVD.

Logs whose products have only ids (bare click logs, hashed SKUs, OTTO's `aid`, RetailRocket
without its property files) give the content embedder (embed.py) nothing to work with: every
slot would be the zero vector. For such a store, products are embedded from the log itself:
two products are close when the same sessions hold them. Per store: the distinct products of
each session form a binary session x item matrix X (items: the `max_items` seen in most sessions;
a session's first `max_session_items` products), C = XᵀX without its diagonal is the
co-occurrence, its positive PMI (context counts smoothed with exponent 0.75, as in word2vec) is
factorised by scikit-learn's TruncatedSVD (fixed seed: deterministic), and an item is U·sqrt(S),
L2-normalised, turned into embed.DIM numbers by a fixed orthonormal basis. The rank is min(embed.DIM, sqrt(items)): a small
store's co-occurrences cannot support 128 directions (click-log fixture, 200 items: cosine
within a taste group 0.18 at rank 128, 0.68 at rank 16; across groups 0.02-0.05). Products
that never share a session with another are the zero vector. The vectors are not comparable
across stores (each store has its own space).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from simpersona_jax.features import embed

CONTENT_COLUMNS = ("category", "brand", "title", "price")


@dataclasses.dataclass(frozen=True)
class ItemVectors:
    """One store's product vectors: `ids[k]` has row k of `vectors` [n, dim]."""

    ids: pl.Series
    vectors: np.ndarray

    def lookup(self, product_ids: pl.Series) -> np.ndarray:
        """[len(product_ids), dim]: each id's vector (zero for an unknown or null id)."""
        k = product_ids.replace_strict(
            self.ids, pl.int_range(len(self.ids), eager=True), default=None, return_dtype=pl.Int64
        )
        out = np.zeros((len(product_ids), self.vectors.shape[1]), np.float32)
        known = k.is_not_null().to_numpy()
        out[known] = self.vectors[k.filter(k.is_not_null()).to_numpy()]
        return out


def id_only_stores(events: pl.LazyFrame) -> list[str]:
    """Stores none of whose events carry product content (category, brand, title or price)."""
    has = events.group_by("store_id").agg(
        content=pl.any_horizontal([pl.col(c).is_not_null() for c in CONTENT_COLUMNS]).any()
    )
    return sorted(has.filter(~pl.col("content")).collect()["store_id"].to_list())


def fit(
    events: pl.LazyFrame,
    dim: int = embed.DIM,
    max_items: int = 200_000,
    max_session_items: int = 100,
    seed: int = 0,
) -> ItemVectors:
    """Item vectors of one store's events (canonical columns; sessions filled)."""
    pairs = (
        events.filter(pl.col("product_id").is_not_null())
        .select("buyer_id", "session_id", "product_id")
        .unique(maintain_order=True)
        .with_columns(_n=pl.int_range(pl.len()).over("buyer_id", "session_id"))
        .filter(pl.col("_n") < max_session_items)
        .collect()
    )
    vocab = (
        pairs.group_by("product_id")
        .agg(n=pl.len())
        .sort(["n", "product_id"], descending=[True, False])
        .head(max_items)["product_id"]
    )
    ids = vocab.sort()
    cell = pairs.select(
        s=pl.struct("buyer_id", "session_id").rank("dense") - 1,
        i=pl.col("product_id").replace_strict(
            ids, pl.int_range(len(ids), eager=True), default=None, return_dtype=pl.Int64
        ),
    ).drop_nulls()
    x = sp.csr_matrix(
        (np.ones(cell.height, np.float32), (cell["s"].to_numpy(), cell["i"].to_numpy())),
        shape=(int(cell["s"].max() or 0) + 1, len(ids)),
    )
    cooc = (x.T @ x).tocsr()
    cooc.setdiag(0)
    cooc.eliminate_zeros()
    vectors = np.zeros((len(ids), dim), np.float32)  # no co-occurrence at all: zero vectors
    if cooc.nnz and len(ids) > 2:
        ppmi = _ppmi(cooc)
        k = min(dim, len(ids) - 1, max(2, int(np.sqrt(len(ids)))))
        svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=seed)
        u = svd.fit_transform(ppmi)  # = U·S
        u = u / np.sqrt(np.maximum(svd.singular_values_, 1e-12))  # U·sqrt(S)
        # Rotated into all `dim` coordinates by a fixed orthonormal basis: inner products are
        # kept, and no coordinate is a constant zero for the model to learn around.
        basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, k)))
        norm = np.linalg.norm(u, axis=1, keepdims=True)
        vectors = (np.divide(u, norm, out=np.zeros_like(u), where=norm > 0) @ basis.T).astype(
            np.float32
        )
    return ItemVectors(ids, vectors)


def _ppmi(cooc: sp.csr_matrix, alpha: float = 0.75) -> sp.csr_matrix:
    """Positive PMI of a symmetric co-occurrence matrix, context counts smoothed by `alpha`."""
    row = np.asarray(cooc.sum(axis=1)).ravel()
    ctx = row**alpha
    coo = cooc.tocoo()
    pmi = np.log(coo.data * ctx.sum() / (row[coo.row] * ctx[coo.col]))
    keep = pmi > 0
    return sp.csr_matrix(
        (pmi[keep].astype(np.float32), (coo.row[keep], coo.col[keep])), shape=cooc.shape
    )
