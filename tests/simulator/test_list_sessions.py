"""GET /v2/live: newest first, pagination links back at the simulator, and every filter."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from tests.simulator.conftest import InProcess


async def _ids(sim: InProcess, **params: str) -> list[str]:
    response = await sim.client.get("/v2/live", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_sessions_are_listed_newest_first_with_their_full_view(sim: InProcess) -> None:
    first = await sim.create({"custom_metadata": {"n": 1}})
    second = await sim.create()

    response = await sim.client.get("/v2/live")

    items = response.json()["items"]
    assert [item["id"] for item in items] == [second["id"], first["id"]]
    assert items[1]["custom_metadata"] == {"n": 1}
    assert items[1]["request_params"]["encoding"] == "wav/pcm"
    assert items[1]["kind"] == "live"


async def test_pages_link_to_first_current_and_next_with_absolute_urls(sim: InProcess) -> None:
    created = [await sim.create() for _ in range(5)]

    page = (
        await sim.client.get("/v2/live", params={"limit": 2, "offset": 2, "status": "queued"})
    ).json()

    assert [item["id"] for item in page["items"]] == [created[2]["id"], created[1]["id"]]
    for name, offset in (("first", "0"), ("current", "2"), ("next", "4")):
        url = urlsplit(page[name])
        assert (url.scheme, url.netloc, url.path) == ("http", "simulator.test", "/v2/live")
        assert parse_qs(url.query) == {"offset": [offset], "limit": ["2"], "status": ["queued"]}
    last = (await sim.client.get(page["next"])).json()
    assert [item["id"] for item in last["items"]] == [created[0]["id"]]
    assert last["next"] is None


async def test_the_default_page_holds_twenty(sim: InProcess) -> None:
    for _ in range(21):
        await sim.create()

    page = (await sim.client.get("/v2/live")).json()

    assert len(page["items"]) == 20
    assert page["next"] is not None


async def test_status_filters_accept_repeated_values(sim: InProcess) -> None:
    done = await sim.create()
    failed = await sim.create()
    queued = await sim.create()
    sim.state.store.settle(sim.state.sessions[done["id"]], "done")
    sim.state.store.settle(sim.state.sessions[failed["id"]], "error", 500)

    assert await _ids(sim, status="queued") == [queued["id"]]
    both = await sim.client.get("/v2/live?status=done&status=error")
    assert [item["id"] for item in both.json()["items"]] == [failed["id"], done["id"]]


async def test_metadata_filters_work_in_the_json_form_of_the_docs(sim: InProcess) -> None:
    alice = await sim.create({"custom_metadata": {"user": "alice", "tier": 2}})
    await sim.create({"custom_metadata": {"user": "bob", "tier": 2}})

    found = await _ids(sim, custom_metadata=json.dumps({"user": "alice", "tier": 2}))

    assert found == [alice["id"]]


async def test_metadata_filters_work_in_the_bracket_form_of_the_sdks(sim: InProcess) -> None:
    alice = await sim.create({"custom_metadata": {"user": "alice", "tier": 2, "beta": True}})
    await sim.create({"custom_metadata": {"user": "alice", "tier": 3}})

    found = await sim.client.get(
        "/v2/live", params={"custom_metadata[user]": "alice", "custom_metadata[tier]": "2"}
    )
    typed = await _ids(sim, **{"custom_metadata[beta]": "True"})

    assert [item["id"] for item in found.json()["items"]] == [alice["id"]]
    assert typed == [alice["id"]]


async def test_date_filters_select_by_creation_time(sim: InProcess) -> None:
    old = await sim.create()
    new = await sim.create()
    sim.state.sessions[old["id"]].created_at = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
    sim.state.sessions[new["id"]].created_at = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)

    assert await _ids(sim, date="2024-01-02") == [old["id"]]
    assert await _ids(sim, before_date="2024-02-01T00:00:00Z") == [old["id"]]
    assert await _ids(sim, after_date="2024-02-01T00:00:00.000Z") == [new["id"]]
    assert await _ids(sim, after_date="2024-01-01", before_date="2024-12-31") == [
        new["id"],
        old["id"],
    ]


async def test_bad_list_parameters_are_named_in_a_400(sim: InProcess) -> None:
    response = await sim.client.get(
        "/v2/live",
        params={
            "limit": "0",
            "offset": "x",
            "status": "lost",
            "date": "yesterday",
            "custom_metadata": "[]",
        },
    )

    assert response.status_code == 400
    errors = response.json()["validation_errors"]
    assert [e.split(" ")[0] for e in errors] == [
        "offset",
        "limit",
        "status",
        "date",
        "custom_metadata",
    ]


async def test_listing_requires_the_key(sim: InProcess) -> None:
    response = await sim.client.get("/v2/live", headers={"x-gladia-key": ""})

    assert response.status_code == 401
