import sys

if sys.argv[1:2] == ["attach"] and len(sys.argv) in (4, 5):  # light: no conveyor imports
    from conveyor.runner.attach import attach

    sys.exit(attach(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) == 5 else 0))

from conveyor.runner.host import main

sys.exit(main())
