"""The OpenAI-compatible caching proxy, mounted by the server when SEMCACHE_UPSTREAM_URL is set.

``request.py`` derives (scope, prompt) from a request; ``answer.py`` turns answers into entries and entries
into JSON bodies or SSE streams; ``upstream.py`` is the HTTP client and its header rules; ``proxy.py``
decides; ``routes.py`` mounts it.
"""

from engine.proxy.routes import proxy_router

__all__ = ["proxy_router"]
