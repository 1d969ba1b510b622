"""The language model behind the suggest stage: the embedded default, any local or Hub model, or an
OpenAI-compatible endpoint, always as a LangChain LLM (:func:`agent.models.llm.load_llm`)."""
