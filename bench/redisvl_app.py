"""The comparison point for bench/server.py: RedisVL's SemanticCache behind a minimal FastAPI route.

Same bundled model (through RedisVL's HFTextVectorizer), same Redis, same threshold and request shape as
our /cache/check. Run as ``python -m uvicorn bench.redisvl_app:app`` with REDIS_URL and BENCH_INDEX set.
Bench-only: RedisVL is never a dependency of engine/.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from redisvl.extensions.cache.llm import SemanticCache
from redisvl.utils.vectorize import HFTextVectorizer

from engine.embeddings.sentence_transformers import bundled_model_path

THRESHOLD = float(os.environ.get("BENCH_THRESHOLD", "0.15"))

vectorizer = HFTextVectorizer(
    model=bundled_model_path("all-MiniLM-L6-v2") or "sentence-transformers/all-MiniLM-L6-v2"
)
cache = SemanticCache(
    name=os.environ.get("BENCH_INDEX", "redisvl_bench"),
    distance_threshold=THRESHOLD,
    vectorizer=vectorizer,
    redis_url=os.environ["REDIS_URL"],
    overwrite=True,
)
app = FastAPI()


class Check(BaseModel):
    prompt: str
    threshold: float | None = None


class Store(BaseModel):
    prompt: str
    response: str


@app.post("/cache/check")
def check(body: Check) -> dict[str, Any]:
    hits = cache.check(prompt=body.prompt, num_results=5, distance_threshold=body.threshold)
    return {"prompt": body.prompt, "is_hit": bool(hits), "matches": hits}


@app.post("/cache/store")
def store(body: Store) -> dict[str, Any]:
    return {
        "success": True,
        "key": cache.store(prompt=body.prompt, response=body.response),
        "message": "stored",
    }


@app.delete("/cache/clear")
def clear() -> dict[str, Any]:
    cache.clear()
    return {"success": True}


@app.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "alive"}
