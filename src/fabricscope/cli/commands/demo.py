"""``fabricscope demo``: the whole thing end to end on a simulated fabric."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ORDER = 1


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        directory: Annotated[Path | None, typer.Option(
            "--dir", help="where to write the simulated fabric and the store (default: "
                          "the user's cache dir, replaced on each run)")] = None,
        seed: Annotated[int, typer.Option("--seed", help="simulation seed")] = 1,
        serve: Annotated[bool, typer.Option(
            "--serve", help="then serve the API and web page on the demo store")] = False,
        listen: Annotated[str, typer.Option("--listen")] = "127.0.0.1:8626",
    ) -> None:
        """Simulate a small fabric, decode it into an embedded store and walk through the
        questions fabricscope answers: the tenant matrix, a trace through a firewall VNF
        with ECMP, a VM migration seen in time, the impact of an erroring link and a
        service-chain check. No root, no network; under a minute."""
        from fabricscope.demo import run

        res = run(directory, seed=seed)
        if serve:
            from fabricscope.cli.app import app

            app(args=["serve", "--db", str(res.store), "--inventory", str(res.inventory),
                      "--listen", listen], standalone_mode=False)
