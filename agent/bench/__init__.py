"""``whazzat bench``: the original project's way of working against Whazzat's, on the same needs.

Small modules, one job each:

* :mod:`agent.bench.baseline`: the original pipeline re-implemented with transformers (unmerged adapter,
  one sampled generate call per prompt, ``max_length=250``, sequential uncached search);
* :mod:`agent.bench.runner`: runs both pipelines warm on the same needs, with the links backend and with
  the axesso backend against a local delayed server (:mod:`agent.bench.fake_axesso`);
* :mod:`agent.bench.hardware`: memory bandwidth, weight bytes per token, the decode bound and the rate;
* :mod:`agent.bench.probes`: what must run in a fresh process (load time, CLI start, peak RSS);
* :mod:`agent.bench.llamacpp`: the llama.cpp peer, Whazzat's chain with llama-cpp-python generating on the
  shipped GGUF (optional), and :mod:`agent.bench.gguf_lora`, the adapter converted for it;
* :mod:`agent.bench.figures`: the result's pydantic models and the table people read;
* :mod:`agent.cli.bench`: the typer command (light to import: no torch).
"""
