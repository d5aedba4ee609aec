"""Publish the night: a new served snapshot, all at once (store.publish)."""

from prefect import task

from store.publish import publish_night

publish_run = task(name="publish-run")(publish_night)
