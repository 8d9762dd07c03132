"""A written catalog of the tiny test stores, shared by the tests that start a server."""

import pytest

from simpersona_jax.storefront.catalog import catalogs_from_events, write_catalogs
from simpersona_jax.storefront.testing import tiny_events


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("catalog"))
    write_catalogs(catalogs_from_events(tiny_events()), path)
    return path
