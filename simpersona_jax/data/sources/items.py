"""Item tables that come beside a source's events and give its products their categories.

- diginetica: `itemId;categoryId` (product-categories.csv).
- retailrocket: item_properties*.csv (`timestamp,itemid,property,value`: weekly snapshots of
  each item's properties; the `categoryid` property is the category, the latest snapshot wins)
  and category_tree.csv (`categoryid,parentid`), which turns a category id into its path from the
  root, `root.parent.leaf`, so that the content embedding sees every level (features/embed.py).
  RetailRocket's other property values are hashed, so they are not used.

Each category table becomes (product_id, _cat); `attach` joins them onto the events, filling only
a category the event rows do not have.
"""

from __future__ import annotations

import polars as pl

KINDS = {
    "diginetica_categories": ("itemId", "categoryId"),
    "retailrocket_properties": ("timestamp", "itemid", "property", "value"),
    "retailrocket_category_tree": ("categoryid", "parentid"),
}
MAX_DEPTH = 32  # category trees deeper than this are a cycle


def kind_of(header: list[str]) -> str | None:
    """Which item table a file is, from its header (None: not an item table)."""
    for kind, columns in KINDS.items():
        if set(header) == set(columns):
            return kind
    return None


def item_categories(kind: str, path: str, separator: str) -> pl.LazyFrame:
    """(product_id, _cat) of one item table (diginetica categories, retailrocket properties)."""
    table = pl.scan_csv(path, separator=separator, infer_schema=False)
    if kind == "diginetica_categories":
        return table.select(product_id=pl.col("itemId"), _cat=pl.col("categoryId"))
    snapshots = table.filter(pl.col("property") == "categoryid").with_columns(
        pl.col("timestamp").cast(pl.Int64, strict=False)
    )
    return (
        snapshots.group_by("itemid")
        .agg(_cat=pl.col("value").sort_by("timestamp").last())
        .rename({"itemid": "product_id"})
    )


def category_paths(tree_paths: list[str]) -> pl.DataFrame:
    """(_cat, _path) for every category of the trees: its ids from the root, joined by '.'."""
    tree = pl.concat([pl.read_csv(p, infer_schema=False) for p in tree_paths]).unique("categoryid")
    parent = dict(zip(tree["categoryid"].to_list(), tree["parentid"].to_list()))
    paths = {}
    for cat in parent:
        chain, node = [], cat
        while node is not None and node != "" and len(chain) < MAX_DEPTH:
            chain.append(node)
            node = parent.get(node)
        if len(chain) == MAX_DEPTH:
            raise ValueError(
                f"{tree_paths}: category {cat} has no root within {MAX_DEPTH} levels "
                "(a cycle in categoryid -> parentid?)"
            )
        paths[cat] = ".".join(reversed(chain))
    return pl.DataFrame(
        {"_cat": list(paths), "_path": list(paths.values())},
        schema={"_cat": pl.String, "_path": pl.String},
    )


def attach(events: pl.LazyFrame, tables: list[tuple[str, str, str]]) -> pl.LazyFrame:
    """events with `category` filled from the item tables (kind, path, separator) where the
    events have none (one row per item: the first table that names it wins), category ids mapped
    to their paths when category trees are among the tables."""
    trees = [path for kind, path, _ in tables if kind == "retailrocket_category_tree"]
    cat_tables = [
        item_categories(kind, path, sep)
        for kind, path, sep in tables
        if kind != "retailrocket_category_tree"
    ]
    if not cat_tables:
        return events
    cats = pl.concat(cat_tables).unique("product_id", keep="first", maintain_order=True)
    if trees:
        cats = cats.join(category_paths(trees).lazy(), on="_cat", how="left").select(
            "product_id", _cat=pl.coalesce("_path", "_cat")
        )
    return (
        events.join(cats, on="product_id", how="left", maintain_order="left")
        .with_columns(category=pl.coalesce("category", "_cat"))
        .drop("_cat")
    )
