"""transport.hostkeys: known_hosts names, lookups and deliberate edits."""

from __future__ import annotations

import subprocess

from conveyor.transport import (
    fingerprint,
    key_of,
    known_host_lines,
    known_hosts_name,
    trust_host_keys,
)


def _keyline(tmp_path, name: str, host: str) -> str:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, b64 = (key.with_suffix(".pub")).read_text().split()[:2]
    return f"{host} {kind} {b64}"


def test_known_hosts_name_and_key_of():
    assert known_hosts_name("10.0.0.5", 2222) == "[10.0.0.5]:2222"
    assert known_hosts_name("10.0.0.5", 22) == "10.0.0.5"
    assert key_of("@cert-authority h ssh-ed25519 AAAA x") == ("ssh-ed25519", "AAAA")
    assert key_of("h ssh-ed25519 AAAA") == ("ssh-ed25519", "AAAA")
    assert key_of("garbage") == ("", "")


def test_trust_replaces_only_that_hosts_keys(tmp_path):
    kh = tmp_path / "known_hosts"
    other = _keyline(tmp_path, "k_other", "10.9.9.9")
    old = _keyline(tmp_path, "k_old", "[10.0.0.5]:2222")
    kh.write_text(other + "\n" + old + "\n")
    assert [key_of(x) for x in known_host_lines(str(kh), "10.0.0.5", 2222)] == [key_of(old)]
    new = _keyline(tmp_path, "k_new", "[10.0.0.5]:2222")
    trust_host_keys(str(kh), "10.0.0.5", 2222, [new])
    lines = kh.read_text().split("\n")
    assert other in lines and new in lines and old not in lines
    assert not (tmp_path / "known_hosts.old").exists()


def test_trust_creates_the_file_and_lookup_of_a_missing_file_is_empty(tmp_path):
    kh = tmp_path / "sub" / "known_hosts"
    assert known_host_lines(str(kh), "h") == []
    line = _keyline(tmp_path, "k", "h")
    trust_host_keys(str(kh), "h", 22, [line + "\n"])
    assert kh.read_text() == line + "\n"


def test_fingerprint_of_a_line(tmp_path):
    line = _keyline(tmp_path, "k", "h")
    assert fingerprint(line).startswith("256 SHA256:") and fingerprint(line).endswith("(ED25519)")
    assert fingerprint("nonsense").startswith("(cannot fingerprint:")
