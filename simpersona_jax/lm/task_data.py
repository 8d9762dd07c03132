"""The agent SFT task's data (lm/task.py): trace rows in, packed training rows and padded
held-out rows out, and the grain source the task's loader reads.

- `trace_splits`: config.data's trace rows (data.traces_dir), personas attached from
  data.codes_path, cut to the first data.max_sessions sessions, split into training and held-out
  sessions (data.eval_fraction); the training part has its goals mixed (data.goal_field with
  data.neutral_fraction of neutral goals) and personas dropped (data.persona_dropout).
- `encode`: the training rows (decision steps oversampled data.decision_oversample times)
  encoded and packed into rows of data.seq_len; the first data.max_eval_examples held-out rows
  encoded one example per row, padded to the longest (a multiple of 64), with their personas.
- `Rows`: the packed rows as a grain random-access source.
"""

from __future__ import annotations

from typing import NamedTuple

import grain
import numpy as np
import polars as pl

from simpersona_jax.lm import sft
from simpersona_jax.lm.config import pad_to_multiple


class Rows(grain.sources.RandomAccessDataSource):
    def __init__(self, rows: dict[str, np.ndarray]):
        self.rows = rows
        self.n = len(next(iter(rows.values())))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.rows.items()}


def trace_splits(config) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(training rows, held-out rows) of config.data's traces (see the module docstring)."""
    d, p = config.data, config.persona
    df = sft.read_traces(d.traces_dir)
    if d.get("codes_path", ""):
        df = sft.attach_personas(df, d.codes_path)
    if int(d.get("max_sessions", 0) or 0):
        keep = (
            df.select("store_id", "buyer_id", "session_id")
            .unique(maintain_order=True)
            .head(int(d.max_sessions))
        )
        df = df.join(keep, on=["store_id", "buyer_id", "session_id"], how="semi")
    if (
        int(p.num_personas) > 0
        and bool(d.get("use_persona", True))
        and not (df["persona"] >= 0).any()
    ):
        raise ValueError(
            f"{d.traces_dir}: no trace row has a persona; set data.codes_path to "
            "assign's codes.parquet (or data.use_persona=False for a control)"
        )
    train_df, eval_df = sft.split_sessions(df, float(d.eval_fraction))
    train_df = sft.mix_goals(train_df, d.goal_field, float(d.get("neutral_fraction", 0.0)))
    train_df = sft.drop_personas(train_df, float(d.get("persona_dropout", 0.0)))
    if train_df.height == 0:
        raise ValueError(f"{d.traces_dir}: no training rows after the held-out split")
    return train_df, eval_df


class Encoded(NamedTuple):
    train_rows: dict[str, np.ndarray]  # packed, sft.ROW_KEYS
    num_train_examples: int  # examples packed (after decision oversampling)
    eval_trace_rows: list[dict]  # the held-out trace rows evaluated
    eval_personas: np.ndarray  # their personas (int64)
    eval_rows: dict[str, np.ndarray]  # one padded row per held-out trace row


def encode(tokenizer, train_df, eval_df, d, use_persona: bool) -> Encoded:
    """The training and held-out rows as token rows (see the module docstring); `d` is
    config.data."""
    seq_len = int(d.seq_len)
    pad_id = tokenizer.pad_token_id or 0
    enc = dict(goal_field=d.goal_field, max_len=seq_len, use_persona=use_persona)
    train_rows = sft.oversample_decisions(
        list(train_df.iter_rows(named=True)), int(d.get("decision_oversample", 1))
    )
    packed = sft.pack(
        sft.encode_examples(tokenizer, train_rows, **dict(enc, goal_field=sft.MIXED_GOAL)),
        seq_len,
        pad_id,
    )
    eval_rows = list(eval_df.iter_rows(named=True))[: int(d.get("max_eval_examples", 512))]
    eval_personas = np.asarray([int(r["persona"]) for r in eval_rows], np.int64)
    eval_examples = sft.encode_examples(tokenizer, eval_rows, **enc)
    # One example per row: pad to the longest one (a multiple of 64), not to the packed length.
    eval_len = min(
        seq_len, pad_to_multiple(max([len(ids) - 1 for ids, _ in eval_examples] or [1]), 64)
    )
    return Encoded(
        train_rows=packed,
        num_train_examples=len(train_rows),
        eval_trace_rows=eval_rows,
        eval_personas=eval_personas,
        eval_rows=sft.pad_rows(eval_examples, eval_len, pad_id),
    )
