import datetime as dt
import json

import polars as pl
import pytest

from simpersona_jax.data.schema import SCHEMA
from simpersona_jax.replay import goals
from simpersona_jax.rollout.driver import DriverConfig
from simpersona_jax.sim import goal_tasks as gt
from simpersona_jax.sim.goal_solver import GoalSolver
from simpersona_jax.storefront.catalog import catalogs_from_events, write_catalogs
from simpersona_jax.storefront.testing import tiny_events


@pytest.fixture(scope="module")
def cat():
    return catalogs_from_events(tiny_events())["shop_a"]


def _log(*events):
    """Hand-made canonical events of one session: (event_type, product_id, category, price)."""
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return pl.DataFrame(
        [
            dict(
                store_id="shop_a",
                buyer_id="b",
                session_id="s",
                event_time=t0 + dt.timedelta(seconds=k),
                event_type=e,
                product_id=p,
                category=c,
                price=price,
            )
            for k, (e, p, c, price) in enumerate(events)
        ],
        schema=SCHEMA,
    )


def test_tasks_are_deterministic_and_state_reachable_goals(cat):
    tasks = {k: gt.make_tasks(cat, k, 6, seed=3) for k in gt.KINDS}
    assert tasks == {k: gt.make_tasks(cat, k, 6, seed=3) for k in gt.KINDS}
    assert tasks["find_add"] != gt.make_tasks(cat, "find_add", 6, seed=4)
    for t in tasks["find_add"]:
        assert goals.parse_goal(t.goal) == ("find_add", {"title": cat.by_id[t.product_id].title})
    assert len({t.product_id for t in tasks["find_add"]}) == 6  # distinct while the store has them
    for t in tasks["search_buy"]:
        found = cat.search(t.query)
        assert t.matches == {p.product_id for p in found}
        assert any(p.price < t.cap for p in found) and t.query in t.goal and f"${t.cap}" in t.goal
    # 4 category nouns in the tiny store: after 4 tasks the phrases repeat
    assert {t.query for t in tasks["search_buy"]} == {"running", "boots", "tops", "kettle"}
    for t in tasks["browse"]:
        assert t.category in cat.collections
        assert goals.section_name(t.category) in t.goal
    with pytest.raises(ValueError, match="unknown goal task kind 'shop'"):
        gt.make_tasks(cat, "shop", 1)
    with pytest.raises(ValueError, match=r"not in the catalog: \['nope'\]"):
        gt.tasks_for({"shop_a": cat}, ["shop_a", "nope"], 3)
    dealt = gt.tasks_for(catalogs_from_events(tiny_events()), ["shop_a", "shop_b"], 3)
    assert [t.task_id for t in dealt if t.kind == "browse"] == [
        "shop_a-browse-0",
        "shop_a-browse-1",
        "shop_b-browse-0",
    ]


def test_find_add_scoring():
    task = gt.GoalTask("t", "find_add", "shop_a", "g", product_id="a004")
    assert gt.score_episode(task, _log(("product_added_to_cart", "a004", "x", 1.0)), "stopped") == (
        True,
        "",
    )
    assert gt.score_episode(
        task,
        _log(("product_viewed", "a004", "x", 1.0), ("product_added_to_cart", "a002", "x", 1.0)),
        "stopped",
    ) == (False, "wrong_product")
    assert gt.score_episode(task, _log(("product_viewed", "a004", "x", 1.0)), "step_limit") == (
        False,
        "no_add",
    )


def test_search_buy_scoring():
    task = gt.GoalTask(
        "t", "search_buy", "shop_a", "g", query="boots", cap=30, matches=frozenset({"a001", "a005"})
    )
    ok = _log(
        ("product_added_to_cart", "a001", "c", 23.7), ("checkout_completed", "a001", "c", 23.7)
    )
    assert gt.score_episode(task, ok, "completed") == (True, "")
    over = _log(
        ("checkout_completed", "a001", "c", 23.7), ("checkout_completed", "a005", "c", 38.5)
    )
    assert gt.score_episode(task, over, "completed") == (False, "over_cap")
    at_cap = _log(("checkout_completed", "a001", "c", 30.0))
    assert gt.score_episode(task, at_cap, "completed") == (False, "over_cap")  # "under $30"
    other = _log(("checkout_completed", "a000", "c", 20.0))
    assert gt.score_episode(task, other, "completed") == (False, "no_match")
    added_only = _log(
        ("product_added_to_cart", "a001", "c", 23.7), ("checkout_started", None, None, None)
    )
    assert gt.score_episode(task, added_only, "stopped") == (False, "no_purchase")
    with pytest.raises(ValueError, match="task t: checkout_completed without a price"):
        gt.score_episode(task, _log(("checkout_completed", "a001", "c", None)), "completed")


def test_browse_scoring():
    task = gt.GoalTask("t", "browse", "shop_a", "g", category="apparel.shoes")
    view = ("collection_viewed", None, "apparel.shoes", None)
    deeper = ("product_viewed", "a000", "apparel.shoes.running", 20.0)
    assert gt.score_episode(task, _log(view), "stopped") == (True, "")
    assert gt.score_episode(task, _log(deeper), "stopped") == (True, "")
    assert gt.score_episode(
        task, _log(view, ("product_added_to_cart", "a000", "x", 1.0)), "stopped"
    ) == (False, "added_to_cart")
    assert gt.score_episode(
        task, _log(view, ("checkout_started", None, None, None)), "stopped"
    ) == (False, "checkout")
    assert gt.score_episode(
        task,
        _log(
            ("collection_viewed", None, "apparel.shoes_x", None),
            ("product_viewed", "a002", "apparel.tops", 27.4),
        ),
        "stopped",
    ) == (False, "not_in_category")
    assert gt.score_episode(task, _log(view), "step_limit") == (False, "not_stopped:step_limit")


def test_summary_has_wilson_intervals():
    tasks = [gt.GoalTask(str(i), "find_add", "s", "g") for i in range(10)]
    s = gt.summarize(tasks, [(True, "")] * 9 + [(False, "no_add")])
    assert s["success"]["find_add"]["rate"] == 0.9
    lo, hi = s["success"]["find_add"]["ci95"]
    assert lo == pytest.approx(0.5958, abs=1e-4) and hi == pytest.approx(0.9821, abs=1e-4)
    assert s["failure_reasons"]["find_add"] == {"no_add": 1}
    assert s["success"]["browse"] == {"n": 0, "successes": 0, "rate": None, "ci95": None}


async def _stop_at_once(turns):
    return ["stop()"] * len(turns)


@pytest.mark.browser
def test_solver_succeeds_and_stopping_at_once_fails(tmp_path):
    write_catalogs(catalogs_from_events(tiny_events()), str(tmp_path / "catalog"))
    cfg = DriverConfig(concurrency=6, step_limit=20)
    report = gt.run_goal_tasks(
        str(tmp_path / "catalog"),
        ["shop_a"],
        GoalSolver(),
        n_per_kind=4,
        seed=0,
        driver_cfg=cfg,
        out_dir=str(tmp_path / "solver"),
        progress=False,
    )
    for kind in gt.KINDS:
        assert report["success"][kind]["n"] == 4
        assert report["success"][kind]["rate"] >= 0.9, report
    assert report["crash_rate"] == 0 and report["unparseable_action_rate"] == 0
    episodes = [json.loads(line) for line in open(tmp_path / "solver" / "episodes.jsonl")]
    assert len(episodes) == 12 and all(e["success"] for e in episodes)
    assert json.load(open(tmp_path / "solver" / "goal_tasks.json"))["success"] == report["success"]

    report = gt.run_goal_tasks(
        str(tmp_path / "catalog"),
        ["shop_a"],
        _stop_at_once,
        n_per_kind=4,
        seed=0,
        driver_cfg=cfg,
        out_dir=str(tmp_path / "stop"),
        progress=False,
    )
    assert {k: report["success"][k]["rate"] for k in gt.KINDS} == {
        "find_add": 0.0,
        "search_buy": 0.0,
        "browse": 0.0,
    }
    assert report["failure_reasons"]["find_add"] == {"no_add": 4}
    assert report["failure_reasons"]["browse"] == {"not_in_category": 4}


def _experiment_config(name):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def test_data_root_is_data_dir_and_needs_only_what_is_read(tmp_path):
    cfg = _experiment_config("goal_tasks")
    assert cfg.data.dir == "synthetic:default" and "data_dir" not in cfg
    cfg.data.dir = str(tmp_path / "no_such_root")
    with pytest.raises(FileNotFoundError, match=r"config.data.dir=.*no_such_root.* is not a dir"):
        gt.from_config(cfg)
    cfg.data.dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"lacks buyers/meta.parquet, events"):
        gt.from_config(cfg)
    # named stores and a catalog: the root's buyers and events are never read
    cfg.stores, cfg.catalog_dir, cfg.policy = ("shop_a",), str(tmp_path / "catalog"), "neither"
    with pytest.raises(ValueError, match="policy must be"):
        gt.from_config(cfg)
