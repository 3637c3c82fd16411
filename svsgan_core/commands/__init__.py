"""One module per `svsgan` subcommand: `add_arguments(parser)` and `run(args) -> int`."""
