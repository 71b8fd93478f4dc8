"""``python -m flows.cli``: the same as the ``labelwise`` command."""

from flows.cli import app

app()
