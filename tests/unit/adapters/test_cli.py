"""`rempart tail --print` tries a parser on a log; `rempart nginx-config` prints a snippet
carrying the API password; bad options are named."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from click.testing import CliRunner

from rempart.cli import main


def test_tail_print_shows_the_events_of_a_log(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text(
        "Nov 23 18:10:01 mail postfix/smtpd[22653]: warning: unknown[203.0.113.7]: SASL LOGIN "
        "authentication failed: UGFzc3dvcmQ6\n"
        "Nov 23 18:10:09 mail postfix/smtpd[906]: warning: unknown[999.1.1.1]: SASL LOGIN "
        "authentication failed: UGFzc3dvcmQ6\n"
        "Nov 23 18:10:08 mail postfix/smtpd[22653]: disconnect from unknown[203.0.113.7]\n"
    )
    result = CliRunner().invoke(
        main, ["tail", "--print", "--once", "--parser", "postfix", str(log)]
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert events == [
        {"outcome": "failure", "ip": "203.0.113.7", "login": "", "protocol": "smtp", "count": 1}
    ]
    assert "3 lines, 1 events, 1 ignored, 1 bad" in result.stderr


def test_tail_needs_a_parser_or_a_regex(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["tail", "--print", "--once", str(tmp_path / "x.log")])
    assert result.exit_code != 0 and "--parser NAME or --regex PATTERN" in result.output
    result = runner.invoke(main, ["tail", "--print", "--once", "--regex", "from (\\S+)", "x.log"])
    assert result.exit_code != 0 and "(?P<ip>" in result.output
    result = runner.invoke(main, ["tail", "--print", "--once", "--parser", "exim", "x.log"])
    assert result.exit_code != 0 and "unknown parser 'exim'" in result.output


def test_nginx_config_carries_the_api_password(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["nginx-config", "--location", "/api/login", "--upstream", "http://10.0.0.5:8080"],
        env={"REMPART_API_PASSWORD": "s3cret"},
    )
    assert result.exit_code == 0, result.output
    token = base64.b64encode(b"nginx:s3cret").decode()
    assert f'proxy_set_header Authorization "Basic {token}";' in result.output
    assert "location = /api/login {" in result.output
    assert "server 127.0.0.1:8084;" in result.output
    bad = CliRunner().invoke(
        main, ["nginx-config", "--location", "login; evil"], env={"REMPART_API_PASSWORD": "x"}
    )
    assert bad.exit_code != 0 and "--location" in bad.output
