"""Settings: the seed service's environment variables and defaults, plus ours.

Read from the environment and a ``.env`` file; command-line flags override both (``Settings.load``).
A bad value raises ``ConfigError`` naming the variable, the value and what is allowed.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import platformdirs
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.errors import ConfigError
from engine.redact import encode_credentials, redact_url

PROVIDERS = ("sentence-transformers", "ollama")
#: An index name (CACHE_INDEX_NAME): the one rule, for the settings and for every store.
INDEX_NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
INDEX_NAME_RULE = "1-64 letters, digits, '_', '-' or '.', not only dots"
STORES = ("local", "redis")
DEFAULT_MODELS = {"sentence-transformers": "all-MiniLM-L6-v2", "ollama": "embeddinggemma"}
#: CACHE_DISTANCE_THRESHOLD's default when the verifier decides: a retrieval cap, loose enough to reach
#: paraphrases ("What is X?" / "Can you explain X?" sit at 0.2-0.35), measured in
#: engine/verification/MODEL_CARD.md (engine.verification.evaluate.DEFAULT_CAP is the same number).
VERIFIED_DISTANCE_CAP = 0.40
#: CACHE_DISTANCE_THRESHOLD's default with SEMCACHE_VERIFY=off: the seed's static threshold.
PLAIN_DISTANCE_THRESHOLD = 0.15
TARGET_PRECISION_RANGE = (0.5, 0.999)

# What each variable allows, said once, so the error for a bad value and the documentation agree.
ALLOWED: dict[str, str] = {
    "CACHE_DISTANCE_THRESHOLD": "must be a cosine distance between 0 and 2 (lower is stricter)",
    "SEMCACHE_VERIFY": "must be on or off (true/false, 1/0)",
    "SEMCACHE_TARGET_PRECISION": (
        f"must be a precision from {TARGET_PRECISION_RANGE[0]} to {TARGET_PRECISION_RANGE[1]}, e.g. 0.95"
    ),
    "SEMCACHE_VERIFIER_PATH": "must be the path of a verifier weights file (.npz) beside its .json manifest",
    "CACHE_TTL": "must be a whole number of seconds, 0 or more (0 keeps entries forever)",
    "CACHE_INDEX_NAME": f"must be {INDEX_NAME_RULE}",
    "EMBEDDING_OUTPUT_DIMENSION": "must be a whole number from 1 up to the model's own dimension",
    "EMBEDDING_PROVIDER": "must be one of: " + ", ".join(PROVIDERS),
    "SEMCACHE_STORE": "must be one of: " + ", ".join(STORES),
    "SEMCACHE_DATA_DIR": "must be a folder this user can create, read and write",
    "OLLAMA_BASE_URL": "must be an http:// or https:// URL",
    "REDIS_URL": "must be a redis://, rediss:// or unix:// URL, or "
    "redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]",
    "REDIS_SENTINELS": "must be a comma-separated list of Sentinel host:port, given with REDIS_SENTINEL_MASTER "
    "and without REDIS_URL",
    "REDIS_SENTINEL_MASTER": "must be the service (master) name the Sentinels monitor, given with REDIS_SENTINELS",
    "SEMCACHE_REDIS_WAIT_REPLICAS": "must be a whole number of replicas, 0 or more (0 turns WAIT off)",
    "SEMCACHE_REDIS_WAIT_TIMEOUT": "must be a number of seconds greater than 0",
    "SEMCACHE_HNSW_M": "must be a whole number from 2 to 512",
    "SEMCACHE_HNSW_EF_CONSTRUCTION": "must be a whole number from 1 to 4096",
    "SEMCACHE_HNSW_EF_RUNTIME": "must be a whole number from 1 to 4096",
    "SEMCACHE_RERANK_COPIES": "must be on or off (true/false, 1/0)",
    "SEMCACHE_MAX_PROMPT_CHARS": "must be a whole number of characters, 1 or more",
    "SEMCACHE_EMBED_TIMEOUT": "must be a number of seconds greater than 0",
    "SEMCACHE_RATE_LIMIT": "must be a number of requests per second per client, 0 or more (0 turns it off)",
    "SEMCACHE_RATE_LIMIT_BURST": "must be a whole number of requests, 1 or more",
    "SEMCACHE_CORS_ORIGINS": "must be a comma-separated list of origins (https://example.com) or *",
    "SEMCACHE_MAX_BODY_BYTES": "must be a whole number of bytes, 1024 or more",
    "SEMCACHE_PURGE_INTERVAL": "must be a number of seconds greater than 0",
    "SEMCACHE_UPSTREAM_URL": "must be an http:// or https:// base URL of an OpenAI-compatible API (e.g. .../v1)",
    "SEMCACHE_UPSTREAM_TIMEOUT": "must be a number of seconds greater than 0",
    "SEMCACHE_PROXY_MAX_TEMPERATURE": "must be a temperature, 0 or more (unset: no ceiling)",
    "SEMCACHE_SSL_CERTFILE": "must be a readable PEM certificate (chain) matching SEMCACHE_SSL_KEYFILE",
    "SEMCACHE_SSL_KEYFILE": "must be a readable PEM private key, given with SEMCACHE_SSL_CERTFILE",
    "SEMCACHE_SSL_CA_CERTS": "must be a readable PEM file of the CA(s) that sign client certificates",
    "SEMCACHE_CA_FILE": "must be a readable PEM file of the CA(s) that sign the server's certificate",
    "REDIS_TLS_CA_FILE": "must be a readable PEM file of the CA(s) that sign Redis's certificate",
    "REDIS_TLS_CERT_FILE": "must be a readable PEM client certificate, given with REDIS_TLS_KEY_FILE",
    "REDIS_TLS_KEY_FILE": "must be a readable PEM private key, given with REDIS_TLS_CERT_FILE",
    "SEMCACHE_MAX_ENTRIES": "must be a whole number of entries, 0 or more (0: no limit)",
    "SEMCACHE_MAX_ENTRIES_PER_SCOPE": "must be a whole number of entries, 0 or more (0: no limit)",
    "SEMCACHE_EVICTION_POLICY": "must be one of: lru, lfu, ttl",
    "SEMCACHE_VECTOR_TYPE": "must be one of: float32, float16",
}


def _env(*names: str) -> Any:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL", "redis_url"))
    redis_password: str | None = Field(
        None, validation_alias=_env("REDIS_PASSWORD", "redis_password"), repr=False
    )
    # High availability (engine/stores/redis/connection.py): Sentinel, and writes confirmed by replicas.
    redis_sentinels: str | None = Field(None, validation_alias=_env("REDIS_SENTINELS", "redis_sentinels"))
    redis_sentinel_master: str | None = Field(
        None, validation_alias=_env("REDIS_SENTINEL_MASTER", "redis_sentinel_master")
    )
    redis_sentinel_password: str | None = Field(
        None, validation_alias=_env("REDIS_SENTINEL_PASSWORD", "redis_sentinel_password"), repr=False
    )
    redis_wait_replicas: int = Field(
        0, validation_alias=_env("SEMCACHE_REDIS_WAIT_REPLICAS", "redis_wait_replicas"), ge=0
    )
    redis_wait_timeout: float = Field(
        1.0, validation_alias=_env("SEMCACHE_REDIS_WAIT_TIMEOUT", "redis_wait_timeout"), gt=0
    )
    # Not given: derived from SEMCACHE_VERIFY (``default_distance_threshold``), filled in by ``_derive``.
    distance_threshold: float = Field(
        PLAIN_DISTANCE_THRESHOLD,
        validation_alias=_env("CACHE_DISTANCE_THRESHOLD", "distance_threshold"),
        ge=0.0,
        le=2.0,
    )
    ttl: int = Field(604800, validation_alias=_env("CACHE_TTL", "ttl"), ge=0)
    index_name: str = Field(
        "semantic_cache",
        validation_alias=_env("CACHE_INDEX_NAME", "index_name"),
        pattern=INDEX_NAME_PATTERN,
    )
    embedding_provider: Literal["sentence-transformers", "ollama"] = Field(
        "sentence-transformers", validation_alias=_env("EMBEDDING_PROVIDER", "embedding_provider")
    )
    embedding_model: str | None = Field(None, validation_alias=_env("EMBEDDING_MODEL", "embedding_model"))
    embedding_output_dimension: int | None = Field(
        None, validation_alias=_env("EMBEDDING_OUTPUT_DIMENSION", "embedding_output_dimension"), ge=1
    )
    embedding_backend: Literal["auto", "torch", "onnx"] = Field(
        "auto", validation_alias=_env("EMBEDDING_BACKEND", "embedding_backend")
    )
    model_cache_dir: Path | None = Field(
        None, validation_alias=_env("SEMCACHE_MODEL_CACHE_DIR", "model_cache_dir")
    )
    ollama_base_url: str = Field(
        "http://localhost:11434", validation_alias=_env("OLLAMA_BASE_URL", "ollama_base_url")
    )
    hf_token: str | None = Field(None, validation_alias=_env("HF_TOKEN", "hf_token"), repr=False)
    store: Literal["local", "redis"] | None = Field(None, validation_alias=_env("SEMCACHE_STORE", "store"))
    data_dir: Path | None = Field(None, validation_alias=_env("SEMCACHE_DATA_DIR", "data_dir"))
    backup_dir: Path | None = Field(None, validation_alias=_env("SEMCACHE_BACKUP_DIR", "backup_dir"))
    extend_ttl_on_hit: bool = Field(
        False, validation_alias=_env("SEMCACHE_EXTEND_TTL_ON_HIT", "extend_ttl_on_hit")
    )
    verify_candidates: bool = Field(True, validation_alias=_env("SEMCACHE_VERIFY", "verify_candidates"))
    # None: the shipped verifier's own default (its manifest's ``default_target_precision``).
    target_precision: float | None = Field(
        None,
        validation_alias=_env("SEMCACHE_TARGET_PRECISION", "target_precision"),
        ge=TARGET_PRECISION_RANGE[0],
        le=TARGET_PRECISION_RANGE[1],
    )
    # None: the weights shipped with the package (engine/verification/data/verifier.npz).
    verifier_path: Path | None = Field(None, validation_alias=_env("SEMCACHE_VERIFIER_PATH", "verifier_path"))
    api_key: str | None = Field(None, validation_alias=_env("SEMCACHE_API_KEY", "api_key"), repr=False)
    # None: each store's own default (LocalStore.DEFAULT_M, RedisStore.DEFAULT_M; breadth.py says why they differ).
    hnsw_m: int | None = Field(None, validation_alias=_env("SEMCACHE_HNSW_M", "hnsw_m"), ge=2, le=512)
    hnsw_ef_construction: int = Field(
        200, validation_alias=_env("SEMCACHE_HNSW_EF_CONSTRUCTION", "hnsw_ef_construction"), ge=1, le=4096
    )
    hnsw_ef_runtime: int = Field(
        64, validation_alias=_env("SEMCACHE_HNSW_EF_RUNTIME", "hnsw_ef_runtime"), ge=1, le=4096
    )
    # The embedded store's float16 copies of the vectors in memory (engine/stores/local/copies.py).
    rerank_copies: bool = Field(True, validation_alias=_env("SEMCACHE_RERANK_COPIES", "rerank_copies"))
    max_prompt_chars: int = Field(
        32768, validation_alias=_env("SEMCACHE_MAX_PROMPT_CHARS", "max_prompt_chars"), ge=1
    )
    embed_timeout: float = Field(30.0, validation_alias=_env("SEMCACHE_EMBED_TIMEOUT", "embed_timeout"), gt=0)
    # The HTTP server (engine/server): rate limiting is off unless a rate is given; CORS is off unless
    # origins are given.
    rate_limit: float = Field(0.0, validation_alias=_env("SEMCACHE_RATE_LIMIT", "rate_limit"), ge=0)
    rate_limit_burst: int | None = Field(
        None, validation_alias=_env("SEMCACHE_RATE_LIMIT_BURST", "rate_limit_burst"), ge=1
    )
    cors_origins: str | None = Field(None, validation_alias=_env("SEMCACHE_CORS_ORIGINS", "cors_origins"))
    max_body_bytes: int = Field(
        4 * 1024 * 1024, validation_alias=_env("SEMCACHE_MAX_BODY_BYTES", "max_body_bytes"), ge=1024
    )
    follow_interval: float = Field(
        5.0, validation_alias=_env("SEMCACHE_FOLLOW_INTERVAL", "follow_interval"), ge=0
    )
    purge_interval: float = Field(
        60.0, validation_alias=_env("SEMCACHE_PURGE_INTERVAL", "purge_interval"), gt=0
    )
    shutdown_grace: float = Field(
        30.0, validation_alias=_env("SEMCACHE_SHUTDOWN_GRACE", "shutdown_grace"), ge=0
    )

    # Capacity (engine/stores/base.py Capacity): a full index evicts by the policy before it grows past
    # the limit. lru is the default: a cache's worth is its recent hits, and lru needs no tuning.
    max_entries: int = Field(0, validation_alias=_env("SEMCACHE_MAX_ENTRIES", "max_entries"), ge=0)
    max_entries_per_scope: int = Field(
        0, validation_alias=_env("SEMCACHE_MAX_ENTRIES_PER_SCOPE", "max_entries_per_scope"), ge=0
    )
    eviction_policy: Literal["lru", "lfu", "ttl"] = Field(
        "lru", validation_alias=_env("SEMCACHE_EVICTION_POLICY", "eviction_policy")
    )
    # How a new Redis index stores its vectors; an existing index keeps the type it was created with.
    vector_type: Literal["float32", "float16"] = Field(
        "float32", validation_alias=_env("SEMCACHE_VECTOR_TYPE", "vector_type")
    )

    # The OpenAI-compatible caching proxy (engine/proxy): mounted only when an upstream is configured.
    upstream_url: str | None = Field(None, validation_alias=_env("SEMCACHE_UPSTREAM_URL", "upstream_url"))
    upstream_timeout: float = Field(
        600.0, validation_alias=_env("SEMCACHE_UPSTREAM_TIMEOUT", "upstream_timeout"), gt=0
    )
    proxy_max_temperature: float | None = Field(
        None, validation_alias=_env("SEMCACHE_PROXY_MAX_TEMPERATURE", "proxy_max_temperature"), ge=0
    )
    proxy_store_length: bool = Field(
        False, validation_alias=_env("SEMCACHE_PROXY_STORE_LENGTH", "proxy_store_length")
    )
    proxy_store_tool_calls: bool = Field(
        False, validation_alias=_env("SEMCACHE_PROXY_STORE_TOOL_CALLS", "proxy_store_tool_calls")
    )

    # TLS for the HTTP server (engine/server/runner.py); with a CA, clients must present a certificate.
    ssl_certfile: Path | None = Field(None, validation_alias=_env("SEMCACHE_SSL_CERTFILE", "ssl_certfile"))
    ssl_keyfile: Path | None = Field(None, validation_alias=_env("SEMCACHE_SSL_KEYFILE", "ssl_keyfile"))
    ssl_ca_certs: Path | None = Field(None, validation_alias=_env("SEMCACHE_SSL_CA_CERTS", "ssl_ca_certs"))
    # Attaching to a server (--server https://...) whose certificate a private CA signed.
    ca_file: Path | None = Field(None, validation_alias=_env("SEMCACHE_CA_FILE", "ca_file"))
    client_cert: Path | None = Field(None, validation_alias=_env("SEMCACHE_CLIENT_CERT", "client_cert"))
    client_key: Path | None = Field(None, validation_alias=_env("SEMCACHE_CLIENT_KEY", "client_key"))
    # TLS to Redis (a rediss:// REDIS_URL): the CA that signed Redis's certificate, and a client
    # certificate when Redis requires one (tls-auth-clients).
    redis_tls_ca_file: Path | None = Field(
        None, validation_alias=_env("REDIS_TLS_CA_FILE", "redis_tls_ca_file")
    )
    redis_tls_cert_file: Path | None = Field(
        None, validation_alias=_env("REDIS_TLS_CERT_FILE", "redis_tls_cert_file")
    )
    redis_tls_key_file: Path | None = Field(
        None, validation_alias=_env("REDIS_TLS_KEY_FILE", "redis_tls_key_file")
    )

    @field_validator("upstream_url")
    @classmethod
    def _upstream_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("not an http url")
        return value.rstrip("/")

    @field_validator("ollama_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("not an http url")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if value.startswith("redis+sentinel://"):
            from engine.stores.redis.connection import parse_sentinel_url

            parse_sentinel_url(encode_credentials(value))  # a ValueError names what is wrong
        elif not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("not a redis url")
        return encode_credentials(value)

    @model_validator(mode="after")
    def _sentinels_as_url(self) -> Settings:
        """REDIS_SENTINELS + REDIS_SENTINEL_MASTER become the one ``redis+sentinel://`` URL every client
        is made from; giving REDIS_URL too would leave two answers to "which Redis", so it is refused."""
        sentinels, master = (self.redis_sentinels or "").strip(), (self.redis_sentinel_master or "").strip()
        if not sentinels and not master:
            return self
        if not sentinels or not master:
            variable = "REDIS_SENTINEL_MASTER" if sentinels else "REDIS_SENTINELS"
            raise ConfigError(variable, "(unset)", ALLOWED[variable])
        if self.redis_url:
            raise ConfigError("REDIS_SENTINELS", sentinels, ALLOWED["REDIS_SENTINELS"])
        from engine.stores.redis.connection import sentinel_url

        try:
            self.redis_url = sentinel_url(sentinels, master)
        except ValueError:
            raise ConfigError("REDIS_SENTINELS", sentinels, ALLOWED["REDIS_SENTINELS"]) from None
        return self

    @field_validator(
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_ca_certs",
        "ca_file",
        "client_cert",
        "client_key",
        "redis_tls_ca_file",
        "redis_tls_cert_file",
        "redis_tls_key_file",
        mode="before",
    )
    @classmethod
    def _blank_path_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("embedding_model", "hf_token", "redis_password", "api_key", "redis_sentinel_password")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _redis_tls_files_in_url(self) -> Settings:
        """The Redis TLS files travel in REDIS_URL's query (redis-py reads ``ssl_ca_certs``, ``ssl_certfile``
        and ``ssl_keyfile`` there), so every Redis client semcache opens uses them; ``load`` refuses them
        with a plain ``redis://`` URL."""
        files = self.redis_tls_query()
        if files and self.redis_url and self.redis_url.startswith("rediss://"):
            parts = urlsplit(self.redis_url)
            query = dict(parse_qsl(parts.query)) | files
            self.redis_url = urlunsplit(parts._replace(query=urlencode(query, safe="/")))
        return self

    def redis_tls_query(self) -> dict[str, str]:
        given = {
            "ssl_ca_certs": self.redis_tls_ca_file,
            "ssl_certfile": self.redis_tls_cert_file,
            "ssl_keyfile": self.redis_tls_key_file,
        }
        return {name: str(path) for name, path in given.items() if path is not None}

    def check_redis_tls(self) -> None:
        given = {
            "REDIS_TLS_CA_FILE": self.redis_tls_ca_file,
            "REDIS_TLS_CERT_FILE": self.redis_tls_cert_file,
            "REDIS_TLS_KEY_FILE": self.redis_tls_key_file,
        }
        for variable, path in given.items():
            if path is None:
                continue
            if not (self.redis_url or "").startswith("rediss://"):
                raise ConfigError(variable, path, "needs a rediss:// REDIS_URL (TLS to Redis)")
            if not os.access(path, os.R_OK) or not path.is_file():
                raise ConfigError(variable, path, "cannot be read; " + ALLOWED[variable])
        if (self.redis_tls_cert_file is None) != (self.redis_tls_key_file is None):
            missing = "REDIS_TLS_KEY_FILE" if self.redis_tls_key_file is None else "REDIS_TLS_CERT_FILE"
            raise ConfigError(missing, "(unset)", ALLOWED[missing])

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if "distance_threshold" not in self.model_fields_set:
            self.distance_threshold = default_distance_threshold(self.verify_candidates)
        return self

    # -- derived values: one home for each default that depends on another setting ---------------------

    @property
    def store_kind(self) -> str:
        """``local`` unless a Redis URL is configured or the store is named explicitly."""
        if self.store:
            return self.store
        return "redis" if self.redis_url else "local"

    @property
    def model_name(self) -> str:
        return self.embedding_model or DEFAULT_MODELS[self.embedding_provider]

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir or Path(platformdirs.user_data_dir("semcache", appauthor=False))

    @property
    def resolved_model_cache_dir(self) -> Path:
        """``SEMCACHE_MODEL_CACHE_DIR``, else the user's cache folder: models exported for ONNX Runtime."""
        from engine.embeddings.onnx_runtime import default_cache_dir

        return (self.model_cache_dir or default_cache_dir()).expanduser()

    @property
    def resolved_backup_dir(self) -> Path:
        """``SEMCACHE_BACKUP_DIR``, else ``backups`` inside the data folder."""
        return (self.backup_dir or self.resolved_data_dir / "backups").expanduser()

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in (self.cors_origins or "").split(",") if origin.strip()]

    @property
    def safe_redis_url(self) -> str:
        return redact_url(self.redis_url) if self.redis_url else ""

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Environment, then ``.env``, then ``overrides`` (command-line flags; ``None`` means not given)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            settings = cls(**given)
        except ValidationError as exc:
            raise _config_error(exc, given) from None
        settings.check_data_dir()
        settings.check_redis_tls()
        return settings

    def check_data_dir(self) -> None:
        if self.store_kind != "local":
            return
        path = self.resolved_data_dir
        try:
            path.mkdir(parents=True, exist_ok=True)
            # A name of its own: replicas sharing the folder probe it at the same moment, and one's unlink
            # of a shared name made the other's fail (seen when two servers started together).
            probe = path / f".semcache-write-probe-{os.getpid()}-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            raise ConfigError("SEMCACHE_DATA_DIR", path, ALLOWED["SEMCACHE_DATA_DIR"]) from None
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise ConfigError("SEMCACHE_DATA_DIR", path, ALLOWED["SEMCACHE_DATA_DIR"])


def default_distance_threshold(verify: bool) -> float:
    """CACHE_DISTANCE_THRESHOLD when not given: the verifier's retrieval cap when it decides, else the
    seed's static threshold (SEMCACHE_VERIFY=off)."""
    return VERIFIED_DISTANCE_CAP if verify else PLAIN_DISTANCE_THRESHOLD


def valid_index_name(physical: str) -> bool:
    """``physical`` is an index name, or one with the ``__vN`` suffix of a migration (engine/index_pointer.py)."""
    base = re.sub(r"__v\d+$", "", physical)
    # Only dots would name the folder itself or its parent in the embedded store's data folder.
    return re.match(INDEX_NAME_PATTERN, base) is not None and base.strip(".") != ""


def _variable_for(field_name: str) -> str:
    info = Settings.model_fields[field_name]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        return str(first)
    return field_name.upper()


def _config_error(exc: ValidationError, given: dict[str, Any]) -> ConfigError:
    first = exc.errors()[0]
    loc = str(first["loc"][0]) if first["loc"] else ""
    field_name = next(
        (
            name
            for name in Settings.model_fields
            if loc in (name, _variable_for(name), _variable_for(name).lower())
        ),
        loc,
    )
    variable = _variable_for(field_name) if field_name in Settings.model_fields else loc.upper()
    value = first.get("input")
    if variable in ("REDIS_URL",) and isinstance(value, str):
        value = redact_url(value)
    if variable in ("REDIS_PASSWORD", "HF_TOKEN", "SEMCACHE_API_KEY", "REDIS_SENTINEL_PASSWORD"):
        value = "***"
    allowed = ALLOWED.get(variable, first.get("msg", "is not allowed"))
    return ConfigError(variable, value, allowed)
