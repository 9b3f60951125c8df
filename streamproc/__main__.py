"""``python -m streamproc``: the same CLI as the ``streamproc`` command."""

from streamproc.cli.main import main

main()
