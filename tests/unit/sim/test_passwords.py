"""Password lists: parsing the real format, weights, and locating the data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rempart.sim import passwords
from tests.conftest import need


def test_parse_withcount_keeps_spaces_skips_empty_and_sums_duplicates() -> None:
    counts: dict[str, int] = {}
    text = "   1005 123456\n     46\n      1  b55\n      1 123456\nnot a line\n"
    passwords.parse_withcount(text, counts)
    assert counts == {"123456": 1006, " b55": 1}


def test_ranked_list_gets_zipf_weights() -> None:
    counts: dict[str, int] = {}
    passwords.parse_ranked("first\nsecond\nthird\n", counts, weight_total=600)
    assert counts == {"first": 600, "second": 300, "third": 200}


def test_sampling_follows_counts() -> None:
    dist = passwords.PasswordDist.from_counts({"common": 900, "rare": 100})
    draws = dist.sample(random.Random(3), 10_000)
    assert 0.87 < draws.count("common") / 10_000 < 0.93
    assert dist.top(1) == ["common"]
    assert dist.share("rare") == pytest.approx(0.1)


def test_real_lists_found_and_popularity_is_real() -> None:
    lists = passwords.load()
    need(
        "shared_data",
        lists.source != "sample",
        "the real password lists (../shared/data/passwords) are not next to this checkout",
    )
    assert lists.users.top(2) == ["123456", "password"]
    assert len(lists.users.words) > 200_000
    # 123456 is ~1.2 % of the user-side lists (phpbb alone: 2650 of 255,421).
    assert 0.005 < lists.users.share("123456") < 0.03


def test_env_var_then_sample_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / passwords.USER_LISTS[0]).write_text("      7 hunter2\n", "utf-8")
    monkeypatch.setenv(passwords.ENV_VAR, str(tmp_path))
    lists = passwords.load()
    assert lists.source == str(tmp_path)
    assert lists.users.words == ("hunter2",)
    monkeypatch.setenv(passwords.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        passwords.load()
    monkeypatch.delenv(passwords.ENV_VAR)
    monkeypatch.setattr(passwords, "default_dir", lambda: tmp_path / "missing")
    sample = passwords.load()
    assert sample.source == "sample"
    assert sample.users.top(1) == ["123456"]
    assert len(sample.attackers.words) > 1000


def test_explicit_missing_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        passwords.locate(tmp_path)
