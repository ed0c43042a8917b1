"""The subset of Helm's Go templates the exported chart uses, rendered in Python (Helm is not needed to read it).

The chart's templates keep to: ``{{ .a.b }}`` and ``{{ $.a.b }}`` values, string and integer literals, the
functions ``quote``, ``toYaml``, ``toJson``, ``int``, ``nindent``, ``indent`` and ``not`` in pipelines, ``if``/``else``,
``range`` over lists and maps (sorted keys, as Go does), and the ``{{-``/``-}}`` whitespace trims. Anything else
is an error here, so a template that strays from the subset fails the export's own rendering (and its tests)
instead of rendering differently from Helm. ``manifests/`` of an export is this renderer's output.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
INTEGER = re.compile(r"[-+]?[0-9]+")
GO_JSON_ESCAPES = {ord(char): f"\\u{ord(char):04x}" for char in "<>&\u2028\u2029"}


class TemplateError(ValueError):
    """A template outside the supported subset, or a value it cannot render."""


@dataclass
class Node:
    """One parsed piece: text, an action, or an ``if``/``range`` block with its bodies."""

    kind: str
    text: str = ""
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


def to_yaml(value: Any) -> str:
    """Helm's ``toYaml``: block-style YAML with sorted keys, no trailing newline."""
    if value is None:
        return "null"
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False).rstrip("\n").removesuffix("\n...")


def to_json(value: Any) -> str:
    """Helm's ``toJson`` (Go's json.Marshal): compact, sorted keys, UTF-8 kept, ``<``, ``>``, ``&``, U+2028 and U+2029
    escaped as ``\\uXXXX``."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.translate(GO_JSON_ESCAPES)


def to_int(value: Any) -> int:
    """Sprig's ``int``: a number truncated toward zero, nil as 0. Helm holds every number of the values as a float,
    which Go prints as ``1e+06`` from a million on, so the templates print integers through ``int``."""
    if value is None:
        return 0
    if isinstance(value, str) and INTEGER.fullmatch(value):
        return int(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return int(value)
    raise TemplateError(f"int of {value!r}")


def scalar(value: Any) -> str:
    """How Go prints a value in ``{{ }}``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<no value>"
    if isinstance(value, (dict, list)):
        raise TemplateError(f"cannot print a {type(value).__name__} without toYaml or toJson")
    return str(value)


def truthy(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty strings, lists and maps are false."""
    return bool(value)


def _indent(spaces: Any, text: Any) -> str:
    pad = " " * int(spaces)
    return "\n".join(pad + line if line else line for line in str(text).split("\n"))


FUNCTIONS = {
    "quote": lambda value: json.dumps(scalar(value)),
    "toYaml": to_yaml,
    "toJson": to_json,
    "int": to_int,
    "indent": _indent,
    "nindent": lambda spaces, text: "\n" + _indent(spaces, text),
    "not": lambda value: not truthy(value),
}


def _tokens(source: str) -> list[tuple[str, str]]:
    """Text and action tokens, with the trims applied to the text around them."""
    tokens: list[tuple[str, str]] = []
    position = 0
    for match in ACTION.finditer(source):
        text = source[position : match.start()]
        if match.group(1):
            text = text.rstrip()
        tokens.append(("text", text))
        tokens.append(("action", match.group(2)))
        position = match.end()
        if match.group(3):
            rest = source[position:]
            position += len(rest) - len(rest.lstrip())
    tokens.append(("text", source[position:]))
    return [token for token in tokens if token != ("text", "")]


def parse(source: str) -> list[Node]:
    """The template as a tree of nodes; an unclosed or unknown block is a TemplateError."""
    root: list[Node] = []
    stack: list[tuple[Node | None, list[Node]]] = [(None, root)]
    for kind, text in _tokens(source):
        block, into = stack[-1]
        if kind == "text":
            into.append(Node("text", text))
            continue
        if text.startswith("/*"):
            continue
        word, _, rest = text.partition(" ")
        if word in ("if", "range"):
            node = Node(word, rest.strip())
            into.append(node)
            stack.append((node, node.body))
        elif word == "else":
            if block is None or block.kind != "if" or rest:
                raise TemplateError(f"unsupported {{{{ {text} }}}}")
            stack[-1] = (block, block.orelse)
        elif word == "end":
            if block is None:
                raise TemplateError("{{ end }} without a block")
            stack.pop()
        elif word in ("with", "define", "template", "include", "block") or ":=" in text:
            raise TemplateError(f"{{{{ {text} }}}} is outside the chart's template subset")
        else:
            into.append(Node("action", text))
    if len(stack) != 1:
        raise TemplateError(f"{{{{ {stack[-1][0].kind} }}}} is not closed")  # type: ignore[union-attr]
    return root


def _lookup(value: Any, path: str, where: str) -> Any:
    for key in filter(None, path.split(".")):
        if not isinstance(value, Mapping):
            raise TemplateError(f"{where}: {key!r} of a {type(value).__name__}")
        value = value.get(key)
    return value


def _operand(token: str, dot: Any, root: Any) -> Any:
    if token.startswith('"'):
        return json.loads(token)
    if token.lstrip("-").isdigit():
        return int(token)
    if token == "$" or token.startswith("$."):
        return _lookup(root, token[1:], token)
    if token.startswith("."):
        return _lookup(dot, token, token)
    raise TemplateError(f"unknown operand {token!r}")


def evaluate(pipeline: str, dot: Any, root: Any) -> Any:
    """The value of a pipeline such as ``toYaml .Values.resources | nindent 12``."""
    result: Any = None
    for position, command in enumerate(part.strip() for part in pipeline.split("|")):
        words = TOKEN.findall(command)
        if not words:
            raise TemplateError(f"empty command in {pipeline!r}")
        name, args = words[0], [_operand(word, dot, root) for word in words[1:]]
        if position:
            args.append(result)
        if name in FUNCTIONS:
            result = FUNCTIONS[name](*args)
        elif len(words) == 1 and not position:
            result = _operand(name, dot, root)
        else:
            raise TemplateError(f"unknown function {name!r} in {pipeline!r}")
    return result


def _render(nodes: list[Node], dot: Any, root: Any, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "action":
            out.append(scalar(evaluate(node.text, dot, root)))
        elif node.kind == "if":
            _render(node.body if truthy(evaluate(node.text, dot, root)) else node.orelse, dot, root, out)
        else:
            items = evaluate(node.text, dot, root) or []
            values = [items[key] for key in sorted(items)] if isinstance(items, Mapping) else items
            for item in values:
                _render(node.body, item, root, out)


def render(source: str, context: Mapping[str, Any]) -> str:
    """The template rendered with ``context`` (``{"Values": ..., "Chart": ...}``, as Helm gives it)."""
    out: list[str] = []
    _render(parse(source), context, context, out)
    return "".join(out)


def documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a rendered template."""
    return [document for document in yaml.safe_load_all(text) if document]
