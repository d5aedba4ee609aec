"""Layers of settings for the nightly flow: defaults < config file < environment < CLI flags.

Every setting is a field of the config classes (``recmodel.config``) and a parameter of
``flows.nightly.nightly`` with the same name:

* a TOML file (``--config PATH``, else ``$COLLABFLOW_CONFIG``, else ``./collabflow.toml`` if present)
  with top-level keys, e.g. ``top_n = 20`` or ``ranker = "ials"``;
* environment variables ``COLLABFLOW_<NAME>`` (``COLLABFLOW_TOP_N=20``);
* command-line flags (``--top-n 20``).
"""

from __future__ import annotations

import inspect
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

ENV_PREFIX = "COLLABFLOW_"
DEFAULT_FILE = "collabflow.toml"


def flow_parameters() -> dict[str, inspect.Parameter]:
    """The nightly flow's parameters (derived from the config classes, see ``flows.parameters``)."""
    from flows.parameters import signature

    return dict(signature().parameters)


def typing_origin(annotation: Any) -> Any:
    """``tuple`` for ``tuple[float, float]`` (also inside ``Annotated``)."""
    from typing import get_args, get_origin

    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return get_origin(annotation)


def config_file(explicit: str | Path | None = None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        return path
    if os.environ.get(ENV_PREFIX + "CONFIG"):
        return config_file(os.environ[ENV_PREFIX + "CONFIG"])
    return Path(DEFAULT_FILE) if Path(DEFAULT_FILE).is_file() else None


def _coerce(name: str, value: Any, param: inspect.Parameter, origin: str) -> Any:
    """Validate (lax: "20" -> 20, "true" -> True) against the flow parameter's type."""
    try:
        return TypeAdapter(param.annotation).validate_python(value)
    except ValidationError as e:
        raise ValueError(f"{origin}: {name}: {e.errors()[0]['msg']}") from None


def layered(config_path: str | Path | None = None) -> dict[str, tuple[Any, str]]:
    """Every parameter's effective value before CLI flags, with where it came from."""
    params = flow_parameters()
    out: dict[str, tuple[Any, str]] = {name: (p.default, "default") for name, p in params.items()}
    path = config_file(config_path)
    if path is not None:
        with path.open("rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: not valid TOML ({e})") from None
        unknown = sorted(set(data) - set(params))
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}; `collabflow config show` lists the valid ones")
        for name, value in data.items():
            out[name] = (_coerce(name, value, params[name], str(path)), str(path))
    for name, param in params.items():
        env = ENV_PREFIX + name.upper()
        if env in os.environ:
            raw = os.environ[env]
            value = None if raw == "" and param.default is None else raw
            if value is not None and typing_origin(param.annotation) is tuple:
                value = [float(v) for v in raw.replace(",", " ").split()]
            out[name] = (_coerce(name, value, param, env) if value is not None else None, env)
    return out


def default_map(config_path: str | Path | None = None) -> dict[str, Any]:
    """Click's default_map for commands taking the nightly parameters: file and environment values."""
    values = {name: value for name, (value, origin) in layered(config_path).items() if origin != "default"}
    return {"run": values, "serve": values}
