"""CDN providers: Varnish PURGE + verify on the real edge, CloudFront against moto's API.

The verify/re-purge loop and the stale-edge error are also tested against an edge
stand-in (no servers) whose purges can be told to do nothing, since a real purge
always works.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.cdn import CdnActivities, SyncManifestInput
from adapters.cdn import CloudFrontInvalidator, VarnishPurger
from adapters.manifest_store import ManifestStore, head_key
from skyline.manifest import Apartment, Building, ManifestChange, RolloutConfig, Unit
from skyline.manifest_ops import CreateApartment, SetCanary
from skyline.settings import Settings
from tests.support.cloudfront import moto_distribution
from tests.support.scenario import unique


def test_purge_then_verify_serves_the_new_revision(settings: Settings, s3: Any) -> None:
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = unique("apt")
    apt = Apartment(name="A", buildings={"x": Building(name="x", category="main")})
    store.apply(apartment, CreateApartment(apartment=apt), ManifestChange(id="c1", actor="t", reason="r"))
    url = settings.public_url(head_key(apartment))
    http = httpx.Client(timeout=10)
    first = http.get(url)
    assert first.status_code == 200, (first.status_code, first.headers, first.text)
    assert first.json()["version"] == "1"
    cached = http.get(url)
    assert cached.headers["x-cache"] == "HIT"

    unit = Unit(id="x@1.0.0", name="x", version="1.0.0", url="u", checksum="c", size=1)
    store.apply(
        apartment,
        SetCanary(building="x", unit=unit, rollout=RolloutConfig(percentage=5)),
        ManifestChange(id="c2", actor="t", reason="r"),
    )
    assert http.get(url).json()["version"] == "1"  # the edge still holds revision 1

    cdn = CdnActivities(settings, VarnishPurger(settings.purge_base_url, http), http)
    result = cdn.sync_manifest_to_edge(SyncManifestInput(apartment=apartment, revision=2))
    assert result.served_revision == 2 and result.purges >= 1
    assert http.get(url).json()["version"] == "2"


class ForgetfulPurger:
    """A provider whose first `ignore` purges are accepted and do nothing (a lagging CDN)."""

    def __init__(self, inner: Any, ignore: int) -> None:
        self.inner, self.ignore, self.calls = inner, ignore, 0

    def purge(self, paths: list[str]) -> None:
        self.calls += 1
        if self.calls > self.ignore:
            self.inner.purge(paths)


class StandInEdge:
    """A caching edge in front of an origin: serves what it cached until a purge drops it."""

    def __init__(self, origin_revision: int) -> None:
        self.origin_revision = origin_revision
        self.cached: int | None = None
        self.gets = 0

    def purge(self, paths: list[str]) -> None:
        self.cached = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.gets += 1
        if self.cached is None:
            self.cached = self.origin_revision
        return httpx.Response(200, content=json.dumps({"version": str(self.cached)}).encode())


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    pauses: list[float] = []
    monkeypatch.setattr("activities.cdn.time.sleep", pauses.append)
    return pauses


def stand_in(revision_cached: int, revision_written: int, ignore: int, attempts: int = 5) -> Any:
    edge = StandInEdge(revision_written)
    edge.cached = revision_cached
    purger = ForgetfulPurger(edge, ignore)
    settings = Settings(edge_verify_attempts=attempts)
    cdn = CdnActivities(settings, purger, httpx.Client(transport=httpx.MockTransport(edge.handle)))
    return cdn, edge, purger


def test_an_ignored_purge_is_caught_by_reading_back_and_purged_again(no_backoff: list[float]) -> None:
    cdn, edge, purger = stand_in(revision_cached=1, revision_written=2, ignore=1)
    result = cdn.sync_manifest_to_edge(SyncManifestInput(apartment="shop", revision=2))
    assert result.served_revision == 2
    assert result.purges == 2 and purger.calls == 2 and result.reads == 2
    assert edge.gets == 2  # read back after each purge: the first showed revision 1 still served
    assert edge.cached == 2
    assert no_backoff == [0.02]


def test_a_newer_revision_at_the_edge_also_proves_ours_is_gone(no_backoff: list[float]) -> None:
    cdn, _, _ = stand_in(revision_cached=1, revision_written=5, ignore=0)
    result = cdn.sync_manifest_to_edge(SyncManifestInput(apartment="shop", revision=3))
    assert result.served_revision == 5 and result.purges == 1
    assert no_backoff == []


def test_an_edge_that_keeps_the_old_revision_is_an_error_after_bounded_purges(
    no_backoff: list[float],
) -> None:
    cdn, edge, purger = stand_in(revision_cached=1, revision_written=2, ignore=1000, attempts=7)
    with pytest.raises(ApplicationError) as raised:
        cdn.sync_manifest_to_edge(SyncManifestInput(apartment="shop", revision=2))
    assert raised.value.type == "EdgeStale"
    assert raised.value.message == ("edge still serves revision 1 of 'shop' after 7 purges; expected 2")
    assert purger.calls == 7 and edge.gets == 7
    # exponential backoff between attempts, capped at one second
    assert no_backoff == [0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0]


def test_an_edge_that_answers_errors_is_not_taken_for_the_new_revision(no_backoff: list[float]) -> None:
    settings = Settings(edge_verify_attempts=3)
    broken = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    cdn = CdnActivities(settings, ForgetfulPurger(None, 1000), broken)
    with pytest.raises(ApplicationError, match="edge still serves revision None of 'shop' after 3 purges"):
        cdn.sync_manifest_to_edge(SyncManifestInput(apartment="shop", revision=2))


def test_real_edge_ignoring_the_first_purge_is_purged_again(settings: Settings, s3: Any) -> None:
    store = ManifestStore(s3, settings.s3_bucket)
    apartment = unique("apt")
    apt = Apartment(name="A", buildings={"x": Building(name="x", category="main")})
    store.apply(apartment, CreateApartment(apartment=apt), ManifestChange(id="c1", actor="t", reason="r"))
    url = settings.public_url(head_key(apartment))
    http = httpx.Client(timeout=10)
    assert http.get(url).json()["version"] == "1"  # now cached at the edge
    unit = Unit(id="x@1.0.0", name="x", version="1.0.0", url="u", checksum="c", size=1)
    store.apply(
        apartment,
        SetCanary(building="x", unit=unit, rollout=RolloutConfig(percentage=5)),
        ManifestChange(id="c2", actor="t", reason="r"),
    )
    purger = ForgetfulPurger(VarnishPurger(settings.purge_base_url, http), ignore=1)
    cdn = ReadRecording(settings, purger, http)
    result = cdn.sync_manifest_to_edge(SyncManifestInput(apartment=apartment, revision=2))
    # The ignored purge is caught by its read-back, which still shows revision 1. A busy
    # edge may answer a later read with an error (read as "not yet"): that costs one more
    # purge, never a wrong answer, so the count of purges is not pinned to two.
    assert cdn.reads[0] == 1
    assert cdn.reads[-1] == 2 and set(cdn.reads[1:-1]) <= {1, None}
    assert result.served_revision == 2 and result.purges == purger.calls == len(cdn.reads) >= 2
    assert http.get(url).json()["version"] == "2"


class ReadRecording(CdnActivities):
    """The real activity, remembering what each read-back saw."""

    def __init__(self, settings: Settings, provider: Any, http: httpx.Client) -> None:
        super().__init__(settings, provider, http)
        self.reads: list[int | None] = []

    def served_revision(self, url: str) -> int | None:
        served = super().served_revision(url)
        self.reads.append(served)
        return served


def test_cloudfront_invalidation_is_created_and_polled_to_completion(settings: Settings) -> None:
    client, distribution_id = moto_distribution(settings, "skyline test")
    CloudFrontInvalidator(client, distribution_id, poll_seconds=0.05).purge(
        ["/skyline/manifests/a/manifest.json"]
    )
    listed = client.list_invalidations(DistributionId=distribution_id)["InvalidationList"]
    assert listed["Quantity"] == 1
    one = client.get_invalidation(DistributionId=distribution_id, Id=listed["Items"][0]["Id"])
    assert one["Invalidation"]["Status"].lower() == "completed"
    assert one["Invalidation"]["InvalidationBatch"]["Paths"]["Items"] == [
        "/skyline/manifests/a/manifest.json"
    ]
