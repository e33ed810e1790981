from .main import cli, run

__all__ = ["cli", "run"]
