"""Embedders: sentence-transformers (local, the default) and Ollama."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.embeddings.base import Embedder, normalize_rows

if TYPE_CHECKING:
    from engine.config import Settings

__all__ = ["Embedder", "create_embedder", "normalize_rows"]


def create_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name. Nothing heavy is imported or loaded here."""
    if settings.embedding_provider == "ollama":
        from engine.embeddings.ollama import OllamaEmbedder

        return OllamaEmbedder(
            base_url=settings.ollama_base_url,
            model=settings.model_name,
            output_dimension=settings.embedding_output_dimension,
            timeout=settings.embed_timeout,
        )
    from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        model=settings.model_name,
        output_dimension=settings.embedding_output_dimension,
        hf_token=settings.hf_token,
        backend=settings.embedding_backend,
        cache_dir=settings.resolved_model_cache_dir,
    )
