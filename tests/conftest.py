"""Test-wide setup: 8 fake CPU devices for sharding tests, and the `browser` marker."""

import os
import shutil

# Must happen before jax is imported anywhere in the test session.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()

import pytest  # noqa: E402

FIXTURE_DATASETS = os.path.join(os.path.dirname(__file__), "fixtures", "datasets")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: needs Chromium (installed by .ci/run)")


def pytest_collection_modifyitems(config, items):
    """Browser tests are skipped locally when Chromium is missing, but never on CI."""
    if os.environ.get("CI") or shutil.which("chromium") or os.path.exists("/usr/bin/chromium"):
        return
    skip = pytest.mark.skip(
        reason="chromium not installed (run .ci/run or apt-get install chromium)"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_datasets():
    """Path to the slices of real public clickstream samples kept in the repository
    (tests/fixtures/datasets, provenance in tests/fixtures/README.md)."""
    return os.path.abspath(FIXTURE_DATASETS)
