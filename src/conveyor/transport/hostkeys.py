"""Host keys: what a host presents (ssh-keyscan), fingerprints, and deliberate edits of a
known_hosts file (`conveyor hosts trust`). Nothing here is used to skip verification."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Sequence

from conveyor.errors import ConveyorError


def known_hosts_name(host: str, port: int = 22) -> str:
    """How OpenSSH names a host in known_hosts: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def scan_host_keys(host: str, port: int = 22, timeout: float = 5.0) -> list[str]:
    """The known_hosts lines for the keys the host presents now (ssh-keyscan)."""
    try:
        p = subprocess.run(["ssh-keyscan", "-T", str(int(timeout)), "-p", str(port), host],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=timeout + 10, check=False)
    except FileNotFoundError:
        raise ConveyorError("ssh-keyscan not found", hint="install the OpenSSH client") from None
    except subprocess.TimeoutExpired:
        return []
    return sorted(ln for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith("#"))


def fingerprint(known_hosts_line: str) -> str:
    """`256 SHA256:... host (ED25519)` for one known_hosts line."""
    p = subprocess.run(["ssh-keygen", "-lf", "-"], input=known_hosts_line.strip() + "\n",
                       capture_output=True, text=True, check=False)
    return p.stdout.strip() or f"(cannot fingerprint: {p.stderr.strip()})"


def host_key_fingerprints(host: str, port: int = 22, timeout: float = 5.0) -> list[str]:
    """Fingerprints of the keys a host presents (for `conveyor hosts trust`), via ssh-keyscan."""
    return [fingerprint(line) for line in scan_host_keys(host, port, timeout)]


def known_host_lines(known_hosts: str, host: str, port: int = 22) -> list[str]:
    """The lines of `known_hosts` that name this host (hashed names included)."""
    path = os.path.expanduser(known_hosts)
    if not os.path.exists(path):
        return []
    p = subprocess.run(["ssh-keygen", "-F", known_hosts_name(host, port), "-f", path],
                       capture_output=True, text=True, check=False)
    return [ln for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith("#")]


def key_of(known_hosts_line: str) -> tuple[str, str]:
    """(key type, base64 key) of a known_hosts line, whatever its host field and markers."""
    words = known_hosts_line.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    return (words[1], words[2]) if len(words) >= 3 else ("", "")


def trust_host_keys(known_hosts: str, host: str, port: int, lines: Sequence[str]) -> None:
    """Replace what `known_hosts` says about host:port with `lines` (other hosts kept)."""
    path = os.path.expanduser(known_hosts)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if os.path.exists(path) and known_host_lines(path, host, port):
        p = subprocess.run(["ssh-keygen", "-R", known_hosts_name(host, port), "-f", path],
                           capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise ConveyorError(f"cannot update {path}: {p.stderr.strip()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + ".old")
    with open(path, "a") as f:
        f.writelines(line.rstrip("\n") + "\n" for line in lines)
