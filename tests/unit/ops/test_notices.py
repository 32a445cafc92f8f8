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


@pytest.mark.parametrize(
    "text",
    [
        "Visit evil.example/reset to confirm your password",
        "Your mailbox moved to mail.example-bank.co.uk",
        "Write to support@bank.fr for help",
        "New address: evil.example",
    ],
)
def test_bare_domains_are_refused_as_links(text: str) -> None:
    with pytest.raises(NoticeError, match="web address"):
        check_text(text)


@pytest.mark.parametrize(
    "text", ["IMAP is slow, e.g. in Outlook 2.3. We are on it.", "Mail is down. Please wait."]
)
def test_ordinary_punctuation_is_not_a_domain(text: str) -> None:
    assert check_text(text) == text


def test_unknown_service_is_refused_naming_the_field_and_known_services(tmp_path: Path) -> None:
    notices = Notices(tmp_path, ["imap", "web"])
    with pytest.raises(NoticeError) as refused:
        notices.post("imapp", "down", "Mail is down.", "op")
    assert "field 'service'" in str(refused.value) and "imap, web" in str(refused.value)
    assert notices.all() == []


def test_a_withdrawn_notice_leaves_the_page_and_the_history(tmp_path: Path) -> None:
    notices = Notices(tmp_path, ["imap", "web"])
    wrong = notices.post("imap", "down", "Mail is down.", "op", now=100.0)
    right = notices.post("web", "degraded", "The website is slow.", "op", now=101.0)
    assert notices.withdraw(wrong.id, "op").id == wrong.id
    reread = Notices(tmp_path, ["imap", "web"])
    assert [n.id for n in reread.all()] == [right.id]
    assert set(reread.current()) == {"web"}
    with pytest.raises(NoticeError, match="field 'id'"):
        reread.withdraw(wrong.id, "op")
