import os
import sys

if sys.argv[1:2] == ["attach"] and len(sys.argv) in (4, 5):  # light: no conveyor imports
    from conveyor.runner.attach import attach

    sys.exit(attach(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) == 5 else 0))

if sys.argv[1:2] == ["run"] and len(sys.argv) == 3:  # the pull starts while conveyor loads
    from conveyor.runner.prefetch import prefetch

    prefetch(sys.argv[2])

from conveyor.runner.host import main

code = main()
# the run's end is on disk (journal, record) and the lock is released: exit at once, so that
# the container stops (the environment's lock) without the interpreter's tear-down
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
