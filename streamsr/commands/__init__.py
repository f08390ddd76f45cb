"""The command-line layer: ``cli`` (the parser, logging, one-line errors) and one module per
subcommand, each a thin shell over library calls that the Python API exposes too."""
