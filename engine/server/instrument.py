"""The server's instruments: the batching embedder and the metrics' watch on searches and stores, for every
cache the server serves (given to the cache as it is built, engine/assembly.py)."""

from __future__ import annotations

from engine.assembly import Instruments
from engine.server.metrics import ServerMetrics

#: Embedding calls in flight at once: while one computes, the requests of the last one search and answer,
#: so the model never waits on the event loop. Measured on 2 cores (bench/server.py), two lanes serve about
#: 10% more unique prompts than one and three no more than two.
EMBED_LANES = 2


def server_instruments(metrics: ServerMetrics) -> Instruments:
    """Concurrent checks share one embedding call; searches and stores are timed and counted."""
    return Instruments(lanes=EMBED_LANES, on_embed_batch=metrics.observe_embed_batch, observer=metrics)
