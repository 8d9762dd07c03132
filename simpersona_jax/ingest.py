"""Ingest raw event logs into canonical events, then build buyer vectors.

    python -m simpersona_jax.ingest --config=experiments/ingest_rees46.py
    python -m simpersona_jax.ingest --config=experiments/ingest_rees46.py \
        --config.ingest.inputs='("data/*.csv.gz",)' --config.ingest.store_id=mystore
    python -m simpersona_jax.ingest --config=experiments/ingest_rees46.py \
        --config.ingest.inputs='("my_log.csv",)' --config.ingest.mapping_file=my_log.json

Prints rows read / kept / quarantined per reason (also saved as ingest_report.json), buyers,
sessions and funnel strata; with `buyers.build=True` it also writes the 403-d buyer vectors.
"""

from __future__ import annotations

import os

from absl import app, flags
from ml_collections import config_flags
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


def main(argv):
    del argv
    cfg = _CONFIG.value
    c = cfg.ingest
    if c.get("mapping_file") and c.mapping:
        raise app.UsageError("give ingest.mapping or ingest.mapping_file, not both")
    mapping = c.get("mapping_file") or (c.mapping.to_dict() if c.mapping else None)
    with tqdm(desc="partitions", unit="part") as bar:
        report = ingest(
            list(c.inputs),
            c.out_dir,
            source=c.source,
            store_id=c.store_id,
            mapping=mapping,
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


if __name__ == "__main__":  # flags only here: other tools and tests import this module
    _CONFIG = config_flags.DEFINE_config_file(
        "config", None, "Ingest config file.", lock_config=True
    )
    flags.mark_flags_as_required(["config"])
    app.run(main)
