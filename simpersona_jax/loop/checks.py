"""Checks between stages: persona codes in range, and the join of traces to buyers' codes.

The traces' buyers get their persona from assign's codes.parquet by (store_id, buyer_id); a
join that loses most of them (other data, other ids) would train persona rows on a few buyers
and leave the rest without a token, so it is an error naming both files, not a warning.
"""

from __future__ import annotations

import glob
import os

import polars as pl

MAX_LOST_FRACTION = 0.5


class PipelineError(ValueError):
    """A stage's input is inconsistent (message names the files and the stage to rerun)."""


def check_code_range(codes: pl.DataFrame, k: int, where: str) -> None:
    """Every code in [0, k); `where` names the file in the error."""
    bad = codes.filter((pl.col("code") < 0) | (pl.col("code") >= k))
    if bad.height:
        row = bad.row(0, named=True)
        raise PipelineError(
            f"{where}: {bad.height} persona code(s) out of range [0, {k}), e.g. code "
            f"{row['code']} of buyer {row['store_id']}/{row['buyer_id']} (K={k} from the assign "
            "manifest; rerun --config.stages=assign)"
        )


def trace_buyers(traces_dir: str) -> pl.DataFrame:
    files = sorted(glob.glob(os.path.join(traces_dir, "traces-*.parquet")))
    if not files:
        raise PipelineError(f"{traces_dir}: no traces-*.parquet (rerun --config.stages=traces)")
    return pl.scan_parquet(files).select("store_id", "buyer_id", "session_id").unique().collect()


def persona_coverage(traces_dir: str, codes_path: str, k: int) -> dict:
    """Joins the traced sessions' buyers to their codes and measures how well the traced codes
    cover the held-out buyers' codes; raises when the join loses > MAX_LOST_FRACTION of buyers
    or a code is out of [0, k)."""
    codes = pl.read_parquet(codes_path, columns=["store_id", "buyer_id", "split", "code"])
    check_code_range(codes, k, codes_path)
    sessions = trace_buyers(traces_dir)
    buyers = sessions.select("store_id", "buyer_id").unique()
    joined = buyers.join(codes, on=["store_id", "buyer_id"], how="inner")
    lost = 1.0 - joined.height / max(buyers.height, 1)
    if lost > MAX_LOST_FRACTION:
        raise PipelineError(
            f"joining the traces in {traces_dir} to the codes in {codes_path} on "
            f"(store_id, buyer_id) loses {buyers.height - joined.height} of {buyers.height} "
            f"buyers ({lost:.0%} > {MAX_LOST_FRACTION:.0%}): were they made from the same data?"
        )
    traced = set(joined["code"].to_list())
    session_codes = sessions.join(codes, on=["store_id", "buyer_id"], how="inner")["code"]
    held = codes.filter(pl.col("split") == "heldout")["code"]
    held_codes = set(held.to_list())
    covered = held.is_in(sorted(traced)).sum() if held.len() else 0
    return dict(
        trace_buyers=buyers.height,
        trace_buyers_with_code=joined.height,
        trace_sessions=sessions.height,
        traced_codes=len(traced),
        sessions_per_traced_code_min=int(session_codes.value_counts()["count"].min() or 0),
        heldout_buyers=held.len(),
        heldout_codes=len(held_codes),
        heldout_codes_traced=len(held_codes & traced),
        heldout_buyers_with_traced_code=round(float(covered) / max(held.len(), 1), 4),
    )
