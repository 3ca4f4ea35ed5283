"""Our corrections to LangServe, LangChain and the SDKs under them: one module per defect.

LangServe is archived (read-only since 2026-05-05): what it gets wrong, we carry. Each
module's docstring names the upstream behaviour it corrects and when to delete it; each has
a canary in ``tests/unit/test_workarounds.py`` that fails once a new version of the
dependency changes that behaviour, so an upgrade says which module can go.
"""
