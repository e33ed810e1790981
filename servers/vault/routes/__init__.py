"""The vault's routes, one router per resource (as in the FastAPI full-stack template)."""
