"""The options every subcommand takes (before or after its name), and the settings they make."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import Settings


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted before or after the subcommand (``suppress`` keeps a subparser from resetting them).

    The main parser sets every one of them (``None`` when not given), so a handler reads ``args.X``.
    """
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("configuration (overrides the environment and .env)")
    group.add_argument("--store", choices=("local", "redis"), default=default, help="SEMCACHE_STORE")
    group.add_argument("--redis-url", default=default, help="REDIS_URL")
    group.add_argument("--data-dir", default=default, help="SEMCACHE_DATA_DIR")
    group.add_argument("--index-name", default=default, help="CACHE_INDEX_NAME")
    group.add_argument("--threshold", type=float, default=default, help="CACHE_DISTANCE_THRESHOLD (0-2)")
    group.add_argument("--ttl", type=int, default=default, help="CACHE_TTL in seconds")
    group.add_argument("--provider", default=default, help="EMBEDDING_PROVIDER")
    group.add_argument("--model", default=default, help="EMBEDDING_MODEL")
    group.add_argument("--dimension", type=int, default=default, help="EMBEDDING_OUTPUT_DIMENSION")
    group.add_argument("--ollama-url", default=default, help="OLLAMA_BASE_URL")
    group.add_argument(
        "--server", default=default, metavar="URL", help="attach to a running --serve instance"
    )
    group.add_argument("--api-key", default=default, help="API key for --server (or SEMCACHE_API_KEY)")
    group.add_argument(
        "--ca-file", default=default, help="CA file trusted for an https:// --server (SEMCACHE_CA_FILE)"
    )
    group.add_argument(
        "--client-cert", default=default, help="client certificate for --server (SEMCACHE_CLIENT_CERT)"
    )
    group.add_argument("--client-key", default=default, help="its private key (SEMCACHE_CLIENT_KEY)")
    group.add_argument("--read-only", action="store_true", default=default, help="refuse destructive actions")
    group.add_argument("--json", action="store_true", default=default, help="machine-readable output")
    group.add_argument("-q", "--quiet", action="store_true", default=default, help="print only errors")


def add_subcommand_options(parser: argparse.ArgumentParser) -> None:
    add_global_options(parser, suppress=True)


def settings_from_args(args: argparse.Namespace) -> Settings:
    from engine.config import Settings  # here, so that --help and --version answer without loading pydantic

    return Settings.load(
        store=args.store,
        redis_url=args.redis_url,
        data_dir=args.data_dir,
        index_name=args.index_name,
        distance_threshold=args.threshold,
        ttl=args.ttl,
        embedding_provider=args.provider,
        embedding_model=args.model,
        embedding_output_dimension=args.dimension,
        ollama_base_url=args.ollama_url,
        api_key=args.api_key,
        upstream_url=getattr(args, "upstream", None),  # a --serve flag
        ssl_certfile=getattr(args, "ssl_certfile", None),  # --serve flags
        ssl_keyfile=getattr(args, "ssl_keyfile", None),
        ssl_ca_certs=getattr(args, "ssl_ca_certs", None),
        ca_file=args.ca_file,
        client_cert=args.client_cert,
        client_key=args.client_key,
    )
