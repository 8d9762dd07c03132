"""Test-wide setup: 8 fake CPU devices for sharding tests, and the `browser` marker."""

import os
import shutil

# Must happen before jax is imported anywhere in the test session.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()

import pytest  # noqa: E402

SHARED_DATASETS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: needs Chromium (installed by .ci/run)")


def pytest_collection_modifyitems(config, items):
    """Browser tests are skipped locally when Chromium is missing, but never on CI."""
    if os.environ.get("CI") or shutil.which("chromium") or os.path.exists("/usr/bin/chromium"):
        return
    skip = pytest.mark.skip(reason="chromium not installed (run .ci/run or apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_datasets():
    """Path to the real public clickstream samples (../shared/datasets)."""
    path = os.environ.get("SIMPERSONA_SHARED_DATASETS", os.path.abspath(SHARED_DATASETS))
    if not os.path.isdir(path):
        pytest.fail(f"shared datasets not found at {path}; set SIMPERSONA_SHARED_DATASETS")
    return path
