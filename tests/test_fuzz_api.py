"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis), against a real server process on each
store: the embedded one and the test session's Redis Stack.

Every operation gets ``SEMCACHE_FUZZ_EXAMPLES`` generated requests (default 25; a fixed number, so the run is
bounded: about a minute for both stores on a busy 2-core machine), valid ones and ones that break the
schema. A run fails on any 5xx (the stores are up, so a 503 can only come from the client's parameters),
on any response that breaks the schema's shapes, status codes or content types.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.server_process import ServerProcess  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("SEMCACHE_FUZZ_EXAMPLES", "25"))
API_KEY = "fuzz-key-" + uuid.uuid4().hex
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module", params=["local", "redis"])
def fuzzed_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"SEMCACHE_API_KEY": API_KEY, "CACHE_INDEX_NAME": f"fuzz{uuid.uuid4().hex[:10]}"}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_server").url
    workdir: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    server = ServerProcess(workdir, env).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def api_schema(fuzzed_server: ServerProcess) -> Any:
    loaded = schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")
    # Valid requests and requests that break the schema: both must be answered as the schema says.
    loaded.config.generation.update(modes=list(schemathesis.GenerationMode))
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure in CI is a failure on a laptop
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
def test_the_api_holds_its_contract(case: Any, fuzzed_server: ServerProcess) -> None:
    case.call_and_validate(headers={"X-API-Key": API_KEY}, checks=CHECKS, timeout=60)
