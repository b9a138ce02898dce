"""Published weights through models/hub.py, against an HTTP server on loopback standing in
for download.pytorch.org (OPTBENCH_WEIGHTS_URL) and a private torch.hub cache (TORCH_HOME):
a verified download is cached and not fetched again, a corrupt one is refused and leaves
nothing, an unreachable or silent server or an offline switch falls back in one line."""

from __future__ import annotations

import hashlib
import http.server
import io
import logging
import os
import socket
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from optbench.models import build_model, check_model, hub, resolve_model

torch = pytest.importorskip("torch")


class Server:
    """http.server on 127.0.0.1 (port 0) in a thread, serving `root`, counting GETs."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def state_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def publish(root: Path, stem: str, data: bytes, named_for: bytes | None = None) -> str:
    """Put `data` on the server as torchvision names it: `<stem>-<sha256[:8]>.pth` (of
    `named_for`, to publish bytes that do not match their name)."""
    name = f"{stem}-{hashlib.sha256(named_for or data).hexdigest()[:8]}.pth"
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / name).write_bytes(data)
    return name


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A running server and a private torch.hub cache; the suite's offline switch unset."""
    root = tmp_path / "site"
    root.mkdir()
    server = Server(root)
    for name in hub.OFFLINE_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv(hub.URL_ENV, server.url)
    for name in ("no_proxy", "NO_PROXY"):  # a proxy in the environment must not get 127.0.0.1
        monkeypatch.setenv(name, "*")
    monkeypatch.setattr(hub, "_noticed", set())
    server.root = root
    yield server
    server.stop()


def cache_files(tmp_path: Path) -> list[str]:
    directory = tmp_path / "torch-home" / "hub" / "checkpoints"
    return sorted(os.listdir(directory)) if directory.is_dir() else []


def test_download_is_verified_cached_and_not_repeated(site, tmp_path):
    data = state_bytes({"w": torch.arange(6.0).reshape(2, 3)})
    name = publish(site.root, "tiny", data)
    assert hub.checkpoint_dir() == tmp_path / "torch-home" / "hub" / "checkpoints"

    found = hub.locate({name: "tiny weights"}, fetch=True)
    assert found.downloaded and found.path == hub.checkpoint_dir() / name
    assert found.path.read_bytes() == data and cache_files(tmp_path) == [name]
    assert site.requests == [f"/models/{name}"]
    assert hub.verify(found.path) == hashlib.sha256(data).hexdigest()

    again = hub.locate({name: "tiny weights"}, fetch=True)
    assert again.path == found.path and not again.downloaded
    # torch.hub itself finds the same file in the same cache and does not fetch it either
    state = torch.hub.load_state_dict_from_url(site.url + name, check_hash=True,
                                               weights_only=True, progress=False)
    assert torch.equal(state["w"], torch.arange(6.0).reshape(2, 3))
    assert len(site.requests) == 1


def test_a_corrupt_download_is_refused_and_nothing_is_cached(site, tmp_path):
    data = state_bytes({"w": torch.ones(4)})
    corrupt = bytearray(data)
    corrupt[-10] ^= 0xFF  # bytes changed after naming
    name = publish(site.root, "tiny", bytes(corrupt), named_for=data)

    with pytest.raises(hub.ChecksumError, match=f"{name} from .*sha256 .* does not start "
                                                f"with {name[5:13]}.*nothing was cached"):
        hub.locate([name], fetch=True)
    assert len(site.requests) == 1 and cache_files(tmp_path) == []  # no file, no .partial
    with pytest.raises(hub.ChecksumError):  # and it is tried again, not remembered as good
        hub.download(name)
    assert len(site.requests) == 2 and cache_files(tmp_path) == []


def test_a_damaged_cached_file_is_refused(site, tmp_path):
    data = state_bytes({"w": torch.ones(4)})
    name = f"tiny-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    hub.checkpoint_dir().mkdir(parents=True)
    (hub.checkpoint_dir() / name).write_bytes(data[:-1])
    with pytest.raises(hub.ChecksumError, match="delete it"):
        hub.locate([name], fetch=True)
    assert site.requests == []


def card_file(tmp_path: Path, name: str, num_outputs: int = 10) -> Path:
    path = tmp_path / "resnet-test.yaml"
    path.write_text(f"name: resnet-test\nbuilder: optbench.models.resnet:build_resnet50\n"
                    f"input_shape: [3, 64, 64]\nnum_outputs: {num_outputs}\n"
                    f"checkpoints:\n  {name}: test ImageNet weights\n")
    return path


def notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "not available" in r.getMessage()]


def test_server_down_falls_back_with_one_notice(site, tmp_path, caplog):
    name = publish(site.root, "tiny", b"never served")
    site.stop()  # nothing listens on the port any more: connection refused
    card = resolve_model(str(card_file(tmp_path, name)))
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        check_model(card)  # the parent's pre-sweep step
        check_model(card)  # a second look says nothing more
    assert time.monotonic() - start < 5
    [line] = notices(caplog)
    assert line.startswith("resnet-test: test ImageNet weights not available (none in ")
    assert "download failed: " + site.url + name in line
    assert "using a seeded random init" in line and "pass --weights FILE" in line
    assert cache_files(tmp_path) == []


def test_a_silent_server_times_out_within_seconds(site, tmp_path, monkeypatch):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    try:
        monkeypatch.setenv(hub.URL_ENV, f"http://127.0.0.1:{listener.getsockname()[1]}/")
        start = time.monotonic()
        found = hub.locate(["tiny-0123abcd.pth"], fetch=True, timeout=0.5)
        assert time.monotonic() - start < 5
    finally:
        listener.close()
    assert found.path is None and "timed out" in found.reason
    assert cache_files(tmp_path) == []


@pytest.mark.parametrize("switch", ["OPTBENCH_OFFLINE", "HF_HUB_OFFLINE"])
def test_an_offline_switch_reads_the_cache_and_never_downloads(site, tmp_path, monkeypatch,
                                                               switch, caplog):
    data = state_bytes({"w": torch.ones(2)})
    name = publish(site.root, "tiny", data)
    monkeypatch.setenv(switch, "1")
    with caplog.at_level(logging.WARNING):
        check_model(resolve_model(str(card_file(tmp_path, name))))
    assert site.requests == []
    [line] = notices(caplog)
    assert f"{switch}=1 allows no download" in line
    hub.checkpoint_dir().mkdir(parents=True)
    (hub.checkpoint_dir() / name).write_bytes(data)
    assert hub.locate([name], fetch=True).path == hub.checkpoint_dir() / name
    assert site.requests == []


def test_user_weights_skip_the_download(site, tmp_path, caplog):
    name = publish(site.root, "tiny", b"x")
    with caplog.at_level(logging.WARNING):
        check_model(resolve_model(str(card_file(tmp_path, name))), weights="given.pth")
    assert site.requests == [] and notices(caplog) == []


def test_resnet_build_uses_the_weights_the_parent_downloaded(site, tmp_path, monkeypatch):
    from optbench.models.resnet import resnet50

    torch.manual_seed(123)
    state = resnet50(10).state_dict()
    data = state_bytes(state)
    name = publish(site.root, "resnet50test", data)
    card = resolve_model(str(card_file(tmp_path, name)))

    check_model(card)  # parent: downloads into torch.hub's cache
    assert cache_files(tmp_path) == [name] and len(site.requests) == 1
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a worker, as run/netguard.py leaves it
    artifact = build_model(card.ref, None, tmp_path / "cache")
    assert artifact.weights_trained and len(site.requests) == 1
    assert artifact.weights.startswith(f"test ImageNet weights: {hub.checkpoint_dir() / name}")
    assert artifact.info["weights_sha256"] == hashlib.sha256(data).hexdigest()
    assert artifact.info["weights_file"] == str(hub.checkpoint_dir() / name)
    loaded = artifact.module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
