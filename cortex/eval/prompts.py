"""The one prompt builder: a chat becomes the token ids every engine feeds the model.

Both engines (transformers and vLLM) take these ids as they are, so a model sees exactly the same
tokens whichever engine answers. The chat template is applied with ``tokenize=True`` (the tokenizer
adds no special tokens of its own beyond what the template writes), and a template that writes its
own BOS while the tokenizer would add another is caught here: the ids start with exactly one BOS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from transformers import PreTrainedTokenizerBase


def prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """The token ids of ``messages`` rendered by the base's chat template, ready for generation."""
    ids = tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=True, add_generation_prompt=True,
                                        return_dict=False)
    ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    bos = tokenizer.bos_token_id
    while bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]  # a template that writes the BOS, rendered by a tokenizer that adds one too
    return ids


def prompt_batch(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Sequence[Mapping[str, str]]]) -> list[list[int]]:
    return [prompt_ids(tokenizer, p) for p in prompts]
