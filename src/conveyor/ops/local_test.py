"""`conveyor test`: the environment's test_command against the running local stack."""

from __future__ import annotations

import os
import subprocess

from conveyor.errors import ConfigError
from conveyor.targets.local import LocalStack


def environment_for_tests(stack: LocalStack) -> dict[str, str]:
    """What the test command is told: where the app and its database answer."""
    return {"APP_URL": stack.app_url, "DATABASE_URL": stack.database_url()}


def run_tests(stack: LocalStack) -> int:
    """The environment's test_command in the project directory; the exit code passes through."""
    cmd = stack.env.test_command
    if not cmd:
        raise ConfigError("no test command", file=stack.cfg.file,
                          key=f"{stack.key}.test_command",
                          hint='e.g. test_command = ["pytest", "-q", "tests"]')
    env = {**os.environ, **environment_for_tests(stack)}
    try:
        return subprocess.run(cmd, check=False, cwd=stack.project_dir, env=env).returncode
    except FileNotFoundError:
        raise ConfigError(f"the test command {cmd[0]!r} is not installed (or not on PATH)",
                          file=stack.cfg.file, key=f"{stack.key}.test_command") from None

