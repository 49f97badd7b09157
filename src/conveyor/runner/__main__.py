import sys

from conveyor.runner.host import main

sys.exit(main())
