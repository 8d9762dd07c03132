"""report.json / report.html / the text table, from a small evaluated population."""

import asyncio
import json

import numpy as np
import pytest

from simpersona_jax.metrics import fidelity
from simpersona_jax.metrics.population import Population
from simpersona_jax.rollout.driver import EpisodeResult, EpisodeSpec, Step
from simpersona_jax.sim import report
from simpersona_jax.sim.score import failures, timelines


def small_report():
    rng = np.random.default_rng(0)

    def make(n, sessions):
        stratum, code = rng.integers(0, 5, n), rng.integers(0, 12, n)
        atc = rng.binomial(sessions, 0.4, n)
        return Population(
            ("s1", "s2", "s3"),
            rng.integers(0, 3, n),
            stratum,
            code,
            code,
            np.full(n, float(sessions)),
            atc.astype(float),
            np.minimum(atc, rng.binomial(sessions, 0.2, n)).astype(float),
            rng.dirichlet(np.ones(5), n),
        )

    real, sim = make(300, 3), make(60, 1)
    ev = fidelity.evaluate(
        real,
        {"oracle": sim, "matched": sim.replace(atc=sim.atc * 0)},
        {k: k < 6 for k in range(12)},
        n_boot=100,
    )
    spec = EpisodeSpec("http://127.0.0.1/s/s1/", "s1", "sim-s1-0", "sim-s1-0-s0", persona=3)
    res = [
        EpisodeResult(
            0,
            spec,
            "stopped",
            "",
            [
                Step(0, "page: home /s/s1/", 'click("12")', "", 0.1),
                Step(1, "page: product /s/s1/p/a", "add <to> cart", "invalid action: <bad>", 0.0),
            ],
        )
    ]
    return report.build(
        ev,
        {"oracle": failures(res), "matched": failures(res)},
        {"matched": timelines(res)},
        {"text": "no LM policy"},
        {"seed": 0},
    )


def test_text_table_and_json(tmp_path):
    rep = small_report()
    table = report.format_table(rep)
    for name in (
        "oracle",
        "matched",
        "baseline: never_buy",
        "baseline: average_buyer",
        "arm text skipped: no LM policy",
    ):
        assert name in table
    ara = rep["fidelity"]["arms"]["oracle"]["stratified_ara"]
    assert f"{100 * ara['value']:.1f} [{100 * ara['lo']:.1f}, {100 * ara['hi']:.1f}]" in table
    report.write(rep, str(tmp_path))
    back = json.loads((tmp_path / "report.json").read_text())
    assert (
        back["fidelity"]["arms"]["matched"]["stratified_ara"]
        == rep["fidelity"]["arms"]["matched"]["stratified_ara"]
    )
    assert back["failures"]["matched"]["counts"]["unparseable_action"] == 1


async def _open(path: str) -> tuple[list[str], dict]:
    from playwright.async_api import async_playwright

    from simpersona_jax.rollout.browser import CHROMIUM_ARGS, chromium_executable

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_executable(pw), args=list(CHROMIUM_ARGS)
        )
        page = await browser.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto("file://" + path, wait_until="load")
        found = await page.evaluate(
            """ids => Object.fromEntries(ids.map(id => {
            const svg = document.querySelector('#' + id + ' > svg');
            if (!svg) return [id, null];
            const r = svg.getBoundingClientRect();
            return [id, [r.width, r.height, svg.querySelectorAll('path, use, rect').length]];
        }))""",
            list(report.PLOTS),
        )
        texts = await page.evaluate("""() => ['table-metrics', 'table-failures', 'timelines']
            .map(id => document.getElementById(id)?.innerText ?? null)""")
        await browser.close()
    return errors, {**found, "texts": texts}


@pytest.mark.browser
def test_report_html_opens_in_chromium_with_every_plot(tmp_path):
    report.write(small_report(), str(tmp_path))
    errors, found = asyncio.run(_open(str(tmp_path / "report.html")))
    assert errors == []
    for plot in report.PLOTS:
        assert found[plot] is not None, f"{plot} missing"
        width, height, marks = found[plot]
        assert width > 100 and height > 50 and marks > 5, (plot, found[plot])
    metrics, fails, lines = found["texts"]
    assert "baseline: average_buyer" in metrics and "matched" in fails
    assert "invalid action: <bad>" in lines and "add <to> cart" in lines  # escaped, shown
