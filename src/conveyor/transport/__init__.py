"""Run argv lists on a host: this machine, or a remote one over OpenSSH.

One interface for both (`run`, streamed output, timeouts, `put`/`get` of files). The SSH
transport uses the OpenSSH client with a ControlMaster, so a whole deploy opens one connection per
host, and always verifies the host key against the environment's known_hosts file
(StrictHostKeyChecking=yes): an unknown or changed key is refused with a hint, never accepted.
No shell string is built from user values: the remote command is `shlex.join(argv)`, every value
quoted as one argument.

    base       Result, Transport (the interface), sh() (quoted argvs glued in one script)
    process    run_process, LocalTransport, local_path
    session    Session: many commands through one remote shell (host/session.sh)
    ssh        SshTarget, SshTransport (master connection, host key errors)
    hostkeys   ssh-keyscan, fingerprints, known_hosts edits
    prewarm    an environment's master connection, started before the CLI is imported
"""

from conveyor.errors import HostKeyError, HostUnreachable
from conveyor.transport.base import OutputSink, Result, Transport, sh, timeout_error
from conveyor.transport.hostkeys import (
    fingerprint,
    host_key_fingerprints,
    key_of,
    known_host_lines,
    known_hosts_name,
    scan_host_keys,
    trust_host_keys,
)
from conveyor.transport.process import LocalTransport, local_path, run_process
from conveyor.transport.session import Session, SessionBroken
from conveyor.transport.ssh import SshTarget, SshTransport, host_key_refused

__all__ = [
    "HostKeyError",
    "HostUnreachable",
    "LocalTransport",
    "OutputSink",
    "Result",
    "Session",
    "SessionBroken",
    "SshTarget",
    "SshTransport",
    "Transport",
    "fingerprint",
    "host_key_fingerprints",
    "host_key_refused",
    "key_of",
    "known_host_lines",
    "known_hosts_name",
    "local_path",
    "run_process",
    "scan_host_keys",
    "sh",
    "timeout_error",
    "trust_host_keys",
]
