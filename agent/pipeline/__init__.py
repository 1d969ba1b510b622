"""The chain and its stages: validate, rewrite, retrieve, suggest, fuse, search, rank.

:mod:`agent.pipeline.chain` wires them; each stage's logic lives in a module of its own (prompts,
parsing, validation, dedup, memory, fusion, ranking).
"""
