"""Driver behaviour: action errors, outcomes, deadlines, page and browser crashes, batching."""

import asyncio
import collections
import random
import re
import signal

import psutil
import pytest

from simpersona_jax.rollout.driver import DriverConfig, EpisodeSpec, run_episodes
from simpersona_jax.storefront.eventlog import read_log

pytestmark = pytest.mark.browser


def spec(shop, i, meta=None, path=""):
    return EpisodeSpec(
        shop.store_url("shop_a") + path, "shop_a", f"drv-b{i}", f"drv-s{i}", meta=meta
    )


def test_invalid_and_impossible_actions_become_error_lines(shop, browser, script_cls):
    policy = script_cls()
    steps = [
        'click("999")',
        'fill("1", "x")',
        "nonsense",
        'press("2", "F5")',
        "go_back()",
        ("click", "Follow us"),
        ("click", "Apparel"),
        "go_back()",
        'click("2")',
    ]
    [r] = browser.run(
        run_episodes([spec(shop, 0, steps)], policy, DriverConfig(step_limit=9), pool=browser.pool)
    )
    assert r.outcome == "step_limit"
    errors = [s.error for s in r.steps]
    assert errors[0] == 'click("999"): no element with bid "999" on this page'
    assert errors[1] == 'fill("1", "x"): element [1] is a link, not a text field'
    assert errors[2].startswith("invalid action: not an action call")
    assert errors[3].startswith("invalid action: unsupported key 'F5'")
    assert errors[4] == "go_back(): there is no previous page"
    assert errors[5].endswith(
        '"): navigation to https://example.com/shop_a blocked; only this store can be visited'
    )
    assert errors[6:] == ["", "", ""]
    obs = [o for _, _, o in policy.seen]
    # Each error is the next observation's error line; the page stays where it was.
    assert 'error: click("999"): no element' in obs[1].text
    assert obs[5].kind == "home" and obs[6].kind == "home" and "error: click" in obs[6].text
    assert obs[7].kind == "collection" and obs[8].kind == "home"  # go_back worked
    assert r.n_invalid == 2


def test_off_origin_requests_are_answered_no_content_and_recorded(shop, browser):
    async def go():
        context, _ = await browser.pool.new_context(shop.origin)
        page = await context.new_page()
        try:
            await page.goto(shop.store_url("shop_a"))
            with pytest.raises(Exception):  # a navigation that never commits
                await page.goto("https://example.com/", timeout=5000)
            await page.wait_for_timeout(500)  # no error page comes either
            kind = await page.evaluate("document.body.dataset.page")
            return list(context.blocked), page.url, kind
        finally:
            await context.close()

    blocked, url, kind = browser.run(go())
    assert blocked == ["https://example.com/"] and (url, kind) == (shop.store_url("shop_a"), "home")


WAYS_OUT = [  # (href given to the "Follow us" link, onclick script or None, URL reported)
    ("javascript:location.href='https://example.com/js'", None, "javascript:location.href="),
    ("about:blank", None, "about:blank"),
    ("file:///etc/passwd", None, "file:///etc/passwd"),
    ("data:text/html,<h1>away</h1>", None, "data:text/html,<h1>away</h1>"),
    ("https://example.com/shop", None, "https://example.com/shop"),
    ("//example.org/x", None, "http://example.org/x"),
    ("#", "location.href = 'about:blank'", "about:blank"),
    ("#", "location.href = 'https://example.com/script'", "https://example.com/script"),
    ("/away", None, "https://example.com/redirected"),  # a store URL redirecting elsewhere
]


def test_every_way_off_the_store_is_blocked_and_reported(shop, browser, script_cls):
    async def rewire(index, step, page):
        if step == 0:
            await page.route(
                "**/away",
                lambda route: route.fulfill(
                    status=302, headers={"location": "https://example.com/redirected"}
                ),
            )
        if step < len(WAYS_OUT):
            href, onclick, _ = WAYS_OUT[step]
            await page.evaluate(
                """([href, onclick]) => {
                const a = [...document.querySelectorAll('a')]
                    .find(a => a.textContent === 'Follow us');
                a.setAttribute('href', href);
                a.onclick = onclick ? () => { eval(onclick); return false; } : null;
            }""",
                [href, onclick],
            )

    steps = [("click", "Follow us")] * len(WAYS_OUT) + [("click", "Apparel")]
    [r] = browser.run(
        run_episodes(
            [spec(shop, 50, steps)],
            script_cls(),
            DriverConfig(step_limit=len(steps), action_timeout_s=10),
            pool=browser.pool,
            step_hook=rewire,
        )
    )
    assert r.outcome == "step_limit", (r.outcome, r.reason)
    for (href, _, url), step in zip(WAYS_OUT, r.steps):
        assert re.match(r'click\("\d+"\): navigation to ' + re.escape(url), step.error), (
            href,
            step.error,
        )
        assert step.error.endswith("blocked; only this store can be visited")
        assert step.latency_s < 3, (href, step.latency_s)  # at once, not at a deadline
        assert step.observation.startswith("page: home /")  # still in the store
    assert r.steps[-1].error == "" and r.final_observation.startswith("page: collection")
    shop.flush()
    # Nothing was requested but the home page, reloaded once on the way back from the redirect
    # (a route sees only the first request of a redirect chain, so that one way out left).
    log = read_log(shop.log_dir).filter(session_id="drv-s50")
    assert log["event_type"].cast(str).to_list() == ["page_viewed"] * 2 + ["collection_viewed"]


async def _clicker(turns):
    out = []
    for t in turns:
        links = [
            e.bid for e in t.observation.elements if e.role == "link" and e.href.startswith("/")
        ]
        out.append(f'click("{random.Random(t.index * 97 + t.step).choice(links)}")')
    return out


def test_outcomes_and_batching(shop, browser, script_cls):
    policy = script_cls()
    buy = [
        ("click", "Trail Runner 0 — $20.00"),
        ("click", "Add to cart"),
        ("click", "Cart (1)"),
        ("click", "Proceed to checkout"),
        ("fill", "Full name", "A"),
        ("fill", "Email", "a@b.c"),
        ("fill", "Address", "x"),
        ("click", "Place order"),
        ("click", "Shop A"),
    ]
    specs = [
        spec(shop, 10, buy, "c/apparel.shoes.running?sort=price_asc"),
        spec(shop, 11, [("click", "Apparel")]),
        spec(shop, 12, [("click", "Apparel")] * 3 + ['click("1")'] * 10),
    ]

    async def slow(turns):  # a slow policy (an LM) lets the other episodes queue up
        # The first call waits long enough for the other episodes' first pages to load even on a
        # loaded machine (timing alone, 0.1 s, saw no batch under load); later calls are quick.
        await asyncio.sleep(3.0 if not policy.batch_sizes and len(turns) == 1 else 0.1)
        return await policy(turns)

    results = browser.run(
        run_episodes(specs, slow, DriverConfig(concurrency=3, step_limit=5 + 3), pool=browser.pool)
    )
    assert [r.outcome for r in results] == ["completed", "stopped", "step_limit"]
    assert len(results[0].steps) == 8 and len(results[1].steps) == 2 and len(results[2].steps) == 8
    assert max(policy.batch_sizes) >= 2  # waiting episodes are answered in one policy call


def test_policy_errors_are_crashes(shop, browser):
    async def raising(turns):
        raise RuntimeError("model server down")

    async def short(turns):
        return ["stop()"] * (len(turns) - 1)

    for policy, msg in ((raising, "RuntimeError: model server down"), (short, "returned")):
        [r] = browser.run(run_episodes([spec(shop, 20)], policy, pool=browser.pool))
        assert r.outcome == "crashed" and r.reason.startswith("policy_error") and msg in r.reason


def test_action_and_episode_deadlines(shop, browser):
    [r] = browser.run(
        run_episodes(
            [spec(shop, 30)], _clicker, DriverConfig(action_timeout_s=0.001), pool=browser.pool
        )
    )
    assert (r.outcome, r.reason) == ("crashed", "action_deadline")

    async def slow(turns):
        await asyncio.sleep(0.4)
        return await _clicker(turns)

    # 0.4 s per turn against a 2.5 s deadline: at most 6 steps fit. No lower bound: on a loaded
    # machine the first page alone can take most of the deadline.
    [r] = browser.run(
        run_episodes(
            [spec(shop, 31)],
            slow,
            DriverConfig(episode_timeout_s=2.5, step_limit=100),
            pool=browser.pool,
        )
    )
    assert (r.outcome, r.reason) == ("crashed", "episode_deadline")
    assert len(r.steps) <= 6


def test_page_crash(shop, browser):
    async def crash(index, step, page):
        if index == 0 and step == 2:
            cdp = await page.context.new_cdp_session(page)
            try:
                await asyncio.wait_for(cdp.send("Page.crash"), 2)
            except Exception:  # noqa: BLE001 - the crashed target never answers
                pass

    results = browser.run(
        run_episodes(
            [spec(shop, 40), spec(shop, 41)],
            _clicker,
            DriverConfig(concurrency=2, step_limit=4),
            pool=browser.pool,
            step_hook=crash,
        )
    )
    assert (results[0].outcome, results[0].reason) == ("crashed", "page_crash")
    assert len(results[0].steps) == 2
    assert results[1].outcome == "step_limit"


def _browser_processes():
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if cmd and "chrom" in cmd[0] and not any(a.startswith("--type=") for a in cmd):
            out.append(p)
    return out


def test_browser_killed_mid_run_every_episode_has_one_outcome(shop, browser):
    n, calls = 12, {"n": 0}
    launches = browser.pool.launches

    async def killer(turns):
        calls["n"] += 1
        if calls["n"] == 6:
            victims = _browser_processes()
            assert len(victims) == 1
            victims[0].send_signal(signal.SIGKILL)
            await asyncio.sleep(0.5)
        return await _clicker(turns)

    specs = [spec(shop, 100 + i) for i in range(n)]
    seen = []
    results = browser.run(
        run_episodes(
            specs,
            killer,
            DriverConfig(concurrency=4, step_limit=4),
            pool=browser.pool,
            on_result=lambda r: seen.append(r.index),
        )
    )
    assert sorted(seen) == list(range(n)) and [r.index for r in results] == list(range(n))
    outcomes = collections.Counter((r.outcome, r.reason) for r in results)
    assert outcomes[("crashed", "browser_disconnected")] >= 1, outcomes
    assert outcomes[("step_limit", "")] >= n - 4, outcomes
    assert sum(outcomes.values()) == n
    assert browser.pool.launches == launches + 1  # a fresh browser took over
    # Episodes after the crash ran in full on the new browser and the storefront logged them.
    shop.flush()
    log = read_log(shop.log_dir)
    for r in results:
        if r.outcome == "step_limit":
            assert log.filter(session_id=r.spec.session_id).height == 5


def test_new_browser_after_n_contexts(shop, browser):
    launches = browser.pool.launches
    browser.pool.contexts_per_browser = 2
    try:
        results = browser.run(
            run_episodes(
                [spec(shop, 200 + i) for i in range(5)],
                _clicker,
                DriverConfig(concurrency=2, step_limit=2),
                pool=browser.pool,
            )
        )
    finally:
        browser.pool.contexts_per_browser = 200
    assert all(r.outcome == "step_limit" for r in results)
    assert browser.pool.launches >= launches + 2
