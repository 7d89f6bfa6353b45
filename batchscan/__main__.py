"""`python -m batchscan` is the same as the `batchscan` console script."""

from batchscan.launch import main

raise SystemExit(main())
