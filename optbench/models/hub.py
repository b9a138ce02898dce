"""Published checkpoints (torchvision's ImageNet weights): found in, or fetched into,
torch.hub's cache, checksum verified.

A card lists the files it accepts (`checkpoints:` in its YAML, file name -> what it is);
torchvision names each `<stem>-<first 8 hex of its sha256>.pth`. Where they live is
torch.hub's: `torch.hub.get_dir()/checkpoints`, that is `$TORCH_HOME/hub/checkpoints`
(`$TORCH_HOME` defaults to `$XDG_CACHE_HOME/torch`, then `~/.cache/torch`), so a file
torchvision or `torch.hub.load_state_dict_from_url` downloaded is found here and the other
way round.

`download` follows `torch.hub.download_url_to_file(url, dst, hash_prefix)`: the bytes go to
a `.partial` file beside the destination, their sha256 is checked against the prefix in the
file name, and only a verified file is renamed into place; a failed or corrupt download
leaves nothing in the cache. It is written out here (about twenty lines) for one thing
torch.hub lacks: a network timeout (`TIMEOUT_S`), so a machine without network falls back
within seconds instead of waiting on TCP.

Downloads happen only before a sweep, in the parent process (`check_model`): the workers
measure with the network refused (run/netguard.py, which also sets HF_HUB_OFFLINE=1) and
only read the cache. Environment:

- `OPTBENCH_WEIGHTS_URL`: a mirror of https://download.pytorch.org/models/ (same file
  names), e.g. an HPC site's internal one; `file://` URLs work too.
- `OPTBENCH_OFFLINE=1` (or `HF_HUB_OFFLINE=1`): never download; the cache is still read.
  optbench's own test suite sets `OPTBENCH_OFFLINE=1`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from optbench.errors import OptbenchError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://download.pytorch.org/models/"
URL_ENV = "OPTBENCH_WEIGHTS_URL"
OFFLINE_ENV = "OPTBENCH_OFFLINE"
OFFLINE_SWITCHES = (OFFLINE_ENV, "HF_HUB_OFFLINE")
TIMEOUT_S = 10.0  # per connect and per read, not for the whole download
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")  # torch.hub.HASH_REGEX
CHUNK = 1 << 20
TRUE = ("1", "true", "yes", "on")


class ChecksumError(OptbenchError):
    """A checkpoint whose sha256 does not start with the prefix in its file name."""


class DownloadFailed(Exception):
    """The download could not be made (no network, no such file on the server, timeout)."""


@dataclass(frozen=True)
class Found:
    """A checkpoint in the cache (`path`), or why there is none (`reason`)."""

    path: Path | None
    reason: str = ""
    downloaded: bool = False


def hub_dir() -> Path:
    """torch.hub's directory: `torch.hub.get_dir()` when torch is already imported (it
    honours `torch.hub.set_dir`), else the same rule without importing torch."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "hub"):
        return Path(torch.hub.get_dir())
    default = os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(os.environ.get("TORCH_HOME", default))) / "hub"


def checkpoint_dir() -> Path:
    return hub_dir() / "checkpoints"


def hash_prefix(name: str) -> str | None:
    """The sha256 prefix a torchvision-style file name carries, as torch.hub reads it."""
    match = HASH_REGEX.search(name)
    return match.group(1) if match and match.group(1) else None


def offline_switch() -> str | None:
    """The switch that forbids downloads ("OPTBENCH_OFFLINE=1"), or None."""
    for name in OFFLINE_SWITCHES:
        if os.environ.get(name, "").strip().lower() in TRUE:
            return f"{name}={os.environ[name]}"
    return None


def url_for(name: str) -> str:
    base = os.environ.get(URL_ENV, "").strip() or DEFAULT_BASE_URL
    return base.rstrip("/") + "/" + name


_digests: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """The file's sha256 (remembered per path, size and mtime within the process)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def verify(path: Path) -> str:
    """The sha256 of a cached checkpoint, checked against the prefix in its name."""
    digest = sha256_file(path)
    prefix = hash_prefix(path.name)
    if prefix and not digest.startswith(prefix):
        raise ChecksumError(f"{path}: sha256 {digest} does not start with {prefix}, the "
                            "checksum its name carries (a damaged or wrong file): delete it "
                            "to download it again, or pass --weights FILE")
    return digest


def find_cached(names: Mapping[str, str] | list[str]) -> Path | None:
    """The first of these checkpoints present in torch.hub's cache."""
    directory = checkpoint_dir()
    for name in names:
        if (directory / name).is_file():
            return directory / name
    return None


def download(name: str, timeout: float = TIMEOUT_S) -> Path:
    """Fetch `name` from the base URL into torch.hub's checkpoint directory, sha256
    verified against the prefix in its name; returns the cached path. Raises
    DownloadFailed when the file cannot be fetched, ChecksumError when its bytes are not
    the published ones; either way nothing is left in the cache."""
    from http.client import HTTPException
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen

    url = url_for(name)
    directory = checkpoint_dir()
    destination = directory / name
    prefix = hash_prefix(name)
    partial = directory / f".{name}.{uuid.uuid4().hex}.partial"
    digest = hashlib.sha256()
    request = Request(url, headers={"User-Agent": "torch.hub"})  # what torch.hub sends
    try:
        try:
            with urlopen(request, timeout=timeout) as response:
                size = response.headers.get("Content-Length")
                log.warning("downloading %s%s from %s into %s (once; sha256 checked)", name,
                            f" ({int(size) / 1e6:.1f} MB)" if size and size.isdigit() else "",
                            url, directory)
                directory.mkdir(parents=True, exist_ok=True)
                with partial.open("xb") as f:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        f.write(block)
                        digest.update(block)
        except HTTPError as exc:  # before URLError, its base: "HTTP Error 404: Not Found"
            raise DownloadFailed(f"{url}: {exc}") from exc
        except URLError as exc:  # no route, name resolution, refused: the reason says which
            raise DownloadFailed(f"{url}: {exc.reason}") from exc
        except (OSError, ValueError, HTTPException) as exc:  # timeouts, resets, truncation,
            # a full disk, a malformed URL
            raise DownloadFailed(f"{url}: {str(exc) or type(exc).__name__}") from exc
        if prefix and not digest.hexdigest().startswith(prefix):
            raise ChecksumError(
                f"{name} from {url}: sha256 {digest.hexdigest()} does not start with "
                f"{prefix}, the checksum its name carries; nothing was cached (check the "
                f"mirror in {URL_ENV}, pass --weights FILE, or set {OFFLINE_ENV}=1 to run "
                "on a random init)")
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)
    stat = destination.stat()
    _digests[(str(destination.resolve()), stat.st_size, stat.st_mtime_ns)] = digest.hexdigest()
    log.info("downloaded %s (sha256 %s)", destination, digest.hexdigest())
    return destination


def locate(names: Mapping[str, str] | list[str], fetch: bool,
           timeout: float = TIMEOUT_S) -> Found:
    """A published checkpoint: in the cache, else (when `fetch` and no offline switch is
    set) downloaded, the first name being the one fetched. None with the reason when
    neither; a ChecksumError (corrupt download or cached file) propagates."""
    names = list(names)
    if not names:
        return Found(None, "the card names no published checkpoint")
    cached = find_cached(names)
    if cached is not None:
        verify(cached)
        return Found(cached)
    where = f"none in {checkpoint_dir()}"
    if not fetch:
        return Found(None, f"{where}; downloads are made before a sweep, not in its runs")
    switch = offline_switch()
    if switch:
        return Found(None, f"{where}, and {switch} allows no download")
    try:
        return Found(download(names[0], timeout), downloaded=True)
    except DownloadFailed as exc:
        return Found(None, f"{where}; download failed: {exc}")


_noticed: set[str] = set()


def notice_random_init(model: str, what: str, reason: str) -> None:
    """The one line that says a model falls back to a random init (`what`: the published
    weights it lacks), once per model and process."""
    if model in _noticed:
        return
    _noticed.add(model)
    log.warning("%s: %s not available (%s); using a seeded random init, quality is "
                "top-1 agreement with the fp32 reference; pass --weights FILE (recipe: "
                "model.weights) to use trained weights", model, what, reason)
