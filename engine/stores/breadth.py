"""How wide an HNSW search looks, in both stores: one rule, measured at a million entries on each.

An HNSW search keeps the ``ef`` best candidates it has seen while it walks the graph. A fixed ef finds the
nearest entry less often as the graph grows, so the breadth grows in proportion to the graph's size past
256,000 entries, reaching 256 at a million; below that the configured value (SEMCACHE_HNSW_EF_RUNTIME,
64 by default) stands, and a wider setting is never narrowed.

Measured with bench/million.py (QQP question vectors with synthetic neighbours, 1,000 QQP paraphrases as
queries, recall@1 against exact search):
- embedded store (usearch int8 inner-product graphs built on one thread, float32 re-rank of 15
  candidates): ef 64 gives recall@1 1.000 up to 300,000 entries; at 1,000,000, ef 64 0.943, 128 0.977,
  192 0.992, 224 0.994, 256 0.995; the store's search (reopened from its snapshot, 2 cores, three
  interleaved rounds of the same 1,000 queries, so with their rows cached: compare the breadths, not the
  absolute figures) takes p50 0.72-0.78 ms at ef 192, 0.82-0.87 ms at 224 and 0.88-1.00 ms at 256. But
  another 1,000 paraphrases found their nearest at ef 224 only 0.985 of the time (bench/million.py, each
  pass its own queries), so the embedded store needs 256 too;
- Redis (RediSearch HNSW, scope filter, EF_RUNTIME per query): 0.946 at EF_RUNTIME 64 at 1,000,000, FLOAT32
  and FLOAT16 alike; FLOAT16 at 256: 0.993.
"""

from __future__ import annotations

#: ef grows with a graph past this many entries per unit of ef (see ``ef_for``).
ENTRIES_PER_EF = 1_000_000 // 256


def ef_for(entries: int, configured: int) -> int:
    """The breadth of a search in a graph of ``entries`` entries, given the configured ef."""
    return max(configured, entries // ENTRIES_PER_EF)
