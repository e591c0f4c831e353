"""A loaded base and the one thread that generates with it.

Why a worker thread of our own rather than the web server's thread pool: a model must not be driven from
several threads at once, and requests that arrive together are answered faster as one batch (one
forward pass per new token for all of them). The worker takes whatever is queued, answers the
non-streaming requests that ask for the same ``max_tokens`` as one batch through the project's own
generator (``cortex.eval.generate.Generator``: the validators' greedy decoding and prompt builder), and
a streaming request alone through transformers' ``TextStreamer``. With vLLM installed and a GPU
visible (``engine="vllm"``), batches go to ``vllm.LLM`` instead, with the same prompt token ids; vLLM's
offline engine returns whole answers, so a stream then arrives as one chunk.

``close()`` puts a stop after what is already queued: requests sent to an engine before it was
swapped out finish on it (``cortex.serve.base``); one sent after raises :class:`EngineClosed`, and the
caller sends it to the engine now current.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TextStreamer

from cortex.eval.generate import Generator
from cortex.eval.prompts import prompt_ids

log = logging.getLogger(__name__)
ENGINES = ("auto", "transformers", "vllm")
_STOP = object()  # the queue's last item: the worker ends after it


class EngineClosed(Exception):
    """The engine was swapped out before this request reached its queue: send it to the current one."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (the model ended its answer) or "length" (max_tokens reached)


@dataclass
class _Request:
    messages: list[dict[str, str]]
    ids: list[int]
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future | None = None  # a whole answer
    chunks: asyncio.Queue | None = None  # a stream: text pieces, then a Completion (or an exception)
    extra: dict[str, Any] = field(default_factory=dict)


def _resolve(loop: asyncio.AbstractEventLoop, future: asyncio.Future, value: Any) -> None:
    """Set ``future`` from the worker thread (an exception sets it as failed); a cancelled one is left alone."""
    def settle() -> None:
        if future.done():
            return
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)
    loop.call_soon_threadsafe(settle)


class _Push(TextStreamer):
    """transformers' streamer with its printing replaced by a callback (the library decodes word by word)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, push: Callable[[str], None]):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.push = push

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.push(text)


class Engine:
    """One base (``revision`` names it) answering through one worker thread."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, revision: str,
                 path: Path | None = None, batch_size: int = 8, vllm: Any = None):
        self.model, self.tokenizer = model, tokenizer
        self.revision, self.path = revision, path
        self.batch_size = batch_size
        self.vllm = vllm  # a vllm.LLM, when that engine answers
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        self.queue: queue.Queue = queue.Queue()
        self.lock = threading.Lock()  # orders puts against close(): nothing is queued after the stop
        self.closed = False
        self.batches = 0
        self.thread = threading.Thread(target=self._work, name=f"cortex-serve-{revision[:12]}", daemon=True)
        self.thread.start()

    @classmethod
    def load(cls, path: Path, revision: str, *, device: str = "auto", dtype: str | None = None,
             engine: str = "auto", batch_size: int = 8) -> Engine:
        """The base in ``path`` (a checked model folder), on the device ``cortex.eval.base`` chooses."""
        from cortex.errors import CortexError
        from cortex.eval.base import load_base

        if not Path(path).is_dir():  # a store's folder removed under the server, say
            raise CortexError(f"no model folder at {path}")
        llm = _vllm(path, engine)
        model, tokenizer = load_base(Path(path), device=device, dtype=dtype) if llm is None else (None, None)
        if llm is not None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=True)
        return cls(model, tokenizer, revision=revision, path=Path(path), batch_size=batch_size, vllm=llm)

    @property
    def name(self) -> str:
        return "vllm" if self.vllm is not None else "transformers"

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The validators' prompt ids of a chat (raises ValueError on a chat the template refuses)."""
        try:
            return prompt_ids(self.tokenizer, messages)
        except Exception as exc:  # noqa: BLE001 - jinja's TemplateError and the template's raise_exception
            raise ValueError(f"the chat template refused these messages: {exc}") from None

    # --- the API the server calls (on its event loop) -------------------------------------------

    def complete(self, messages: list[dict[str, str]], ids: list[int], max_tokens: int) -> asyncio.Future:
        """The whole answer, to await; the request is queued now (EngineClosed is raised here)."""
        loop = asyncio.get_running_loop()
        request = _Request(messages, ids, max_tokens, loop, future=loop.create_future())
        self._put(request)
        return request.future

    def stream(self, messages: list[dict[str, str]], ids: list[int], max_tokens: int) -> AsyncIterator[str | Completion]:
        """Text pieces as they are decoded, then the whole :class:`Completion`. The request is queued now
        (EngineClosed is raised here, before any piece), the pieces are read from the iterator."""
        loop = asyncio.get_running_loop()
        request = _Request(messages, ids, max_tokens, loop, chunks=asyncio.Queue())
        self._put(request)
        return self._pieces(request)

    async def _pieces(self, request: _Request) -> AsyncIterator[str | Completion]:
        while True:
            item = await request.chunks.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, Completion):
                return

    def close(self) -> None:
        """Stop after the requests already queued."""
        with self.lock:
            self.closed = True
            self.queue.put(_STOP)

    def _put(self, request: _Request) -> None:
        with self.lock:
            if self.closed:
                raise EngineClosed(self.revision)
            self.queue.put(request)

    # --- the worker thread -------------------------------------------------------------------------

    def _work(self) -> None:
        held = None  # a request taken off the queue that could not join the batch: next
        while True:
            item, held = (held if held is not None else self.queue.get()), None
            if item is _STOP:
                break
            if item.chunks is not None:
                self._run_stream(item)
                continue
            batch = [item]
            while len(batch) < self.batch_size:  # whatever else is already waiting, with the same max_tokens
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP or more.chunks is not None or more.max_tokens != item.max_tokens:
                    held = more
                    break
                batch.append(more)
            self._run_batch(batch)
        log.info("base %s: worker stopped", self.revision[:12])
        self.model = None  # the swap's old base: let its memory go
        self.vllm = None

    def _finish_reason(self, tokens: int, max_tokens: int) -> str:
        return "length" if tokens >= max_tokens else "stop"

    def _count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _run_batch(self, batch: list[_Request]) -> None:
        max_tokens = batch[0].max_tokens
        try:
            texts = self._generate([r.messages for r in batch], [r.ids for r in batch], max_tokens)
            self.batches += 1
            for r, text in zip(batch, texts):
                n = self._count(text)
                _resolve(r.loop, r.future, Completion(text, len(r.ids), n, self._finish_reason(n, max_tokens)))
        except Exception as exc:  # noqa: BLE001 - one failed batch answers its requests with the error
            log.warning("generation failed: %s", exc)
            for r in batch:
                _resolve(r.loop, r.future, exc)

    def _generate(self, chats: list[list[dict[str, str]]], ids: list[list[int]], max_tokens: int) -> list[str]:
        if self.vllm is not None:
            from vllm import SamplingParams

            params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
            outputs = self.vllm.generate([{"prompt_token_ids": i} for i in ids], params, use_tqdm=False)
            return [o.outputs[0].text for o in outputs]
        generator = Generator(self.model, self.tokenizer, max_new_tokens=max_tokens, batch_size=len(chats))
        return generator.generate(chats)[0]

    def _run_stream(self, r: _Request) -> None:
        def push(item: Any) -> None:
            r.loop.call_soon_threadsafe(r.chunks.put_nowait, item)

        try:
            if self.vllm is not None:  # the offline engine answers whole: one chunk
                text = self._generate([r.messages], [r.ids], r.max_tokens)[0]
                push(text)
            else:
                pieces: list[str] = []

                def piece(text: str) -> None:
                    pieces.append(text)
                    push(text)

                with torch.inference_mode():
                    self.model.generate(torch.tensor([r.ids], device=self.model.device),
                                        attention_mask=torch.ones(1, len(r.ids), dtype=torch.long, device=self.model.device),
                                        max_new_tokens=r.max_tokens, do_sample=False, num_beams=1,
                                        pad_token_id=self.tokenizer.pad_token_id, streamer=_Push(self.tokenizer, piece))
                text = "".join(pieces)
            n = self._count(text)
            push(Completion(text, len(r.ids), n, self._finish_reason(n, r.max_tokens)))
        except Exception as exc:  # noqa: BLE001 - the stream ends with the error
            log.warning("streaming generation failed: %s", exc)
            push(exc)


def _vllm(path: Path, engine: str) -> Any:
    """A ``vllm.LLM`` over ``path`` when asked for (``vllm``) or possible (``auto``: installed and a GPU)."""
    if engine not in ENGINES:
        from cortex.errors import CortexError

        raise CortexError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "transformers" or (engine == "auto" and not torch.cuda.is_available()):
        return None
    try:
        import vllm
    except ImportError:
        if engine == "vllm":
            from cortex.errors import CortexError

            raise CortexError("--engine vllm: vLLM is not installed (pip install -e .[gpu])") from None
        return None
    return vllm.LLM(model=str(path), tokenizer=str(path), trust_remote_code=False, enforce_eager=False)
