"""The terminal: transports, the wallet session, the flows and the ``evb`` CLI."""

__version__ = "0.1.0"  # pyproject.toml's version (a test keeps them equal): read without importlib.metadata
