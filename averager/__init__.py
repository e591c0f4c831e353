"""The averager: exact merging of the winning adapters into the next base model.

``averager.merge`` holds the pure tensor math, ``averager.adapters`` reads peft adapter
directories, ``averager.stream`` streams a merge over a safetensors model directory and
``averager.cli`` is ``cortex merge``. See docs/merging.md.
"""
