"""The panel attached to a real ``semcache-tui --serve`` process (embedded store, API key) over HTTP."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import DataTable

from engine.client import RemoteCache
from engine.config import Settings
from semcache_tui.app import SemcacheApp
from semcache_tui.monitor import FrozenProbe
from semcache_tui.screens import NAV
from semcache_tui.screens.dialogs import ConfirmDialog, InputDialog
from semcache_tui.screens.health import HealthScreen
from tests.support.server_process import ServerProcess, _die_with_parent
from tests.tui.conftest import SIZE, screen_text, settle, text_of, wait_for

pytestmark = pytest.mark.slow

API_KEY = "panel-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SEMCACHE_TUI = str(Path(sys.executable).with_name("semcache-tui"))

PAIRS = [
    ("What is the capital of France?", "Paris."),
    ("How many legs does a spider have?", "Eight."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci."),
    ("What is the boiling point of water at sea level?", "100 degrees Celsius."),
]


class TuiServerProcess(ServerProcess):
    """The same helper, but started as users start it: ``semcache-tui --serve``."""

    def start(self) -> TuiServerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [SEMCACHE_TUI, "--serve", "--port", str(self.port), "--workers", str(self.workers)],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        return self


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TuiServerProcess]:
    process = TuiServerProcess(tmp_path_factory.mktemp("tui-serve"), {"SEMCACHE_API_KEY": API_KEY}).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture
def filled(server: TuiServerProcess) -> TuiServerProcess:
    """The server's cache holding PAIRS and nothing else, with one hit and one miss counted."""
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60.0) as http:
        assert http.delete("/cache/clear").status_code == 200
        for prompt, response in PAIRS:
            assert http.post("/cache/store", json={"prompt": prompt, "response": response}).status_code == 200
        assert http.post("/cache/check", json={"prompt": PAIRS[0][0]}).json()["is_hit"] is True
        assert http.post("/cache/check", json={"prompt": "How do I bake bread?"}).json()["is_hit"] is False
    return server


@pytest.fixture
async def remote(filled: TuiServerProcess) -> AsyncIterator[RemoteCache]:
    client = RemoteCache(filled.url, api_key=API_KEY)
    yield client
    await client.close()


def make_remote_app(service: Any, tmp_path: Path, **options: Any) -> SemcacheApp:
    settings = Settings(
        data_dir=tmp_path / "unused", index_name="panel", api_key=options.pop("api_key", None)
    )
    options.setdefault("refresh_interval", 60.0)
    return SemcacheApp(service, settings, probe=FrozenProbe(), close_service=False, **options)


def server_stats(server: TuiServerProcess) -> dict[str, Any]:
    return httpx.get(server.url + "/cache/stats", headers=AUTH, timeout=30).json()  # type: ignore[no-any-return]


def marks(app: Any) -> list[str]:
    table = app.screen.query_one("#results", DataTable)
    return [str(table.get_row_at(i)[3]) for i in range(table.row_count)]


async def test_health_shows_the_servers_numbers_and_embedder(remote: RemoteCache, tmp_path: Path) -> None:
    app = make_remote_app(remote, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, polls=2)
        assert app.started and app.start_error is None
        assert isinstance(app.screen, HealthScreen)
        assert app.target_label == f"remote:{remote.safe_url}"
        stats = app.history.latest.stats  # type: ignore[union-attr]
        assert stats is not None and stats.entries == len(PAIRS)
        assert stats.hits >= 1 and stats.misses >= 1
        cache = text_of(app, "#cache-panel")
        assert "entries" in cache and str(len(PAIRS)) in cache
        assert "hit rate" in cache and "%" in cache
        embedder = text_of(app, "#embedder-panel")
        for expected in ("OK", "sentence-transformers", "all-MiniLM-L6-v2", "384"):
            assert expected in embedder, embedder
        assert app.identity is not None
        assert (app.identity.model, app.identity.dimension) == ("all-MiniLM-L6-v2", 384)
        assert "all-MiniLM-L6-v2" in app.status_message  # "Ready: embedder ..."
        assert "server: OK" in text_of(app, "#other-components")


async def test_where_am_i_at_80_columns(
    remote: RemoteCache, filled: TuiServerProcess, tmp_path: Path
) -> None:
    """Attached to a server, read-only, at 80 columns: the kind, the server's URL, the index it serves and
    READ-ONLY stay on the top line of every screen; the API key never shows."""
    app = make_remote_app(remote, tmp_path, read_only=True, api_key=API_KEY)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.started and remote.index_name == "semantic_cache"
        for item in NAV:
            await pilot.press(item.key)
            await settle(pilot)
            top = screen_text(app).split("\n")[0]
            assert len(top) <= 80, top
            assert item.label in top, (item.label, top)
            assert f" server {filled.url} · semantic_cache READ-ONLY" in top, top
            assert API_KEY not in screen_text(app), item.label


async def test_the_location_names_the_store_behind_the_server_when_there_is_room(
    remote: RemoteCache, filled: TuiServerProcess, tmp_path: Path
) -> None:
    """Wide enough, the top line says which store the server serves from; at 80 columns (above) that is
    given up before the server's URL."""
    app = make_remote_app(remote, tmp_path)
    async with app.run_test(size=(140, 30)) as pilot:
        await settle(pilot)
        top = screen_text(app).split("\n")[0]
        assert f" server (embedded) {filled.url} · semantic_cache" in top, top


async def test_query_lab_marks_and_remarks_remote_results(remote: RemoteCache, tmp_path: Path) -> None:
    app = make_remote_app(remote, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        prompt = "What is the capital of France, please?"
        await pilot.press("3", "slash", *prompt, "enter")
        await wait_for(pilot, lambda: app.screen.prompt == prompt and app.screen.matches)
        lab = app.screen
        assert len(lab.matches) == len(PAIRS)  # nearest first, all of them (k=10 > entries)
        assert lab.matches[0].entry.prompt == "What is the capital of France?"
        distances = [m.distance for m in lab.matches]
        assert distances == sorted(distances)
        assert marks(app)[0] == "SERVED"
        assert lab.candidates[0].score is not None  # judged by the server's verifier
        assert all(mark != "SERVED" for mark in marks(app)[1:])
        searched = lab.matches
        for _ in range(45):
            await pilot.press("minus")
        assert app.lab_threshold < 0.01
        await wait_for(pilot, lambda: lab.judged_at is not None and lab.judged_at[0] < 0.01)
        assert marks(app)[0] == "refused" and lab.candidates[0].reason.startswith("over the distance cap")
        assert lab.matches is searched  # re-marked, not searched again
        await pilot.press("t")
        lab.query_one("#threshold").value = "0.15"
        await pilot.press("enter")
        await wait_for(pilot, lambda: lab.judged_at is not None and lab.judged_at[0] == 0.15)
        assert marks(app)[0] == "SERVED"


async def test_store_and_delete_go_through_the_api(
    remote: RemoteCache, filled: TuiServerProcess, tmp_path: Path
) -> None:
    app = make_remote_app(remote, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "slash", *"Who wrote Hamlet?", "escape", "s")
        assert isinstance(app.screen, InputDialog)
        await pilot.press(*"William Shakespeare.", "enter")
        await wait_for(pilot, lambda: getattr(app.screen, "prompt", "") == "Who wrote Hamlet?")
        await wait_for(pilot, lambda: bool(app.screen.matches))
        top = app.screen.matches[0]
        assert top.entry.response == "William Shakespeare." and top.distance < 0.01
        assert server_stats(filled)["total_entries"] == len(PAIRS) + 1
        stored = httpx.get(filled.url + f"/cache/entries/{top.entry.key}", headers=AUTH, timeout=30)
        assert stored.status_code == 200 and stored.json()["response"] == "William Shakespeare."

        app.screen.query_one("#results", DataTable).move_cursor(row=0)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: "deleted" in app.status_message)
        gone = httpx.get(filled.url + f"/cache/entries/{top.entry.key}", headers=AUTH, timeout=30)
        assert gone.status_code == 404
        assert server_stats(filled)["total_entries"] == len(PAIRS)


async def test_sweep_says_it_is_unavailable_in_remote_mode(remote: RemoteCache, tmp_path: Path) -> None:
    app = make_remote_app(remote, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.embedder is None
        await pilot.press("5")
        await pilot.pause()
        text = " ".join(text_of(app, "#sweep-result").split())
        assert "not available when attached to a server" in text
        await pilot.press("r")
        assert "not available with --server" in app.status_message
        assert app.status_severity == "warning"
        assert app.is_running


async def test_a_wrong_api_key_is_shown_in_place(filled: TuiServerProcess, tmp_path: Path) -> None:
    client = RemoteCache(filled.url, api_key="wrong-" + uuid.uuid4().hex)
    app = make_remote_app(client, tmp_path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert not app.started and app.start_error is not None
            assert "API key missing or wrong" in app.status_message
            assert app.status_severity == "error"
            assert "API key missing or wrong" in " ".join(text_of(app, "#status").split())
            sample = app.history.latest
            assert sample is not None and sample.error is not None and "API key" in sample.error
            assert "API key missing or wrong" in " ".join(text_of(app, "#cache-panel").split())
            assert API_KEY not in app.status_message
            # Still running and usable: move between screens and poll again.
            await pilot.press("2")
            await wait_for(pilot, lambda: app.current_mode == "index")
            app.poll_now()
            await settle(pilot, polls=2)
            assert app.is_running
    finally:
        await client.close()


async def test_apply_threshold_is_refused_with_a_reason(
    remote: RemoteCache, filled: TuiServerProcess, tmp_path: Path
) -> None:
    """Issue 14 item 2: the panel never claims a change it did not make to a server's threshold."""
    app = make_remote_app(remote, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "plus", "plus", "a")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
        assert app.status_message.startswith("Refused:") and "CACHE_DISTANCE_THRESHOLD" in app.status_message
        assert "->" not in app.status_message
        assert server_stats(filled)["threshold"] == pytest.approx(0.40)  # the default cap when verifying


async def test_a_server_stopped_and_restarted_under_the_panel(tmp_path: Path) -> None:
    """Issue 14 item 4: attached to a server that goes away, the cards say what they last knew and when,
    one warning is raised and an action's result meanwhile stays; when the server is back, the warning
    leaves and the cards are current again, without restarting the panel."""
    server = TuiServerProcess(tmp_path / "serve", {"SEMCACHE_API_KEY": API_KEY}).start()
    client = RemoteCache(server.url, api_key=API_KEY)
    try:
        server.wait_ready()
        app = make_remote_app(client, tmp_path, refresh_interval=0.5)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, polls=2)
            assert app.started and "OK" in text_of(app, "#embedder-panel")
            server.stop()
            await wait_for(pilot, lambda: "poll" in app.conditions)
            app.set_status("Entry deleted")
            polls = app.polls
            await wait_for(pilot, lambda: app.polls >= polls + 2)
            assert app.status_message == "Entry deleted"  # the outage's warning did not overwrite it
            embedder = " ".join(text_of(app, "#embedder-panel").split())
            assert "no answer now" in embedder and "OK as of" in embedder, embedder
            assert "no report yet" not in embedder
            server.start()
            server.wait_ready()
            await wait_for(pilot, lambda: "poll" not in app.conditions)
            await wait_for(pilot, lambda: "no answer now" not in text_of(app, "#embedder-panel"))
            assert "OK" in text_of(app, "#embedder-panel")
    finally:
        await client.close()
        server.stop()
