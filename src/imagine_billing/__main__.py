"""``python -m imagine_billing``: the command line."""

from imagine_billing.cli import main

raise SystemExit(main())
