"""The ``imagine-billing`` command line."""

from imagine_billing.cli.app import main

__all__ = ["main"]
