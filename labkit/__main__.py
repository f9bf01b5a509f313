"""``python -m labkit`` is the ``labkit`` command (``torchrun -m labkit`` uses this)."""

from labkit.cli import main

raise SystemExit(main())
