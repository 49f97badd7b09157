"""``python -m conveyor.migrations run --database-url ... --migration-dir ...``

Works wherever the ``conveyor.migrations`` package and libpq (or psycopg) are importable, e.g.
in a temporary container of the application's image.
"""

import sys

from conveyor.migrations.cli import main

raise SystemExit(main(sys.argv[1:]))
