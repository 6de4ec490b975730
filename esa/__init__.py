"""esa: find, validate and use the few transformer weights that matter most."""

__version__ = "0.1.0"
