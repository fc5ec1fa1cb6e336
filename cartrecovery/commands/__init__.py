"""Click command groups of the ``cartrecovery`` CLI, one module per group."""
