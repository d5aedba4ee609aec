"""Publish a run to the warehouse atomically."""

from prefect import task

from store.publish import publish_run as publish

publish_run = task(name="publish-run")(publish)
