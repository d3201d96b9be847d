"""The push stream: layer states, the digest, 'nothing transferred', error classes."""

from __future__ import annotations

import pytest

from deployctl.services.pipeline.push_log import PushLog, classify

DIGEST = "sha256:" + "a" * 64


def feed(log: PushLog, chunks):
    return [line for chunk in chunks if (line := log.feed(chunk))]


def test_first_push_counts_transferred_layers_and_reads_the_digest():
    log = PushLog()
    lines = feed(log, [
        {"status": "The push refers to repository [127.0.0.1:5000/x/api]"},
        {"status": "Preparing", "progressDetail": {}, "id": "l1"},
        {"status": "Preparing", "progressDetail": {}, "id": "l2"},
        {"status": "Pushing", "progressDetail": {"current": 512, "total": 2048}, "id": "l1"},
        {"status": "Pushing", "progressDetail": {"current": 1024, "total": 2048}, "id": "l1"},
        {"status": "Pushed", "progressDetail": {}, "id": "l1"},
        {"status": "Layer already exists", "progressDetail": {}, "id": "l2"},
        {"status": "t1: digest: " + DIGEST + " size: 739"},
        {"progressDetail": {}, "aux": {"Tag": "t1", "Digest": DIGEST, "Size": 739}},
    ])
    # One line per state change, not one per byte-count update.
    assert lines == ["l1: Preparing", "l2: Preparing", "l1: Pushing", "l1: Pushed", "l2: Layer already exists"]
    assert (log.digest, log.error) == (DIGEST, None)
    assert (log.transferred, log.already_there, log.done) == (1, 1, 2)
    assert log.summary() == "1 layers pushed, 1 already in the registry"


def test_second_push_transfers_nothing_and_says_so():
    log = PushLog()
    feed(log, [
        {"status": "Layer already exists", "id": "l1"},
        {"status": "Mounted from x/other", "id": "l2"},
        {"aux": {"Tag": "t1", "Digest": DIGEST, "Size": 1}},
    ])
    assert log.transferred == 0
    assert log.summary() == "already in the registry, nothing transferred (2 layers exist)"


def test_error_chunk():
    log = PushLog()
    feed(log, [{"status": "Preparing", "id": "l1"},
               {"errorDetail": {"message": "unauthorized: authentication required"},
                "error": "unauthorized: authentication required"}])
    assert (log.error, log.digest) == ("unauthorized: authentication required", None)


@pytest.mark.parametrize("message, kind", [
    ("unauthorized: authentication required", "refused"),
    ("login attempt to http://127.0.0.1:5000/v2/ failed with status: 401 Unauthorized", "refused"),
    ("denied: requested access to the resource is denied", "refused"),
    ('Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused', "unreachable"),
    ("Get https://nope.invalid/v2/: dial tcp: lookup nope.invalid: no such host", "unreachable"),
    ("manifest invalid: manifest invalid", "failed"),
])
def test_classify(message, kind):
    assert classify(message) == kind
