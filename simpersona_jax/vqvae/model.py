"""The behaviour-aware VQ-VAE's networks (Flax Linen): MLP encoder, mirror decoder, auxiliary
label heads. The codebook is not a Linen parameter: it is EMA state (see codebook.py)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

# Behaviour labels with auxiliary heads: name -> number of classes.
AUX_LABELS: dict[str, int] = {"purchase_hi": 2, "explore_hi": 2, "engage_hi": 2, "stratum": 5}

_ACTS = {"gelu": nn.gelu, "relu": nn.relu, "silu": nn.silu, "tanh": nn.tanh}


def _dense(features: int, names: tuple[str, str], dtype, name: str) -> nn.Dense:
    return nn.Dense(
        features,
        dtype=dtype,
        name=name,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, names[1:]),
    )


class Mlp(nn.Module):
    """Dense layers of the given widths, activation between them (not after the last)."""

    widths: Sequence[int]
    in_axis: str
    out_axis: str
    activation: str = "gelu"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        act = _ACTS[self.activation]
        for i, w in enumerate(self.widths):
            last = i == len(self.widths) - 1
            names = (self.in_axis if i == 0 else "hidden_in", self.out_axis if last else "hidden")
            x = _dense(w, names, self.dtype, f"dense_{i}")(x)
            if not last:
                x = act(x)
        return x


class VQVAE(nn.Module):
    """input_dim -> hidden... -> latent_dim (encoder); mirror decoder; linear heads on z_q."""

    input_dim: int = 403
    hidden: Sequence[int] = (256, 128)
    latent_dim: int = 96
    activation: str = "gelu"
    aux_labels: Sequence[tuple[str, int]] = tuple(AUX_LABELS.items())
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.encoder = Mlp(
            tuple(self.hidden) + (self.latent_dim,), "input", "latent", self.activation, self.dtype
        )
        self.decoder = Mlp(
            tuple(reversed(self.hidden)) + (self.input_dim,),
            "latent",
            "input",
            self.activation,
            self.dtype,
        )
        self.heads = {
            name: _dense(n, ("latent", "classes"), self.dtype, f"head_{name}")
            for name, n in self.aux_labels
        }

    def encode(self, x_BxI):
        return self.encoder(x_BxI.astype(self.dtype)).astype(jnp.float32)

    def decode(self, z_BxD):
        return self.decoder(z_BxD.astype(self.dtype)).astype(jnp.float32)

    def classify(self, z_BxD):
        return {k: h(z_BxD.astype(self.dtype)).astype(jnp.float32) for k, h in self.heads.items()}

    def __call__(self, x_BxI):
        """Used by init only: touches every submodule."""
        z = self.encode(x_BxI)
        return self.decode(z), self.classify(z)
