"""``cortex export``: the current base out to people (DESIGN.md §13).

- ``lineage``: the base's ancestry from the averager's manifests, and the model card.
- ``gguf``: a Llama folder to GGUF for llama.cpp with the ``gguf`` package.
- ``gptq``: GPTQ 4/8-bit copies in compressed-tensors' format (what vLLM loads) with ``llmcompressor``.
- ``run``: one export, top to bottom, with each copy's size and held-out reward and parse rate.
"""
