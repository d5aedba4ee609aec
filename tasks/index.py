"""Raw ids -> contiguous indices (append-only), and the run's snapshot of its inputs."""
from prefect import task

from store.snapshot import build_snapshot

build_index = task(build_snapshot, name="build-index")
