"""Config problems with a place: key path plus file line and column, or the env var to blame.

:class:`SourceMap` records where each key of the pipeline file came from (a file
position, or the ``DATAPLUMP__...`` variable that overrode it) and which values came
from ``${...}``. :func:`issues_from_validation_error` turns pydantic's errors into
:class:`ConfigIssue` objects located through it, with messages a person reads:
"unknown key `bootstrap_server`; did you mean `bootstrap_servers`? (valid: ...)".

Values of secret fields and values filled in from ``${...}`` are never shown; a
message says ``'***'`` in their place.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from dataplump.config.models import PipelineConfig
from dataplump.errors import ConfigError

KeyPath = tuple[str | int, ...]
MAX_SHOWN = 10
"""``str(InvalidConfigError)`` lists this many issues, then "... and N more"."""


def format_path(path: Iterable[str | int]) -> str:
    """``("notify", "channels", 0, "url")`` -> ``notify.channels[0].url``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a pipeline config, and where it is."""

    path: str
    """Dotted key path, e.g. ``tables.orders.primary_key``; empty for the whole file."""
    message: str
    """What is wrong, and usually the fix; never contains a secret."""
    file: Path
    """The pipeline file."""
    line: int | None = None
    """1-based line in ``file``, when the problem is in the file."""
    column: int | None = None
    """1-based column in ``file``, when the problem is in the file."""
    env_var: str | None = None
    """The ``DATAPLUMP__...`` environment variable to blame, when an override caused it."""

    @property
    def where(self) -> str:
        """``FILE:LINE:COL``, ``FILE`` or ``env DATAPLUMP__X``."""
        if self.env_var is not None:
            return f"env {self.env_var}"
        if self.line is None:
            return str(self.file)
        return f"{self.file}:{self.line}:{self.column or 1}"

    def __str__(self) -> str:
        return (
            f"{self.where}: {self.path}: {self.message}"
            if self.path
            else f"{self.where}: {self.message}"
        )


class InvalidConfigError(ConfigError):
    """The pipeline config has problems; ``issues`` lists every one found."""

    def __init__(self, file: Path, issues: Sequence[ConfigIssue]) -> None:
        self.file = file
        self.issues = tuple(issues)
        lines = [str(issue) for issue in self.issues[:MAX_SHOWN]]
        if len(self.issues) > MAX_SHOWN:
            lines.append(f"... and {len(self.issues) - MAX_SHOWN} more")
        super().__init__("\n".join(lines))


@dataclass
class SourceMap:
    """Where each key of one config came from, to locate issues."""

    file: Path
    where: dict[KeyPath, tuple[int, int] | str] = field(default_factory=dict)
    """Key path -> 1-based (line, column) in the file, or the env var that set it."""
    hidden: set[KeyPath] = field(default_factory=set)
    """Paths whose value came from ``${...}``: never shown in a message."""
    problems: dict[KeyPath, list[str]] = field(default_factory=dict)
    """Problems found while reading values (a missing env var), by path; reported unless
    an override replaces the value, and validation errors at these paths are dropped."""

    def issue(self, path: KeyPath, message: str) -> ConfigIssue:
        """An issue at ``path``, placed at the closest key that has a known position."""
        for end in range(len(path), -1, -1):
            place = self.where.get(path[:end])
            if isinstance(place, str):
                return ConfigIssue(format_path(path), message, self.file, env_var=place)
            if place is not None:
                return ConfigIssue(format_path(path), message, self.file, *place)
        return ConfigIssue(format_path(path), message, self.file, 1, 1)

    def set_by_env(self, path: KeyPath, var: str) -> None:
        """Record that ``var`` replaced the value at ``path`` (and everything under it)."""
        for known in [p for p in (*self.where, *self.hidden, *self.problems) if _under(p, path)]:
            self.where.pop(known, None)
            self.hidden.discard(known)
            self.problems.pop(known, None)
        self.where[path] = var

    def is_hidden(self, path: KeyPath) -> bool:
        """Whether the value at ``path`` (or around it) came from ``${...}``."""
        return any(path[:end] in self.hidden for end in range(len(path) + 1))


def _under(path: KeyPath, prefix: KeyPath) -> bool:
    return path[: len(prefix)] == prefix


def issues_from_validation_error(exc: ValidationError, source: SourceMap) -> list[ConfigIssue]:
    """One located issue per pydantic error, skipping paths with ``source.problems``."""
    issues = []
    for error in exc.errors(include_url=False):
        path, model, annotation = _walk(error["loc"])
        path, message = _message(error, path, model, annotation, source)
        if not any(_under(path, known) for known in source.problems):
            issues.append(source.issue(path, message))
    return issues


# Errors about a value's type: what was expected instead.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "path_type": "a path",
}


def _message(
    error: Any, path: KeyPath, model: type[BaseModel] | None, annotation: Any, source: SourceMap
) -> tuple[KeyPath, str]:
    kind, ctx = error["type"], error.get("ctx", {})
    secret = source.is_hidden(path) or (
        isinstance(annotation, type) and issubclass(annotation, SecretStr)
    )
    value = error.get("input")
    got = _describe(value, secret)
    typed = value if isinstance(value, str) and not secret else None
    if kind == "missing":
        return path, f"missing required key `{path[-1]}`"
    if kind == "extra_forbidden":
        valid = list(_fields(model)) if model else []
        return path, f"unknown key `{path[-1]}`{_suggest(str(path[-1]), valid)}"
    if kind == "config_conflict":
        return (*path, *ctx["at"]), ctx["message"]
    if kind == "literal_error":
        options = re.findall(r"'((?:[^'\\]|\\.)*)'", ctx["expected"])
        return path, f"invalid choice {got}{_suggest(typed, options)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path, tags = (*path, "kind"), [tag for m in get_args(annotation) if (tag := _tag(m))]
        if kind == "union_tag_not_found":
            return path, f"missing required key `kind` (valid: {', '.join(tags)})"
        hidden = source.is_hidden(path)
        tag = _describe(ctx["tag"], hidden)
        return path, f"invalid choice {tag}{_suggest(None if hidden else ctx['tag'], tags)}"
    if kind in _EXPECTED:
        return path, f"expected {_EXPECTED[kind]}, got {got}"
    if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        return path, "must not be empty"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than_equal": "<="}[kind]
        limit = ctx.get("gt", ctx.get("ge", ctx.get("le")))
        return path, f"expected a number {op} {limit}, got {got}"
    text = str(error["msg"]).removeprefix("Value error, ")
    return path, f"{text[:1].lower()}{text[1:]}, got {got}"


def _describe(value: Any, secret: bool) -> str:
    """A value as messages show it: quoted, shortened, or ``'***'`` for a secret."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if secret:
        return "'***'"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return str(value)
    text = value
    return f"'{text if len(text) <= 60 else text[:57] + '...'}'"


def _suggest(name: str | None, valid: Sequence[str]) -> str:
    close = get_close_matches(name, valid, n=1, cutoff=0.6) if name else []
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return f"{hint} (valid: {', '.join(valid)})"


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated[...]`` and ``| None`` down to the type underneath."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [arg for arg in get_args(tp) if arg is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        else:
            return tp


def _walk(loc: KeyPath) -> tuple[KeyPath, type[BaseModel] | None, Any]:
    """Follow pydantic's ``loc`` through the models.

    Returns the key path as written in the file (without the union tags pydantic
    inserts), the model holding the last key, and the type declared for it.
    """
    tp: Any = PipelineConfig
    path: list[str | int] = []
    model: type[BaseModel] | None = None
    for part in loc:
        tp = _unwrap(tp)
        model = tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
        origin, args = get_origin(tp), get_args(tp)
        if model is not None:
            info = _fields(model).get(str(part))
            tp = info.annotation if info else Any
        elif origin is dict:
            tp = args[1]
        elif origin in (list, tuple):
            tp = args[0]
        elif origin in (Union, types.UnionType):
            member = next((m for m in args if _tag(m) == part), None)
            if member is not None:  # a discriminated union's tag, not a key in the file
                tp = member
                continue
            tp = Any
        else:
            tp = Any
        path.append(part)
    return tuple(path), model, _unwrap(tp)


def _tag(member: Any) -> Any:
    """The ``kind`` a member of a discriminated union is chosen by, else None."""
    if isinstance(member, type) and issubclass(member, BaseModel) and "kind" in member.model_fields:
        return member.model_fields["kind"].default
    return None
