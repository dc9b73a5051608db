"""A step's write and its purge-and-verify as one regular activity (activities/emergency.py).

Real-activity twin of tests/workflows/world.py's `write_and_serve` stand-in: the activity the
worker registers, in Temporal's ActivityEnvironment, against the session's embedded S3 server
and the Varnish edge. What the stand-in cannot show: the write lands and the edge serves it
before the activity returns (a purge the edge ignores is repeated), every heartbeat names
the write's base revision, also while the edge is verified (a retry reads its heartbeat to
find its earlier write), and a retry from that heartbeat finds the write instead of
writing again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
from temporalio.testing import ActivityEnvironment

from activities.cdn import CdnActivities
from activities.emergency import EmergencyActivities
from activities.manifests import ApplyManifestChangeInput, ManifestActivities
from adapters.cdn import VarnishPurger
from adapters.manifest_store import head_key
from skyline.manifest import Apartment, Building, ManifestChange, RolloutConfig, Unit
from skyline.manifest_ops import CreateApartment, SetCanary
from skyline.settings import Settings
from tests.activities.test_cdn import ForgetfulPurger
from tests.support.scenario import unique


def test_a_step_write_is_served_and_its_retry_finds_it(settings: Settings, s3: Any) -> None:
    manifests = ManifestActivities(s3, settings.s3_bucket)
    apartment = unique("one")
    building = Building(name="Main", category="main")
    manifests.store.apply(
        apartment,
        CreateApartment(apartment=Apartment(name="Shop", buildings={"main": building})),
        ManifestChange(id=unique("create"), actor="tests", reason="create"),
    )
    url = settings.public_url(head_key(apartment))
    canary = Unit(id="main@2.0.0", name="main", version="2.0.0", url="u", checksum="c", size=1)
    step = ApplyManifestChangeInput(
        apartment=apartment,
        change=ManifestChange(id=unique("step"), actor="tests", reason="25 %"),
        mutation=SetCanary(building="main", unit=canary, rollout=RolloutConfig(percentage=25)),
    )
    with httpx.Client(timeout=10) as http:
        assert http.get(url).json()["version"] == "1"  # revision 1 now cached at the edge
        purger = ForgetfulPurger(VarnishPurger(settings.purge_base_url, http), ignore=1)
        activities = EmergencyActivities(manifests, CdnActivities(settings, purger, http))
        env = ActivityEnvironment()
        beats: list[tuple[Any, ...]] = []
        env.on_heartbeat = lambda *details: beats.append(details)

        first = env.run(activities.write_and_serve, step)
        assert first.applied and first.revision == 2
        assert first.served_revision == 2 and first.purges >= 2  # the ignored purge was repeated
        assert http.get(url).json()["version"] == "2"
        # The write's heartbeat and every verify round's: the base, never a round's number.
        assert len(beats) >= 1 + first.purges and set(beats) == {(1,)}

        # Retried (the worker died after the write): the heartbeat leads to the write, found.
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=list(beats[-1]))
        again = retry.run(activities.write_and_serve, step)
        assert not again.applied and again.revision == 2 and again.served_revision == 2
        head = manifests.store.read(apartment)
        assert head is not None and head[0].revision == 2  # nothing written twice
        assert head[0].apartment(apartment).buildings["main"].units[canary.id].rollout == (
            RolloutConfig(percentage=25)
        )
