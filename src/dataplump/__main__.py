"""``python -m dataplump`` is the ``dataplump`` command."""

from dataplump.cli import main

main()
