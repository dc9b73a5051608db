"""Pins and the collection lease: what keeps gc from deleting a file a rollout is about to name.

A manifest names a bundle's files only once the rollout writes its first traffic
step, seconds to hours after it published them (edge check, smoke gate, webhooks,
a pause). In between, only the rollout knows it will name them, and a file it
found already stored (dedup) may be one that only an expired revision names.

Two kinds of object under private/ (never served by the edge) close that gap:

* A **pin**, `private/pins/<workflow id>/<run id>.json`, lists every key the run's
  publish will name. The publish writes it *before* it lists what is stored, and
  it stays until the workflow is no longer running (gc removes pins of ended
  workflows; the files are then named by the revisions the rollout wrote, or by
  none, and retention takes over).
* The **collection lease**, `private/gc/lease.json`, is held (conditional create)
  by whoever deletes bundle files (gc, an unpublish) from before it reads the pins
  until its last delete. A publisher that has written its pin reads the lease; if
  one is held, it waits until that holder has released it (or it expired), and
  only then lists what is stored and uploads what is missing.

Why no named file is lost (docs/bundles.md#collection-and-running-rollouts): a
deleter D removes key K only if K was in no pin when D read the pins (after D
took the lease). A publisher P names K only if K was stored when P listed, after
P wrote its pin and waited for the lease's holder then. If P's pin was written before D read the
pins, D kept K. Otherwise D took the lease before it read the pins, so before
P's pin was written, and held it until its last delete: P's read of the lease,
after its pin, found D holding it, P's wait ended only after D's last delete, and
P's listing saw K gone and uploaded it again. A deleter that takes the lease after
P's read reads the pins after P's pin was written, so P need not wait for it.
Storage is strongly consistent (S3, MinIO and the embedded server alike), so
"before" is the order the writes were acknowledged in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from adapters.storage import PRIVATE_PREFIX, is_missing, is_precondition_failed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

PINS = f"{PRIVATE_PREFIX}pins/"
LEASE_KEY = f"{PRIVATE_PREFIX}gc/lease.json"
# How long one collection may delete for; it stops deleting (and fails) past this.
LEASE = timedelta(minutes=10)
# Hosts' clocks may disagree this much: a publisher honours a lease this long past its expiry.
CLOCK_SKEW = timedelta(minutes=2)

# workflow id -> True (running), False (ended or unknown to Temporal), None (cannot tell)
Alive = Callable[[str], bool | None]


class CollectionRunning(Exception):
    """Another collection (or unpublish) holds the lease."""


class LeaseLost(Exception):
    """This collection ran past its lease; it stopped deleting."""


class LeaseWaitTimeout(Exception):
    """A lease outlived the publisher's patience; the publish is retried."""


@dataclass(frozen=True)
class Pin:
    key: str
    workflow_id: str
    run_id: str
    keys: frozenset[str]


def pin_key(workflow_id: str, run_id: str) -> str:
    # Workflow ids are slugs with dots (rollout.shop.header); "/" would nest, so it is escaped.
    return f"{PINS}{workflow_id.replace('/', '%2F')}/{run_id}.json"


class PinStore:
    def __init__(self, s3: S3Client, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    # ------------------------------------------------------------------ pins

    def _read(self, key: str) -> Pin | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        data = json.loads(body)
        return Pin(key, str(data["workflow_id"]), str(data["run_id"]), frozenset(data["keys"]))

    def pin(self, workflow_id: str, run_id: str, keys: Iterable[str]) -> None:
        """Add `keys` to the run's pin (a retried publish, or its fallback layout, adds more)."""
        key = pin_key(workflow_id, run_id)
        before = self._read(key)
        wanted = set(keys) | (set(before.keys) if before is not None else set())
        body = {
            "workflow_id": workflow_id,
            "run_id": run_id,
            "keys": sorted(wanted),
            "written_at": datetime.now(UTC).isoformat(),
        }
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json"
        )

    def pins(self) -> list[Pin]:
        found: list[Pin] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=PINS):
            for item in page.get("Contents", []):
                try:
                    pin = self._read(item["Key"])
                except (ValueError, KeyError, TypeError):
                    # Unreadable: what it protects is unknown, so nothing may be collected.
                    raise CorruptPin(item["Key"]) from None
                if pin is not None:
                    found.append(pin)
        return found

    def pinned(
        self, alive: Alive | None, *, exclude_workflow: str | None = None, sweep: bool = False
    ) -> set[str]:
        """Keys pinned by workflows that may still be running.

        `alive` None: every pin counts (a worker cannot ask Temporal; pins of ended
        workflows only make it keep more). With `sweep`, pins of workflows `alive`
        says have ended are deleted."""
        keys: set[str] = set()
        for pin in self.pins():
            if pin.workflow_id == exclude_workflow:
                continue
            running = True if alive is None else alive(pin.workflow_id)
            if running is False:
                if sweep:
                    self.s3.delete_object(Bucket=self.bucket, Key=pin.key)
                continue
            keys |= pin.keys
        return keys

    # ----------------------------------------------------------------- lease

    def _lease(self) -> tuple[datetime, str, str] | None:
        """(expiry, ETag, holder) of the lease, if one is stored."""
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=LEASE_KEY)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        try:
            data = json.loads(got["Body"].read())
            expires, holder = datetime.fromisoformat(data["expires_at"]), str(data["holder"])
        except (ValueError, KeyError, TypeError):
            expires, holder = datetime.min.replace(tzinfo=UTC), ""  # unreadable: treated as expired
        return expires, got.get("ETag", ""), holder

    def acquire(self, holder: str | None = None) -> Lease:
        """Take the collection lease, or raise CollectionRunning; an expired lease is taken over."""
        holder = holder or uuid.uuid4().hex
        started = time.monotonic()
        expires = datetime.now(UTC) + LEASE
        body = json.dumps({"holder": holder, "expires_at": expires.isoformat()}).encode()
        try:
            self.s3.put_object(Bucket=self.bucket, Key=LEASE_KEY, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            if not is_precondition_failed(exc):
                raise
            current = self._lease()
            if current is not None and current[0] + CLOCK_SKEW > datetime.now(UTC):
                raise CollectionRunning(
                    f"a collection holds {LEASE_KEY} until {current[0].isoformat()}"
                ) from exc
            try:  # expired (its holder died): take it over, unless someone else just did
                if current is not None:
                    self.s3.put_object(Bucket=self.bucket, Key=LEASE_KEY, Body=body, IfMatch=current[1])
                else:
                    self.s3.put_object(Bucket=self.bucket, Key=LEASE_KEY, Body=body, IfNoneMatch="*")
            except ClientError as again:
                if is_precondition_failed(again):
                    raise CollectionRunning(f"another collection took over {LEASE_KEY}") from again
                raise
        return Lease(self, holder, started)

    def wait_for_no_lease(self, patience: timedelta, tick: Callable[[], None] = lambda: None) -> None:
        """Return once the lease held now (if any) has been released, expired or taken over.

        Call it after writing a pin: a deleter that may not have seen the pin holds the lease
        now. One that takes the lease later reads the pins after it, so it is not waited for
        (a gc run in a loop cannot starve a publisher)."""
        first = self._lease()
        if first is None:
            return
        deadline = time.monotonic() + patience.total_seconds()
        delay = 0.02
        while True:
            current = self._lease()
            if current is None or current[2] != first[2] or current[0] + CLOCK_SKEW <= datetime.now(UTC):
                return
            if time.monotonic() > deadline:
                raise LeaseWaitTimeout(f"{LEASE_KEY} held until {current[0].isoformat()}")
            tick()
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class CorruptPin(Exception):
    """A pin does not parse: gc deletes nothing rather than guess what it protected."""


class Lease:
    def __init__(self, store: PinStore, holder: str, started: float) -> None:
        self.store = store
        self.holder = holder
        self.started = started

    def check(self) -> None:
        """Raise LeaseLost when the lease (less a margin) has run out: stop deleting."""
        if time.monotonic() - self.started > (LEASE - timedelta(seconds=30)).total_seconds():
            raise LeaseLost(f"collection ran past its {LEASE} lease; the rest is left for the next run")

    def release(self) -> None:
        s3, bucket = self.store.s3, self.store.bucket
        try:
            body = s3.get_object(Bucket=bucket, Key=LEASE_KEY)["Body"].read()
        except ClientError as exc:
            if is_missing(exc):
                return
            raise
        try:
            ours = json.loads(body).get("holder") == self.holder
        except ValueError:
            ours = False
        if ours:
            s3.delete_object(Bucket=bucket, Key=LEASE_KEY)
        else:
            log.warning("gc: the lease was taken over before release; left to its new holder")


def temporal_alive(temporal: Client, loop: asyncio.AbstractEventLoop) -> Alive:
    """`alive(workflow_id)` for a deleter's thread (gc in the API, unpublish in the worker), asked
    of Temporal on the process's event loop.

    Not found: ended long ago (False). Any other failure: unknown (None), so the pin holds."""

    async def describe(workflow_id: str) -> bool | None:
        try:
            info = await temporal.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            return False if exc.status == RPCStatusCode.NOT_FOUND else None
        return info.status == WorkflowExecutionStatus.RUNNING

    def alive(workflow_id: str) -> bool | None:
        try:
            return asyncio.run_coroutine_threadsafe(describe(workflow_id), loop).result(timeout=10)
        except Exception:  # a pin is dropped only on a definite answer
            log.warning("gc: cannot tell whether %s runs; its pin holds", workflow_id, exc_info=True)
            return None

    return alive
