"""backfill: the command line of the Backfill GPU portal. It talks only to the public API."""

__version__ = "0.1.0"
