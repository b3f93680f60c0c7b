"""`fs serve` end to end: a real `fs serve` process on a free 127.0.0.1 port, queried over HTTP.

Oracles: hits against brute-force cosine search over the stored features (queries encoded by
the tiny model loaded in the test process), rows and classes against the files written,
thumbnails against the original images, errors against the requests' faults.
"""
from __future__ import annotations

import io
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from featurestore.server.listener import exposure_warning, is_loopback, open_listener, url_of
from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.images import random_image_bytes
from tests.serve_server import BIG_IMAGE, CLASSES, TAR_LABELS, UNREADABLE, make_served_store, running_server


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_checkpoint):
    data = make_served_store(tmp_path_factory.mktemp("serve"), tiny_checkpoint)
    with running_server(data["store"], data["encoder"]) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield {**data, "client": client, "url": url}


def stored(data, split):
    """(normalized features, ids, labels) of a split's valid rows, read from the store."""
    with FeatureStore(data["store"]) as reader:
        X = reader.features(data["encoder"], split)
        return X / np.linalg.norm(X, axis=1, keepdims=True), list(reader.ids(split)), reader.labels(split)


def brute_force(X, ids, query, k, keep=None):
    q = np.asarray(query, dtype=np.float64).ravel()
    scores = X @ (q / np.linalg.norm(q))
    order = [i for i in np.argsort(-scores, kind="stable") if keep is None or keep[i]][:k]
    return [ids[i] for i in order], scores[order]


def ok_json(response):
    assert response.status_code == 200, response.text
    return response.json()


def test_info_lists_splits_rows_classes_and_unreadable_rows(served):
    info = ok_json(served["client"].get("/api/info"))
    assert info["encoder"] == served["encoder"] and info["encoders"] == [served["encoder"]]
    assert info["text_queries"] is True and info["skipped_splits"] == []
    splits = {s["name"]: s for s in info["splits"]}
    assert sorted(splits) == ["shards", "train"]
    train = splits["train"]
    n_good = sum(CLASSES.values()) + 1
    assert (train["rows"], train["valid"], train["indexed"]) == (n_good + len(UNREADABLE), n_good, n_good)
    expected_counts = {**CLASSES, "emu": CLASSES["emu"] + 1}
    assert train["classes"] == [{"name": c, "rows": expected_counts[c]} for c in sorted(CLASSES)]
    bad = train["unreadable"]
    assert bad["count"] == 2 and not bad["truncated"]
    assert sorted(r["id"] for r in bad["rows"]) == sorted(UNREADABLE)
    for row in bad["rows"]:
        assert row["reason"] and row["path"] == str(served["train_root"] / row["id"])
    shards = splits["shards"]
    assert shards["classes"] is None and shards["rows"] == len(TAR_LABELS) and shards["unreadable"]["count"] == 0


def test_text_search_matches_brute_force(served, tiny_encoder):
    X, ids, labels = stored(served, "train")
    text = "a photo of a dog"
    answer = ok_json(served["client"].get("/api/search", params={"query": text, "k": 5, "split": "train"}))
    expected_ids, expected_scores = brute_force(X, ids, tiny_encoder.encode_texts([text]), 5)
    assert [h["id"] for h in answer["hits"]] == expected_ids
    np.testing.assert_allclose([h["score"] for h in answer["hits"]], expected_scores, atol=1e-5)
    assert answer["query"] == {"text": text} and answer["warnings"] == [] and answer["took_ms"] > 0
    for hit in answer["hits"]:
        class_name = hit["id"].split("/")[0]
        assert hit["class"] == class_name and hit["label"] == sorted(CLASSES).index(class_name)
    # the same text again (its embedding now cached), filtered to one class
    again = ok_json(served["client"].get("/api/search", params={"query": text, "k": 2, "class": "cat",
                                                                  "split": "train"}))
    cat = sorted(CLASSES).index("cat")
    expected_ids, _ = brute_force(X, ids, tiny_encoder.encode_texts([text]), 2, keep=labels == cat)
    assert [h["id"] for h in again["hits"]] == expected_ids


def test_id_search_with_class_filter_matches_brute_force(served):
    X, ids, labels = stored(served, "train")
    query_id = "cat/1.jpg"
    dog = sorted(CLASSES).index("dog")
    answer = ok_json(served["client"].get("/api/search", params={"id": query_id, "k": 3, "class": "dog"}))
    expected_ids, expected_scores = brute_force(X, ids, X[ids.index(query_id)], 3, keep=labels == dog)
    assert [h["id"] for h in answer["hits"]] == expected_ids
    assert all(h["class"] == "dog" for h in answer["hits"])
    np.testing.assert_allclose([h["score"] for h in answer["hits"]], expected_scores, atol=1e-5)
    unfiltered = ok_json(served["client"].get("/api/search", params={"id": query_id, "k": 1}))
    assert unfiltered["hits"][0]["id"] == query_id
    assert unfiltered["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_class_filter_larger_than_the_class_says_so(served):
    answer = ok_json(served["client"].get("/api/search", params={"id": "cat/0.jpg", "k": 10, "class": "cat"}))
    assert sorted(h["id"] for h in answer["hits"]) == [f"cat/{i}.jpg" for i in range(CLASSES["cat"])]
    assert len(answer["warnings"]) == 1 and "has 4 rows" in answer["warnings"][0]


def test_image_upload_matches_brute_force(served, tiny_encoder):
    import torch

    X, ids, _ = stored(served, "train")
    data = random_image_bytes("png", (50, 60), seed=1234)
    with Image.open(io.BytesIO(data)) as image:
        query = tiny_encoder.encode_images(torch.stack([tiny_encoder.preprocess(image.convert("RGB"))]))
    answer = ok_json(served["client"].post("/api/search", files={"image": ("q.png", data, "image/png")},
                                           data={"k": "4", "split": "train"}))
    expected_ids, expected_scores = brute_force(X, ids, query, 4)
    assert [h["id"] for h in answer["hits"]] == expected_ids
    np.testing.assert_allclose([h["score"] for h in answer["hits"]], expected_scores, atol=1e-4)
    assert answer["query"] == {"image": "q.png"}


def test_search_of_the_tar_split(served):
    X, ids, _ = stored(served, "shards")
    answer = ok_json(served["client"].get("/api/search", params={"id": ids[2], "k": 5, "split": "shards"}))
    expected_ids, _ = brute_force(X, ids, X[2], 5)
    assert [h["id"] for h in answer["hits"]] == expected_ids
    assert [h["label"] for h in answer["hits"]] == [TAR_LABELS[ids.index(i)] for i in expected_ids]
    assert all(h["class"] is None for h in answer["hits"])


def decoded(data):
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_thumbnails_are_the_rows_images(served):
    client = served["client"]
    hit = ok_json(client.get("/api/search", params={"id": "dog/2.jpg", "k": 1}))["hits"][0]
    response = client.get(hit["thumb"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    thumb = decoded(response.content)
    original = decoded((served["train_root"] / "dog/2.jpg").read_bytes())
    other = decoded((served["train_root"] / "dog/3.jpg").read_bytes())
    assert thumb.shape == original.shape  # 48x40 is below the thumbnail size: not resized
    assert np.abs(thumb - original).mean() < 0.4 * np.abs(other - original).mean()
    with FeatureStore(served["store"]) as reader:
        big_row = reader.row_index("train")[BIG_IMAGE]
    big = decoded(client.get(f"/thumb/train/{big_row}").content)
    assert big.shape == (144, 192, 3)  # 400x300 scaled to fit 192x192, aspect kept


def test_thumbnails_of_tar_members(served):
    with FeatureStore(served["store"]) as reader:
        paths = list(reader.paths("shards", valid_only=False))
    assert all("::" in p for p in paths)
    for sample in served["samples"][:2]:
        row = next(i for i, p in enumerate(paths) if p.endswith("::" + sample["member"]))
        response = served["client"].get(f"/thumb/shards/{row}")
        assert response.status_code == 200
        thumb, original = decoded(response.content), decoded(sample["image"])
        assert thumb.shape == original.shape and np.abs(thumb - original).mean() < 25


def test_rows_of_a_class_and_unreadable_rows(served):
    client = served["client"]
    page = ok_json(client.get("/api/rows", params={"split": "train", "class": "emu"}))
    assert page["total"] == CLASSES["emu"] + 1
    assert [r["id"] for r in page["rows"]] == sorted(i for i in served["train_ids"] if i.startswith("emu/"))
    page = ok_json(client.get("/api/rows", params={"split": "train", "class": "emu", "offset": 1, "limit": 2}))
    assert [r["id"] for r in page["rows"]] == sorted(i for i in served["train_ids"] if i.startswith("emu/"))[1:3]
    bad = ok_json(client.get("/api/unreadable", params={"split": "train"}))
    assert bad["total"] == 2 and sorted(r["id"] for r in bad["rows"]) == sorted(UNREADABLE)


def test_page_and_its_assets(served):
    client = served["client"]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element_id in ('id="query"', 'id="drop"', 'id="results"', 'id="class-filter"', 'id="class-list"',
                       'id="unreadable-table"'):
        assert element_id in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "/api/search" in script.text
    assert client.get("/static/style.css").status_code == 200


BAD_REQUESTS = [
    ("get", "/api/search", {"query": "a cat", "split": "nope"}, 404, "no split 'nope'"),
    ("get", "/api/search", {"query": "a cat", "split": "train", "class": "zebra"}, 404, "no class 'zebra'"),
    ("get", "/api/search", {"query": "a cat", "split": "shards", "class": "cat"}, 400, "no class names"),
    ("get", "/api/search", {"query": "a cat", "k": 0}, 400, "k must be at least 1"),
    ("get", "/api/search", {"query": "a cat", "split": "train", "k": 13}, 400, "larger than split 'train'"),
    ("get", "/api/search", {"query": "a cat", "k": "ten"}, 422, "query parameter k"),
    ("get", "/api/search", {}, 400, "exactly one query"),
    ("get", "/api/search", {"query": "a", "id": "cat/0.jpg"}, 400, "exactly one query"),
    ("get", "/api/search", {"text": "a cat"}, 400, "exactly one query"),  # the retired spelling
    ("get", "/api/search", {"query": "   "}, 400, "text is empty"),
    ("get", "/api/search", {"id": "cat/77.jpg"}, 404, "no row with id 'cat/77.jpg' in any served split"),
    ("get", "/api/search", {"id": "cat/77.jpg", "split": "train"}, 404, "no row with id 'cat/77.jpg' in split"),
    ("get", "/api/search", {"id": "cat/9.jpg"}, 422, "unreadable"),
    ("post", "/api/search", {"files": {"image": ("notes.txt", b"hello, not an image", "text/plain")},
                             "data": {"split": "train"}}, 400, "not a readable image"),
    ("post", "/api/search", {"files": {"image": ("empty.jpg", b"", "image/jpeg")}, "data": {"split": "train"}}, 400,
     "empty"),
    ("post", "/api/search", {"files": {"image": ("q.png", random_image_bytes("png"), "image/png")},
                             "data": {"split": "shards", "k": "6"}}, 400, "larger than split 'shards'"),
    ("post", "/api/search", {"data": {"k": "3"}}, 422, "form field image"),
    ("get", "/thumb/train/14", {}, 404, "out of range"),
    ("get", "/thumb/train/-1", {}, 404, "out of range"),
    ("get", "/thumb/train/abc", {}, 400, "row must be an integer"),
    ("get", "/thumb/nope/0", {}, 404, "no split 'nope'"),
    ("get", "/thumb/train/..%2F..%2F..%2Fetc%2Fpasswd", {}, 404, "no split 'train/../../../etc'"),
    ("get", "/thumb/%2E%2E/%2E%2E/etc/passwd", {}, 404, "no split '../../etc'"),
    ("get", "/thumb/..%2F..%2Fetc/0", {}, 404, "no split '../../etc'"),
    ("get", "/api/rows", {"split": "train", "limit": 0}, 400, "limit must be"),
    ("get", "/api/nothing-here", {}, 404, "Not Found"),
]


@pytest.mark.parametrize("method, path, params, status, message", BAD_REQUESTS,
                         ids=[f"{m} {p} {q}"[:60] for m, p, q, *_ in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_json_error(served, method, path, params, status, message):
    client = served["client"]
    response = client.get(path, params=params) if method == "get" else client.post(path, **params)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert client.get("/api/info").status_code == 200


def test_unreadable_row_thumbnail_is_refused_with_its_reason(served):
    with FeatureStore(served["store"]) as reader:
        row = reader.row_index("train")["dog/fake.png"]
    response = served["client"].get(f"/thumb/train/{row}")
    assert response.status_code == 404 and "unreadable" in response.json()["error"]


def test_a_file_gone_since_extraction_is_a_404_with_the_reason(served, tmp_path):
    gone = served["train_root"] / "emu/2.jpg"
    moved = tmp_path / "2.jpg"
    with FeatureStore(served["store"]) as reader:
        row = reader.row_index("train")["emu/2.jpg"]
    gone.rename(moved)
    try:
        response = served["client"].get(f"/thumb/train/{row}")
    finally:
        moved.rename(gone)
    assert response.status_code == 404
    assert response.json()["error"] == f"cannot read {gone}: No such file or directory"


def test_a_dot_dot_path_never_reaches_the_file_system(served):
    # A raw request line, so no client normalizes the dots away before the server sees them.
    host, port = served["url"].removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"GET /thumb/train/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status_line = reply.partition(b"\r\n")[0]
    assert status_line.split()[1][:1] == b"4" and b"root:" not in reply
    assert served["client"].get("/api/info").status_code == 200


def test_concurrent_requests_all_answered(served):
    client = served["client"]
    _, ids, _ = stored(served, "train")

    def ask(i):
        return client.get("/api/search", params={"id": ids[i % len(ids)], "k": 2}).json()["hits"][0]["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        first = list(pool.map(ask, range(24)))
    assert first == [ids[i % len(ids)] for i in range(24)]


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("127.0.0.2", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.20", False), ("example.org", False)])
def test_loopback_hosts_and_the_exposure_warning(host, loopback):
    assert is_loopback(host) is loopback
    assert (exposure_warning(host) is None) is loopback


def test_listener_is_a_tcp_socket_so_connections_get_nodelay():
    # asyncio sets TCP_NODELAY only on connections of sockets whose proto is IPPROTO_TCP; with
    # proto 0 every keep-alive response waited ~40 ms for a delayed ACK (Nagle).
    with open_listener("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert url_of(sock) == f"http://127.0.0.1:{sock.getsockname()[1]}/"


def test_busy_port_is_a_one_line_error(served, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, _, err = run(["serve", "--store", served["store"], "--encoder", served["encoder"],
                            "--port", port, "-q"], capsys)
    assert code == 2 and err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1


def test_unknown_split_is_a_one_line_error(served, capsys):
    code, _, err = run(["serve", "--store", served["store"], "--encoder", served["encoder"], "--split", "nope",
                        "--port", "0", "-q"], capsys)
    assert code == 2 and "no split 'nope'" in err and err.count("\n") == 1


def test_a_split_with_unfinished_features_is_skipped_and_said(tmp_path):
    """In-process: the searcher serves the finished split, reports the unfinished one, and
    refuses it when it is asked for by name."""
    from featurestore.errors import NotFoundError
    from featurestore.server.searcher import QueryError, StoreSearcher
    from tests.store_fixtures import make_feature_store

    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 8)).astype(np.float32)
    store = make_feature_store(tmp_path / "s.h5", {"done": X}, encoder="test/enc")
    with FeatureStore(store, mode="a") as writer:
        rows = writer.add_rows("half", [f"h{i}" for i in range(4)], [f"h{i}.jpg" for i in range(4)], [-1] * 4)
        writer.prepare_features("test/enc", "half", 8)
        writer.write_features("test/enc", "half", rows[:2], X[:2], np.ones(2, bool), ["", ""])
    searcher = StoreSearcher(str(store), "test/enc", quiet=True)
    try:
        assert list(searcher.splits) == ["done"]
        assert [s["split"] for s in searcher.skipped] == ["half"] and "2 of 4 rows" in searcher.skipped[0]["reason"]
        assert searcher.info()["skipped_splits"] == searcher.skipped
        answer = searcher.search_id("done-00003", k=2)
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        assert [h["row"] for h in answer["hits"]] == list(np.argsort(-(Xn @ Xn[3]))[:2])
        with pytest.raises(QueryError, match="no text tower"):
            searcher.search_text("a cat", k=2)
    finally:
        searcher.close()
    with pytest.raises(NotFoundError, match="2 of 4 rows"):
        StoreSearcher(str(store), "test/enc", ["half"], quiet=True)


def test_flat_matrix_vector_search_gives_faiss_hits_ties_included():
    """The server's BLAS path for Flat indexes against FAISS's own search of the same index,
    on rows with exact duplicates (equal scores) inside and across the top-k boundary."""
    import faiss

    from featurestore.index.store_index import StoreIndex
    from featurestore.server.searcher import flat_search, flat_vectors

    rng = np.random.default_rng(3)
    X = rng.standard_normal((3000, 16)).astype(np.float32)
    X[[3, 10, 20, 40, 700, 1500, 2999]] = X[7]
    X[[100, 200, 300]] = X[50]
    faiss.normalize_L2(X)
    flat = faiss.index_factory(16, "Flat", faiss.METRIC_INNER_PRODUCT)
    flat.add(X)
    index = StoreIndex(flat, {"factory": "Flat", "encoder": "e", "split": "s"})
    rows = flat_vectors(index)
    assert rows is not None and np.array_equal(rows, X)
    queries = [X[7], X[50], rng.standard_normal(16).astype(np.float32), X[11] * 3]
    for query in queries:
        for k in (1, 2, 3, 5, 8, 9, 40, len(X)):
            expected_scores, expected = (a[0] for a in index.search(query, k))
            scores, found = flat_search(rows, query, k)
            assert found.tolist() == expected.tolist(), k
            np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_only_cpu_inner_product_flat_indexes_take_the_blas_path():
    import faiss

    from featurestore.index.store_index import StoreIndex
    from featurestore.server.searcher import flat_vectors

    X = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    l2 = faiss.IndexFlatL2(8)
    l2.add(X)
    hnsw = faiss.index_factory(8, "HNSW8", faiss.METRIC_INNER_PRODUCT)
    hnsw.add(X)
    for index in (l2, hnsw):
        assert flat_vectors(StoreIndex(index, {"factory": "x", "encoder": "e", "split": "s"})) is None
