"""What a VQ-VAE config needs of the data: a small store's problems reported at once.

A store of a few hundred buyers used to fail one setting at a time ("cannot initialise a
codebook of 256 codes", then "233 buyers on this host < batch 512"); `check_data_size` names
every setting the training buyers cannot support, each with a value that works.
"""

from __future__ import annotations


def check_data_size(config, n: int, hosts: int = 1) -> None:
    """Fails once, naming every setting that `n` training buyers cannot support and a value that
    works, instead of one error at a time (codebook init, then the loader)."""

    def pow2(v: int) -> int:  # the largest power of two <= v (at least 1)
        return 1 << max(0, int(v).bit_length() - 1)

    k, gbs = int(config.model.codebook_size), int(config.global_batch_size)
    sample = int(config.data.get("init_sample_size", 4096))
    fixes = []
    if k > n:
        k_ok = pow2(max(2, n // 4))
        fixes.append(
            f"model.codebook_size={k} -> {k_ok} (k-means++ starts from {k} distinct buyers)"
        )
        k = k_ok
    if sample < k:
        fixes.append(
            f"data.init_sample_size={sample} -> {k} (the codebook is initialised "
            f"from this many buyers: at least codebook_size)"
        )
    if gbs > (n // hosts) * hosts:
        fixes.append(
            f"global_batch_size={gbs} -> {pow2(n // hosts) * hosts} ({n} buyers on "
            f"{hosts} host(s) make no whole batch of {gbs})"
        )
    if fixes:
        raise ValueError(
            f"{n} training buyers are too few for this config; change "
            + "; ".join(fixes)
            + " (e.g. --config.<setting>=<value>)"
        )
