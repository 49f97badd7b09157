"""transport.base: sh() quoting and glue, the package's re-exports."""

from __future__ import annotations

import subprocess

import pytest

import conveyor.transport
from conveyor import errors
from conveyor.transport import sh


def test_sh_quotes_every_value_and_allows_only_fixed_glue():
    argv = sh(("test", "a b; rm -rf /", "=", "x"), ">/dev/null", "2>&1", "||",
              ("echo", "$(whoami)"))
    assert argv == ("sh", "-c", "test 'a b; rm -rf /' = x >/dev/null 2>&1 || echo '$(whoami)'")
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    assert out.stdout == "$(whoami)\n"  # the value arrived as one literal argument
    with pytest.raises(ValueError, match="not allowed as shell glue"):
        sh(("true",), "; rm -rf /")


def test_sh_quotes_non_string_values_too():
    assert sh(("sleep", 3), ";", ("echo", "")) == ("sh", "-c", "sleep 3 ; echo ''")


def test_the_package_reexports_the_public_names_and_the_error_table_classes():
    for name in ("sh", "Result", "Transport", "LocalTransport", "SshTransport", "SshTarget",
                 "HostKeyError", "HostUnreachable", "scan_host_keys", "fingerprint", "key_of",
                 "known_host_lines", "known_hosts_name", "trust_host_keys", "local_path"):
        assert hasattr(conveyor.transport, name), name
    assert conveyor.transport.HostKeyError is errors.HostKeyError
    assert conveyor.transport.HostUnreachable is errors.HostUnreachable
