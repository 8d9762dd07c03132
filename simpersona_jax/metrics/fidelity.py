"""Fidelity of a simulated population to the real one, with 95% bootstrap CIs and baselines.

One module, one code path for real and simulated canonical events (DESIGN.md, Metrics). An agent
episode is one shopping session, so rates are per session on both sides; strata and codes belong
to buyers.

Everything is computed from two buyer tables (`buyer_table`) built by one code path from real
and simulated canonical events: per buyer its sessions, sessions with an add-to-cart, sessions
with a purchase, and the share of its sessions whose deepest funnel stage is each stratum A-E.
Real buyers carry their stratum (over all their sessions, from the buyer pipeline) and VQ-VAE
code; a simulated buyer carries its source buyer's stratum and code, and `given`, the code whose
behaviour the agent was asked to show (the persona token; the source code when no token was
given: text persona, no persona, scripted oracle).

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

CIs are bootstrap percentile intervals shifted by the bootstrap's bias estimate (mean of the
resamples − point estimate) and kept within the figure's range: ARA-type figures (1 − |Δ|) and
JSD are biased under resampling (noise only adds to |Δ| and to divergence), so where simulated
and real nearly agree the raw percentiles lie wholly on one side of the point estimate (seen on
the embedded default: oracle JSD 0.01, raw interval [0.02, 0.08]). The point estimates are the
plain plug-in values, not bias-corrected. The bootstrap resamples stores, then buyers
within each store (real and simulated buyers each within their store, with the same store
draws), as multinomial count weights, so every figure is a weighted sum evaluated for all
resamples at once (numpy, seeded). All arms and baselines use the same weights (the same
simulated buyers in the same order), so their CIs are paired.

Baselines, from the same real and simulated buyers and the same formulas: `never_buy` (no ATC,
no purchase) and `average_buyer`, the best persona-blind constant policy: one ATC rate and one
purchase rate for everyone; stratified ARA is separable in the two, and the mean of |r_s − c|
over strata is minimised by the median of the real per-stratum rates (closed form).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import polars as pl
from scipy import stats

from simpersona_jax.data import schema

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


def session_table(events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """One row per (store, buyer, session): viewed (a product), atc, reached_checkout, purchased."""
    et = pl.col("event_type")
    return (
        events.lazy()
        .group_by("store_id", "buyer_id", "session_id")
        .agg(
            viewed=(et == "product_viewed").any(),
            atc=(et == "product_added_to_cart").any(),
            reached_checkout=(et == "checkout_started").any() | (et == "checkout_completed").any(),
            purchased=(et == "checkout_completed").any(),
        )
        .collect()
    )


def buyer_table(
    events: pl.DataFrame | pl.LazyFrame, buyers: pl.DataFrame, min_sessions: int = 0
) -> pl.DataFrame:
    """`buyers` (store_id, buyer_id, ...) with sessions, atc, purchased and s_A..s_E added.

    atc / purchased count sessions; s_k is the share of the buyer's sessions whose deepest stage
    is k. min_sessions=1 (simulated buyers: one episode each) counts a buyer without a logged
    session as one session that reached nothing (stage E), so no episode is dropped.
    """
    st = session_table(events).with_columns(
        stage=pl.when("purchased")
        .then(0)
        .when("reached_checkout")
        .then(1)
        .when("atc")
        .then(2)
        .when("viewed")
        .then(3)
        .otherwise(4)
    )
    per = st.group_by("store_id", "buyer_id").agg(
        sessions=pl.len().cast(pl.Float64),
        atc=pl.col("atc").sum().cast(pl.Float64),
        purchased=pl.col("purchased").sum().cast(pl.Float64),
        **{f"s_{k}": (pl.col("stage") == i).mean() for i, k in enumerate(schema.STRATA)},
    )
    out = buyers.join(per, on=["store_id", "buyer_id"], how="left")
    zero = pl.col("sessions").is_null()
    return out.with_columns(
        sessions=pl.when(zero).then(float(min_sessions)).otherwise("sessions"),
        atc=pl.col("atc").fill_null(0.0),
        purchased=pl.col("purchased").fill_null(0.0),
        **{
            f"s_{k}": pl.col(f"s_{k}").fill_null(float(k == "E" and min_sessions > 0))
            for k in schema.STRATA
        },
    )


@dataclasses.dataclass(frozen=True)
class Population:
    """A buyer table as arrays; store indexes `stores`, stratum 0..4, code/given -1 = none."""

    stores: tuple[str, ...]
    store: np.ndarray
    stratum: np.ndarray
    code: np.ndarray
    given: np.ndarray
    sessions: np.ndarray
    atc: np.ndarray
    purchased: np.ndarray
    stage_Nx5: np.ndarray

    @classmethod
    def from_table(cls, table: pl.DataFrame, stores) -> "Population":
        stores = tuple(stores)
        missing = set(table["store_id"].unique()) - set(stores)
        if missing:
            raise ValueError(f"buyer table has stores outside {stores}: {sorted(missing)[:5]}")

        def col(name, default, dtype):
            values = table[name].to_numpy() if name in table.columns else default
            return np.broadcast_to(values, (table.height,)).astype(dtype)

        code = col("code", -1, np.int64)
        return cls(
            stores,
            np.array([stores.index(s) for s in table["store_id"]], np.int64),
            col("stratum", -1, np.int64),
            code,
            col("given", code, np.int64),
            col("sessions", 0.0, float),
            col("atc", 0.0, float),
            col("purchased", 0.0, float),
            table.select([f"s_{k}" for k in schema.STRATA]).to_numpy().astype(float),
        )

    def replace(self, **kw) -> "Population":
        return dataclasses.replace(self, **kw)


def bootstrap_weights(
    stores_r: np.ndarray, stores_s: np.ndarray, n_stores: int, n_boot: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W_real_BxN, W_sim_BxM, C_BxS): counts of each unit in each resample, store draws."""
    rng = np.random.default_rng(seed)
    c_BxS = rng.multinomial(n_stores, np.full(n_stores, 1 / n_stores), size=n_boot).astype(float)

    def within(store_of):
        w = np.zeros((n_boot, len(store_of)))
        for s in range(n_stores):
            idx = np.flatnonzero(store_of == s)
            if len(idx):
                w[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1 / len(idx)), size=n_boot)
        return w * c_BxS[:, store_of]

    return within(stores_r), within(stores_s), c_BxS


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


def interval(point, boot, bounds=(-np.inf, np.inf)):
    """95% interval: the bootstrap percentiles shifted by the bootstrap bias, within `bounds`.

    lo, hi = q2.5 − b, q97.5 − b with b = mean(boot) − point (elementwise over trailing axes).
    """
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # all-NaN columns
        q = np.nanpercentile(boot, [2.5, 97.5], axis=0) - (np.nanmean(boot, axis=0) - point)
    return np.clip(q[0], *bounds), np.clip(q[1], *bounds)


def _summary(point, boot, bounds):
    """{value, lo, hi} (floats, None for NaN), elementwise over trailing axes, as nested lists."""
    lo, hi = interval(point, boot, bounds)

    def py(x):
        x = np.asarray(x, float)
        return (
            None
            if x.ndim == 0 and not np.isfinite(x)
            else (float(x) if x.ndim == 0 else [py(v) for v in x])
        )

    def zipped(p, lo_, hi_):
        if np.ndim(p) == 0:
            return {"value": py(p), "lo": py(lo_), "hi": py(hi_)}
        return [zipped(a, b, c) for a, b, c in zip(p, lo_, hi_)]

    return zipped(point, lo, hi)


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
    summ = _summary(point, boot, bounds)
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
