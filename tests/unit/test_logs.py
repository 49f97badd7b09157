"""Issue 15 item 9: `conveyor logs` shows timestamps, a header naming the container, its image
and deployment, and leaves the health probes' lines out unless --all."""

from __future__ import annotations

import json
import textwrap

import pytest

from conveyor.cli import remote_view
from conveyor.config import load_config
from conveyor.ops.log_filter import HEADER_FORMAT, ProbeFilter, by_time, header_line, probe_pattern
from conveyor.targets.remote import Remote
from conveyor.transport import Result, Transport

IMAGE = "127.0.0.1:5000/notes@sha256:" + "07" * 32
INSPECT = json.dumps(["/notes-dev-app", IMAGE,
                      {"conveyor.image": IMAGE, "conveyor.deployment": "20261201T223213Z-3185",
                       "org.opencontainers.image.revision": "fc88605f011d6f91646f"},
                      "running", "2026-12-01T22:32:22.156837797Z"])
LOG = [
    '2026-12-01T22:32:22.504297400Z INFO:     Waiting for application startup.',
    '2026-12-01T22:32:22.505539870Z INFO:notes: notes v1 started',
    '2026-12-01T22:32:32.100000000Z INFO:     127.0.0.1:44988 - "GET /health HTTP/1.1" 200 OK',
    '2026-12-01T22:32:24.643503329Z INFO:     10.0.0.1:45050 - "GET /notes?limit=1 HTTP/1.1" 200 OK',
    '2026-12-01T22:32:22.511283895Z INFO:     Uvicorn running on http://0.0.0.0:8000',
    '2026-12-01T22:32:42.1Z INFO:     10.0.0.1:45051 - "GET /health?deep=1 HTTP/1.1" 503 Unavailable',
]


def test_the_probe_pattern_knows_uvicorn_and_plain_access_lines():
    p = probe_pattern("/health")
    assert p.search('INFO:     127.0.0.1:1 - "GET /health HTTP/1.1" 200 OK')
    assert p.search("[info] GET /health 200 1.2ms")  # memos
    assert p.search('"GET /health?x=1 HTTP/1.1" 503')
    assert not p.search('"GET /healthz HTTP/1.1" 200')
    assert not p.search("[warn] health check failed: Error: connection refused")
    assert not p.search('"GET /notes HTTP/1.1" 200')


def test_probes_left_out_and_the_rest_in_time_order():
    out: list[str] = []
    f = ProbeFilter("/health", out.append)
    for line in LOG:
        f(line)
    f.flush()
    assert not any("/health" in line for line in out)
    assert [line[:30] for line in out] == sorted(line[:30] for line in out)
    assert f.note() == "(2 health-probe lines left out; --all shows them)"
    everything: list[str] = []
    g = ProbeFilter("/health", everything.append, keep_all=True)
    for line in LOG:
        g(line)
    g.flush()
    assert len(everything) == len(LOG) and g.note() is None


def test_a_tail_counts_the_lines_kept_and_reads_further_back():
    out: list[str] = []
    f = ProbeFilter("/health", out.append, tail=2)
    assert f.read_tail() == 1000
    for line in LOG:
        f(line)
    f.flush()
    assert len(out) == 2 and "Uvicorn running" in out[0] and "GET /notes" in out[1]
    assert ProbeFilter("/health", out.append, tail=2, follow=True).read_tail() == 2
    assert ProbeFilter("/health", out.append, tail=2, keep_all=True).read_tail() == 2


def test_by_time_compares_fractions_as_numbers():
    lines = ["2026-01-01T00:00:01.5Z b", "2026-01-01T00:00:01.25Z a", "  continued a"]
    assert by_time(lines) == ["2026-01-01T00:00:01.25Z a", "  continued a",
                              "2026-01-01T00:00:01.5Z b"]


def test_the_header_names_container_image_revision_and_deployment():
    assert header_line(INSPECT + "\n", "x") == (
        f"# notes-dev-app: image {IMAGE}, revision fc88605f011d, deployment "
        "20261201T223213Z-3185, running since 2026-12-01T22:32:22.156837797Z")
    assert header_line("", "notes-dev-app") == "# notes-dev-app"


class FakeHost(Transport):
    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(str(a) for a in argv)
        self.calls.append(argv)
        out = ""
        if argv[:2] == ("docker", "inspect"):
            out = INSPECT + "\n"
        elif argv[:2] == ("docker", "logs"):
            for line in LOG:
                stream(line)
        return Result(argv, 0, out, "", 0.0, host=self.name)


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTES_DEV_DB_PASSWORD", "s3cret-pw-123")
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "conveyor.toml").write_text(textwrap.dedent("""
        [app]
        name = "notes"
        image = "notes"
        port = 8000
        [registry]
        address = "127.0.0.1:5000"
        [environments.dev]
        host = "root@10.0.0.5:22"
        known_hosts = "known_hosts"
        [environments.dev.database]
        kind = "container"
        password = { env = "NOTES_DEV_DB_PASSWORD" }
    """))
    return load_config(tmp_path)


@pytest.mark.parametrize("keep_all", [False, True])
def test_remote_logs_header_timestamps_and_probes(cfg, monkeypatch, capsys, keep_all):
    host = FakeHost()
    monkeypatch.setattr(remote_view, "Remote",
                        lambda c, e: Remote(c, e, transport_factory=lambda r: host))
    remote_view.remote_logs(cfg, "dev", ["app"], tail=50, keep_all=keep_all)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("# notes-dev-app: image " + IMAGE)
    assert host.calls[0] == ("docker", "inspect", "--format", HEADER_FORMAT, "notes-dev-app")
    logs = host.calls[1]
    assert logs[:2] == ("docker", "logs") and "--timestamps" in logs
    assert logs[logs.index("--tail") + 1] == ("50" if keep_all else "2500")
    assert ("GET /health" in out) is keep_all
    assert ("health-probe lines left out" in err) is not keep_all
    assert "notes v1 started" in out
