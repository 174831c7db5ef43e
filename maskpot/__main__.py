"""``python -m maskpot`` is the same as the ``maskpot`` console script."""

from maskpot.cli import main

main()
