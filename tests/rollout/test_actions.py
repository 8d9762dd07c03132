import pytest

from simpersona_jax.rollout.actions import Action, ActionError, format_action, parse_action


@pytest.mark.parametrize(
    "text,expected",
    [
        ('click("12")', Action("click", ("12",))),
        ("  click( '3' ) ", Action("click", ("3",))),
        ('fill("4", "running shoes")', Action("fill", ("4", "running shoes"))),
        ('fill("4", "say \\"hi\\"\\n")', Action("fill", ("4", 'say "hi"\n'))),
        ('fill("4", "")', Action("fill", ("4", ""))),
        ('press("2", "Enter")', Action("press", ("2", "Enter"))),
        ("go_back()", Action("go_back")),
        ("stop( )", Action("stop")),
    ],
)
def test_parses(text, expected):
    assert parse_action(text) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "not an action call"),
        ("click 12", "not an action call"),
        ('eval("1")', "unknown action 'eval'"),
        ("__import__('os')", "unknown action"),
        ("click(12)", "quoted strings"),
        ('click("a1")', "bid must be a number"),
        ('click("1", "2")', "takes 1 argument"),
        ('fill("1")', "takes 2 argument"),
        ('press("1", "F12")', "unsupported key"),
        ('click("1"', "not an action call"),
        ('click("1) ', "unterminated string"),
        ('fill("1", "a\\x")', "bad escape"),
        ('click("1",)', "expected an argument"),
        ('click("1") stop()', "expected ',' or"),
        ('fill("1", "' + "x" * 501 + '")', "longer than 500"),
        (None, "must be a string"),
    ],
)
def test_rejects_with_reason(text, message):
    with pytest.raises(ActionError, match=message):
        parse_action(text)


def test_format_roundtrip():
    for action in (
        Action("fill", ("3", 'a "q" \\ b\n')),
        Action("go_back"),
        Action("click", ("7",)),
    ):
        assert parse_action(str(action)) == action
    with pytest.raises(ActionError):
        format_action("click")
