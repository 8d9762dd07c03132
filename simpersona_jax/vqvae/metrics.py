"""Cluster-quality metrics for buyer types, and the MiniBatch k-means baseline (numpy/sklearn).

Directions: CH, purity, perplexity, used codes, NMI, ARI higher is better; incoherence and dead
codes lower is better.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm
from sklearn.cluster import MiniBatchKMeans

BINARY_LABELS = ("purchase_hi", "explore_hi", "engage_hi")

# metric -> (column title, +1 higher is better / -1 lower is better, format)
METRICS = {
    "calinski_harabasz": ("CH", +1, "{:.1f}"),
    "stratum_purity": ("purity", +1, "{:.1%}"),
    "incoherence": ("incoh.", -1, "{:.1%}"),
    "perplexity": ("perplex.", +1, "{:.1f}"),
    "used_codes": ("used", +1, "{:.0f}"),
    "dead_codes": ("dead", -1, "{:.0f}"),
    "nmi_true_type": ("NMI", +1, "{:.3f}"),
    "ari_true_type": ("ARI", +1, "{:.3f}"),
}


def purity(codes: np.ndarray, labels: np.ndarray) -> float:
    """Share of buyers whose label is their cluster's majority label."""
    codes, labels = np.asarray(codes), np.asarray(labels)
    table = np.zeros((codes.max() + 1, labels.max() + 1), np.int64)
    np.add.at(table, (codes, labels), 1)
    return float(table.max(1).sum() / len(codes))


def incoherence(codes: np.ndarray, binary: np.ndarray, tol: float = 0.1) -> float:
    """Share of used clusters that mix high and low of a 0/1 label: minority share > tol."""
    codes, binary = np.asarray(codes), np.asarray(binary)
    size = np.bincount(codes)
    hi = np.bincount(codes, weights=binary, minlength=len(size))
    used = size > 0
    minority = np.minimum(hi[used], size[used] - hi[used]) / size[used]
    return float(np.mean(minority > tol))


def code_usage(codes: np.ndarray, k: int) -> dict[str, float]:
    p = np.bincount(codes, minlength=k) / len(codes)
    nz = p[p > 0]
    used = int((p > 0).sum())
    return {
        "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
        "used_codes": used,
        "dead_codes": k - used,
    }


def quality(
    codes: np.ndarray, arrays: dict[str, np.ndarray], k: int, *, incoherence_tol: float = 0.1
) -> dict[str, float]:
    """All metrics of one assignment `codes` [N] of the buyers in `arrays` (load_arrays keys)."""
    codes = np.asarray(codes, np.int64)
    if len(codes) != len(arrays["x"]):
        raise ValueError(f"{len(codes)} codes for {len(arrays['x'])} buyers")
    out: dict[str, float] = {}
    n_used = len(np.unique(codes))
    out["calinski_harabasz"] = (
        float(skm.calinski_harabasz_score(arrays["x"], codes))
        if 1 < n_used < len(codes)
        else float("nan")
    )
    out["stratum_purity"] = purity(codes, arrays["stratum"])
    per = {
        f"incoherence_{name}": incoherence(codes, arrays[name], incoherence_tol)
        for name in BINARY_LABELS
        if name in arrays
    }
    out["incoherence"] = float(np.mean(list(per.values()))) if per else float("nan")
    out.update(per)
    out.update(code_usage(codes, k))
    truth = np.asarray(arrays.get("true_type", np.full(len(codes), -1)))
    known = truth >= 0
    if known.any():
        out["nmi_true_type"] = float(skm.normalized_mutual_info_score(truth[known], codes[known]))
        out["ari_true_type"] = float(skm.adjusted_rand_score(truth[known], codes[known]))
    return out


def kmeans_baseline(
    x_fit: np.ndarray, x_eval: np.ndarray, k: int, *, seed: int = 0, batch_size: int = 1024
) -> np.ndarray:
    """MiniBatchKMeans(K) fitted on x_fit (k-means++ init), cluster index of each x_eval row."""
    km = MiniBatchKMeans(n_clusters=k, batch_size=batch_size, random_state=seed, n_init=3)
    km.fit(x_fit)
    return km.predict(x_eval).astype(np.int64)


def format_table(rows: dict[str, dict[str, float]], title: str = "") -> str:
    """Metrics side by side, one row per method, '*' on the best value of each column."""
    cols = [m for m in METRICS if any(m in r for r in rows.values())]
    best = {}
    for m in cols:
        vals = [r.get(m, np.nan) for r in rows.values()]
        if all(np.isnan(v) for v in vals):
            continue
        sign = METRICS[m][1]
        best[m] = np.nanmax(np.asarray(vals) * sign) * sign
    name_w = max(len(n) for n in rows) + 2
    header = f"{'method':<{name_w}}" + "".join(
        f"{METRICS[m][0] + ('↑' if METRICS[m][1] > 0 else '↓'):>11}" for m in cols
    )
    lines = ([title] if title else []) + [header, "-" * len(header)]
    for name, r in rows.items():
        cells = []
        for m in cols:
            v = r.get(m, np.nan)
            s = "n/a" if np.isnan(v) else METRICS[m][2].format(v)
            cells.append(f"{s + ('*' if m in best and v == best[m] else ' '):>11}")
        lines.append(f"{name:<{name_w}}" + "".join(cells))
    return "\n".join(lines)


def compare(ours: dict[str, float], baseline: dict[str, float]) -> dict[str, str]:
    """Per metric: "win", "tie" or "loss" of `ours` against the baseline."""
    out = {}
    for m, (_, sign, _) in METRICS.items():
        if m in ours and m in baseline and not (np.isnan(ours[m]) or np.isnan(baseline[m])):
            d = sign * (ours[m] - baseline[m])
            out[m] = "win" if d > 0 else "tie" if d == 0 else "loss"
    return out


def verdict(ours: dict[str, float], baseline: dict[str, float], name: str = "k-means") -> str:
    """E.g. `VQ-VAE vs k-means: better on 5/8 (ties: used_codes; worse: calinski_harabasz)`."""
    c = compare(ours, baseline)
    text = f"VQ-VAE vs {name}: better on {sum(v == 'win' for v in c.values())}/{len(c)}"
    extra = [
        f"{kind}: {', '.join(m for m, v in c.items() if v == key)}"
        for kind, key in (("ties", "tie"), ("worse", "loss"))
        if any(v == key for v in c.values())
    ]
    return text + (f" ({'; '.join(extra)})" if extra else "")
