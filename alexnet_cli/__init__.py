"""The ``alexnet`` command line: one entry point dispatching to each subcommand."""
