"""``python -m streamproc``: the same CLI as the ``streamproc`` command."""

from streamproc.cli import main

main()
