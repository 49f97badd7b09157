"""cli/local.py: the exit codes `conveyor up --help` lists come from the one error table."""

from __future__ import annotations

from conveyor.cli.local import UP_EXIT_CODES
from conveyor.errors import EXIT_CODES


def test_up_epilog_lists_codes_of_the_error_table():
    assert UP_EXIT_CODES == (
        "Exit codes: 0 up; 2 configuration; 3 no Docker engine or no Compose; 5 image build; "
        "6 compose up; 7 database not ready; 8 migration; 9 health check; "
        "17 image pull (base or service image).")
    for code, name in [(5, "BuildFailed"), (6, "ComposeFailed"), (7, "DatabaseNotReady"),
                       (8, "MigrationStepFailed"), (9, "HealthCheckFailed"),
                       (17, "ImageUnavailable")]:
        assert EXIT_CODES[code][0] == name
