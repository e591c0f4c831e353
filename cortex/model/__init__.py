"""Base models (docs/base-model.md): the tiny offline base and fetching any competition's base.

The API the rest of the project uses::

    from cortex.model import fetch_base, TINY_REPO
    folder = fetch_base(competition.base.repo, resolved_revision, store)  # repo@revision, checked files

Loading a base for generation (device, dtype) is ``cortex.eval.base.load_base``.

``cortex base bootstrap --out DIR [--store local:DIR]`` builds, pre-trains and publishes the
``cortex-tiny`` base (:mod:`cortex.model.bootstrap`; the command in :mod:`cortex.model.cli`).
"""

from cortex.model.loading import MODEL_FILES, BaseModelError, check_model_dir, fetch_base, is_model_file, model_files
from cortex.model.tiny import TINY_REPO, TinyConfig, build_model, generation_config, llama_config, parameter_count
from cortex.model.tokenizer import CHAT_TEMPLATE, chat_corpus, train_tokenizer

__all__ = [
    "CHAT_TEMPLATE", "MODEL_FILES", "TINY_REPO", "BaseModelError", "TinyConfig", "build_model", "chat_corpus",
    "check_model_dir", "fetch_base", "generation_config", "is_model_file", "llama_config",
    "model_files", "parameter_count", "train_tokenizer",
]
