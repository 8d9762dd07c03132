"""Ingest from a config: raw event logs -> canonical events, then (optionally) buyer vectors.

`run(cfg)` is the library call behind `python -m simpersona_jax.ingest`: `data.ingest.ingest` on
`cfg.ingest` (inputs, source or mapping, buckets, sessionisation, pseudonymisation) with a
progress bar, then, with `cfg.buyers.build`, `features.build.build_buyers` on the events it
wrote. It prints `format_report` (rows read / kept / quarantined per reason, buyers, sessions,
funnel strata) and `format_buyers` (the 403-d vectors' shape, strata and product embedders).
"""

from __future__ import annotations

import os

from tqdm import tqdm

from simpersona_jax.data.ingest import ingest
from simpersona_jax.data.schema import STRATA
from simpersona_jax.features.build import build_buyers


def format_report(report: dict) -> str:
    lines = [
        f"rows read {report['read']:,}  kept {report['kept']:,}  "
        f"quarantined {report['quarantined']:,}"
    ]
    lines += [
        f"  quarantined {reason}: {n:,}"
        for reason, n in sorted(report["quarantined_by_reason"].items())
    ]
    lines.append(
        f"stores {len(report['stores'])}  buyers {report['buyers']:,}  "
        f"sessions {report['sessions']:,}"
    )
    lines.append("events " + "  ".join(f"{k} {v:,}" for k, v in report["events_by_type"].items()))
    lines.append("strata " + "  ".join(f"{k} {v:,}" for k, v in report["strata"].items()))
    return "\n".join(lines)


def format_buyers(stats: dict, buyers_dir: str) -> str:
    strata = "  ".join(f"{STRATA[int(k)]} {v:,}" for k, v in stats["strata"])
    embedders = "  ".join(f"{s} {e}" for s, e in stats["product_embedders"].items())
    return (
        f"buyer vectors: {stats['buyers']:,} x {stats['dim']} -> {buyers_dir}  "
        f"strata {strata}  ({stats['zero_share']:.1%} of entries zero)\n"
        f"product embedder per store: {embedders}"
    )


def _mapping(c):
    """The source mapping of ingest config `c`: a mapping file's path, a dict, or None."""
    if c.get("mapping_file") and c.mapping:
        raise ValueError("give ingest.mapping or ingest.mapping_file, not both")
    return c.get("mapping_file") or (c.mapping.to_dict() if c.mapping else None)


def run(cfg) -> dict:
    """Ingests, then builds the buyer vectors when asked; prints both summaries.

    Returns {"ingest": the ingest report, "buyers": build_buyers' stats, or None}.
    """
    c = cfg.ingest
    with tqdm(desc="partitions", unit="part") as bar:
        report = ingest(
            list(c.inputs),
            c.out_dir,
            source=c.source,
            store_id=c.store_id,
            mapping=_mapping(c),
            buckets=c.buckets,
            plausible_times=tuple(c.get("plausible_times", (None, None))),
            session_gap_minutes=c.session_gap_minutes,
            pseudonymize_salt=c.pseudonymize_salt or None,
            rows_per_partition=c.rows_per_partition,
            workers=c.workers or None,
            keep_staging=c.get("keep_staging", False),
            progress=bar.update,
        )
    print(format_report(report))
    stats = None
    if cfg.buyers.build:
        with tqdm(desc="buyers", unit="buyer") as bar:
            stats = build_buyers(
                os.path.join(c.out_dir, "events"),
                os.path.join(c.out_dir, "buyers"),
                list(cfg.buyers.train_stores) or None,
                progress=bar.update,
                workers=c.workers or None,
                rows_per_unit=c.rows_per_partition,
                id_embedding=cfg.buyers.get("id_embedding", True),
            )
        print(format_buyers(stats, os.path.join(c.out_dir, "buyers")))
    return {"ingest": report, "buyers": stats}
