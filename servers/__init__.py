"""The vault and the key manager (HTTP services)."""
