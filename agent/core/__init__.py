"""The kernel: settings, errors, the pydantic models at the boundaries, embeddings, HTTP and shipped files.

Everything else in Whazzat builds on these modules; they import nothing of Whazzat's outside
``agent.core`` (``import-linter`` holds that, see ``docs/architecture.md``).
"""
