"""Bad input to the CLI gets a message naming the field or file, never a traceback, and
changes nothing (issue 13 items 9 and 11)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from rempart.cli import main


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _refused(result: Result, *words: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def test_out_of_range_port_and_bad_host_are_refused_naming_the_field(tmp_path: Path) -> None:
    _refused(_run("serve", "--port", "99999", "--data-dir", str(tmp_path / "d")), "--port")
    _refused(_run("serve", "--host", "not a host!!", "--data-dir", str(tmp_path / "d")), "--host")
    assert not (tmp_path / "d").exists()
    config = tmp_path / "c.toml"
    config.write_text("[server]\nport = 99999\n")
    _refused(_run("config", "check", "--config", str(config)), "[server] port", "99999")
    config.write_text('[server]\nhost = "not a host!!"\n')
    _refused(_run("config", "check", "--config", str(config)), "[server] host")
    config.write_text('[server]\nhost = "mail.example.org"\nport = 8084\n')
    assert _run("config", "check", "--config", str(config)).exit_code == 0


def test_non_utf8_config_is_named(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_bytes(b'[server]\nhost = "caf\xe9"\n')
    _refused(_run("config", "check", "--config", str(config)), str(config), "not UTF-8")


def test_connection_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[server]\ntrusted_clients = ["10.0.0.0/8", "dovecot"]\n')
    _refused(_run("config", "check", "--config", str(config)), "trusted_clients", "'dovecot'")
    config.write_text("[server]\nheader_timeout = 0\n")
    _refused(_run("config", "check", "--config", str(config)), "header_timeout")


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    _refused(_run("serve", "--data-dir", str(tmp_path / "f"), "--port", "0"), "not a directory")


def test_journal_on_a_mistyped_directory_fails_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    _refused(_run("journal", "--data-dir", str(missing), "verify"), "no journal at")
    _refused(_run("journal", "--data-dir", str(missing)), "no journal at")
    assert not missing.exists()


def test_since_as_written_in_the_help_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    result = _run("journal", "--data-dir", str(tmp_path), "--since", "6h ago")
    assert result.exit_code == 0, result.output
    _refused(_run("journal", "--data-dir", str(tmp_path), "--since", "soon"), "--since")


def test_report_into_a_missing_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    out = tmp_path / "nope" / "r.html"
    args = ("report", "incident", "--since", "6h ago", "--data-dir", str(tmp_path))
    _refused(_run(*args, "--out", str(out)), "--out", "does not exist")
    assert _run(*args, "--out", str(tmp_path / "r.html")).exit_code == 0
    _refused(_run("journal", "--data-dir", str(tmp_path), "export", "--out", str(out)), "--out")


def test_tail_once_on_a_missing_file_fails(tmp_path: Path) -> None:
    missing = tmp_path / "mail.log"
    result = _run("tail", "--once", "--print", "--parser", "postfix", str(missing))
    _refused(result, "no such file", str(missing))


def test_empty_leak_file_leaves_no_pending_ingest(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    good = tmp_path / "combo.txt"
    good.write_text("alice@example.org:hunter22\n")
    data = str(tmp_path / "data")
    _refused(_run("leaks", "ingest", "--data-dir", data, str(empty)), "no valid")
    result = _run("leaks", "ingest", "--data-dir", data, str(good))
    assert result.exit_code == 0, result.output
    assert "1 pairs" in result.output


def test_commands_writing_the_data_dir_refuse_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    data = str(tmp_path / "f")
    _refused(
        _run("operator", "add", "bob", "--data-dir", data, "--password", "correct horse staple"),
        "not a directory",
    )
    _refused(
        _run("status", "post", "--service", "imap", "--level", "down", "--data-dir", data, "x"),
        "not a directory",
    )
