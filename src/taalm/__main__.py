"""``python -m taalm``: the command line."""

from .cli import main

raise SystemExit(main())
