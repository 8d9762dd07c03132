"""Cluster-quality metrics for buyer types, and the MiniBatch k-means baseline (numpy/sklearn).

Directions: CH, purity, perplexity, used codes, NMI, ARI higher is better; incoherence and dead
codes lower is better.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
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


def add_counts(table: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """`table` [R, C] int64, grown to fit, plus the counts of the pairs (rows[i], cols[i])."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    if rows.size == 0:
        return table
    shape = (max(table.shape[0], int(rows.max()) + 1), max(table.shape[1], int(cols.max()) + 1))
    out = np.zeros(shape, np.int64)
    out[: table.shape[0], : table.shape[1]] = table
    out += np.bincount(rows * shape[1] + cols, minlength=shape[0] * shape[1]).reshape(shape)
    return out


def count_table(codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[max code + 1, max label + 1] counts of the (code, label) pairs."""
    return add_counts(np.zeros((0, 0), np.int64), codes, labels)


def padded(table: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """`table` with zero rows/columns added up to at least [rows, cols]."""
    r, c = max(rows, table.shape[0]), max(cols, table.shape[1])
    return np.pad(table, ((0, r - table.shape[0]), (0, c - table.shape[1])))


def purity_of(table: np.ndarray) -> float:
    """Share of buyers whose label is their cluster's majority label, from (code, label) counts."""
    total = table.sum()
    return float(table.max(1).sum() / total) if total else float("nan")


def incoherence_of(table: np.ndarray, tol: float = 0.1) -> float:
    """Share of used clusters that mix high and low of a 0/1 label (minority share > tol),
    from (code, label) counts."""
    table = padded(table, 0, 2)
    size, hi = table.sum(1), table[:, 1]
    used = size > 0
    minority = np.minimum(hi[used], size[used] - hi[used]) / size[used]
    return float(np.mean(minority > tol))


def usage_of(counts: np.ndarray, k: int) -> dict[str, float]:
    """Perplexity and used/dead codes from the per-code counts."""
    counts = np.pad(counts, (0, max(0, k - len(counts))))
    p = counts / counts.sum()
    nz = p[p > 0]
    used = int((p > 0).sum())
    return {
        "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
        "used_codes": used,
        "dead_codes": k - used,
    }


def purity(codes: np.ndarray, labels: np.ndarray) -> float:
    """Share of buyers whose label is their cluster's majority label."""
    return purity_of(count_table(codes, labels))


def incoherence(codes: np.ndarray, binary: np.ndarray, tol: float = 0.1) -> float:
    """Share of used clusters that mix high and low of a 0/1 label: minority share > tol."""
    return incoherence_of(count_table(codes, binary), tol)


def code_usage(codes: np.ndarray, k: int) -> dict[str, float]:
    return usage_of(np.bincount(np.asarray(codes, np.int64), minlength=k), k)


def calinski_harabasz_of(n: np.ndarray, sums: np.ndarray, sq: np.ndarray) -> float:
    """sklearn's calinski_harabasz_score from per-code sizes n [K], sums of x [K, D] and sums of
    ||x||^2 [K] (x measured from any fixed origin); nan unless 1 < used codes < buyers.
    B = sum_k n_k ||m_k - m||^2, W = sum_k (sq_k - n_k ||m_k||^2), CH = B (N - k) / (W (k - 1))."""
    used = n > 0
    n_used, total = int(used.sum()), int(n.sum())
    if not 1 < n_used < total:
        return float("nan")
    n, sums, sq = n[used].astype(np.float64), sums[used], sq[used]
    means = sums / n[:, None]
    between = float((n * ((means - sums.sum(0) / total) ** 2).sum(1)).sum())
    within = float(np.maximum(sq - (sums * means).sum(1), 0.0).sum())
    return 1.0 if within == 0.0 else between * (total - n_used) / (within * (n_used - 1.0))


def _entropy(counts: np.ndarray) -> float:
    """Entropy (nats) of a labelling from its class counts, as sklearn computes it."""
    pi = counts[counts > 0].astype(np.float64)
    if pi.size == 1:
        return 0.0
    total = pi.sum()
    return float(-np.sum((pi / total) * (np.log(pi) - np.log(total))))


def _nonempty(table: np.ndarray) -> np.ndarray:
    return table[table.sum(1) > 0][:, table.sum(0) > 0]


def nmi_of(contingency: np.ndarray) -> float:
    """sklearn's normalized_mutual_info_score (arithmetic mean) from the (true, predicted)
    contingency table of counts."""
    c = _nonempty(contingency)
    if c.shape[0] == c.shape[1] <= 1:
        return 1.0
    mi = skm.mutual_info_score(None, None, contingency=c)
    if mi == 0:
        return 0.0
    return float(mi / np.mean([_entropy(c.sum(1)), _entropy(c.sum(0))]))


def ari_of(contingency: np.ndarray) -> float:
    """sklearn's adjusted_rand_score from the (true, predicted) contingency table, by pair
    counts in exact integers."""
    c = contingency.astype(np.int64)
    n, squares = int(c.sum()), int((c**2).sum())
    fp = int((c @ c.sum(0)).sum()) - squares
    fn = int((c.T @ c.sum(1)).sum()) - squares
    tp, tn = squares - n, n * n - fp - fn - squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


class QualityAccumulator:
    """All metrics of one assignment, fed batch by batch (`update(codes, batch)`), in memory
    independent of the number of buyers: per-code sizes, sums of x and of ||x||^2 (float64,
    measured from the first batch's mean, which CH does not depend on, to keep the sums
    small) and (code, label) count tables. `result()` is the dict `quality()` returns; the
    sums also give code_table (summary.py) its per-code rows."""

    def __init__(self, k: int, *, incoherence_tol: float = 0.1):
        self.k, self.tol = k, incoherence_tol
        self.sizes = np.zeros(k, np.int64)
        self.sum_sq = np.zeros(k, np.float64)
        self.sum_x = self.origin = None
        self.tables: dict[str, np.ndarray] = {}

    def update(self, codes: np.ndarray, batch: dict[str, np.ndarray]) -> None:
        """codes [n] of the buyers of `batch` (x [n, D] and load_arrays' labels)."""
        codes = np.asarray(codes, np.int64)
        if len(codes) != len(batch["x"]):
            raise ValueError(f"{len(codes)} codes for {len(batch['x'])} buyers")
        if codes.size and not 0 <= codes.min() <= codes.max() < self.k:
            raise ValueError(f"codes outside 0..{self.k - 1}")
        x = np.asarray(batch["x"], np.float64)
        if self.origin is None:
            self.origin = x.mean(0) if len(x) else np.zeros(x.shape[1])
            self.sum_x = np.zeros((self.k, x.shape[1]))
        x = x - self.origin
        onehot = sparse.csr_matrix(
            (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(self.k, len(codes))
        )
        self.sum_x += onehot @ x
        self.sum_sq += np.bincount(codes, weights=(x * x).sum(1), minlength=self.k)
        self.sizes += np.bincount(codes, minlength=self.k)
        for name in ("stratum",) + tuple(b for b in BINARY_LABELS if b in batch):
            self._count(name, codes, batch[name])
        truth = np.asarray(batch.get("true_type", np.full(len(codes), -1)))
        known = truth >= 0  # buyers of unknown type (-1) count for no NMI/ARI
        self._count("true_type", codes[known], truth[known])

    MAX_LABEL = 1 << 16  # count tables are K x (largest label + 1)

    def _count(self, name: str, codes: np.ndarray, labels: np.ndarray) -> None:
        labels = np.asarray(labels)
        if labels.size and not 0 <= labels.min() <= labels.max() < self.MAX_LABEL:
            bad = labels[(labels < 0) | (labels >= self.MAX_LABEL)][0]
            raise ValueError(f"label {name!r} has value {bad}: expected 0..{self.MAX_LABEL - 1}")
        self.tables[name] = add_counts(
            self.tables.get(name, np.zeros((self.k, 0), np.int64)), codes, labels
        )

    def label_table(self, name: str, width: int = 0) -> np.ndarray:
        """[K, >= width] counts of (code, value of label `name`)."""
        return padded(self.tables.get(name, np.zeros((0, 0), np.int64)), self.k, width)

    def means(self) -> np.ndarray:
        """[K, D] mean x of each code (nan for unused codes)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum_x / self.sizes[:, None] + self.origin

    def result(self) -> dict[str, float]:
        out = {
            "calinski_harabasz": (
                calinski_harabasz_of(self.sizes, self.sum_x, self.sum_sq)
                if self.sum_x is not None
                else float("nan")
            ),
            "stratum_purity": purity_of(self.label_table("stratum")),
        }
        per = {
            f"incoherence_{name}": incoherence_of(self.tables[name], self.tol)
            for name in BINARY_LABELS
            if name in self.tables
        }
        out["incoherence"] = float(np.mean(list(per.values()))) if per else float("nan")
        out.update(per)
        out.update(usage_of(self.sizes, self.k))
        truth = self.label_table("true_type").T  # (true type, code), as sklearn orders it
        if truth.sum():
            out["nmi_true_type"] = nmi_of(truth)
            out["ari_true_type"] = ari_of(truth)
        return out


def quality(
    codes: np.ndarray, arrays: dict[str, np.ndarray], k: int, *, incoherence_tol: float = 0.1
) -> dict[str, float]:
    """All metrics of one assignment `codes` [N] of the buyers in `arrays` (load_arrays keys):
    the accumulator fed once."""
    acc = QualityAccumulator(k, incoherence_tol=incoherence_tol)
    acc.update(codes, arrays)
    return acc.result()


def kmeans_name(k: int) -> str:
    return f"minibatch_kmeans(K={k})"


def fit_kmeans(x_fit: np.ndarray, k: int, *, seed: int = 0, batch_size: int = 1024):
    """MiniBatchKMeans(K) fitted on x_fit (k-means++ init)."""
    km = MiniBatchKMeans(n_clusters=k, batch_size=batch_size, random_state=seed, n_init=3)
    return km.fit(x_fit)


def kmeans_codes(km, x: np.ndarray) -> np.ndarray:
    """Cluster index of each row of x under a fitted k-means (row by row: batches may differ)."""
    return km.predict(x).astype(np.int64)


def kmeans_baseline(
    x_fit: np.ndarray, x_eval: np.ndarray, k: int, *, seed: int = 0, batch_size: int = 1024
) -> np.ndarray:
    """MiniBatchKMeans(K) fitted on x_fit (k-means++ init), cluster index of each x_eval row."""
    return kmeans_codes(fit_kmeans(x_fit, k, seed=seed, batch_size=batch_size), x_eval)


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


def quality_text(rows: dict[str, dict[str, float]], title: str, k: int) -> str:
    """format_table of the rows, then the verdict of "vqvae" against the k-means row if any."""
    text = format_table(rows, title=title)
    if "vqvae" in rows and kmeans_name(k) in rows:
        text += "\n" + verdict(rows["vqvae"], rows[kmeans_name(k)])
    return text


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
