"""`python -m batchscan` is the same as the `batchscan` console script."""

from batchscan.cli import main

raise SystemExit(main())
