import polars as pl
import pytest

from simpersona_jax.storefront import catalog as catalog_lib
from simpersona_jax.storefront.testing import tiny_events


@pytest.fixture(scope="module")
def cats():
    return catalog_lib.catalogs_from_events(tiny_events())


def test_products_categories_brands_prices(cats):
    assert set(cats) == {"shop_a", "shop_b"}
    a = cats["shop_a"]
    assert len(a.products) == 60
    p = a.by_id["a006"]
    assert p.category == "apparel.tops" and p.brand == "acme" and p.price == pytest.approx(42.2)
    assert a.by_id["a005"].brand is None
    assert a.by_id["a004"].title == "Trail Runner 4"  # a source title is kept
    # Collections: every prefix of every category path.
    assert {"apparel", "apparel.shoes", "apparel.shoes.running", "home.kitchen.kettle"} <= set(
        a.collections
    )
    assert a.top_collections() == ["apparel", "home"]
    assert a.subcollections("apparel.shoes") == ["apparel.shoes.boots", "apparel.shoes.running"]
    assert len(a.collections["apparel"]) == 45
    # Featured order: more events first (carted/bought products come first).
    assert a.products[0].popularity > a.products[-1].popularity


def test_made_up_titles_are_deterministic_and_unique(cats):
    a = cats["shop_a"]
    made = a.by_id["a001"].title
    assert made == catalog_lib.made_up_title("a001", "apparel.shoes.boots", "nordic") or "#" in made
    again = catalog_lib.catalogs_from_events(tiny_events())["shop_a"].by_id["a001"].title
    assert made == again
    titles = [p.title.lower() for p in a.products]
    assert len(set(titles)) == len(titles)
    assert "boots" in made.lower()
    assert catalog_lib.made_up_title("1", "2053013552259662037", None).split()[-2] == "Item"


def test_missing_price_takes_category_median(cats):
    b = cats["shop_b"]
    assert b.by_id["b1"].price == pytest.approx((30.0 + 8.5) / 2)
    assert b.by_id["b1"].title  # made up


def test_search_and_related(cats):
    a = cats["shop_a"]
    hits = a.search("trail runner 12")
    assert hits[0].product_id == "a012"
    assert all(p.title.lower().startswith("trail runner") for p in a.search("trail"))
    assert a.search("   ") == []
    assert a.search(a.by_id["a001"].title)[0].product_id == "a001"  # exact title first
    rel = a.related(a.by_id["a000"], k=4)
    assert len(rel) == 4 and all(p.category == "apparel.shoes.running" for p in rel)
    assert "a000" not in [p.product_id for p in rel]
    assert [p.price for p in catalog_lib.SORTS["price_asc"](a.products)][:2] == [20.0, 23.7]


def test_write_read_roundtrip(cats, tmp_path):
    catalog_lib.write_catalogs(cats, str(tmp_path))
    back = catalog_lib.read_catalogs(str(tmp_path))
    assert [p.product_id for p in back["shop_a"].products] == [
        p.product_id for p in cats["shop_a"].products
    ]
    assert back["shop_a"].by_id["a001"].title == cats["shop_a"].by_id["a001"].title


def test_bad_catalog_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="store_id="):
        catalog_lib.read_catalogs(str(tmp_path))
    pl.DataFrame({"product_id": ["x"], "price": [1.0]}).write_parquet(
        tmp_path / "store_id=s.parquet"
    )
    with pytest.raises(ValueError, match="lacks column"):
        catalog_lib.read_catalogs(str(tmp_path))
