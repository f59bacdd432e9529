"""Command-line presenters (typer + rich). Each command lives in cli/commands/<name>.py."""
