"""``python -m conveyor.migrations run --database-url ... --migration-dir ...``

Works wherever the ``conveyor.migrations`` package and psycopg 3 are importable.
"""

import sys

from conveyor.migrations.cli import main

raise SystemExit(main(sys.argv[1:], exiting=True))
