"""The key manager (seed E3, key manager 106): escrows card keys under owner authentication."""
