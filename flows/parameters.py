"""The nightly flow's parameters, derived from the typed config classes (``recmodel.config``).

One source of truth: each field of ``DataConfig``, ``RunConfig``, ``TrainConfig`` and ``RankConfig`` is one
keyword parameter of the flow with the field's name, type, constraints (``ge``, ``le``, choices) and
default, and its description becomes the parameter's help in the Prefect UI form (an ``Args:`` section of
the flow's docstring) and in ``collabflow run --help``. Nothing here imports Prefect.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic.fields import FieldInfo

from recmodel.config import flat_fields

F = TypeVar("F", bound=Callable[..., Any])


def annotation(info: FieldInfo) -> Any:
    """The field's type with its constraints attached (pydantic and Prefect's schema both read them)."""
    return Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation


def signature() -> inspect.Signature:
    """Keyword-only parameters, one per setting, in ``flat_fields`` order."""
    return inspect.Signature(
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info.default, annotation=annotation(info))
            for name, (_, info) in flat_fields().items()
        ],
        return_annotation=dict,
    )


def helps() -> dict[str, str]:
    """One line of help per parameter: the field's description."""
    return {name: info.description or "" for name, (_, info) in flat_fields().items()}


def from_config(fn: F) -> F:
    """Give ``fn(**params)`` the settings as its visible signature and document each in its docstring.

    Apply below ``@flow``: Prefect builds the flow's parameter schema (the UI form) and validates every
    call against ``inspect.signature(fn)``, which honours ``__signature__``.
    """
    fn.__signature__ = signature()  # type: ignore[attr-defined]
    args = "\n".join(f"    {name}: {text}" for name, text in helps().items())
    fn.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\nArgs:\n{args}\n"
    return fn
