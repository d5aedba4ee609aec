"""One source of truth for settings (issue 14): the config classes define the flow's parameters, the
Prefect UI form, the CLI options and the config file keys."""

import inspect

import pytest
from pydantic import ValidationError

from recmodel.config import DataConfig, RankConfig, RunConfig, TrainConfig, flat_fields, split_flat


def test_flow_parameters_are_the_config_fields_with_their_defaults():
    from flows.nightly import nightly

    params = inspect.signature(nightly.fn).parameters
    fields = flat_fields()
    assert list(params) == list(fields)
    for name, (_, info) in fields.items():
        assert params[name].default == info.default, name
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_the_ui_form_carries_constraints_choices_and_help():
    from prefect.utilities.callables import parameter_schema

    from flows.nightly import nightly

    schema = parameter_schema(nightly).model_dump()["properties"]
    assert schema["top_n"]["minimum"] == 1 and schema["top_n"]["default"] == 10
    assert schema["ranker"]["enum"] == ["ials", "ease", "hybrid", "rating", "popularity"]
    assert schema["max_bad_fraction"]["maximum"] == 1
    assert "Recommendations kept per user" in schema["top_n"]["description"]


def test_a_bad_value_is_refused_before_the_run_starts(prefect_harness, tmp_path):
    from prefect.exceptions import ParameterTypeError

    from flows.nightly import nightly

    with pytest.raises(ParameterTypeError, match="top_n"):
        nightly(warehouse=str(tmp_path / "wh"), top_n=0)
    assert not (tmp_path / "wh").exists()


def test_names_are_unique_and_every_class_contributes():
    owners = {owner for owner, _ in flat_fields().values()}
    assert owners == {DataConfig, RunConfig, TrainConfig, RankConfig}
    n = sum(len(c.model_fields) for c in owners) - 2  # RunConfig's nested train and rank
    assert len(flat_fields()) == n


def test_flat_parameters_build_the_typed_configs():
    data, cfg = split_flat(source="x.csv", top_n=3, epochs=2, rank_factors=8, metric_k=20)
    assert (data.source, cfg.top_n, cfg.train.epochs, cfg.rank.rank_factors, cfg.metric_k) == ("x.csv", 3, 2, 8, 20)
    assert split_flat()[1] == RunConfig()  # no parameters: every default
    with pytest.raises(ValueError, match="unknown parameters"):
        RunConfig.from_flat(top_m=3)
    with pytest.raises(ValidationError):
        split_flat(max_bad_fraction=2)


def test_every_package_of_ours_that_logs_reaches_the_console_and_the_ui():
    """Prefect ships only the loggers named in PREFECT_LOGGING_EXTRA_LOGGERS; ``store`` was missing, so a
    night's per-file counts ("read N rows: N loaded, ...") and publish step times were never shown."""
    import logging
    import os
    from pathlib import Path

    import flows  # noqa: F401  (sets the defaults)

    root = Path(__file__).resolve().parents[1]
    logging_packages = {
        path.parent.relative_to(root).parts[0]
        for path in root.glob("*/**/*.py")
        if path.parts[len(root.parts)] not in ("tests", "bench", "scripts", ".venv")
        and "getLogger(__name__)" in path.read_text()
    }
    shipped = set(os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"].split(","))
    assert logging_packages and logging_packages <= shipped
    assert all(logging.getLogger(name).getEffectiveLevel() <= logging.INFO for name in logging_packages)
