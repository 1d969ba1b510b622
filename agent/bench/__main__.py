"""``python -m agent.bench``: the bench without the ``whazzat`` entry point (same options)."""

import typer

from agent.bench.cli import bench

if __name__ == "__main__":
    typer.run(bench)
