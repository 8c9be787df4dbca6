"""The size check: a spec too big for the machine is refused before any work, a big one goes to disk.

Free space is injected through the check's own interface (``free=``): no test fills a disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from commandline import chatbench

from chatbench import loadgen
from chatbench.errors import ConfigError
from chatbench.loadgen.plan import SKELETON_DTYPE
from chatbench.loadgen.size import (
    GB,
    SKELETON_ROW_BYTES,
    check_seed_space,
    check_space,
    estimate,
)

SCALE100 = loadgen.load_spec("scale100")


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Private run and cache roots (not created: the check must not create them either)."""
    run, cache = tmp_path / "run", tmp_path / "cache"
    monkeypatch.setenv("CHATBENCH_CACHE_DIR", str(cache))
    monkeypatch.delenv("CHATBENCH_RUN_DIR", raising=False)
    return {"run": run, "cache": cache, "disk": cache / "run"}


def _free(table: dict[Path, int]):  # type: ignore[no-untyped-def]
    """An injected free-space figure per root (the longest matching prefix wins)."""

    def free(path: Path) -> int:
        best = max((p for p in table if path == p or p in path.parents), key=lambda p: len(p.parts), default=None)
        return table[best] if best is not None else 10**15

    return free


def test_estimate_grows_with_the_spec_and_matches_the_skeleton_layout() -> None:
    assert SKELETON_DTYPE.itemsize == SKELETON_ROW_BYTES
    small, big = estimate(loadgen.load_spec("release")), estimate(SCALE100)
    assert big.peak > 90 * small.peak  # linear in rows, plus a fixed overhead
    assert 40 * GB < big.database < 70 * GB  # what a 10^8-message history takes on disk here
    assert big.peak == big.database + big.sort_files + big.skeleton


def test_too_big_for_every_root_is_refused_in_one_line_naming_size_free_space_and_fix(
    roots: dict[str, Path],
) -> None:
    from chatbench.provision.paths import run_root_path

    free = _free({run_root_path(): 20 * GB, roots["disk"]: 30 * GB})
    with pytest.raises(ConfigError) as info:
        check_space(SCALE100, backend="local", use_cache=False, free=free)
    message = str(info.value)
    assert "\n" not in message
    for needle in ("about 58.", "messages.count = 100,000,000", "20.0 GB free", "30.0 GB free",
                   "CHATBENCH_RUN_DIR", "lower messages.count"):
        assert needle in message, (needle, message)
    assert not roots["cache"].exists() and not roots["disk"].exists()  # nothing created


def test_too_big_for_tmpfs_goes_to_disk_and_says_so(roots: dict[str, Path]) -> None:
    from chatbench.provision.paths import run_root_path

    free = _free({run_root_path(): 20 * GB, roots["disk"]: 200 * GB})
    placement = check_space(SCALE100, backend="local", use_cache=False, free=free)
    assert placement.run_dir == roots["disk"]
    assert placement.note is not None and "on disk" in placement.note and "20.0 GB free" in placement.note
    # A small spec stays on the default (tmpfs) root, silently.
    small = check_space(loadgen.load_spec("smoke"), backend="local", use_cache=False, free=free)
    assert small.run_dir == run_root_path() and small.note is None
    assert not roots["disk"].exists()


def test_an_explicit_run_dir_is_the_only_candidate(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBENCH_RUN_DIR", str(roots["run"]))
    free = _free({roots["run"]: 10 * GB, roots["disk"]: 500 * GB})
    with pytest.raises(ConfigError, match=r"has 10\.0 GB free; free space, set CHATBENCH_RUN_DIR"):
        check_space(SCALE100, backend="local", use_cache=False, free=free)


def test_the_cache_needs_room_for_a_snapshot_too(roots: dict[str, Path]) -> None:
    from chatbench.provision.paths import run_root_path

    # Cluster on disk beside the cache, same file system: 80 GB hold the cluster but not a copy too.
    free = _free({run_root_path(): 20 * GB, roots["cache"]: 80 * GB})
    with pytest.raises(ConfigError, match=r"seed cache needs .* pass --no-cache"):
        check_space(SCALE100, backend="local", use_cache=True, free=free)
    assert check_space(SCALE100, backend="local", use_cache=False, free=free).run_dir == roots["disk"]


def test_other_backends_need_room_only_for_the_skeleton(roots: dict[str, Path]) -> None:
    from chatbench.provision.paths import run_root_path

    assert check_space(SCALE100, backend="dsn", use_cache=True, free=_free({run_root_path(): 2 * GB})).run_dir is None
    with pytest.raises(ConfigError, match="message skeleton"):
        check_space(SCALE100, backend="container", use_cache=True, free=_free({run_root_path(): GB}))


def test_seed_checks_the_server_it_got(tmp_path: Path) -> None:
    """``seed()`` itself refuses when the running cluster's disk (or the snapshot cache) is too small."""
    spec = loadgen.load_spec("release")
    with pytest.raises(ConfigError, match=r"has 0\.0 GB free"):
        check_seed_space(spec, cluster_dir=tmp_path, snapshot_dir=None, free=lambda _: 10**6)
    with pytest.raises(ConfigError, match="seed cache needs"):
        check_seed_space(spec, cluster_dir=tmp_path, snapshot_dir=tmp_path / "seeds",
                         free=_free({tmp_path: int(1.0 * GB)}))
    check_seed_space(spec, cluster_dir=tmp_path, snapshot_dir=tmp_path / "seeds", free=lambda _: 10 * 10**9)


def test_cli_refuses_an_oversized_count_before_anything_starts(tmp_path: Path) -> None:
    """A real refusal (no injection): 5*10^8 messages need far more than this machine's disk."""
    run, cache = tmp_path / "run", tmp_path / "cache"
    done = chatbench("seed", "--backend", "local", "--profile", "scale", "--set", "messages.count=500000000",
                     env={"PATH": "/usr/bin:/bin", "CHATBENCH_RUN_DIR": str(run), "CHATBENCH_CACHE_DIR": str(cache)},
                     inherit=False, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "messages.count = 500,000,000" in lines[0] and "GB free" in lines[0]
    assert not run.exists() and not cache.exists()  # nothing created
