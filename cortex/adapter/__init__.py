"""What a peft adapter is, defined once for every role (DESIGN.md §3).

- ``files``: the files an adapter folder may hold (``ADAPTER_FILES``), checked from names and sizes;
- ``names``: target modules per architecture (``ARCHITECTURES``, ``LLAMA_TARGETS``) and tensor names;
- ``policy``: the one ``adapter_config.json`` policy (stock peft output passes) and the scale formula;
- ``header``: a strict reader of safetensors headers for files nobody vouches for;
- ``spec``: ``BaseSpec`` (what an adapter must fit) and ``NormBounds``;
- ``checks``: ``check_adapter``, the untrusted-input checks (``AdapterRejected`` with a stable reason);
- ``factors``: ``load_adapter``, factors per module for merging, built only from checked tensors.

The validator's round, the miner's pre-publish check and the averager's fetch all call
``check_adapter`` / ``load_adapter`` with the competition's limits and the base's ``BaseSpec``, so an
adapter is refused everywhere for the same reason code; both rounds download through ``cortex.adapter.fetch``
(``AdapterCache``, imported from its module). Dependencies point one way: this package reads
``cortex.protocol`` (the competition's limits), never the reverse. Nothing here imports torch at import time.
"""

from cortex.adapter.names import (
    ARCHITECTURES,
    DECODER_MODULES,
    LLAMA_TARGETS,
    LORA_A,
    LORA_B,
    MAGNITUDE,
    PARTS,
    module_key,
    parse_tensor_name,
    target_modules,
    tensor_name,
)
from cortex.adapter.errors import REASONS, AdapterRejected
from cortex.adapter.files import (
    ADAPTER_FILES,
    CARD_FILE,
    CONFIG_FILE,
    PICKLE_SUFFIXES,
    WEIGHTS_FILE,
    check_listing,
)
from cortex.adapter.header import HeaderError, TensorInfo, parse_header, read_header
from cortex.adapter.policy import ALLOWED_CONFIG_KEYS, AdapterConfig, is_transformers_class
from cortex.adapter.spec import NO_NORM_BOUNDS, BaseSpec, NormBounds, own_limits
from cortex.adapter.checks import CheckedAdapter, check_adapter, check_base_revision
from cortex.adapter.factors import Adapter, LowRank, Term, group_terms, load_adapter

__all__ = [
    "ADAPTER_FILES", "ALLOWED_CONFIG_KEYS", "ARCHITECTURES", "Adapter", "AdapterConfig", "AdapterRejected",
    "BaseSpec", "CARD_FILE", "CONFIG_FILE", "CheckedAdapter", "DECODER_MODULES", "HeaderError", "LLAMA_TARGETS",
    "LORA_A", "LORA_B", "LowRank", "MAGNITUDE", "NO_NORM_BOUNDS", "NormBounds", "PARTS", "PICKLE_SUFFIXES",
    "REASONS", "TensorInfo", "Term", "WEIGHTS_FILE", "check_adapter", "check_base_revision",
    "check_listing", "group_terms", "is_transformers_class", "load_adapter", "module_key", "own_limits",
    "parse_header", "parse_tensor_name", "read_header", "target_modules", "tensor_name",
]
