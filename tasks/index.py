"""Raw ids -> contiguous indices (append-only), and the run's snapshot of its inputs."""

from prefect import task

from store.snapshot import build_snapshot

build_index = task(name="build-index")(build_snapshot)
