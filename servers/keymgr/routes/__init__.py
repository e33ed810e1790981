"""The key manager's routes, one router per resource (as in the FastAPI full-stack template)."""
