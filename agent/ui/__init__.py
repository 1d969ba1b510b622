"""The Chainlit chat UI (``whazzat ui``): a conversation that shows its work.

Modules, one job each:

- :mod:`agent.ui.app`: the Chainlit app; wires Chainlit's events to the handlers.
- :mod:`agent.ui.handlers`: answer a need or a follow-up, apply settings, record feedback.
- :mod:`agent.ui.stage_steps`: run the chain off the event loop and show each stage as a step.
- :mod:`agent.ui.cards`: the answer as Markdown cards; outside text always escaped.
- :mod:`agent.ui.followups`: tell "cheaper" / "under $20" / "more X" from a new need.
- :mod:`agent.ui.chat_settings`: the settings panel and its validation.
- :mod:`agent.ui.session_state`: what one chat remembers.
- :mod:`agent.ui.services`: the model, chains and backends shared by all chats (loaded once).
- :mod:`agent.ui.auth`: optional password login.
- :mod:`agent.cli.ui`: the ``whazzat ui`` and ``whazzat feedback export`` commands.

Importing this package loads nothing heavy; ``agent.ui.app`` and ``agent.ui.handlers`` import chainlit.
"""
