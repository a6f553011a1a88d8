"""``python -m pipelines.cli``: the ``cvpipe`` command line."""

from .main import main

main()
