"""Fidelity figures, CIs and baselines against hand computation and scipy."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from simpersona_jax.data import schema
from simpersona_jax.metrics import fidelity as fid
from simpersona_jax.metrics.bootstrap import interval
from simpersona_jax.metrics.population import Population, buyer_table

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


def _events(sessions):
    """sessions: list of (store, buyer, session, [event types])."""
    rows = []
    for store, buyer, session, types in sessions:
        for i, t in enumerate(types):
            rows.append(
                dict(
                    store_id=store,
                    buyer_id=buyer,
                    session_id=session,
                    event_time=T0 + dt.timedelta(seconds=i),
                    event_type=t,
                )
            )
    return pl.DataFrame(rows).pipe(lambda d: schema.conform(d.lazy()).collect())


V, A, S, C = "product_viewed", "product_added_to_cart", "checkout_started", "checkout_completed"
REAL = _events(
    [
        ("s", "r1", "a", [V, A, S, C]),
        ("s", "r1", "b", [V]),  # A buyer, 2 sessions
        ("s", "r2", "c", [V, A]),  # C buyer
        ("s", "r3", "d", [V]),
        ("s", "r3", "e", ["page_viewed"]),
    ]
)  # D buyer
SIM = _events(
    [
        ("s", "x1", "1", [V, A, S, C]),  # given r1's persona
        ("s", "x2", "2", [V]),  # given r2's persona
        ("s", "x3", "3", [V, A]),
    ]
)  # given r3's persona


def _population(stores, store, stratum, code, sessions, atc, purchased, given=None, stage=None):
    n = len(store)
    stage = np.tile([0, 0, 0, 1.0, 0], (n, 1)) if stage is None else np.asarray(stage, float)
    code = np.asarray(code)
    return Population(
        tuple(stores),
        np.asarray(store),
        np.asarray(stratum),
        code,
        code if given is None else np.asarray(given),
        np.asarray(sessions, float),
        np.asarray(atc, float),
        np.asarray(purchased, float),
        stage,
    )


def test_buyer_table_counts_sessions_and_one_session_strata():
    buyers = pl.DataFrame({"store_id": ["s"] * 3, "buyer_id": ["r1", "r2", "r3"]})
    t = {r["buyer_id"]: r for r in buyer_table(REAL, buyers).iter_rows(named=True)}
    # r1: session a purchased (stage A), session b only viewed (stage D)
    assert (t["r1"]["sessions"], t["r1"]["atc"], t["r1"]["purchased"]) == (2, 1, 1)
    assert (t["r1"]["s_A"], t["r1"]["s_D"], t["r1"]["s_E"]) == (0.5, 0.5, 0.0)
    assert (t["r3"]["s_D"], t["r3"]["s_E"]) == (0.5, 0.5)
    # a simulated buyer whose episode logged nothing still counts as one session (stage E)
    ghost = pl.DataFrame({"store_id": ["s", "s"], "buyer_id": ["x1", "ghost"]})
    g = buyer_table(SIM, ghost, min_sessions=1)
    g = {r["buyer_id"]: r for r in g.iter_rows(named=True)}
    assert (g["ghost"]["sessions"], g["ghost"]["atc"], g["ghost"]["s_E"]) == (1, 0, 1)
    assert (g["x1"]["sessions"], g["x1"]["s_A"]) == (1, 1)


def _hand_populations():
    """The events of test_population as buyer tables: real r1 (A), r2 (C), r3 (D); sim x1..x3."""
    real = buyer_table(
        REAL,
        pl.DataFrame(
            {
                "store_id": ["s"] * 3,
                "buyer_id": ["r1", "r2", "r3"],
                "stratum": [0, 2, 3],
                "code": [1, 2, 3],
            }
        ),
    )
    sim = buyer_table(
        SIM,
        pl.DataFrame(
            {
                "store_id": ["s"] * 3,
                "buyer_id": ["x1", "x2", "x3"],
                "stratum": [0, 2, 3],
                "code": [1, 2, 3],
            }
        ),
        min_sessions=1,
    )
    return Population.from_table(real, ["s"]), Population.from_table(sim, ["s"])


def test_point_figures_by_hand():
    real, sim = _hand_populations()
    out = fid.evaluate(real, {"arm": sim}, {1: True, 2: False, 3: False}, n_boot=50)
    arm = out["arms"]["arm"]
    # A: real ATC 1/2, PUR 1/2 vs sim 1, 1 -> 0.5; C: ΔATC = 1 -> 0.5; D: ΔATC = 1 -> 0.5; no B
    assert {k: v["value"] for k, v in arm["ara_per_stratum"].items()} == {
        "A": 0.5,
        "B": None,
        "C": 0.5,
        "D": 0.5,
    }
    assert arm["stratified_ara"]["value"] == pytest.approx(0.5)
    # per code: code 1 = r1 (ATC 1/2, PUR 1/2) vs x1 (1, 1): 0.5; code 2 = r2 (1, 0) vs x2 (0, 0):
    # 0.5; code 3 = r3 (0, 0) vs x3 (1, 0): 0.5; each code 1/3 of the simulated buyers
    assert arm["code_alignment"]["value"] == pytest.approx(0.5)
    # conversion: real 1 of 5 sessions, sim 1 of 3 episodes
    assert out["real"]["cr"]["s"]["value"] == pytest.approx(1 / 5)
    assert arm["cr"]["s"]["value"] == pytest.approx(1 / 3)
    assert arm["cr_alignment"]["s"]["value"] == pytest.approx(1 - (1 / 3 - 1 / 5) / (1 / 5))
    # like for like: real r1 counts half A half D, r2 C, r3 half D half E; sim x1 A, x2 D, x3 C
    p, q = np.array([0.5, 0, 1, 1, 0.5]) / 3, np.array([1, 0, 1, 1, 0]) / 3
    m = (p + q) / 2
    kl = lambda a: sum(x * np.log2(x / y) for x, y in zip(a, m) if x > 0)  # noqa: E731
    assert arm["stratum_jsd"]["s"]["value"] == pytest.approx(0.5 * kl(p) + 0.5 * kl(q))
    assert out["real"]["p_store"]["s"] == {1: 1 / 3, 2: 1 / 3, 3: 1 / 3}


def test_jsd_matches_scipy():
    from scipy.spatial.distance import jensenshannon

    p = np.array([[3, 0, 1, 2, 4], [1, 0, 0, 0, 0]])
    q = np.array([[1, 1, 1, 0, 2], [0, 1, 0, 0, 0]])
    ref = [jensenshannon(a, b, base=2) ** 2 for a, b in zip(p, q)]
    assert fid.jsd_bits(p, q) == pytest.approx(ref) and ref[1] == pytest.approx(1.0)
    assert np.isnan(fid.jsd_bits(np.zeros((1, 5)), q[:1])[0])


def test_two_proportion_z_matches_scipy():
    for x1, n1, x2, n2 in ((12, 80, 3, 40), (5, 200, 9, 60), (0, 30, 4, 30)):
        z, p = fid.two_proportion_z(x1, n1, x2, n2)
        chi2, p_ref, _, _ = stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
        assert z**2 == pytest.approx(chi2) and p == pytest.approx(p_ref)
        assert np.sign(z) == np.sign(x2 / n2 - x1 / n1)
    assert fid.two_proportion_z(0, 30, 0, 60) == (0.0, 1.0)


def test_cohens_d_is_the_pooled_sd_formula_over_sessions():
    rng = np.random.default_rng(0)
    n = 40
    code = rng.integers(0, 4, n)
    sessions = rng.integers(1, 4, n).astype(float)
    atc = np.array([rng.integers(0, s + 1) for s in sessions], float)
    p = _population(["s"], np.zeros(n, int), np.zeros(n, int), code, sessions, atc, atc * 0)
    high = {0: True, 1: True, 2: False, 3: False}
    d = fid._cohens_d(
        np.ones((1, n)),
        p,
        np.isin(code, [0, 1]).astype(float),
        np.isin(code, [2, 3]).astype(float),
        p.atc,
    )[0]
    per_session = [np.r_[np.ones(int(a)), np.zeros(int(s - a))] for a, s in zip(atc, sessions)]
    hi = np.concatenate([x for x, c in zip(per_session, code) if high[c]])
    lo = np.concatenate([x for x, c in zip(per_session, code) if not high[c]])
    pooled = np.sqrt(
        ((len(hi) - 1) * hi.var(ddof=1) + (len(lo) - 1) * lo.var(ddof=1)) / (len(hi) + len(lo) - 2)
    )
    assert d == pytest.approx((hi.mean() - lo.mean()) / pooled)
    # code_intensity labels a code by its real members' purchase_hi mean
    real = pl.DataFrame({"code": [0, 0, 1, 1, -1], "purchase_hi": [1, 0, 0, 0, 1]})
    assert fid.code_intensity(real) == {0: True, 1: False}


def _random_populations(n_real, n_sim, seed=0, same=False):
    rng = np.random.default_rng(seed)

    def make(n, sessions, atc_p, pur_p):
        stratum = rng.integers(0, 4, n)
        atc = rng.binomial(sessions, np.where(stratum < 3, atc_p, 0.05), n)
        pur = np.minimum(atc, rng.binomial(sessions, np.where(stratum == 0, pur_p, 0.0), n))
        return _population(
            ["a", "b", "c", "d"],
            rng.integers(0, 4, n),
            stratum,
            rng.integers(0, 8, n),
            np.full(n, sessions),
            atc,
            pur,
            stage=rng.dirichlet(np.ones(5), n),
        )

    return make(n_real, 3, 0.5, 0.4), make(n_sim, 1, *((0.5, 0.4) if same else (0.8, 0.1)))


def test_interval_is_the_percentiles_shifted_by_the_bootstrap_bias():
    boot = np.linspace(0.02, 0.08, 1001)[:, None]  # percentiles 0.0215, 0.0785; mean 0.05
    lo, hi = interval(np.array([0.01]), boot, (0.0, 1.0))
    assert lo[0] == 0.0 and hi[0] == pytest.approx(0.0785 - 0.04)  # clipped at the range
    lo, hi = interval(np.array([0.05]), boot)
    assert (lo[0], hi[0]) == pytest.approx((0.0215, 0.0785))  # unbiased: the plain percentiles


def test_ci_contains_the_point_and_narrows_with_more_buyers():
    high = {k: k < 4 for k in range(8)}
    width = {}
    # scale 1 and 6; and sim agreeing with real, where ARA and JSD are biased under resampling
    for scale, same in ((1, False), (6, False), (1, True)):
        real, sim = _random_populations(200 * scale, 60 * scale, same=same)
        arm = fid.evaluate(real, {"arm": sim}, high, n_boot=300, seed=1)["arms"]["arm"]
        for key in ("stratified_ara", "code_alignment", "mean_cr_alignment", "mean_stratum_jsd"):
            assert arm[key]["lo"] <= arm[key]["value"] <= arm[key]["hi"], (key, scale, same)
        width[scale, same] = arm["stratified_ara"]["hi"] - arm["stratified_ara"]["lo"]
    assert width[6, False] < 0.6 * width[1, False]
    # the same seed gives the same CIs; paired across arms: an identical arm, identical figures
    out = fid.evaluate(real, {"arm": sim, "twin": sim}, high, n_boot=300, seed=1)
    assert out["arms"]["twin"] == out["arms"]["arm"] == arm


def test_baselines_on_a_hand_made_population():
    real, sim = _random_populations(300, 80, seed=3)
    out = fid.evaluate(real, {"arm": sim}, {}, n_boot=50)
    rates = out["real"]
    r_atc = np.array([rates["atc_rate"][k]["value"] for k in "ABCD"])
    r_pur = np.array([rates["purchase_rate"][k]["value"] for k in "ABCD"])
    never = out["baselines"]["never_buy"]
    assert never["stratified_ara"]["value"] == pytest.approx(np.mean(1 - 0.5 * r_atc - 0.5 * r_pur))
    assert never["cr"]["a"]["value"] == 0.0 and "cohens_d_atc" not in never
    best = out["baselines"]["average_buyer"]
    grid = np.linspace(0, 1, 101)

    def ara(a, p):
        return np.mean(0.5 * (1 - np.abs(r_atc - a)) + 0.5 * (1 - np.abs(r_pur - p)))

    grid_best = max(ara(a, p) for a in grid for p in grid)
    assert best["stratified_ara"]["value"] == pytest.approx(
        ara(best["atc_rate_constant"], best["purchase_rate_constant"])
    )
    assert grid_best <= best["stratified_ara"]["value"] + 1e-12


def test_evaluate_rejects_arms_with_other_buyers():
    real, sim = _random_populations(50, 20)
    other = sim.replace(store=np.roll(sim.store, 1))
    with pytest.raises(ValueError, match="arm 'b' does not hold the same simulated buyers"):
        fid.evaluate(real, {"a": sim, "b": other}, {}, n_boot=10)
    with pytest.raises(ValueError, match="stores outside"):
        Population.from_table(
            pl.DataFrame(
                {
                    "store_id": ["zz"],
                    "s_A": [1.0],
                    "s_B": [0.0],
                    "s_C": [0.0],
                    "s_D": [0.0],
                    "s_E": [0.0],
                }
            ),
            ["a"],
        )
