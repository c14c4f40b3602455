"""The one duration formatter and the one-line folding of messages."""

from __future__ import annotations

import pytest

from sd1job.formatting import format_duration, one_line


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0, "0s"), (3.4, "3s"), (59.6, "1m00s"), (245, "4m05s"), (7380, "2h03m"), (-5, "0s")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_one_line_folds_newlines_and_runs_of_spaces() -> None:
    assert one_line("a\n  b\t c \n") == "a b c"
