"""``cortex serve``: the current base of a competition behind an OpenAI-compatible API and a forecast API.

- ``engine``: a loaded base (its revision, its model) and the one worker thread that answers with it:
  the project's own generator (``cortex.eval.generate``) in batches, or vLLM where it is installed.
- ``base``: which base is served, following the chain's base pointer, and the swap without dropping
  a request (the new base is loaded, then one reference changes; requests already queued finish on the old).
- ``forecast``: the prompt of a (asset, horizon) question from the latest market data (the validators'
  prompt builder) and the parsed answer.
- ``app``: the FastAPI app: ``/v1/chat/completions`` (SSE streaming), ``/v1/models``, ``/v1/forecast``,
  ``/health``, ``/metrics``, and the request limits.
- ``once``: ``cortex serve --once ASSET:DAYS`` (serve, one forecast over HTTP, print it, stop) and ``start``,
  the app on a socket in a thread.
"""
