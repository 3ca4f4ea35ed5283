"""The service's plumbing around the chains: settings, errors, middleware, routes, backend.

``server.create_app`` puts these together; ``chains/`` holds one module per route.
"""
