"""``python -m agent``: the ``whazzat`` command without its console script (same commands and options)."""

from agent.cli.main import app

if __name__ == "__main__":
    app()
