"""Population metrics against hand computation."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from simpersona_jax.data import schema
from simpersona_jax.metrics import population as pop

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


def _events(sessions):
    """sessions: list of (store, buyer, session, [event types])."""
    rows = []
    for store, buyer, session, types in sessions:
        for i, t in enumerate(types):
            rows.append(dict(store_id=store, buyer_id=buyer, session_id=session,
                             event_time=T0 + dt.timedelta(seconds=i), event_type=t,
                             product_id="p" if t.startswith("product") or t == "checkout_completed" else None))
    return pl.DataFrame(rows).pipe(lambda d: schema.conform(d.lazy()).collect())


V, A, S, C = "product_viewed", "product_added_to_cart", "checkout_started", "checkout_completed"
REAL = _events([("s", "r1", "a", [V, A, S, C]), ("s", "r1", "b", [V]),   # A buyer, 2 sessions
                ("s", "r2", "c", [V, A]),                                   # C buyer
                ("s", "r3", "d", [V]), ("s", "r3", "e", ["page_viewed"])])  # D buyer
SIM = _events([("s", "x1", "1", [V, A, S, C]),                              # given r1's persona
               ("s", "x2", "2", [V]),                                       # given r2's persona
               ("s", "x3", "3", [V, A])])                                   # given r3's persona


def test_rates_and_stratified_ara_by_hand():
    real_strata = pop.assign_strata(REAL.lazy()).collect()
    assert dict(real_strata.select("buyer_id", pl.col("stratum").cast(pl.String)).rows()) == \
        {"r1": "A", "r2": "C", "r3": "D"}
    sim_strata = pl.DataFrame({"store_id": ["s"] * 3, "buyer_id": ["x1", "x2", "x3"],
                               "stratum": ["A", "C", "D"]})
    real = pop.rates_by_stratum(pop.session_table(REAL), real_strata)
    sim = pop.rates_by_stratum(pop.session_table(SIM), sim_strata)
    r = {row["stratum"]: row for row in real.iter_rows(named=True)}
    assert (r["A"]["sessions"], r["A"]["atc_rate"], r["A"]["purchase_rate"]) == (2, 0.5, 0.5)
    out = pop.stratified_ara(real, sim)
    # A: ΔATC = 0.5, ΔPUR = 0.5 -> 0.5; C: ΔATC = 1 -> 0.5; D: ΔATC = 1 -> 0.5; B missing.
    assert out["per_stratum"] == {"A": 0.5, "B": None, "C": 0.5, "D": 0.5}
    assert out["stratified_ara"] == pytest.approx(0.5) and out["missing"] == ["B"]


def test_cr_alignment_and_jsd():
    al = pop.cr_alignment(pop.session_table(REAL), pop.session_table(SIM)).row(0, named=True)
    assert al["cr_real"] == pytest.approx(1 / 5) and al["cr_sim"] == pytest.approx(1 / 3)
    assert al["alignment"] == pytest.approx(1 - (1 / 3 - 1 / 5) / (1 / 5))
    assert pop.jensen_shannon([1, 0], [1, 0]) == 0.0
    assert pop.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    # By the pipeline, sim buyers reach A (x1), D (x2), C (x3): the same mix as real -> 0.
    assert pop.stratum_jsd(REAL, SIM).row(0, named=True)["jsd"] == pytest.approx(0.0)
    bounce = _events([("s", "y", "9", ["page_viewed"])])
    jsd = pop.stratum_jsd(REAL, pl.concat([SIM, bounce])).row(0, named=True)["jsd"]
    p, q = np.array([1, 0, 1, 1, 0]) / 3, np.array([1, 0, 1, 1, 1]) / 4
    m = (p + q) / 2
    by_hand = 0.5 * sum(a * np.log2(a / b) for a, b in zip(p, m) if a > 0) + \
        0.5 * sum(a * np.log2(a / b) for a, b in zip(q, m) if a > 0)
    assert jsd == pytest.approx(by_hand) and jsd > 0
