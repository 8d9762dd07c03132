"""Mesh construction and logical-axis rules."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from simpersona_jax.training import mesh as mesh_lib


def test_make_mesh_fills_one_axis_and_checks_sizes():
    m = mesh_lib.make_mesh({"data": -1, "fsdp": 2})
    assert dict(m.shape) == {"data": 4, "fsdp": 2, "tensor": 1}
    assert mesh_lib.make_mesh({"data": 1, "num_devices": 1}).devices.size == 1
    with pytest.raises(ValueError, match="needs 6 devices"):
        mesh_lib.make_mesh({"data": 3, "fsdp": 2})
    with pytest.raises(ValueError, match="at most one axis may be -1"):
        mesh_lib.make_mesh({"data": -1, "fsdp": -1})
    with pytest.raises(ValueError, match="unknown keys"):
        mesh_lib.make_mesh({"model": 2})


def test_rules_from_config_validates_mesh_axes():
    rules = mesh_lib.rules_from_config([["batch", ["data", "fsdp"]], ["embed", None]])
    assert rules == (("batch", ("data", "fsdp")), ("embed", None))
    with pytest.raises(ValueError, match="unknown mesh axes"):
        mesh_lib.rules_from_config([["embed", "model"]])


def test_shardings_follow_rules_and_replicate_indivisible_dims():
    m = mesh_lib.make_mesh({"data": 2, "fsdp": 4})
    tree = {
        "a": nn.LogicallyPartitioned(
            jax.ShapeDtypeStruct((403, 256), jnp.float32), ("input", "hidden")
        ),
        "b": nn.LogicallyPartitioned(
            jax.ShapeDtypeStruct((6, 10), jnp.float32), ("hidden", "embed")
        ),
        "c": jax.ShapeDtypeStruct((3,), jnp.float32),
    }
    sh = mesh_lib.shardings_for(tree, m, mesh_lib.DEFAULT_RULES)
    assert sh["a"].spec == P(None, "fsdp")
    assert sh["b"].spec == P()  # 6 and 10 are not divisible by fsdp=4
    assert sh["c"].spec == P()
    assert mesh_lib.batch_sharding(m, mesh_lib.DEFAULT_RULES).spec == P(("data", "fsdp"))
