"""Failure counts (each kind apart) and action timelines from driver results."""

from simpersona_jax.rollout.driver import EpisodeResult, EpisodeSpec, Step
from simpersona_jax.sim.score import failures, timelines


def _result(i, outcome, errors, reason=""):
    spec = EpisodeSpec("http://127.0.0.1/s/a/", "a", f"b{i}", f"b{i}-s0", persona=4)
    steps = [
        Step(k, f"page: {('home', 'product')[k % 2]} /s/a/\nfacts", f'click("{k}")', e, 0.1)
        for k, e in enumerate(errors)
    ]
    return EpisodeResult(i, spec, outcome, reason, steps)


def test_failures_are_counted_apart():
    results = [
        _result(0, "stopped", ["", "invalid action: no closing parenthesis", ""]),
        _result(1, "step_limit", ['click("9"): no element with bid "9" on this page', "", ""]),
        _result(2, "crashed", ["", "action_deadline"], reason="action_deadline"),
        _result(3, "completed", ["", "invalid action: unknown verb"]),
    ]
    out = failures(results, {"truncated_prompts": 3, "other": 1})
    assert out["counts"] == {
        "unparseable_action": 2,
        "impossible_action": 1,
        "step_limit": 1,
        "context_length": 3,
        "crashed": 1,
    }
    assert (out["episodes"], out["steps"]) == (4, 10)
    assert out["unparseable_action_rate"] == 0.2 and out["impossible_action_rate"] == 0.1
    assert out["crash_rate"] == 0.25 and out["crash_reasons"] == ["action_deadline"]
    assert failures(results)["counts"]["context_length"] == 0  # a policy without stats


def test_timelines_keep_page_kind_action_and_error():
    (line,) = timelines(
        [_result(0, "stopped", ["", "invalid action: x"]), _result(1, "stopped", [])], n=1
    )
    assert (line["buyer_id"], line["outcome"], line["persona"]) == ("b0", "stopped", 4)
    assert line["steps"][1] == {
        "step": 1,
        "page": "product",
        "action": 'click("1")',
        "error": "invalid action: x",
    }
