"""The ``musicrec`` command (``main``) and what it prints."""

from musicrec_assets.cli.main import main

__all__ = ["main"]
