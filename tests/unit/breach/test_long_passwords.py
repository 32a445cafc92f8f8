"""Passwords longer than zxcvbn's 72-character limit: scored on their prefix, never an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rempart.breach.corpus import LeakCorpus
from rempart.cli import main

LENGTHS = [73, 100, 1000, 10_000]


def long_password(n: int) -> str:
    return ("Tide-9182-violet-anchor-" * (n // 24 + 1))[:n]


@pytest.mark.parametrize("n", LENGTHS)
def test_password_check_scores_long_passwords_on_their_prefix(tmp_path: Path, n: int) -> None:
    result = LeakCorpus(tmp_path / "d").password_check("u@x.org", long_password(n))
    assert result["strength"]["truncated"] is True
    assert result["strength"]["scored_chars"] == 72
    assert 0 <= result["strength"]["score"] <= 4


@pytest.mark.parametrize("n", LENGTHS)
def test_leaks_check_command_prints_a_result_for_long_passwords(tmp_path: Path, n: int) -> None:
    out = CliRunner().invoke(
        main,
        ["leaks", "check", "--login", "u@x.org", "--data-dir", str(tmp_path / "d")],
        input=long_password(n) + "\n",
    )
    assert out.exception is None or isinstance(out.exception, SystemExit), out.output
    assert "Traceback" not in out.output
    assert json.loads(out.output)["strength"]["scored_chars"] == 72
