"""The ``fabricscope`` executable: builds the typer app from cli/commands/ and maps errors
to one-line messages and exit codes (0 ok, 1 nothing found / check failed, 2 usage or input).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Annotated

import typer

from fabricscope import __version__
from fabricscope.errors import FabricscopeError

app = typer.Typer(
    name="fabricscope",
    help="Trace tenant overlay flows hop by hop across the physical fabric.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fabricscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Trace tenant overlay flows hop by hop across the physical fabric.

    Reads sFlow and packet captures, takes tunnels apart (VXLAN, GENEVE, GRE/NVGRE, STT, ...),
    and tells which hosts, switches, links and VNFs a tenant's traffic crossed.
    """


_registered = False


def build_app() -> typer.Typer:
    """Discover and register every command module (idempotent)."""
    global _registered
    if _registered:
        return app
    from fabricscope.cli import commands

    mods = []
    for info in pkgutil.iter_modules(commands.__path__):
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        mods.append((getattr(mod, "ORDER", 100), info.name, mod))
    for _, _, mod in sorted(mods, key=lambda t: (t[0], t[1])):
        mod.register(app)
    _registered = True
    return app


def main() -> None:
    build_app()
    try:
        app()
    except FabricscopeError as exc:
        print(f"fabricscope: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        print("fabricscope: interrupted", file=sys.stderr)
        sys.exit(130)
