"""One module per CLI subcommand; each defines `HELP`, `configure_parser(parser)` and `run(args) -> int`."""
