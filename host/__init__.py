"""The terminal: transports, the wallet session, the flows and the ``evb`` CLI."""
