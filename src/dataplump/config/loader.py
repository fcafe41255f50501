"""Read ``dataplump.yaml``: YAML with positions, ``${ENV}`` interpolation, env overrides.

:func:`load_config` runs these steps and collects every problem before it raises:

1. read the file with ruamel.yaml's round-trip loader, which keeps each key's line
   and column (syntax errors, duplicate keys, an empty file or a top level that is
   not a mapping stop here);
2. replace ``${VAR}`` / ``${VAR:-default}`` in string values (``$${`` is a literal ``${``);
3. apply ``DATAPLUMP__SECTION__KEY=value`` environment overrides;
4. validate with :class:`~dataplump.config.models.PipelineConfig`.

Every problem becomes a :class:`~dataplump.config.issues.ConfigIssue` with the key
path and the file position (or the env var to blame); they are raised together
as one :class:`~dataplump.config.issues.InvalidConfigError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError
from ruamel.yaml import YAML, MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from dataplump.config.issues import (
    ConfigIssue,
    InvalidConfigError,
    KeyPath,
    SourceMap,
    format_path,
    issues_from_validation_error,
)
from dataplump.config.models import PipelineConfig

DEFAULT_CONFIG_FILE = "dataplump.yaml"
"""The pipeline file commands read when none is given."""
CONFIG_ENV_VAR = "DATAPLUMP_CONFIG"
"""Environment variable naming the pipeline file, when ``-c`` is not given."""
OVERRIDE_PREFIX = "DATAPLUMP__"
"""Prefix of environment overrides: ``DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS=host:9092``."""

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_USERINFO = re.compile(r"[A-Za-z][\w+.-]*://([^/@]*)@")
"""A URL's ``user:password@`` part: values put there are percent-encoded."""


def load_config(
    path: str | os.PathLike[str] = DEFAULT_CONFIG_FILE, env: Mapping[str, str] | None = None
) -> PipelineConfig:
    """Load and validate a pipeline file.

    ``env`` (default: ``os.environ``) feeds ``${VAR}`` references and
    ``DATAPLUMP__...`` overrides. Relative paths in the file are resolved against
    the file's folder. Raises :class:`InvalidConfigError` listing every problem.
    """
    env = os.environ if env is None else env
    source = SourceMap(Path(path))
    data = _plain(_read(source), (), env, source)
    issues = _apply_overrides(data, env, source)
    issues += [source.issue(path, m) for path, found in source.problems.items() for m in found]
    config = None
    try:
        context = {"base_dir": source.file.resolve().parent}
        config = PipelineConfig.model_validate(data, context=context)
    except ValidationError as exc:
        issues += issues_from_validation_error(exc, source)
    if config is None or issues:
        issues.sort(key=lambda i: (i.env_var or "", i.line or 0, i.column or 0))
        raise InvalidConfigError(source.file, issues)
    return config


def locate(
    path: str | os.PathLike[str], problems: Iterable[tuple[KeyPath, str]]
) -> list[ConfigIssue]:
    """Problems found after loading (e.g. by running the steps), placed at their file line."""
    source = SourceMap(Path(path))
    _read(source)
    return [source.issue(key_path, message) for key_path, message in problems]


def _read(source: SourceMap) -> dict[str, Any]:
    """The file's top-level mapping, with positions; stops at problems nothing can follow.

    Problems are raised after the ``except`` blocks, so no YAML error (whose text
    quotes the file, secrets included) rides along as the issue's ``__context__``.
    """
    problem: str | None = None
    line = col = None
    try:
        text = source.file.read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = "file not found; pass the pipeline file with -c FILE or set DATAPLUMP_CONFIG"
    except UnicodeDecodeError:
        problem = "not UTF-8 text"
    except OSError as exc:
        problem = f"cannot read the file: {exc.strerror}"
    if problem is None:
        yaml = YAML(typ="rt")
        try:
            problem = DEEP if _flow_depth(text) > MAX_DEPTH else None
            root = None if problem else yaml.compose(text)
            problem = problem or _too_big(root)
            if problem is None:
                if duplicates := _index(root, (), source, set()):
                    raise InvalidConfigError(source.file, duplicates)
                data = yaml.load(text)
        except RecursionError:
            problem = DEEP
        except MarkedYAMLError as exc:
            context, mark = exc.context or "", exc.problem_mark
            if context and exc.context_mark is not None:
                context = f" ({context} started on line {exc.context_mark.line + 1})"
            elif context:
                context = f" ({context})"
            problem = f"YAML syntax error: {exc.problem}{context}"
            line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        except YAMLError as exc:  # errors without a position
            problem = f"YAML error: {type(exc).__name__}"
        except ValueError as exc:  # ruamel building a value, e.g. the date 2020-13-01
            problem = f"YAML value that cannot be read: {exc} (quote it to keep it as text)"
    if problem is None and data is None:
        problem, line, col = "the file is empty; it needs `pipeline`, `source` and `tables`", 1, 1
    elif problem is None and not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else "a single value"
        problem, line, col = f"expected a mapping of sections (`pipeline:`, ...), got {kind}", 1, 1
    if problem is not None:
        raise InvalidConfigError(source.file, [ConfigIssue("", problem, source.file, line, col)])
    return data  # type: ignore[no-any-return]


MAX_DEPTH = 64
"""Levels of nesting a pipeline file may have (it needs about 8)."""
DEEP = f"YAML nested over {MAX_DEPTH} levels deep; a pipeline file needs far fewer"
MAX_VALUES = 100_000
"""Values a pipeline file may hold once its aliases are expanded."""


def _too_big(root: Node | None) -> str | None:
    """Why the composed file is too deep or, aliases expanded, too large; else None.

    Measured on the node graph, each node once (an alias is the node it names), so a
    file of nested aliases ("billion laughs") is refused before it is expanded."""
    sizes: dict[int, int] = {}

    def measure(node: Node, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _Deep
        if id(node) in sizes:
            return
        children: list[Node] = []
        if isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        sizes[id(node)] = 0  # a node that holds itself adds nothing more
        for child in children:
            measure(child, depth + 1)
        sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_VALUES + 1)

    if root is None:
        return None
    try:
        measure(root, 1)
    except _Deep:
        return DEEP
    if sizes[id(root)] > MAX_VALUES:
        return (
            f"YAML aliases expand to over {MAX_VALUES:,} values; a pipeline file is not"
            " that large (write the repeated parts out)"
        )
    return None


def _flow_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` outside quotes and comments: ruamel's
    scanner takes quadratic time over nested flow collections (a minute at 5,000
    levels), so a file nested past :data:`MAX_DEPTH` is refused before it is parsed."""
    deepest = depth = 0
    for line in text.splitlines():
        quote = ""
        for i, char in enumerate(line):
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#" and (i == 0 or line[i - 1] in " \t"):
                break
            elif char in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif char in "]}":
                depth = max(depth - 1, 0)
    return deepest


class _Deep(Exception):
    """Raised by :func:`_too_big` past :data:`MAX_DEPTH`."""


def _index(
    node: Node | None, path: KeyPath, source: SourceMap, seen: set[int]
) -> list[ConfigIssue]:
    """Record each key's and list item's position; return an issue per duplicate key."""
    if node is None or id(node) in seen:  # an alias of a node already indexed
        return []
    seen.add(id(node))
    items: list[tuple[str | int, Node, Node]] = []
    if isinstance(node, MappingNode):
        items = [(str(k.value), k, v) for k, v in node.value if isinstance(k, ScalarNode)]
    elif isinstance(node, SequenceNode):
        items = [(i, item, item) for i, item in enumerate(node.value)]
    duplicates = []
    for key, key_node, value in items:
        here, line, col = (*path, key), key_node.start_mark.line + 1, key_node.start_mark.column + 1
        if here in source.where and key != "<<":
            first = f"first on line {source.where[here][0]}"
            message = f"duplicate key `{key}` ({first}); keep one"
            duplicates.append(ConfigIssue(format_path(here), message, source.file, line, col))
        else:
            source.where[here] = (line, col)
        duplicates += _index(value, here, source, seen)
    return duplicates


def _plain(value: Any, path: KeyPath, env: Mapping[str, str], source: SourceMap) -> Any:
    """ruamel's round-trip objects as plain Python data, with ``${...}`` replaced."""
    if isinstance(value, dict):
        return {str(k): _plain(v, (*path, str(k)), env, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, (*path, i), env, source) for i, v in enumerate(value)]
    if isinstance(value, str):
        return _interpolate(str(value), path, env, source)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):  # ruamel's ScalarInt and friends
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _interpolate(text: str, path: KeyPath, env: Mapping[str, str], source: SourceMap) -> str:
    """``text`` with ``${...}`` replaced; problems go to ``source.problems``.

    A value replacing a reference in a URL's ``user:password@`` part is percent-encoded,
    so a password with ``@``, ``/`` or ``:`` keeps the URL whole (and out of the host
    name an error would show). A reference that is the whole URL is taken as written.
    """
    masked = _REFERENCE.sub(lambda m: "x" * len(m[0]), text)
    userinfo = _USERINFO.match(masked)
    userinfo_end = userinfo.end(1) if userinfo else -1

    def replace(match: re.Match[str]) -> str:
        value = substitute(match)
        return quote(value, safe="") if match.end() <= userinfo_end else value

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        source.hidden.add(path)
        variable = _VARIABLE.fullmatch(match[1] or "")
        if variable is None:  # show the name only: the rest may be a secret default
            body = match[1] or ""
            name = re.match(r"\w*", body)[0]  # type: ignore[index]
            shown = "${" + name + ("...}" if body != name else "}" if match[1] is not None else "")
            problem = (
                f"malformed reference `{shown}`: write `${{NAME}}` or `${{NAME:-default}}`,"
                " and `$${` for a literal `${`"
            )
        elif variable[2] is not None:
            return env.get(variable[1]) or variable[2]
        elif variable[1] in env:
            return env[variable[1]]
        else:
            problem = (
                f"environment variable `{variable[1]}` is not set; set it, or write"
                f" `${{{variable[1]}:-default}}` to give a default"
            )
        source.problems.setdefault(path, []).append(problem)
        return ""

    return _REFERENCE.sub(replace, text)


def _apply_overrides(
    data: dict[str, Any], env: Mapping[str, str], source: SourceMap
) -> list[ConfigIssue]:
    """Apply ``DATAPLUMP__A__B=value`` variables, in name order, to ``data`` in place."""
    issues = []
    scalar = YAML(typ="safe", pure=True)
    for var in sorted(name for name in env if name.upper().startswith(OVERRIDE_PREFIX)):
        parts = [part.lower() for part in var[len(OVERRIDE_PREFIX) :].split("__")]
        try:
            value = scalar.load(env[var])
        except YAMLError:
            value = env[var]
        problem: tuple[str, str] | None = ("", "empty key in the name; write DATAPLUMP__A__B=value")
        if all(parts):
            problem = _set(data, parts, value, var, source)
        if problem:
            issues.append(ConfigIssue(problem[0], problem[1], source.file, env_var=var))
    return issues


def _set(
    data: dict[str, Any], parts: list[str], value: Any, var: str, source: SourceMap
) -> tuple[str, str] | None:
    """Set ``value`` at ``parts`` (keys matched case-insensitively, list items by index)."""
    node: Any = data
    path: list[str | int] = []
    created: KeyPath | None = None
    for part in parts:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            key: str | int = int(part)
        elif isinstance(node, dict):
            key = next((k for k in node if k.lower() == part), part)
        else:
            return format_path(path), f"holds a single value, not a mapping; cannot set `{part}`"
        path.append(key)
        if len(path) == len(parts):
            node[key] = value
        elif (node.get(key) if isinstance(node, dict) else node[key]) is None:
            node[key] = {}
            created = created or tuple(path)
        node = node[key]
    source.set_by_env(created or tuple(path), var)
    return None
