"""The averager: exact merging of the winning adapters into the next base model.

``averager.merge`` holds the pure tensor math (on factors that ``cortex.adapter.load_adapter``
builds from checked adapters), ``averager.stream`` streams a merge over a safetensors model directory and
``averager.cli`` is ``cortex merge`` (docs/merging.md). The service (docs/averager.md):
``averager.select`` chooses the inputs (``averager.geometry``: low-rank norms and cosines),
``averager.gate`` scores the merge, ``averager.publish`` publishes it and commits the pointer,
``averager.service`` runs a round, ``averager.config`` holds the flags of ``neurons/averager.py``.
"""
