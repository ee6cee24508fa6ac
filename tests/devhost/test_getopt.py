"""devhost.getopt, the getopt(3C) of every emulated tool."""

from __future__ import annotations

import pytest

from devhost.getopt import BAD, getopt


@pytest.mark.parametrize(
    ("argv", "options", "operands"),
    [
        (["-ab", "-c", "x", "y"], [("a", ""), ("b", ""), ("c", "x")], ["y"]),
        (["-cx", "-a"], [("c", "x"), ("a", "")], []),
        (["-c", "-a"], [("c", "-a")], []),  # an option's argument may start with "-"
        (["-a", "--", "-b"], [("a", "")], ["-b"]),
        (["-a", "-", "-b"], [("a", "")], ["-", "-b"]),
        (["y", "-a"], [], ["y", "-a"]),  # no permutation
        (["-?"], [("?", "")], []),
    ],
)
def test_options_stop_at_the_first_operand(
    argv: list[str], options: list[tuple[str, str]], operands: list[str]
) -> None:
    assert getopt("t", argv, "abc:?") == (options, operands)


def test_a_bad_option_ends_the_parse_with_the_svid_messages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert getopt("t", ["-a", "-xb", "y"], "abc:") == ([("a", ""), (BAD, "x")], ["y"])
    assert getopt("t", ["-a", "-c"], "abc:") == ([("a", ""), (BAD, "c")], [])
    assert getopt("t", ["-:"], "abc:") == ([(BAD, ":")], [])
    assert capsys.readouterr().err == (
        "t: illegal option -- x\nt: option requires an argument -- c\nt: illegal option -- :\n"
    )
    assert getopt("t", ["-x"], "abc:", report=False) == ([(BAD, "x")], [])
    assert capsys.readouterr().err == ""
