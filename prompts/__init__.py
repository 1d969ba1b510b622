"""Prompt templates as files (package data). Loaded and validated by :mod:`agent.pipeline.prompts`."""
