"""Connecting (issue 15, items 12 and 13): a default connect timeout against a server that
accepts TCP and never answers, a clear error for a URL that is not PostgreSQL's, masked
``?password=`` URLs, and no traceback with ``-v`` for an ordinary connection error."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from conveyor.masking import mask_secrets
from conveyor.migrations import wire
from conveyor.migrations.cli import main
from conveyor.migrations.errors import ConnectionFailed, UsageError


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    for c in accepted:
        c.close()
    srv.close()


def test_status_gives_up_on_a_server_that_never_answers(silent_server, tmp_path, monkeypatch):
    """The default connect_timeout (10 s) ends `migrate status`: it does not hang."""
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    (tmp_path / "1_a").mkdir()
    (tmp_path / "1_a" / "up.sql").write_text("SELECT 1;\n")
    url = f"postgresql://u:pw@127.0.0.1:{silent_server}/db?sslmode=disable"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "conveyor.migrations", "status", "--database-url",
                        url, "--migration-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60, check=False)
    elapsed = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    assert wire.CONNECT_TIMEOUT - 1 <= elapsed < wire.CONNECT_TIMEOUT + 15, elapsed
    assert "Cannot connect" in r.stderr and "no answer within 10 s" in r.stderr, r.stderr
    assert "pw" not in r.stderr.replace("password", "") and "Traceback" not in r.stderr


def test_an_explicit_connect_timeout_is_kept(silent_server):
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed):
        wire.connect(f"postgresql://u@127.0.0.1:{silent_server}/db?connect_timeout=2"
                     "&sslmode=disable", [])
    assert time.monotonic() - t0 < 8


@pytest.mark.parametrize("url", ["mysql://root:secret@db:3306/app", "sqlite:///tmp/x.db"])
def test_a_url_that_is_not_postgresql_is_refused_clearly(url):
    with pytest.raises(UsageError) as info:
        wire.connect(url, [])
    text = str(info.value)
    assert "is not a PostgreSQL URL" in text and "postgresql://" in text
    assert 'missing "="' not in text and "secret" not in text


def test_a_mysql_url_on_the_command_line(tmp_path, capsys):
    code = main(["status", "--database-url", "mysql://root:secret@db/app", "--migration-dir",
                 str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "not a PostgreSQL URL" in err and "secret" not in err


def test_verbose_shows_no_traceback_for_a_connection_error(tmp_path, capsys):
    code = main(["status", "-v", "--database-url",
                 "postgresql://app:hunter2@127.0.0.1:1/app", "--migration-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "Cannot connect" in err
    assert "Traceback" not in err and "hunter2" not in err


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://h/db?password=pw", "postgresql://h/db?password=***"),
    ("postgresql://h/db?password=pw&sslmode=disable",
     "postgresql://h/db?password=***&sslmode=disable"),
    ("postgresql://h/db?user=u&password=pw", "postgresql://h/db?user=u&password=***"),
    ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
    ("host=h password=pw dbname=d", "host=h password=*** dbname=d"),
    ("host=h password='p w' dbname=d", "host=h password=*** dbname=d"),
])
def test_password_forms_are_masked_and_keep_their_separators(url, masked):
    assert mask_secrets(url) == masked
    assert mask_secrets(f"error at {url} refused") == f"error at {masked} refused"
