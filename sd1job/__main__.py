"""``python -m sd1job``: the one entry point."""

from sd1job.cli import main

raise SystemExit(main())
