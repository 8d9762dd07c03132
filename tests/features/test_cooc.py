"""The behavioural product embedding of id-only stores (features/cooc.py) and its use."""

import datetime as dt
import os

import numpy as np
import polars as pl

from simpersona_jax.data import schema
from simpersona_jax.features import cooc, store
from simpersona_jax.features.build import build_buyers

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _events(
    store_id: str, n_buyers: int = 80, content: bool = False, seed: int = 0
) -> pl.DataFrame:
    """Buyers of 4 tastes, each viewing items of its taste group (10 items a group)."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(n_buyers):
        for s in range(2):
            for k in range(4):
                item = (b % 4) * 10 + int(rng.integers(10))
                rows.append(
                    dict(
                        store_id=store_id,
                        buyer_id=f"b{b}",
                        session_id=f"b{b}#{s}",
                        event_time=T0 + dt.timedelta(days=s, minutes=k),
                        event_type="product_viewed",
                        product_id=f"p{item}",
                        category=f"group{item // 10}" if content else None,
                    )
                )
    return pl.DataFrame(
        rows, schema_overrides={k: v for k, v in schema.SCHEMA.items() if k in rows[0]}
    )


def _write(events_dir, frame: pl.DataFrame):
    for (store_id,), part in frame.partition_by("store_id", as_dict=True).items():
        path = os.path.join(events_dir, f"store_id={store_id}", "bucket=0", "part-0.parquet")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        schema.conform(part.lazy()).collect().write_parquet(path)


def test_fit_is_deterministic_and_puts_items_of_a_taste_together():
    events = _events("s").lazy()
    a, b = cooc.fit(events), cooc.fit(events)
    assert a.ids.to_list() == b.ids.to_list() and np.array_equal(a.vectors, b.vectors)
    group = np.array([int(i[1:]) // 10 for i in a.ids.to_list()])
    sim = a.vectors @ a.vectors.T
    same = (group[:, None] == group[None]) & ~np.eye(len(group), dtype=bool)
    assert sim[same].mean() > 0.5 > 0.1 > sim[~same].mean()
    assert np.allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-5)
    unknown = a.lookup(pl.Series(["p3", "nope", None]))
    assert np.array_equal(unknown[0], a.vectors[a.ids.to_list().index("p3")])
    assert not unknown[1:].any()


def test_id_only_store_gets_behavioural_vectors_and_content_store_keeps_content(tmp_path):
    _write(str(tmp_path / "events"), pl.concat([_events("ids"), _events("shop", content=True)]))
    stats = build_buyers(str(tmp_path / "events"), str(tmp_path / "buyers"))
    meta = store.read_meta(str(tmp_path / "buyers"))
    x = store.load_arrays(str(tmp_path / "buyers"))["x"][:, 16 : 16 + 128]  # most-viewed slot
    ids = (meta["store_id"] == "ids").to_numpy()
    assert (np.abs(x[ids]).sum(1) > 0).all()  # content-only: every one of these is all zero
    assert stats["product_embedders"] == {"ids": "cooc", "shop": "content"}
    taste = meta["buyer_id"].str.slice(1).cast(pl.Int64).to_numpy() % 4
    for rows in (ids, ~ids):
        sim = x[rows] @ x[rows].T
        same = (taste[rows][:, None] == taste[rows][None]) & ~np.eye(rows.sum(), dtype=bool)
        assert sim[same].mean() > sim[~same & ~np.eye(rows.sum(), dtype=bool)].mean() + 0.3
