"""The ``whazzat`` command line (typer): the top layer, built on everything below it.

:mod:`agent.cli.main` holds the app and registers the other modules' commands, plus any plugin's
(the ``whazzat.commands`` entry point group: ``finetune`` and ``eval`` come that way, so the agent never
imports the training package).
"""
