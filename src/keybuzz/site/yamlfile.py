"""YAML loading that remembers where each key is, so validation errors carry line numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from keybuzz.errors import InputError

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)
_MAX_VALUES = 10_000  # a keybuzz.yaml holds a few hundred


@dataclass
class LocatedYaml:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """Line of the deepest known prefix of path (1 when nothing is known)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1


class _YamlProblem(Exception):
    def __init__(self, line: int, message: str, hint: str):
        super().__init__(message)
        self.line, self.message, self.hint = line, message, hint


def _scalar(node: yaml.Node, constructor: yaml.constructor.SafeConstructor) -> Any:
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # a tag safe_load refuses (!!python/object...)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _YamlProblem(node.start_mark.line + 1, f"YAML error: {problem}", "use plain values, no tags") from None


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], constructor: yaml.constructor.SafeConstructor) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if len(lines) > _MAX_VALUES:  # aliases can expand a small file exponentially ("billion laughs")
        raise _YamlProblem(node.start_mark.line + 1, f"more than {_MAX_VALUES} values once aliases are expanded",
                           "write the values out; settings files need no aliases")
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise _YamlProblem(line, "a key is a list or a mapping", "keys are plain names")
            key = _scalar(key_node, constructor)
            if key in out:
                raise _YamlProblem(line, f"key {key!r} appears twice (first on line {lines[(*path, key)]})",
                                   "keep one: YAML would silently use the last")
            lines[(*path, key)] = line
            out[key] = _walk(value_node, (*path, key), lines, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), lines, constructor) for i, item in enumerate(node.value)]
    return _scalar(node, constructor)


def load_yaml(text: str, file: str) -> tuple[LocatedYaml | None, list[InputError]]:
    """Parse YAML; syntax errors come back as InputErrors with the line YAML reports."""
    lines: dict[Path_, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = {} if node is None else _walk(node, (), lines, yaml.constructor.SafeConstructor())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [InputError(file, line, f"YAML syntax error: {problem}",
                                 "check indentation, colons and quotes")]
    except _YamlProblem as exc:
        return None, [InputError(file, exc.line, exc.message, exc.hint)]
    except RecursionError:
        return None, [InputError(file, 1, "YAML nested too deeply or an alias refers to itself",
                                 "settings files are a few levels deep; remove the alias loop")]
    return LocatedYaml(data, lines), []


def validate_model(model: type[M], located: LocatedYaml, file: str) -> tuple[M | None, list[InputError]]:
    """Validate with pydantic and turn every error into file:line form."""
    try:
        return model.model_validate(located.data), []
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message, hint = f"unknown key {dotted}", "remove it or check its spelling"
            elif err["type"] == "missing":
                message, hint = f"missing key {dotted}", "add it"
            else:
                message, hint = f"{dotted}: {message}", "see docs/site.md for the allowed values"
            errors.append(InputError(file, located.line_of(loc), message, hint))
        return None, errors
