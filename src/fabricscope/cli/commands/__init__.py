"""One module per subcommand.

Every module here defines ``ORDER: int`` (position in ``--help``) and
``register(app: typer.Typer) -> None``. Modules are discovered at start-up, so adding a
command never edits a shared file. Heavy imports (numba, duckdb, pyarrow) stay inside
the command functions so that ``fabricscope --help`` is instant.
"""
