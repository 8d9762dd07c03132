"""Synthetic store catalogs: category tree, brands, titles and log-normal prices.

Deterministic given (store index, seed). Stores draw from one shared taxonomy so that content
embeddings transfer between stores, but each store carries its own subset, brands and prices.
"""

from __future__ import annotations

import numpy as np
import polars as pl

# top category -> {subcategory -> leaf nouns}; leaf paths are "top.sub.leaf".
TAXONOMY: dict[str, dict[str, tuple[str, ...]]] = {
    "apparel": {
        "shoes": ("running", "sneakers", "boots", "sandals"),
        "tops": ("tshirt", "shirt", "sweater", "hoodie"),
        "bottoms": ("jeans", "shorts", "trousers"),
    },
    "electronics": {
        "audio": ("headphones", "speaker", "earbuds"),
        "phones": ("smartphone", "case", "charger"),
        "computers": ("laptop", "monitor", "keyboard", "mouse"),
    },
    "home": {
        "kitchen": ("kettle", "blender", "pan", "knife"),
        "furniture": ("chair", "desk", "lamp", "shelf"),
        "bedding": ("pillow", "blanket", "sheet"),
    },
    "beauty": {
        "skincare": ("cream", "serum", "cleanser"),
        "makeup": ("lipstick", "mascara", "foundation"),
        "fragrance": ("perfume", "cologne"),
    },
    "sports": {
        "fitness": ("dumbbell", "mat", "band"),
        "outdoor": ("tent", "backpack", "bottle"),
        "cycling": ("helmet", "light", "lock"),
    },
    "toys": {
        "games": ("puzzle", "boardgame", "cards"),
        "building": ("blocks", "kit"),
        "plush": ("bear", "bunny"),
    },
}
BRAND_STEMS = (
    "acme",
    "nordic",
    "vertex",
    "lumen",
    "orbit",
    "terra",
    "nova",
    "pulse",
    "atlas",
    "zephyr",
    "cobalt",
    "aurora",
    "summit",
    "ember",
    "harbor",
    "quill",
)
ADJECTIVES = (
    "classic",
    "pro",
    "lite",
    "ultra",
    "eco",
    "smart",
    "compact",
    "deluxe",
    "essential",
    "premium",
    "sport",
    "urban",
)
# Median price (store currency) per top category; leaves scatter around it.
TOP_PRICE = {
    "apparel": 45.0,
    "electronics": 160.0,
    "home": 60.0,
    "beauty": 25.0,
    "sports": 40.0,
    "toys": 20.0,
}


def make_catalog(store_id: str, rng: np.random.Generator, n_products: int) -> pl.DataFrame:
    """One store's catalog: product_id, category, brand, title, price."""
    tops = sorted(TAXONOMY)
    n_tops = int(rng.integers(3, len(tops) + 1))
    store_tops = [tops[i] for i in sorted(rng.choice(len(tops), n_tops, replace=False))]
    leaves = [
        f"{top}.{sub}.{leaf}"
        for top in store_tops
        for sub, leaf_names in TAXONOMY[top].items()
        for leaf in leaf_names
    ]
    leaf_price = {
        leaf: TOP_PRICE[leaf.split(".")[0]] * float(np.exp(rng.normal(0.0, 0.5))) for leaf in leaves
    }
    brands = {
        top: [
            BRAND_STEMS[i] + ("" if j == 0 else f"{j}")
            for j, i in enumerate(rng.choice(len(BRAND_STEMS), 4, replace=False))
        ]
        for top in store_tops
    }
    leaf_idx = rng.integers(0, len(leaves), n_products)
    rows = {"product_id": [], "category": [], "brand": [], "title": [], "price": []}
    for i, li in enumerate(leaf_idx):
        leaf = leaves[li]
        top = leaf.split(".")[0]
        brand = brands[top][int(rng.integers(0, 4))]
        adjective = ADJECTIVES[int(rng.integers(0, len(ADJECTIVES)))]
        noun = leaf.rsplit(".", 1)[1]
        price = round(leaf_price[leaf] * float(np.exp(rng.normal(0.0, 0.45))), 2)
        rows["product_id"].append(f"{store_id}-p{i:05d}")
        rows["category"].append(leaf)
        rows["brand"].append(brand)
        rows["title"].append(f"{brand.title()} {adjective.title()} {noun.title()} {i % 97}")
        rows["price"].append(max(price, 0.5))
    return pl.DataFrame(
        rows,
        schema={
            "product_id": pl.String,
            "category": pl.String,
            "brand": pl.String,
            "title": pl.String,
            "price": pl.Float64,
        },
    )
