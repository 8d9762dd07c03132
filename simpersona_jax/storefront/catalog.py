"""Store catalogs for the storefront: products, category tree, brands, prices.

A catalog is built from canonical events (one row per product: its most frequent category, brand
and title, median price, popularity = number of events) or read from catalog files
`<dir>/store_id=<s>.parquet` (product_id, category, brand, title, price), the layout the
synthetic generator writes. Where a source has no title, a deterministic one is made up from the
brand, the category leaf and a model code hashed from the product id; missing prices take the
category's (else the store's) median. Titles are unique within a store so a search for a full
title finds exactly one product.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import re

import polars as pl

UNCATEGORIZED = "uncategorized"
CATALOG_SCHEMA = {
    "product_id": pl.String,
    "category": pl.String,
    "brand": pl.String,
    "title": pl.String,
    "price": pl.Float64,
    "popularity": pl.Int64,
}
_ADJECTIVES = (
    "Classic",
    "Pro",
    "Lite",
    "Ultra",
    "Eco",
    "Smart",
    "Compact",
    "Deluxe",
    "Prime",
    "Sport",
    "Urban",
    "Max",
)
_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Lower-case alphanumeric search tokens of `text`."""
    return _TOKEN.findall(text.lower())


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def made_up_title(product_id: str, category: str | None, brand: str | None) -> str:
    """Deterministic human-looking title for a product whose source has none."""
    h = _digest(product_id)
    leaf = (category or "item").rsplit(".", 1)[-1].replace("_", " ").title()
    if leaf.isdigit():  # a numeric category id (REES46 rows without a category code)
        leaf = "Item"
    maker = (brand or "").replace("_", " ").title()
    code = f"{chr(65 + h % 26)}{(h >> 8) % 900 + 100}"
    return " ".join(p for p in (maker, _ADJECTIVES[(h >> 20) % len(_ADJECTIVES)], leaf, code) if p)


@dataclasses.dataclass(frozen=True)
class Product:
    product_id: str
    category: str  # UNCATEGORIZED when the source has none
    brand: str | None
    title: str
    price: float
    popularity: int


class StoreCatalog:
    """One store's products plus the collection tree (every prefix of every category path)."""

    def __init__(self, store_id: str, frame: pl.DataFrame):
        if frame.height == 0:
            raise ValueError(f"store {store_id!r}: catalog has no products")
        self.store_id = store_id
        self.products: list[Product] = [
            Product(
                r["product_id"],
                r["category"] or UNCATEGORIZED,
                r["brand"],
                r["title"],
                float(r["price"]),
                int(r["popularity"] or 0),
            )
            for r in frame.iter_rows(named=True)
        ]
        # Featured order: most popular first, ties by id (deterministic).
        self.products.sort(key=lambda p: (-p.popularity, p.product_id))
        self.by_id: dict[str, Product] = {p.product_id: p for p in self.products}
        self.rank: dict[str, int] = {p.product_id: i for i, p in enumerate(self.products)}
        self.collections: dict[str, list[Product]] = {}
        self.children: dict[str, set[str]] = {"": set()}
        for p in self.products:
            parts = p.category.split(".")
            for depth in range(1, len(parts) + 1):
                path = ".".join(parts[:depth])
                self.collections.setdefault(path, []).append(p)
                self.children.setdefault(".".join(parts[: depth - 1]), set()).add(path)
        self._search_text = {
            p.product_id: set(tokens(f"{p.title} {p.brand or ''} {p.category.replace('.', ' ')}"))
            for p in self.products
        }

    def top_collections(self, k: int | None = None) -> list[str]:
        """Top-level collections, the k largest (ties by name) when k is given, sorted by name."""
        tops = sorted(self.children[""], key=lambda c: (-len(self.collections[c]), c))
        return sorted(tops[:k] if k else tops)

    def subcollections(self, path: str) -> list[str]:
        return sorted(self.children.get(path, ()))

    def related(self, product: Product, k: int = 6) -> list[Product]:
        """Same-category products nearest in price (deterministic)."""
        peers = [
            p for p in self.collections[product.category] if p.product_id != product.product_id
        ]
        peers.sort(key=lambda p: (abs(p.price - product.price), p.product_id))
        return peers[:k]

    def search(self, query: str) -> list[Product]:
        """Products whose title/brand/category contain every query token, featured order.

        An exact (case-insensitive) title match comes first.
        """
        want = tokens(query)
        if not want:
            return []
        hits = [p for p in self.products if all(t in self._search_text[p.product_id] for t in want)]
        exact = query.strip().lower()
        hits.sort(key=lambda p: p.title.lower() != exact)
        return hits


SORTS = {
    "featured": lambda ps: ps,
    "price_asc": lambda ps: sorted(ps, key=lambda p: (p.price, p.product_id)),
    "price_desc": lambda ps: sorted(ps, key=lambda p: (-p.price, p.product_id)),
    "title": lambda ps: sorted(ps, key=lambda p: (p.title.lower(), p.product_id)),
}


def catalog_frame_from_events(events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Per (store_id, product_id): modal category/brand/title, median price, event count."""
    lf = events.lazy().filter(pl.col("product_id").is_not_null())

    def mode(col: str) -> pl.Expr:
        return pl.col(col).drop_nulls().mode().sort().first().alias(col)

    frame = (
        lf.group_by("store_id", "product_id")
        .agg(
            mode("category"),
            mode("brand"),
            mode("title"),
            pl.col("price").drop_nulls().median().alias("price"),
            pl.len().cast(pl.Int64).alias("popularity"),
        )
        .sort("store_id", "product_id")
        .collect()
    )
    return frame


def finish_catalog(store_id: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Fills titles and prices deterministically and makes titles unique within the store."""
    if "popularity" not in frame.columns:
        frame = frame.with_columns(pl.lit(0, pl.Int64).alias("popularity"))
    missing = [
        c for c in ("product_id", "category", "brand", "title", "price") if c not in frame.columns
    ]
    if missing:
        raise ValueError(f"store {store_id!r}: catalog lacks column(s) {missing}")
    frame = frame.select(list(CATALOG_SCHEMA)).cast(CATALOG_SCHEMA)
    frame = frame.with_columns(
        pl.col("price").fill_null(pl.col("price").median().over(pl.col("category")))
    )
    frame = frame.with_columns(pl.col("price").fill_null(pl.col("price").median()).fill_null(9.99))
    titles, seen = [], set()
    for pid, cat, brand, title in frame.select(
        "product_id", "category", "brand", "title"
    ).iter_rows():
        title = title or made_up_title(pid, cat, brand)
        if title.lower() in seen:
            title = f"{title} #{pid}"
        seen.add(title.lower())
        titles.append(title)
    return frame.with_columns(pl.Series("title", titles, pl.String)).sort("product_id")


def catalogs_from_events(events: pl.LazyFrame | pl.DataFrame) -> dict[str, StoreCatalog]:
    frame = catalog_frame_from_events(events)
    return {
        s: StoreCatalog(s, finish_catalog(s, part.drop("store_id")))
        for (s,), part in frame.partition_by("store_id", as_dict=True, maintain_order=True).items()
    }


def catalog_dir_for(data_dir: str, out_dir: str, events: pl.LazyFrame | pl.DataFrame) -> str:
    """`<data_dir>/catalog` when the data root has one (synthetic stores), else the catalogs of
    `events` (an ingested log's, which has none) written under `<out_dir>/catalog`."""
    catalog_dir = os.path.join(data_dir, "catalog")
    if os.path.isdir(catalog_dir):
        return catalog_dir
    catalog_dir = os.path.join(out_dir, "catalog")
    write_catalogs(catalogs_from_events(events), catalog_dir)
    return catalog_dir


def write_catalogs(catalogs: dict[str, StoreCatalog], out_dir: str) -> None:
    """Writes `<out_dir>/store_id=<s>.parquet` per store (atomic rename)."""
    os.makedirs(out_dir, exist_ok=True)
    for store_id, cat in catalogs.items():
        frame = pl.DataFrame([dataclasses.asdict(p) for p in cat.products], schema=CATALOG_SCHEMA)
        path = os.path.join(out_dir, f"store_id={store_id}.parquet")
        frame.write_parquet(path + ".tmp")
        os.replace(path + ".tmp", path)


def read_catalogs(catalog_dir: str) -> dict[str, StoreCatalog]:
    paths = sorted(glob.glob(os.path.join(catalog_dir, "store_id=*.parquet")))
    if not paths:
        raise FileNotFoundError(f"no store_id=<s>.parquet catalog files in {catalog_dir}")
    out = {}
    for path in paths:
        store_id = os.path.basename(path)[len("store_id=") : -len(".parquet")]
        out[store_id] = StoreCatalog(store_id, finish_catalog(store_id, pl.read_parquet(path)))
    return out
