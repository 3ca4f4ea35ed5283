"""The service's plumbing around the chains; ``server.create_app`` puts it together.

* ``settings``: every knob, from the environment (``get_settings``).
* ``limits``: limits and defaults defined once (top_logprobs bound, n_ctx, model name).
* ``errors``: the error tree, its one wire shape (``ErrorInfo``/``ItemError``) and the
  mapping of anything raised while serving to it.
* ``middleware``: errors at the edge (JSON, SSE ``error`` events, the 422 handler) and
  cancellation when a client leaves.
* ``routes``: ``wrap_route()``, what every route adds to its chain (checked config,
  per-item batch errors).
* ``backend``: the embedded model on a private loopback port of its own.

``chains/`` holds one module per route; ``local_llm/`` is the embedded engine, which knows
nothing of this package.
"""
