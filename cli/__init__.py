"""The composition root: the ``cartrecovery`` command line (``cli.main``), the process
supervisor and the demo. It may import every other layer; nothing imports it."""
