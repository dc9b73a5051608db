"""CDN providers: Varnish PURGE + verify on the real edge, CloudFront against moto's API."""

from __future__ import annotations

from typing import Any

import httpx

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
