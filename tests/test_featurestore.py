"""Feature store: round trip, replace/delete/compact, config mismatch, and crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from artdb.core.errors import ConfigError, ModelMismatchError
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.store import FeatureStore, FeatureStoreError, store_bytes

# A small config keeps records tiny: 2 excerpts x 8 mels x 26 frames.
SMALL = FrontendConfig(excerpts_per_track=2, n_mels=8, excerpt_seconds=0.5, min_track_seconds=0.5)


def feats_for(ids, config=SMALL) -> np.ndarray:
    """Deterministic features per id, so any process can check what it reads."""
    ids = np.asarray(ids, dtype=np.int64)
    base = np.arange(np.prod(config.feature_shape), dtype=np.float32).reshape(config.feature_shape)
    return ((base[None] % 97) / 16 + ids[:, None, None, None] % 1000).astype(np.float16)


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "features-é"


def test_round_trip(store_dir):
    ids = [7, 3, 2**40, -5]
    with FeatureStore.open(store_dir, SMALL) as store:
        store.put_many(ids, feats_for(ids))
        assert len(store) == 4
        assert 3 in store and 4 not in store and "3" not in store
        np.testing.assert_array_equal(store.get(2**40), feats_for([2**40])[0])
        got = store.get_many([-5, 7, 3])
        assert got.dtype == np.float16 and got.shape == (3, *SMALL.feature_shape)
        np.testing.assert_array_equal(got, feats_for([-5, 7, 3]))
        np.testing.assert_array_equal(store.ids(), np.sort(np.asarray(ids, dtype=np.int64)))
        assert store.get_many([]).shape == (0, *SMALL.feature_shape)
        with pytest.raises(KeyError, match="track 4 "):
            store.get(4)
        with pytest.raises(KeyError, match="4, 5"):
            store.get_many([3, 4, 5])
    # Reopened, as a writer and as a reader.
    with FeatureStore.open(store_dir, SMALL) as store:
        np.testing.assert_array_equal(store.get_many(ids), feats_for(ids))
    with FeatureStore.open(store_dir, mode="r") as reader:
        assert reader.config == SMALL
        np.testing.assert_array_equal(reader.get_many(ids), feats_for(ids))
        with pytest.raises(FeatureStoreError, match="read-only"):
            reader.put_many([1], feats_for([1]))


def test_bytes_per_track_defaults():
    cfg = FrontendConfig()
    assert cfg.feature_shape == (6, 96, 151)
    assert cfg.bytes_per_track == 6 * 96 * 151 * 2 == 173_952
    assert store_bytes(10_000_000, cfg) == 10_000_000 * (173_952 + 16)


def test_replace_delete_and_compact(store_dir):
    with FeatureStore.open(store_dir, SMALL) as store:
        store.put_many([1, 2, 3], feats_for([1, 2, 3]))
        store.put(2, feats_for([202])[0])  # re-ingested changed file
        np.testing.assert_array_equal(store.get(2), feats_for([202])[0])
        assert len(store) == 3
        assert store.delete([1, 99, 1]) == 1
        assert 1 not in store and len(store) == 2
        reader = FeatureStore.open(store_dir, mode="r")
        assert len(reader) == 2
        reclaimed = store.compact()
        assert reclaimed == 2 * SMALL.bytes_per_track + 3 * 16  # 2 dead records, 5-2 entries
        np.testing.assert_array_equal(store.get_many([2, 3]), feats_for([202, 3]))
        # A reader opened before compaction still reads its snapshot, then moves over.
        np.testing.assert_array_equal(reader.get(3), feats_for([3])[0])
        reader.refresh()
        np.testing.assert_array_equal(reader.get_many([3, 2]), feats_for([3, 202]))
        reader.close()
        store.put_many([4], feats_for([4]))
    with FeatureStore.open(store_dir, SMALL) as store:
        assert store.ids().tolist() == [2, 3, 4]
        assert sorted(p.name for p in store_dir.glob("data.*")) == ["data.1.f16"]


def test_many_updates_merge_overlay(store_dir, monkeypatch):
    monkeypatch.setattr("artdb.core.features.store._MERGE_THRESHOLD", 5)
    with FeatureStore.open(store_dir, SMALL) as store:
        for i in range(12):
            store.put_many([i, i + 100], feats_for([i, i + 100]))
        store.delete(range(0, 12, 2))
        assert len(store) == 18
        expect = sorted([i for i in range(12) if i % 2] + [i + 100 for i in range(12)])
        assert store.ids().tolist() == expect
        np.testing.assert_array_equal(store.get_many(expect), feats_for(expect))


def test_config_mismatch_refused(store_dir):
    FeatureStore.open(store_dir, SMALL).close()
    other = FrontendConfig(**{**SMALL.to_dict(), "n_mels": 16})
    with pytest.raises(ModelMismatchError, match="n_mels: 8 != 16"):
        FeatureStore.open(store_dir, other)
    # A store written by another front-end algorithm version is refused too.
    header = store_dir / "frontend.json"
    data = json.loads(header.read_text())
    data["fingerprint"] = "0" * 16
    header.write_text(json.dumps(data))
    with pytest.raises(ModelMismatchError, match="algorithm version"):
        FeatureStore.open(store_dir, SMALL, mode="r")


def test_wrong_shape_and_new_store_without_config(store_dir):
    with pytest.raises(ConfigError, match="needs a FrontendConfig"):
        FeatureStore.open(store_dir)
    with FeatureStore.open(store_dir, SMALL) as store:
        with pytest.raises(ConfigError, match="do not fit"):
            store.put_many([1], np.zeros((1, 3, 8, 26), np.float16))


def test_single_writer(store_dir):
    with FeatureStore.open(store_dir, SMALL):
        with pytest.raises(FeatureStoreError, match="this process already writes"):
            FeatureStore.open(store_dir, SMALL)
        FeatureStore.open(store_dir, SMALL, mode="r").close()  # readers are fine


def _hold_writer(directory, ready, release):
    with FeatureStore.open(directory, SMALL):
        ready.set()
        release.wait(60)


@pytest.fixture
def other_writer(store_dir):
    """Another process holding the writer lock; ``release()`` makes it let go."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # the child only opens the store: no torch, no DB
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_writer, args=(store_dir, ready, release))
    holder.start()
    assert ready.wait(60)
    holder.release = release.set
    yield holder
    release.set()
    holder.join(30)


def test_second_writer_waits_for_the_lock_and_says_for_whom(store_dir, other_writer, caplog):
    """A second writer waits (naming the holder once) instead of failing at once."""
    import logging
    import threading

    threading.Timer(1.0, other_writer.release).start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="artdb.core.features.store"):
        with FeatureStore.open(store_dir, SMALL, lock_timeout=60) as store:
            store.put_many([1], feats_for([1]))
    assert time.monotonic() - started >= 0.9
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(waits) == 1
    assert f"waiting for another artdb process (pid {other_writer.pid}) writing this home" in waits[0]


def _open_as_spawned_worker(directory, out):
    try:
        FeatureStore.open(directory, SMALL, lock_timeout=0.2)
    except FeatureStoreError as exc:
        out.put(str(exc))
    else:
        out.put("opened")


def test_spawned_worker_waiting_on_its_parents_lock_is_told_why(store_dir):
    """A multiprocessing (spawn) worker that opens the store its parent writes — a script re-run by
    spawn without a __main__ guard does exactly that — is told the holder is its parent."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    with FeatureStore.open(store_dir, SMALL):
        child = ctx.Process(target=_open_as_spawned_worker, args=(store_dir, out))
        child.start()
        message = out.get(timeout=120)
        child.join(60)
    assert f"pid {os.getpid()}, the multiprocessing parent of this worker" in message
    assert "if __name__ == '__main__':" in message


def test_second_writer_gives_up_after_its_timeout(store_dir, other_writer):
    started = time.monotonic()
    with pytest.raises(FeatureStoreError, match=rf"another artdb process \(pid {other_writer.pid}\) is "
                                                r"writing this feature store; gave up after waiting"):
        FeatureStore.open(store_dir, SMALL, lock_timeout=0.5)
    assert 0.4 <= time.monotonic() - started < 10
    with pytest.raises(FeatureStoreError, match="ARTDB_LOCK_TIMEOUT"):
        FeatureStore.open(store_dir, SMALL, lock_timeout=0.1)


def test_forked_child_does_not_keep_the_writer_lock(store_dir):
    """A child forked while the store is open (a pool worker) holds no copy of the lock: once the
    writer closes the store, another writer gets it although the child still lives (after the
    moment the child needs to close its inherited descriptor, hence a short wait)."""
    import multiprocessing

    store = FeatureStore.open(store_dir, SMALL)
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    child.start()
    try:
        store.close()
        FeatureStore.open(store_dir, SMALL, lock_timeout=10).close()
        assert child.is_alive()
    finally:
        child.kill()
        child.join()


def test_writer_removes_temporary_files_of_a_killed_writer(store_dir):
    with FeatureStore.open(store_dir, SMALL) as store:
        store.put_many([1], feats_for([1]))
    (store_dir / "commit.json.tmp").write_text("{")  # a writer killed inside an atomic write
    with FeatureStore.open(store_dir, mode="r") as reader:  # readers never touch it
        assert reader.ids().tolist() == [1]
    assert (store_dir / "commit.json.tmp").exists()
    with FeatureStore.open(store_dir, SMALL) as store:
        assert store.ids().tolist() == [1]
    assert list(store_dir.glob("*.tmp")) == []


def test_torn_tail_is_ignored_then_truncated(store_dir):
    with FeatureStore.open(store_dir, SMALL) as store:
        store.put_many([1, 2], feats_for([1, 2]))
    # A writer killed mid-append: half a record and a partial index entry past the commit.
    with open(store_dir / "data.0.f16", "ab") as f:
        f.write(b"\x01" * (SMALL.bytes_per_track // 2))
    with open(store_dir / "index.0.i64", "ab") as f:
        f.write(np.array([3, 2], np.int64).tobytes()[:12])
    with FeatureStore.open(store_dir, mode="r") as reader:
        assert reader.ids().tolist() == [1, 2]
    with FeatureStore.open(store_dir, SMALL) as store:
        assert (store_dir / "data.0.f16").stat().st_size == 2 * SMALL.bytes_per_track
        store.put_many([3], feats_for([3]))
        np.testing.assert_array_equal(store.get_many([1, 2, 3]), feats_for([1, 2, 3]))


def test_crash_before_commit_leaves_nothing_visible(store_dir, monkeypatch):
    with FeatureStore.open(store_dir, SMALL) as store:
        store.put_many([1], feats_for([1]))

        def die(*args):
            raise KeyboardInterrupt  # stands for the process dying between fsync and commit

        monkeypatch.setattr(store, "_write_commit", die)
        with pytest.raises(KeyboardInterrupt):
            store.put_many([2, 3], feats_for([2, 3]))
    monkeypatch.undo()
    with FeatureStore.open(store_dir, SMALL) as store:
        assert store.ids().tolist() == [1]
        store.put_many([2, 3], feats_for([2, 3]))  # the rerun completes it
        np.testing.assert_array_equal(store.get_many([1, 2, 3]), feats_for([1, 2, 3]))


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_featurestore import SMALL, feats_for
    from artdb.core.features.store import FeatureStore
    store = FeatureStore.open({path!r}, SMALL)
    for start in range(0, 1_000_000, 10):
        ids = [i for i in range(start, start + 10) if i not in store]
        if ids:
            store.put_many(ids, feats_for(ids))
        if start == 50:
            print("ready", flush=True)
        if start >= {stop}:
            break
    print("done", flush=True)
    """
)


def test_sigkill_mid_append_leaves_readable_store(store_dir):
    tests = os.path.dirname(__file__)
    script = WRITER.format(tests=tests, path=str(store_dir), stop=10**9)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with FeatureStore.open(store_dir, mode="r") as reader:
        ids = reader.ids()
        assert len(ids) >= 60 and len(ids) % 10 == 0  # whole batches only
        assert ids.tolist() == list(range(len(ids)))
        np.testing.assert_array_equal(reader.get_many(ids), feats_for(ids))
    # Rerun: it skips what is stored and completes the rest.
    stop = int(len(ids)) + 30
    script = WRITER.format(tests=tests, path=str(store_dir), stop=stop)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with FeatureStore.open(store_dir, SMALL) as store:
        ids = store.ids()
        assert ids.tolist() == list(range(stop + 10))
        np.testing.assert_array_equal(store.get_many(ids), feats_for(ids))
