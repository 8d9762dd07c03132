"""Fidelity of a simulated population to the real one, with 95% bootstrap CIs and baselines.

One code path for real and simulated canonical events (DESIGN.md, Metrics). An agent
episode is one shopping session, so rates are per session on both sides; strata and codes belong
to buyers.

Everything is computed from two populations (metrics/population.py: `buyer_table`,
`Population`) built by one code path from real and simulated canonical events: per buyer its
sessions, sessions with an add-to-cart, sessions with a purchase, the share of its sessions
reaching each stratum A-E, its stratum and code, and for a simulated buyer `given`, the code
whose behaviour the agent was asked to show. `code_intensity` marks each code high or low
purchase intensity from the real buyers.

Figures (DESIGN.md, Metrics), each a point estimate with a 95% percentile bootstrap CI:
- stratified ARA: ARA_s = ½(1−|ΔATC|) + ½(1−|ΔPUR|) per stratum A-D (per-session rates, buyers
  grouped by stratum), mean over the strata present.
- per-code alignment: the same formula per code (real members vs simulated buyers drawn as that
  code), averaged with weights = the code's frequency among the simulated buyers.
- per-store conversion (purchasing sessions / sessions), CR alignment 1 − |CR_sim − CR_real| /
  CR_real and its mean over stores; a two-proportion z-test per store (point estimate only).
- Cohen's d of per-episode ATC and of purchase between high- and low-purchase-intensity codes
  (a code is high when its real members' `purchase_hi` mean is ≥ 0.5; simulated buyers are
  grouped by `given`, real sessions by their buyer's code: the real d is the target).
- stratum JSD per store, like for like: a simulated buyer has one episode, i.e. one session, so
  its stratum is that session's deepest stage; a real buyer is counted over one session too:
  as the stratum distribution of one of its sessions drawn at random (the share of its sessions
  reaching each stage, the exact expectation of drawing one), not its all-session stratum.

`side` computes one population's figures and `compare` the simulated side's alignment with the
real side, both for B resample weightings at once; `evaluate` runs them on the point weights and
on the bootstrap's (metrics/bootstrap.py: stores, then buyers within each store, as multinomial
count weights; 95% percentile intervals shifted by the bootstrap's bias estimate and kept within
the figure's range; point estimates are the plain plug-in values). All arms and baselines use
the same weights (the same simulated buyers in the same order), so their CIs are paired.

Baselines, from the same real and simulated buyers and the same formulas: `never_buy` (no ATC,
no purchase) and `average_buyer`, the best persona-blind constant policy: one ATC rate and one
purchase rate for everyone; stratified ARA is separable in the two, and the mean of |r_s − c|
over strata is minimised by the median of the real per-stratum rates (closed form).
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
from scipy import stats

from simpersona_jax.data import schema
from simpersona_jax.metrics.bootstrap import bootstrap_weights, summary
from simpersona_jax.metrics.population import Population

ALIGN = schema.ALIGNMENT_STRATA
# a population's own figures, reported for the real buyers and for each arm
SIDE_FIGURES = (
    "atc_rate",
    "purchase_rate",
    "cr",
    "stratum_mix",
    "cohens_d_atc",
    "cohens_d_purchase",
)


def _onehot(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """N x len(labels) membership; a value not among `labels` gets an all-zero row."""
    return (values[:, None] == labels[None, :]).astype(np.float64)


def _ratio(num, den):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _rates(w_BxN, pop: Population, group_NxG):
    """Per-session ATC and purchase rates per group, and weighted sessions per group."""
    g = group_NxG.shape[1]
    sums = w_BxN @ np.concatenate(
        [x[:, None] * group_NxG for x in (pop.sessions, pop.atc, pop.purchased)], 1
    )
    n, atc, purchased = sums[:, :g], sums[:, g : 2 * g], sums[:, 2 * g :]
    return _ratio(atc, n), _ratio(purchased, n), n


def _ara(ra, rp, sa, sp):
    return 0.5 * (1 - np.abs(ra - sa)) + 0.5 * (1 - np.abs(rp - sp))


def _per_store_mix(w_BxN, store_NxS, stage_Nx5):
    """B x S x 5 weighted buyer counts per store and stage (one BLAS matmul)."""
    n, n_stores = store_NxS.shape
    both = (store_NxS[:, :, None] * stage_Nx5[:, None, :]).reshape(n, n_stores * 5)
    return (w_BxN @ both).reshape(len(w_BxN), n_stores, 5)


def _weighted_nanmean(x_BxG, w_BxG):
    ok = ~np.isnan(x_BxG) & (w_BxG > 0)
    return _ratio(np.where(ok, x_BxG * w_BxG, 0).sum(-1), np.where(ok, w_BxG, 0).sum(-1))


def jsd_bits(p_Bx5, q_Bx5):
    """Jensen-Shannon divergence (bits) between rows, normalised here; NaN for an empty row."""
    p = _ratio(p_Bx5, p_Bx5.sum(-1, keepdims=True))
    q = _ratio(q_Bx5, q_Bx5.sum(-1, keepdims=True))
    m = 0.5 * (p + q)

    def kl(a):
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(a > 0, a, 1) / np.where(m > 0, m, 1)
            return np.where(a > 0, a * np.log2(ratio), 0).sum(-1)

    out = 0.5 * kl(p) + 0.5 * kl(q)
    return np.where(np.isnan(p).any(-1) | np.isnan(q).any(-1), np.nan, out)


def _cohens_d(w_BxN, pop: Population, hi_N, lo_N, values):
    """d = (mean_hi − mean_lo) / pooled sd of per-session binary `values` (a count per unit)."""
    moments = []
    for mask in (hi_N, lo_N):
        n, s1 = (w_BxN @ np.stack([pop.sessions * mask, values * mask], 1)).T
        # values are binary per session: their sum of squares is their sum
        mean = _ratio(s1, n)
        moments.append((n, mean, _ratio(s1 - n * mean**2, n - 1)))
    (n1, m1, v1), (n2, m2, v2) = moments
    pooled = np.sqrt(_ratio((n1 - 1) * v1 + (n2 - 1) * v2, n1 + n2 - 2))
    return _ratio(m1 - m2, pooled)


def code_intensity(real: pl.DataFrame) -> dict[int, bool]:
    """code -> True when its real members' purchase_hi mean is >= 0.5 (high purchase intensity)."""
    means = real.filter(pl.col("code") >= 0).group_by("code").agg(pl.col("purchase_hi").mean())
    return {int(c): bool(m >= 0.5) for c, m in means.rows()}


def side(pop: Population, w_BxN, high: dict[int, bool], codes: np.ndarray) -> dict:
    """One population's figures for B weightings at once (resample axis first)."""
    out = {}
    strata = _onehot(pop.stratum, np.arange(len(ALIGN)))
    out["atc_rate"], out["purchase_rate"], _ = _rates(w_BxN, pop, strata)
    k = _onehot(pop.code, codes)
    out["code_atc"], out["code_purchase"], _ = _rates(w_BxN, pop, k)
    out["code_buyers"] = w_BxN @ k
    stores = _onehot(pop.store, np.arange(len(pop.stores)))
    _, out["cr"], _ = _rates(w_BxN, pop, stores)
    out["stratum_mix"] = _per_store_mix(w_BxN, stores, pop.stage_Nx5)
    hi = np.array([high.get(int(c)) is True for c in pop.given], float)
    lo = np.array([high.get(int(c)) is False for c in pop.given], float)
    out["cohens_d_atc"] = _cohens_d(w_BxN, pop, hi, lo, pop.atc)
    out["cohens_d_purchase"] = _cohens_d(w_BxN, pop, hi, lo, pop.purchased)
    return out


def compare(real: dict, sim: dict, c_BxS) -> dict[str, np.ndarray]:
    """The simulated side's figures and its alignment with the real side (`side` outputs)."""
    out = {k: sim[k] for k in SIDE_FIGURES}
    out["ara_per_stratum"] = _ara(
        real["atc_rate"], real["purchase_rate"], sim["atc_rate"], sim["purchase_rate"]
    )
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # all-NaN rows
        out["stratified_ara"] = np.nanmean(out["ara_per_stratum"], -1)
    # per-code alignment, weighted by the code's frequency among the simulated buyers
    out["code_alignment"] = _weighted_nanmean(
        _ara(real["code_atc"], real["code_purchase"], sim["code_atc"], sim["code_purchase"]),
        sim["code_buyers"],
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        out["cr_alignment"] = 1 - np.abs(sim["cr"] - real["cr"]) / np.where(
            real["cr"] > 0, real["cr"], np.nan
        )
    out["mean_cr_alignment"] = _weighted_nanmean(out["cr_alignment"], c_BxS)
    out["stratum_jsd"] = jsd_bits(real["stratum_mix"], sim["stratum_mix"])
    out["mean_stratum_jsd"] = _weighted_nanmean(out["stratum_jsd"], c_BxS)
    return out


def two_proportion_z(x1, n1, x2, n2) -> tuple[float, float]:
    """(z, two-sided p) of H0 p1 == p2, pooled standard error; (0, 1) when it is 0."""
    pooled = (x1 + x2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if not se > 0:
        return 0.0, 1.0
    z = (x2 / n2 - x1 / n1) / se
    return float(z), float(2 * stats.norm.sf(abs(z)))


def best_constant(real_atc_4: np.ndarray, real_purchase_4: np.ndarray) -> tuple[float, float]:
    """(ATC rate, purchase rate) maximising stratified ARA against the real per-stratum rates."""
    a, p = real_atc_4[~np.isnan(real_atc_4)], real_purchase_4[~np.isnan(real_purchase_4)]
    return (float(np.median(a)) if len(a) else 0.0), (float(np.median(p)) if len(p) else 0.0)


STORE_FIGURES = ("cr", "cr_alignment", "stratum_jsd")
POINT_ONLY = ("stratum_mix",)
NOT_FOR_CONSTANTS = (
    "stratum_jsd",
    "mean_stratum_jsd",
    "stratum_mix",
    "cohens_d_atc",
    "cohens_d_purchase",
)


def _labelled(name, point, boot, stores):
    if name in POINT_ONLY:
        return {s: dict(zip(schema.STRATA, map(float, point[i]))) for i, s in enumerate(stores)}
    bounds = (
        (-np.inf, 1.0)
        if "cr_alignment" in name
        else ((-np.inf, np.inf) if name.startswith("cohens_d") else (0.0, 1.0))
    )
    summ = summary(point, boot, bounds)
    if name in STORE_FIGURES:
        return dict(zip(stores, summ))
    if point.ndim == 1:
        return dict(zip(ALIGN, summ))
    return summ


def evaluate(
    real: Population,
    sims: dict[str, Population],
    high: dict[int, bool],
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Figures with CIs for each simulated arm and for the baselines; "real" holds the targets.

    Every arm must hold the same simulated buyers in the same order (one sample, many arms).
    """
    if not sims:
        raise ValueError("evaluate needs at least one simulated population")
    first = next(iter(sims.values()))
    for arm, pop in sims.items():
        if pop.stores != real.stores or not np.array_equal(pop.store, first.store):
            raise ValueError(f"arm {arm!r} does not hold the same simulated buyers as the others")
    wr, ws, c = bootstrap_weights(real.store, first.store, len(real.stores), n_boot, seed)
    codes = np.unique(first.code[first.code >= 0])
    c_1xS = np.ones((1, len(real.stores)))
    real_point = side(real, np.ones((1, len(real.store))), high, codes)
    real_boot = side(real, wr, high, codes)

    def arm_figures(pop, drop=()):
        point = compare(real_point, side(pop, np.ones((1, len(pop.store))), high, codes), c_1xS)
        boot = compare(real_boot, side(pop, ws, high, codes), c)
        out = {k: _labelled(k, point[k][0], boot[k], real.stores) for k in point if k not in drop}
        z = {}
        for i, s in enumerate(real.stores):
            r, m = real.store == i, pop.store == i
            zs, p = two_proportion_z(
                real.purchased[r].sum(),
                real.sessions[r].sum(),
                pop.purchased[m].sum(),
                pop.sessions[m].sum(),
            )
            z[s] = {"z": zs, "p_value": p, "significant": p < 0.05}
        out["cr_test"] = z
        out["stores_not_significant"] = sum(not v["significant"] for v in z.values())
        return out

    arms = {arm: arm_figures(pop) for arm, pop in sims.items()}
    real_fig = {k: _labelled(k, real_point[k][0], real_boot[k], real.stores) for k in SIDE_FIGURES}
    a, p = best_constant(real_point["atc_rate"][0], real_point["purchase_rate"][0])
    baselines = {}
    for name, (ca, cp) in (("never_buy", (0.0, 0.0)), ("average_buyer", (a, p))):
        n = np.ones(len(first.store))
        const = first.replace(
            sessions=n, atc=ca * n, purchased=cp * n, stage_Nx5=np.full((len(n), 5), np.nan)
        )
        baselines[name] = {
            "atc_rate_constant": ca,
            "purchase_rate_constant": cp,
            **arm_figures(const, drop=NOT_FOR_CONSTANTS),
        }
    counts = {s: {} for s in real.stores}
    for i, k in zip(real.store, real.code):
        counts[real.stores[i]][int(k)] = counts[real.stores[i]].get(int(k), 0) + 1
    real_fig["p_store"] = {
        s: {k: v / sum(d.values()) for k, v in sorted(d.items())} for s, d in counts.items()
    }
    real_fig["buyers"] = {s: int((real.store == i).sum()) for i, s in enumerate(real.stores)}
    used, n_used = np.unique(real.code[real.code >= 0], return_counts=True)
    real_fig["code_counts"] = {int(k): int(v) for k, v in zip(used, n_used)}
    return {
        "stores": list(real.stores),
        "n_boot": n_boot,
        "seed": seed,
        "code_intensity": {str(k): v for k, v in sorted(high.items())},
        "real": real_fig,
        "arms": arms,
        "baselines": baselines,
    }
