"""`python -m bench.publish_cli DIR UNIT_ID`: Skyline's bundle publisher as one command.

Runs the same code the worker's `publish_bundle` activity runs, configured
from SKYLINE_* like the worker, so the benchmark times it as a process next
to `aws s3 sync`. Prints the publish result as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from activities.publish import PublishActivities, PublishBundleInput
from adapters.storage import edge_client, s3_client
from skyline.rollout import BundleSource
from skyline.settings import Settings


def main(argv: list[str]) -> int:
    root, unit_id = Path(argv[0]), argv[1]
    settings = Settings()
    s3 = s3_client(settings, max_pool=settings.worker_activity_threads + settings.upload_concurrency)
    publisher = PublishActivities(settings, s3, edge_client())
    started = time.perf_counter()
    result = publisher.publish(
        PublishBundleInput(
            unit_id=unit_id, version="1.0.0", entry="index.js", source=BundleSource(path=str(root))
        )
    )
    elapsed = time.perf_counter() - started
    print(json.dumps({**result.model_dump(), "in_process_seconds": elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
