"""Status notices: what may be posted, and what the page model shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from rempart.ops.notices import NoticeError, Notices, check_text


@pytest.mark.parametrize(
    "text",
    [
        "Reset your password at https://example.org/reset",
        "Go to www.example.org now",
        "Click here to reset your password",
        "Tap the button to confirm your password",
        "See example.org/reset",
    ],
)
def test_links_and_click_to_reset_are_refused(text: str) -> None:
    with pytest.raises(NoticeError):
        check_text(text)


def test_plain_advice_is_accepted() -> None:
    text = "IMAP is restricted: new devices must first sign in on the website. Type our address yourself."
    assert check_text(text) == text


def test_post_current_and_clear(tmp_path: Path) -> None:
    notices = Notices(tmp_path)
    notices.post(
        "imap", "restricted", "New devices sign in on the website first.", "cli:ops", now=100
    )
    notices.post("web", "degraded", "Slow pages.", "cli:ops", now=101)
    assert set(notices.current()) == {"imap", "web"}
    notices.post("web", "up", "Back to normal.", "cli:ops", now=102)
    assert set(notices.current()) == {"imap"}
    assert [n.t for n in notices.between(100.5, 200)] == [101, 102]
    with pytest.raises(NoticeError, match="level"):
        notices.post("imap", "meh", "text", "x")
    with pytest.raises(NoticeError, match="service"):
        notices.post("IMAP <b>", "up", "text", "x")
    (tmp_path / "status-notices.jsonl").open("a").write("not json\n")
    assert len(Notices(tmp_path).all()) == 3
