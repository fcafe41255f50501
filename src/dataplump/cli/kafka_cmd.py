"""`dataplump kafka ...` (being written)."""

import typer

app = typer.Typer(help="Run the managed Apache Kafka broker.", no_args_is_help=True)
