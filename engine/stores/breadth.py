"""How wide an HNSW search looks, in both stores: one rule, with the reach measured for each kind of graph.

An HNSW search keeps the ``ef`` best candidates it has seen while it walks the graph. A fixed ef finds the
nearest entry less often as the graph grows, so past a graph's reach (entries per unit of ef) the breadth
grows in proportion to its size; below that the configured value (SEMCACHE_HNSW_EF_RUNTIME, 64 by default)
stands, and a wider setting is never narrowed. How far a unit of ef reaches depends on how densely the
graph is linked (its connectivity M), so the reach is measured per M.

Measured with bench/million.py's data (QQP question vectors with synthetic neighbours, QQP paraphrases as
queries, recall@1 against exact search, three disjoint sets of 1,000 queries), at 1,000,000 entries:
- embedded store (usearch int8 inner-product graphs built on one thread, float32 re-rank of 15
  candidates), graph search alone, p50 on 2 cores:
  - M 16: ef 128 recall@1 0.974-0.977 (0.33 ms), 192 0.984-0.992 (0.46 ms), 256 0.986-0.995 (0.59 ms):
    it levels off under 0.99 for some query sets, however wide the search;
  - M 20: ef 96 0.995-0.997 (0.30 ms), 128 0.995-0.999 (0.36 ms), 256 0.999 (0.65 ms);
  - M 24 (the embedded store's default): ef 96 0.998 on every set (0.32 ms), 128 0.999 (0.39 ms), 256
    0.999-1.000 (0.68 ms). Built in 538 s against 505 s for M 16; the graph file 596 MB against 532 MB.
    On three more sets, later and on a busier machine: ef 96 0.994-1.000 (0.49-0.51 ms), 128 0.995-1.000
    (0.57-0.62 ms).
  So an M 24 graph reaches twice as far per unit of ef: 128 at a million (96 would leave less margin);
- Redis (RediSearch HNSW, scope filter, EF_RUNTIME per query), measured at M 16 only: 0.946 at
  EF_RUNTIME 64 at 1,000,000, FLOAT32 and FLOAT16 alike; FLOAT16 at 256: 0.993. A Redis index takes M 16's
  reach whatever its M (wider than an M above 16 needs, never narrower than measured).
"""

from __future__ import annotations

#: Entries per unit of ef, by the connectivity M of a usearch graph it was measured on (see above).
USEARCH_REACH = {16: 1_000_000 // 256, 24: 1_000_000 // 128}
#: Entries per unit of ef for a RediSearch index (measured at M 16, see above).
REDIS_REACH = 1_000_000 // 256


def usearch_reach(m: int) -> int:
    """The reach measured for the densest usearch graph not denser than ``m`` (M 16's below 16: never
    measured there, and no narrower than that is known to work)."""
    measured = [known for known in USEARCH_REACH if known <= m]
    return USEARCH_REACH[max(measured) if measured else min(USEARCH_REACH)]


def ef_for(entries: int, configured: int, reach: int) -> int:
    """The breadth of a search in a graph of ``entries`` entries, given the configured ef and the graph's
    reach (entries per unit of ef)."""
    return max(configured, entries // reach)
