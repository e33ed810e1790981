"""``python -m host.cli``: the same as the ``evb`` command."""

from . import run

run()
