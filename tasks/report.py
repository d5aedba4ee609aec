"""Write the run's report (Markdown + PNG plots) next to its models."""

from prefect import task

from recmodel.report import report_run

write_run_report = task(name="write-report")(report_run)
