"""Both storage backends against the same cases; S3 is a real SeaweedFS server on loopback."""

from __future__ import annotations

import threading
from pathlib import Path

import boto3
import pytest

from sd1job.store import InvalidKeyError, LocalStore, MissingObjectError, S3Store, Store, StoreError, open_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/some/prefix")


def test_write_read_exists_list_delete(store: Store) -> None:
    assert not store.exists("a/b.bin")
    store.write_bytes("a/b.bin", b"\x00\x01payload")
    store.write_text("a/c/d.txt", "hello")
    store.write_json("e.json", {"x": [1, 2]})
    assert store.exists("a/b.bin")
    assert store.read_bytes("a/b.bin") == b"\x00\x01payload"
    assert store.read_text("a/c/d.txt") == "hello"
    assert store.read_json("e.json") == {"x": [1, 2]}
    assert store.list() == ["a/b.bin", "a/c/d.txt", "e.json"]
    assert store.list("a") == ["a/b.bin", "a/c/d.txt"]
    assert store.list("a/c") == ["a/c/d.txt"]
    assert store.list("nothing") == []
    store.delete("a/b.bin")
    assert not store.exists("a/b.bin")
    store.delete_prefix("a")
    assert store.list() == ["e.json"]


def test_overwrite_replaces_whole_object(store: Store) -> None:
    store.write_bytes("k", b"x" * 1000)
    store.write_bytes("k", b"short")
    assert store.read_bytes("k") == b"short"


def test_missing_object_names_it(store: Store) -> None:
    with pytest.raises(MissingObjectError) as caught:
        store.read_bytes("no/such.wav")
    assert "no/such.wav" in str(caught.value)


@pytest.mark.parametrize("key", ["../up", "a/../../b", "/abs", "a//b", "./a", "", "a\\b"])
def test_keys_cannot_escape(store: Store, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        store.write_bytes(key, b"x")
    with pytest.raises(InvalidKeyError):
        store.read_bytes(key)


def test_local_symlink_cannot_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "store"
    root.mkdir()
    (root / "link").symlink_to(outside)
    store = LocalStore(root)
    with pytest.raises(InvalidKeyError, match="outside the store"):
        store.write_bytes("link/x", b"x")
    assert not (outside / "x").exists()


def test_local_write_is_atomic_under_concurrent_readers(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    big, small = b"A" * 3_000_000, b"B" * 1_000
    store.write_bytes("obj", small)
    seen = {big: 0, small: 0}
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                data = store.read_bytes("obj")
                assert data in seen, f"a reader saw a torn object of {len(data)} bytes"
                seen[data] += 1
        except BaseException as error:  # an exception in a thread is otherwise lost: hand it to the test
            failures.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(30):
        store.write_bytes("obj", big)
        store.write_bytes("obj", small)
    stop.set()
    thread.join()
    if failures:
        raise failures[0]
    # The reader really ran alongside the writer: it saw both versions.
    assert seen[big] and seen[small], f"the reader saw big {seen[big]} and small {seen[small]} times"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_s3_multipart_object_round_trips(s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}")
    payload = bytes(range(256)) * (40 * 1024 * 4)  # 40 MiB: above the multipart threshold
    store.write_bytes("big.bin", payload)
    assert store.read_bytes("big.bin") == payload


def test_s3_wrong_key_is_refused(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = open_store(f"s3://{s3_bucket}")
    with pytest.raises(StoreError) as caught:
        store.write_bytes("x", b"x")
    assert "SignatureDoesNotMatch" in str(caught.value) or "AccessDenied" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


def test_s3_missing_bucket_is_clear(s3_env: dict[str, str]) -> None:
    store = open_store("s3://no-such-bucket-here")
    with pytest.raises(StoreError, match="no-such-bucket-here"):
        store.read_bytes("x")


def test_s3_store_lists_only_its_prefix(s3_bucket: str) -> None:
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="other/thing", Body=b"1")
    store = S3Store(s3_bucket, "mine")
    store.write_bytes("a", b"2")
    assert store.list() == ["a"]
    assert store.url("a") == f"s3://{s3_bucket}/mine/a"


def test_open_store_schemes(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    with pytest.raises(StoreError, match="unknown scheme"):
        open_store("gs://bucket")


def test_weed_ports_never_clash_with_each_others_grpc_twins() -> None:
    """weed refuses a port that is another service's port + 10000 (seen once in CI as a failed start)."""
    from scripts.services import WEED_GRPC_OFFSET, weed_ports

    for _ in range(50):
        s3 = weed_ports(1)[0]
        ports = [s3, *weed_ports(3, taken=(s3,))]
        twins = [p + WEED_GRPC_OFFSET for p in ports]
        assert len(set(ports) | set(twins)) == 8 and max(twins) <= 65535
