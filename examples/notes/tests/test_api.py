"""HTTP-level tests of a running notes app (see conftest.py for APP_URL)."""

from __future__ import annotations

import os

import httpx
import pytest


def create(client: httpx.Client, created: list[int], **fields) -> httpx.Response:
    resp = client.post("/notes", json=fields)
    if resp.status_code == 201:
        created.append(resp.json()["id"])
    return resp


def test_health_is_ok(client: httpx.Client) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["status"] == "ok"
    assert isinstance(data["version"], str) and data["version"]
    expected = os.environ.get("APP_EXPECTED_VERSION")
    if expected:
        assert data["version"] == expected


def test_create_then_get_and_list(client, created_notes, unique_title) -> None:
    resp = create(client, created_notes, title=unique_title, body="hello from the test suite")
    assert resp.status_code == 201, resp.text
    note = resp.json()
    assert isinstance(note["id"], int) and note["id"] > 0
    assert note["title"] == unique_title
    assert note["body"] == "hello from the test suite"
    assert note["created_at"]
    assert resp.headers.get("location") == f"/notes/{note['id']}"

    got = client.get(f"/notes/{note['id']}")
    assert got.status_code == 200, got.text
    assert got.json() == note

    listed = client.get("/notes")
    assert listed.status_code == 200, listed.text
    notes = listed.json()["notes"]
    assert isinstance(notes, list)
    assert note["id"] in [n["id"] for n in notes]
    assert next(n for n in notes if n["id"] == note["id"]) == note


def test_list_is_newest_first(client, created_notes, unique_title) -> None:
    first = create(client, created_notes, title=unique_title + " a").json()
    second = create(client, created_notes, title=unique_title + " b").json()
    ids = [n["id"] for n in client.get("/notes", params={"limit": 500}).json()["notes"]]
    assert ids.index(second["id"]) < ids.index(first["id"])


def test_pinned_defaults_to_false(client, created_notes, unique_title) -> None:
    resp = create(client, created_notes, title=unique_title)
    assert resp.status_code == 201, resp.text
    note = resp.json()
    assert note["pinned"] is False
    assert note["body"] == ""
    assert client.get(f"/notes/{note['id']}").json()["pinned"] is False


def test_pinned_can_be_set(client, created_notes, unique_title) -> None:
    resp = create(client, created_notes, title=unique_title, body="x", pinned=True)
    assert resp.status_code == 201, resp.text
    assert client.get(f"/notes/{resp.json()['id']}").json()["pinned"] is True


@pytest.mark.parametrize("note_id", ["999999999999999", "0", "-1", "abc", "99999999999999999999"])
def test_missing_note_is_404(client: httpx.Client, note_id: str) -> None:
    resp = client.get(f"/notes/{note_id}")
    assert resp.status_code == 404
    assert "error" in resp.json()


def test_delete_note(client, created_notes, unique_title) -> None:
    note = create(client, created_notes, title=unique_title).json()
    assert client.delete(f"/notes/{note['id']}").status_code == 204
    assert client.get(f"/notes/{note['id']}").status_code == 404
    assert client.delete(f"/notes/{note['id']}").status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"body": "no title"},
        {"title": ""},
        {"title": "   "},
        {"title": 42},
        {"title": None},
        {"title": "x" * 201},
        {"title": "ok", "body": 5},
        {"title": "ok", "pinned": "yes"},
        {"title": "ok", "unexpected": 1},
        ["not", "an", "object"],
        "just a string",
    ],
    ids=lambda p: repr(p)[:40],
)
def test_invalid_note_is_rejected(client: httpx.Client, payload) -> None:
    resp = client.post("/notes", json=payload)
    assert resp.status_code in (400, 422), resp.text
    assert resp.json()["error"]


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe"])
def test_malformed_body_is_400(client: httpx.Client, content: bytes) -> None:
    resp = client.post("/notes", content=content, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=100000", "offset=-1"])
def test_bad_list_parameters_are_400(client: httpx.Client, query: str) -> None:
    resp = client.get(f"/notes?{query}")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]


def test_unknown_route_is_404(client: httpx.Client) -> None:
    assert client.get("/no-such-route").status_code == 404
