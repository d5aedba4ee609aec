"""The night's plan against the published data, and the snapshot the models train on."""

from prefect import task

from store.night import plan_night

build_index = task(name="build-index")(plan_night)
