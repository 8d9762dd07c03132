"""The one data-root resolver: "synthetic:default" or an existing directory, never a typo."""

import os

import ml_collections
import pytest

from simpersona_jax.features import default


def test_existing_root_is_returned_and_needs_are_checked(tmp_path):
    (tmp_path / "events").mkdir()
    assert default.resolve_data_dir(str(tmp_path), need=("events",)) == str(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"data.dir=.* lacks buyers/stats.json"):
        default.resolve_data_dir(str(tmp_path), need=("events", "buyers/stats.json"))


def test_missing_root_is_an_error_that_names_the_key(tmp_path):
    typo = str(tmp_path / "data" / "defualt")
    with pytest.raises(FileNotFoundError, match=r"config.data.dir=.*defualt.* is not a directory"):
        default.resolve_data_dir(typo, "config.data.dir")
    assert not os.path.exists(typo)
    with pytest.raises(ValueError, match="the only synthetic data root is 'synthetic:default'"):
        default.resolve_data_dir("synthetic:big")


def test_synthetic_default_builds_once_under_data_default(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(default, "ensure_default", lambda d, cfg=None: built.append(d))
    assert default.resolve_data_dir(default.SYNTHETIC_DEFAULT) == "data/default"
    assert built == ["data/default"]


def test_vqvae_reads_buyers_of_the_data_root(tmp_path):
    from simpersona_jax.vqvae.task import resolve_buyers_dir

    (tmp_path / "buyers").mkdir()
    (tmp_path / "buyers" / "stats.json").write_text("{}")
    buyers = resolve_buyers_dir(ml_collections.ConfigDict({"dir": str(tmp_path)}))
    assert buyers == str(tmp_path / "buyers")
    with pytest.raises(FileNotFoundError, match="config.data.dir"):
        resolve_buyers_dir(ml_collections.ConfigDict({"dir": str(tmp_path / "nope")}))
