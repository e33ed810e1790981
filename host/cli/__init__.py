from .main import cli, main, run

__all__ = ["cli", "main", "run"]
