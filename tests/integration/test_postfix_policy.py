"""Postfix policy delegation with a real Postfix (Debian's package) and Dovecot SASL.

A private Postfix instance (tests/integration/postfix_rig.py) authenticates senders through a
Dovecot's SASL socket and asks `rempart serve`'s policy service at RCPT, with the main.cf lines
docs/postfix.md documents. Proves: a restricted account's message (its password is in an
audited leak) is refused at RCPT with Rempart's message, an account on the block list is
deferred, a normal account's message is queued, the recipients-per-hour rule fires on the
recipient beyond it, unauthenticated mail is left alone; each refusal is in the journal and in
`/metrics`. Requires root, postfix and Dovecot: skipped locally without them, failed in CI
(REMPART_REQUIRE_POSTFIX=1, REMPART_REQUIRE_DOVECOT=1).
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.postfix_rig import PostfixRig
from tests.integration.rig import DovecotRig, RempartProcess, free_port

USERS = {
    "alice@example.org": "correct-horse",  # her password is in a leak: restricted
    "bob@example.org": "tr0ub4dor",
    "carol@example.org": "s3cond-k3y",
    "dave@example.org": "blocked-account",
}
RESTRICTED = "Your password leaked: change it on the website before sending mail."
RATE = "You sent to too many recipients this hour."
BLOCKED = "This account may not send mail for now."
CONFIG = """
[postfix]
enabled = true
port = {port}
recipients_per_hour = 3
restricted_message = "{restricted}"
rate_message = "{rate}"
blocked_message = "{blocked}"
"""


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[tuple[RempartProcess, PostfixRig]]:
    # Postfix's and Dovecot's users traverse the path to their files: a directory of its own,
    # since pytest sets its base directory back to 0700 whenever another session starts.
    rigs = Path(tempfile.mkdtemp(prefix="rempart-mail-"))
    try:
        yield from _mail(tmp_path, rigs)
    finally:
        shutil.rmtree(rigs, ignore_errors=True)


def _mail(tmp_path: Path, rigs: Path) -> Iterator[tuple[RempartProcess, PostfixRig]]:
    os.chmod(rigs, 0o755)
    policy_port = free_port()
    data = tmp_path / "rempart-data"
    config = CONFIG.format(port=policy_port, restricted=RESTRICTED, rate=RATE, blocked=BLOCKED)
    rempart = RempartProcess(data, config)
    # Dovecot checks the passwords (its own auth_policy off: the policy under test is Postfix's).
    dovecot = DovecotRig(rigs / "dovecot", 0, USERS, policy=False, sasl=True)
    postfix = PostfixRig(rigs / "postfix", dovecot.sasl_path, policy_port)
    # alice's current password is in a leak (the audit against Dovecot's user file says so).
    combo = tmp_path / "combo.txt"
    combo.write_text("alice@example.org:correct-horse\nbob@example.org:an-old-password\n")
    ingest = subprocess.run(
        [
            *(sys.executable, "-m", "rempart", "leaks", "ingest", str(combo)),
            *("--source", "leak", "--data-dir", str(data)),
            *("--config", str(rempart.config_path), "--audit-userdb", str(dovecot.root / "users")),
        ],
        capture_output=True,
        text=True,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    rempart.start()
    try:
        assert f"postfix policy service listening on inet:127.0.0.1:{policy_port}\n" in (
            rempart.output
        )
        dovecot.start()
        try:
            postfix.start()
            try:
                yield rempart, postfix
            finally:
                postfix.stop()
        finally:
            dovecot.stop()
    finally:
        rempart.stop()


def smtp(postfix: PostfixRig, login: str = "") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", postfix.port, timeout=60)
    client.ehlo("laptop.example.net")
    if login:
        client.login(login, USERS[login])
    return client


def rcpt(client: smtplib.SMTP, recipient: str) -> tuple[int, str]:
    code, text = client.rcpt(recipient)
    return code, text.decode()


def test_postfix_refuses_what_rempart_says_and_lets_the_rest_through(mail) -> None:
    rempart, postfix = mail
    status, _ = rempart.command(
        "addBLEntry",
        {"login": "dave@example.org", "expire_secs": 600, "reason": "taken over"},
    )
    assert status == 200

    # A normal account: accepted at RCPT and queued.
    with smtp(postfix, "bob@example.org") as client:
        client.mail("bob@example.org")
        assert rcpt(client, "friend@example.net")[0] == 250
        assert rcpt(client, "other@example.net")[0] == 250
        code, text = client.data(b"Subject: hello\r\n\r\nhi\r\n")
        assert code == 250 and b"queued as" in text, text

    # The restricted account: refused at RCPT with Rempart's message, nothing queued.
    with smtp(postfix, "alice@example.org") as client:
        client.mail("alice@example.org")
        code, text = rcpt(client, "friend@example.net")
        assert code == 554, text
        assert text == f"5.7.1 <friend@example.net>: Recipient address rejected: {RESTRICTED}"

    # The account on the block list (with an expiry): deferred with the block message.
    with smtp(postfix, "dave@example.org") as client:
        client.mail("dave@example.org")
        code, text = rcpt(client, "friend@example.net")
        assert code == 450 and text.endswith(f"Recipient address rejected: {BLOCKED}"), text

    # recipients_per_hour = 3: the fourth recipient of the hour is deferred, in any session.
    with smtp(postfix, "carol@example.org") as client:
        client.mail("carol@example.org")
        assert [rcpt(client, f"r{i}@example.net")[0] for i in range(2)] == [250, 250]
        client.data(b"Subject: one\r\n\r\nfirst\r\n")
    with smtp(postfix, "carol@example.org") as client:
        client.mail("carol@example.org")
        assert rcpt(client, "r2@example.net")[0] == 250
        code, text = rcpt(client, "r3@example.net")
        assert code == 450, text
        assert text == f"4.7.1 <r3@example.net>: Recipient address rejected: {RATE}"
        # The accepted recipients of that message still get it.
        assert client.data(b"Subject: two\r\n\r\nsecond\r\n")[0] == 250

    # Unauthenticated mail for this host's own domain is not Rempart's to judge.
    with smtp(postfix) as client:
        client.mail("someone@example.net")
        assert rcpt(client, "postmaster@rig.example.test")[0] == 250

    # Each refusal is journaled and counted.
    expected = [
        ("alice@example.org", "REJECT", "account_restricted"),
        ("dave@example.org", "DEFER", "blocklisted"),
        ("carol@example.org", "DEFER", "recipient_rate"),
    ]
    deadline = time.monotonic() + 10
    while True:
        found = [
            (r["login"], r["action"], r["code"])
            for r in journal_records(rempart.data_dir / "journal")
            if r["kind"] == "postfix_refusal"
        ]
        if found == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found == expected
    status, metrics = rempart.request("GET", "/metrics", password=None)
    assert status == 200
    for code in ("account_restricted", "blocklisted", "recipient_rate"):
        assert f'rempart_postfix_refusals_total{{code="{code}"}} 1.0' in metrics, metrics
    log = postfix.log()
    assert "reject: RCPT from" in log and RESTRICTED in log  # Postfix's own account of it


def journal_records(directory: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for segment in sorted(directory.glob("segment-*.jsonl"))
        for line in segment.read_text().splitlines()
    ]


def test_serve_keeps_answering_through_bad_input(tmp_path: Path) -> None:
    """`rempart serve` itself (no Postfix needed): broken, huge and unfinished requests are
    answered DEFER_IF_PERMIT or disconnected, and the next client is served."""
    port = free_port()
    config = CONFIG.format(port=port, restricted=RESTRICTED, rate=RATE, blocked=BLOCKED)
    rempart = RempartProcess(tmp_path / "data", config + "request_timeout = 0.5\n").start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"request=smtpd_access_policy\nno equals sign\n\n")
            assert read_answer(sock).startswith(b"action=DEFER_IF_PERMIT Rempart policy: line 2")
            sock.sendall(b"request=smtpd_access_policy\nsasl_username=a@example.org\n\n")
            assert read_answer(sock) == (
                b"action=DEFER_IF_PERMIT Rempart policy: missing attribute client_address\n\n"
            )
            sock.sendall(b"recipient=" + b"x" * 6000 + b"\n\n")
            assert read_answer(sock).startswith(b"action=DEFER_IF_PERMIT")
            assert sock.recv(100) == b""  # closed after a request beyond the limits
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"request=smtpd_access_policy\nsender=")  # never finished
            assert sock.recv(100) == b""  # disconnected after request_timeout
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n"
                b"sasl_username=bob@example.org\nrecipient=x@example.net\n\n"
            )
            assert read_answer(sock) == b"action=DUNNO\n\n"
        status, metrics = rempart.request("GET", "/metrics", password=None)
        assert status == 200
        assert 'rempart_postfix_bad_requests_total{kind="timeout"} 1.0' in metrics
        assert 'rempart_postfix_bad_requests_total{kind="too_large"} 1.0' in metrics
    finally:
        rempart.stop()


def test_serve_refuses_to_start_when_the_policy_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = CONFIG.format(port=port, restricted=RESTRICTED, rate=RATE, blocked=BLOCKED)
        with pytest.raises(RuntimeError) as err:
            RempartProcess(tmp_path / "data", config).start()
    assert f"[postfix] cannot listen on 127.0.0.1:{port}: already in use" in str(err.value)


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
