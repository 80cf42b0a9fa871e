"""CLI subcommands, one module per group (see stream/cli.py)."""
