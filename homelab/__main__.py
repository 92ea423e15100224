"""`python -m homelab ...`: see homelab/cli.py."""

from homelab.cli import main

raise SystemExit(main())
