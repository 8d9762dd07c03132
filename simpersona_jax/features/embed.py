"""Content embedding of products: 128-d, deterministic, no model download, store-agnostic.

A product is the bag of its content features: every prefix of its category path
(`apparel`, `apparel.shoes`, `apparel.shoes.running`), its brand, the words of its title and its
price band (log2 bins, with half weight on the neighbouring bands so nearby prices stay close).
Each feature maps to a fixed pseudo-random Gaussian direction seeded by a stable hash of its text
(random indexing); a product is the weighted sum, L2-normalised. Two products that share category,
brand or title words are close in any store, which is what lets the buyer vector transfer to
stores never seen in training. Product ids are never used.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re

import numpy as np

DIM = 128
WEIGHTS = {"cat": 1.0, "brand": 1.0, "word": 0.5, "price": 1.0}
_WORD = re.compile(r"[a-z0-9]+")


@functools.lru_cache(maxsize=1 << 20)
def feature_vector(feature: str, dim: int = DIM) -> np.ndarray:
    """The fixed random direction of one content feature (stable across runs and machines)."""
    seed = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    vec = np.random.default_rng(seed).standard_normal(dim)
    return (vec / np.sqrt(dim)).astype(np.float32)


def price_band(price: float | None) -> int | None:
    if price is None or not math.isfinite(price) or price <= 0:
        return None
    return int(math.floor(math.log2(price)))


def product_features(
    category: str | None, brand: str | None, title: str | None, price: float | None
) -> list[tuple[str, float]]:
    """(feature text, weight) pairs of one product's content."""
    feats: list[tuple[str, float]] = []
    if category:
        parts = category.lower().split(".")
        feats += [("cat:" + ".".join(parts[: i + 1]), WEIGHTS["cat"]) for i in range(len(parts))]
    if brand:
        feats.append(("brand:" + brand.lower(), WEIGHTS["brand"]))
    if title:
        feats += [
            ("word:" + w, WEIGHTS["word"]) for w in dict.fromkeys(_WORD.findall(title.lower()))
        ]
    band = price_band(price)
    if band is not None:
        feats += [
            (f"price:{band}", WEIGHTS["price"]),
            (f"price:{band - 1}", 0.5 * WEIGHTS["price"]),
            (f"price:{band + 1}", 0.5 * WEIGHTS["price"]),
        ]
    return feats


@functools.lru_cache(maxsize=1 << 18)
def _content_vector(category, brand, title, price, dim: int) -> np.ndarray:
    """Unnormalised sum of one product's feature directions (cached: products repeat)."""
    vec = np.zeros(dim, np.float32)
    for feature, weight in product_features(category, brand, title, price):
        vec += weight * feature_vector(feature, dim)
    return vec


def embed_products(category, brand, title, price, dim: int = DIM) -> np.ndarray:
    """[N, dim] float32 embeddings of N products given as parallel sequences (None allowed).

    Identical content gives identical rows; a product with no content at all is the zero vector.
    """
    out = (
        np.stack(
            [_content_vector(c, b, t, p, dim) for c, b, t, p in zip(category, brand, title, price)]
        )
        if len(category)
        else np.zeros((0, dim), np.float32)
    )
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
