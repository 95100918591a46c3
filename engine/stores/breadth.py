"""How wide an HNSW search looks, in both stores: one rule, measured at a million entries.

An HNSW search keeps the ``ef`` best candidates it has seen while it walks the graph. A fixed ef finds the
nearest entry less often as the graph grows, so the breadth grows with the graph's size past a point.

Measured with bench/million.py (QQP question vectors with synthetic neighbours, 1,000 QQP paraphrases as
queries, recall@1 against exact search):
- embedded store (usearch int8 graph, float32 re-rank): ef 64 gives recall@1 1.000 up to 300,000 entries
  but 0.944 at 1,000,000 (cosine graphs); on the inner-product graphs now used, ef 128 gives 0.985, ef 192
  0.992 and ef 256 0.995 at 1,000,000, and the store's search at ef 256 takes p50 0.90 ms on 2 cores;
- Redis (RediSearch HNSW, scope filter, EF_RUNTIME per query): 0.946 at EF_RUNTIME 64 at 1,000,000, FLOAT32
  and FLOAT16 alike.
So ef grows in proportion past 256,000 entries, reaching 256 at a million; below that the configured
value (SEMCACHE_HNSW_EF_RUNTIME, 64 by default) stands, and a wider setting is never narrowed.
"""

from __future__ import annotations

#: ef grows with a graph past this many entries per unit of ef (see ``ef_for``).
ENTRIES_PER_EF = 1_000_000 // 256


def ef_for(entries: int, configured: int) -> int:
    """The breadth of a search in a graph of ``entries`` entries, given the configured ef."""
    return max(configured, entries // ENTRIES_PER_EF)
