"""Who is simulated: buyers drawn from a store's type distribution, and the persona controls.

Drawing a real buyer of the store uniformly and giving the agent that buyer's code is exactly
sampling k ~ p_store(k) (then a member of k), and it also fixes the stratum the simulated buyer is
scored against: the source buyer's. Controls (DESIGN.md): `matched` (the buyer's own code),
`mismatched` (the code of a buyer of the same store in another funnel stratum), `none` (no
persona token), `text` (no token; the code's behaviour described in words in the prompt).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simpersona_jax.data import schema

CONTROLS = ("matched", "mismatched", "none", "text")
_LABEL_WORDS = {
    "purchase_hi": ("buys often", "rarely buys"),
    "explore_hi": ("explores many products", "looks at few products"),
    "engage_hi": ("is very active", "is not very active"),
}


def code_descriptions(real: pl.DataFrame) -> dict[int, str]:
    """A sentence per code from its members' funnel strata and behaviour labels.

    real: store_id, buyer_id, code, stratum (0..4), purchase_hi, explore_hi, engage_hi.
    """
    out = {}
    for (code,), members in real.group_by("code"):
        shares = members["stratum"].value_counts(normalize=True).sort("proportion", descending=True)
        mix = ", ".join(
            f"{100 * p:.0f}% {schema.STRATUM_DESCRIPTIONS[schema.STRATA[k]]}"
            for k, p in shares.head(2).rows()
        )
        traits = [
            hi if members[label].mean() >= 0.5 else lo
            for label, (hi, lo) in _LABEL_WORDS.items()
            if label in members.columns
        ]
        out[int(code)] = f"A shopper who {', '.join(traits)}; buyers like this are {mix}."
    return out


def sample_buyers(
    real: pl.DataFrame, stores: list[str], n_per_store: int, seed: int
) -> pl.DataFrame:
    """n simulated buyers per store, each with a source buyer drawn uniformly from that store.

    real: one row per real buyer with store_id, buyer_id, code, stratum (0..4), true_type.
    Returns sim_buyer_id, store_id, source_buyer_id, code, stratum, true_type.
    """
    out = []
    for i, store in enumerate(stores):
        pool = real.filter(pl.col("store_id") == store).sort("buyer_id")
        if pool.height == 0:
            raise ValueError(f"store {store!r} has no assigned buyers to sample from")
        idx = np.random.default_rng([seed, i]).integers(0, pool.height, n_per_store)
        out.append(
            pool[idx].select(
                sim_buyer_id=pl.format("sim-{}-{}", pl.col("store_id"), pl.int_range(n_per_store)),
                store_id="store_id",
                source_buyer_id="buyer_id",
                code="code",
                stratum="stratum",
                true_type="true_type",
            )
        )
    return pl.concat(out)


def apply_control(sim: pl.DataFrame, real: pl.DataFrame, control: str, seed: int) -> pl.DataFrame:
    """Adds `persona` (the token given to the agent, -1 = none) according to the control."""
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")
    if control == "matched":
        return sim.with_columns(persona=pl.col("code"))
    if control == "none":
        return sim.with_columns(persona=pl.lit(-1, pl.Int32))
    if control == "text":
        text = code_descriptions(real)
        return sim.with_columns(
            persona=pl.lit(-1, pl.Int32),
            persona_text=pl.col("code").replace_strict(
                list(text), list(text.values()), return_dtype=pl.String
            ),
        )
    rng = np.random.default_rng([seed, 7])
    personas = []
    for row in sim.iter_rows(named=True):
        others = real.filter(
            (pl.col("store_id") == row["store_id"]) & (pl.col("stratum") != row["stratum"])
        )["code"]
        personas.append(
            int(others[int(rng.integers(0, len(others)))]) if len(others) else row["code"]
        )
    return sim.with_columns(persona=pl.Series(personas, dtype=pl.Int32))
