"""Where a profiling suite's data comes from, decided before any model loads.

A suite part asks for data sets (`DataRequest`: the config option, the value the user
gave, and the `DataSource` it falls back to). `resolve` answers, in this order:

1. explicit: the option's value, a file or directory (relative to the working
   directory, then to the data directory) or, when it does not look like a path, a
   Hugging Face dataset id;
2. packaged: the paper's small subsets shipped inside heirloom (`heirloom/data/`,
   listed with sha256 and license in `heirloom/data/profiling_data.json`; a file
   whose checksum differs is an error, never read);
3. data directory: `data_dir` of the profile config, else `$HEIRLOOM_DATA`, laid out
   like the project's shared data (`bbq/<Category>.jsonl`, `alpaca_eval_outputs/...`);
4. hub: the data set's public Hugging Face id.

`check` also proves a hub fallback reachable: offline (`HF_HUB_OFFLINE`/
`HF_DATASETS_OFFLINE`) only a locally cached copy counts, online a metadata request
with a short timeout, so a run without its data fails in seconds. When nothing is
available the one-line error names the suite, every place tried and how to provide
the data. Left out: downloading data sets ahead of time (use the hub's own tools).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ..errors import HeirloomError

ENV = "HEIRLOOM_DATA"
PACKAGE_DIR = Path(str(resources.files("heirloom"))) / "data"  # inside the installed package, never beside it
MANIFEST = "profiling_data.json"
HUB_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HubSource:
    id: str
    subset: str | None = None
    split: str = "test"
    data_files: str | None = None  # one file of the dataset repo, loaded as JSON (repos without a loadable config)

    def describe(self) -> str:
        extra = "/" + self.data_files if self.data_files else (f" ({self.subset})" if self.subset else "")
        return f"hub {self.id}{extra}"


@dataclass(frozen=True)
class DataSource:
    """A data set a suite falls back to when the user names none."""

    name: str  # short name, e.g. "dolly200", "bbq"
    title: str
    layout: str | None = None  # path inside a data directory, e.g. "bbq" or "rtp/rtp_toxic_test_set.json"
    packaged: bool = False  # shipped inside heirloom (an entry of the manifest under `name`)
    hub: HubSource | None = None
    license: str = ""


@dataclass(frozen=True)
class DataRequest:
    suite: str
    option: str  # e.g. "bbq.data", "calibration.datasets[0]"
    explicit: str | None  # what the user set (None: the default source)
    source: DataSource | None  # the default; None when the option has no default
    hub_split: str = "test"  # for an explicit hub id
    hub_subset: str | None = None


@dataclass(frozen=True)
class Resolved:
    request: DataRequest
    kind: Literal["explicit", "packaged", "data_dir", "hub"]
    location: str  # a path, or a hub id
    hub: HubSource | None = None

    @property
    def path(self) -> Path | None:
        return None if self.kind == "hub" else Path(self.location)

    def describe(self) -> str:
        return self.hub.describe() if self.hub else f"{self.kind} {self.location}"

    def as_dict(self) -> dict[str, Any]:
        out = {"option": self.request.option, "kind": self.kind, "location": self.location}
        if self.kind == "packaged":
            out["sha256"] = manifest()[self.request.source.name]["sha256"]
        return out


# --- packaged data ------------------------------------------------------------------
def manifest() -> dict[str, dict[str, Any]]:
    path = PACKAGE_DIR / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise HeirloomError(f"{path}: cannot read the packaged data manifest ({e}); reinstall heirloom") from None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def packaged_path(name: str, verify: bool = True) -> Path:
    """The packaged file of data set `name`, its checksum verified against the manifest."""
    entry = manifest().get(name)
    if entry is None:
        raise HeirloomError(f"no packaged data set {name!r} in {PACKAGE_DIR / MANIFEST}")
    path = PACKAGE_DIR / entry["file"]
    if not path.is_file():
        raise HeirloomError(f"{path}: packaged data file missing; reinstall heirloom")
    if verify:
        got = sha256(path)
        if got != entry["sha256"]:
            raise HeirloomError(f"{path}: checksum mismatch (sha256 {got[:16]}..., manifest says "
                                f"{entry['sha256'][:16]}...): the file is damaged or was edited; reinstall heirloom")
    return path


# --- resolution ---------------------------------------------------------------------
def data_dir(configured: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """(the data directory, where it was named) from the config, else $HEIRLOOM_DATA."""
    if configured:
        return Path(configured).expanduser(), "data_dir"
    env = os.environ.get(ENV, "").strip()
    return (Path(env).expanduser(), f"${ENV}") if env else (None, "")


def _looks_like_path(text: str) -> bool:
    from ..tables import FORMATS

    # hub ids are "name" or "owner/name"; anything else with a file suffix or more slashes is a path
    return Path(text).suffix.lower() in FORMATS or text.startswith((".", "/", "~")) or text.count("/") > 1


def resolve(request: DataRequest, configured_dir: str | os.PathLike | None = None) -> Resolved:
    """Where `request`'s data comes from right now (see the module docstring for the order)."""
    root, named_by = data_dir(configured_dir)
    tried: list[str] = []
    if request.explicit:
        path = Path(request.explicit).expanduser()
        candidates = [path] + ([root / path] if root and not path.is_absolute() else [])
        for p in candidates:
            if p.exists():
                return Resolved(request, "explicit", str(p))
        if _looks_like_path(request.explicit):
            where = f" (nor under the data directory {root})" if root and not path.is_absolute() else ""
            raise HeirloomError(f"{request.option}: {request.explicit}: no such file{where}")
        return Resolved(request, "hub", request.explicit,
                        HubSource(request.explicit, request.hub_subset, request.hub_split))
    src = request.source
    if src is None:
        raise HeirloomError(f"{request.suite} suite: {request.option} is not set and has no default")
    if src.packaged:
        return Resolved(request, "packaged", str(PACKAGE_DIR / manifest()[src.name]["file"]))
    if src.layout:
        if root is None:
            tried.append(f"a data directory (data_dir / ${ENV} not set)")
        elif (root / src.layout).exists():
            return Resolved(request, "data_dir", str(root / src.layout))
        else:
            tried.append(f"{root / src.layout} (from {named_by}): not there")
    if src.hub:
        return Resolved(request, "hub", src.hub.id, src.hub)
    raise missing(request, tried)


def missing(request: DataRequest, tried: list[str], hub_reason: str = "") -> HeirloomError:
    src = request.source
    places = list(tried) + ([f"{src.hub.describe()}: {hub_reason}"] if src and src.hub and hub_reason else [])
    layout = f"a data directory holding {src.layout}" if src and src.layout else "a data directory"
    return HeirloomError(f"{request.suite} suite: no {src.title if src else 'data'} for {request.option}; tried "
                         f"{'; '.join(places) or 'nothing'}. Provide it: set {request.option} to a file, or name "
                         f"{layout} with --data-dir, data_dir in the config or ${ENV}")


def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_unavailable(hub: HubSource) -> str:
    """Why `hub` cannot be loaded now ('' when it can): fast, never a download."""
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        return "huggingface_hub is not installed"
    if hub_offline():
        try:
            snapshot_download(hub.id, repo_type="dataset", local_files_only=True)
            return ""
        except Exception:  # any "not cached" flavour
            return "offline (HF_HUB_OFFLINE) and not in the local Hugging Face cache"
    try:
        HfApi().dataset_info(hub.id, timeout=HUB_TIMEOUT_S)
        return ""
    except Exception as e:  # unreachable, missing, gated: many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"unreachable ({first[:120]})"


def check(request: DataRequest, configured_dir: str | os.PathLike | None = None) -> Resolved:
    """`resolve`, then prove the answer usable: checksum of packaged data, reachability of the hub."""
    res = resolve(request, configured_dir)
    if res.kind == "packaged":
        packaged_path(request.source.name)
    elif res.kind == "hub":
        reason = hub_unavailable(res.hub)
        if reason:
            if request.explicit:
                raise HeirloomError(f"{request.option}: {request.explicit!r} is neither a file nor a reachable hub "
                                    f"dataset ({reason})")
            root, named_by = data_dir(configured_dir)
            tried = [f"a data directory (data_dir / ${ENV} not set)" if root is None else
                     f"{root / request.source.layout} (from {named_by}): not there"] if request.source.layout else []
            raise missing(request, tried, reason)
    return res


# --- loading ------------------------------------------------------------------------
def load_hub(hub: HubSource, option: str):
    """A hub dataset as a `datasets.Dataset`; failures are one-line errors naming the option."""
    try:
        import datasets

        if hub.data_files:
            return datasets.load_dataset("json", data_files=f"hf://datasets/{hub.id}/{hub.data_files}",
                                         split="train")
        return datasets.load_dataset(hub.id, hub.subset, split=hub.split)
    except Exception as e:  # offline, missing, gated: the hub raises many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HeirloomError(f"{option}: cannot load {hub.describe()} ({first})") from None


def read_rows(request: DataRequest, configured_dir: str | os.PathLike | None = None):
    """The rows of the resolved file or hub dataset, as a DataFrame."""
    from ..tables import read_table

    res = resolve(request, configured_dir)
    if res.kind == "hub":
        return load_hub(res.hub, request.option).to_pandas()
    path = packaged_path(request.source.name) if res.kind == "packaged" else res.path
    if path.is_dir():
        raise HeirloomError(f"{request.option}: {path} is a directory (expected a data file)")
    return read_table(path)
