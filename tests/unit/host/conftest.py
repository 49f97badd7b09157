"""A fake `docker` (and `sleep`) first on PATH for running the host scripts with `sh`.

The fake records every call and answers from environment variables, per *key*: the docker
subcommand (`create`, `cp`, `rm`), `CONTAINER_INSPECT` / `IMAGE_INSPECT`, or for `docker exec`
the program run in the container (`EXEC_PG_DUMP`, `EXEC_PG_RESTORE`, `EXEC_PSQL`):

    FAKE_DOCKER_<KEY>_OUT       printed on stdout
    FAKE_DOCKER_<KEY>_OUT_FILE  a file whose bytes are printed on stdout (before _OUT)
    FAKE_DOCKER_<KEY>_RC        exit codes, one per call ("1 1 0": the last one from then on)
    FAKE_DOCKER_<KEY>_STDIN     stdin is saved to <this path>.<n> for the n-th call
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conveyor import host

FAKE_DOCKER = r"""#!/bin/sh
log=${FAKE_DOCKER_LOG:?}
# one write per call (scripts run some calls at once)
rec=$(for a in "$@"; do printf '%s\037' "$a"; done; printf '\036')
printf '%s' "$rec" >> "$log"
case $1 in
  exec) shift; while [ "${1#-}" != "$1" ]; do shift; done; key=exec_$2 ;;
  container|image) key=$1_$2 ;;
  *) key=$1 ;;
esac
key=$(printf '%s' "$key" | tr 'a-z-' 'A-Z_')
n=$(( $(cat "$log.$key" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$log.$key"
eval "stdin=\${FAKE_DOCKER_${key}_STDIN-}; out=\${FAKE_DOCKER_${key}_OUT-}"
eval "outfile=\${FAKE_DOCKER_${key}_OUT_FILE-}; codes=\${FAKE_DOCKER_${key}_RC-0}"
if [ -n "$stdin" ]; then cat > "$stdin.$n"; fi
if [ -n "$outfile" ]; then cat "$outfile"; fi
printf '%s' "$out"
i=1; rc=0
for c in $codes; do if [ "$i" -le "$n" ]; then rc=$c; fi; i=$((i + 1)); done
exit "$rc"
"""

FAKE_SLEEP = r"""#!/bin/sh
echo "$*" >> "${FAKE_SLEEP_LOG:?}"
"""


class FakeDocker:
    def __init__(self, root: Path) -> None:
        self.root = root
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for name, text in (("docker", FAKE_DOCKER), ("sleep", FAKE_SLEEP)):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        self.log = root / "docker.log"
        self.sleep_log = root / "sleep.log"
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                    "FAKE_DOCKER_LOG": str(self.log), "FAKE_SLEEP_LOG": str(self.sleep_log)}

    def answer(self, key: str, *, out: str | None = None, out_file: Path | None = None,
               rc: str | int | None = None, stdin: Path | None = None) -> None:
        """How the fake answers the calls of `key` (see the module's docstring)."""
        for suffix, value in (("OUT", out), ("OUT_FILE", out_file), ("RC", rc),
                              ("STDIN", stdin)):
            if value is not None:
                self.env[f"FAKE_DOCKER_{key}_{suffix}"] = str(value)

    def calls(self) -> list[list[str]]:
        """The argv of every call, in order."""
        if not self.log.exists():
            return []
        return [call.split("\x1f")[:-1] for call in self.log.read_text().split("\x1e")[:-1]]

    def sleeps(self) -> list[str]:
        return self.sleep_log.read_text().splitlines() if self.sleep_log.exists() else []

    def run(self, name: str, *args: str, input: str | bytes = b"",
            ) -> subprocess.CompletedProcess[str]:
        """Run host script `name` with `sh`, its argv as conveyor builds it."""
        data = input.encode() if isinstance(input, str) else input
        r = subprocess.run(host.argv(name, *args), input=data, capture_output=True, check=False,
                           env=self.env, cwd=self.root, timeout=30)
        return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(),
                                           r.stderr.decode())


@pytest.fixture
def docker(tmp_path: Path) -> FakeDocker:
    return FakeDocker(tmp_path)
