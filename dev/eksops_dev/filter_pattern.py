"""An evaluator for a subset of the CloudWatch Logs filter pattern syntax: emulation for tests and the sandbox.

moto implements neither TestMetricFilter nor the feeding of log events to metric filters, so nothing in the
local stack says which log events a pattern counts. This module answers that for the subset eksops uses, as
the CloudWatch Logs user guide ("Filter pattern syntax for metric filters ...") describes it:

* ``""`` matches every event.
* Terms: ``ERROR``, ``"two words"``: every term must occur in the message (case-sensitive substring);
  ``-term`` excludes; ``?a ?b`` matches when any of the ``?`` terms occurs.
* JSON: ``{ $.log = "*ERROR*" || ($.a.b[0] != x && $.n >= 5) }`` with ``=`` / ``!=`` on strings (a ``*`` at
  the start or end is a wildcard; one inside is a literal ``*``, as the guide's ``Ev*ent`` example says),
  ``= *`` (any value), numeric comparisons, ``IS TRUE`` / ``IS FALSE`` / ``IS NULL`` / ``NOT EXISTS``,
  ``%regex%`` values, ``&&`` before ``||``, parentheses. A selector that points at an object or an array,
  or at nothing, makes its comparison false (for ``=`` and ``!=`` alike); a message that is not a JSON object
  never matches a JSON pattern.
* ``%regex%`` on its own: a regular expression searched in the message, restricted to the characters the
  guide allows (no parentheses, no spaces, ASCII only).

Space-delimited patterns (``[ip, user, ...]``) are not supported and raise :class:`PatternError`.

Production code never imports this module: deployed functions only send patterns to CloudWatch Logs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["FilterPattern", "PatternError", "count", "parse"]

_MISSING = object()
_REGEX_ALLOWED = re.compile(r"^[A-Za-z0-9:_#=@/;,\-^$?\[\]{}|\\*+.]*$")
_SELECTOR = re.compile(r"\$(?:\.[A-Za-z0-9_\-]+|\[\d+\])*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BARE = re.compile(r"[^\s()&|=!<>\"{}]+")
_OPERATORS = ("!=", ">=", "<=", "=", ">", "<")


class PatternError(ValueError):
    """The pattern is malformed, or uses syntax this emulation does not cover."""


@dataclass(frozen=True)
class FilterPattern:
    """A parsed pattern; ``matches(message)`` says whether a log event with that message is counted."""

    source: str
    _predicate: Callable[[str], bool]

    def matches(self, message: str) -> bool:
        return self._predicate(message)


def parse(pattern: str) -> FilterPattern:
    """Parse ``pattern``; raises :class:`PatternError` for malformed or unsupported syntax."""
    text = pattern.strip()
    if text == "":
        return FilterPattern(pattern, lambda _message: True)
    if text.startswith("{"):
        if not text.endswith("}"):
            raise PatternError("a JSON pattern must end with }")
        parser = _JsonParser(text[1:-1])
        predicate = parser.parse()
        return FilterPattern(pattern, lambda message: _json_match(predicate, message))
    if text.startswith("["):
        raise PatternError("space-delimited patterns are not supported by this emulation")
    if text.startswith("%") and text.endswith("%") and len(text) > 1:
        regex = _regex(text[1:-1])
        return FilterPattern(pattern, lambda message: regex.search(message) is not None)
    return FilterPattern(pattern, _terms(text))


def count(pattern: str, messages: Iterable[str]) -> int:
    """How many of ``messages`` the pattern matches: what a metric filter with metric value 1 would sum."""
    compiled = parse(pattern)
    return sum(1 for message in messages if compiled.matches(message))


# -- terms -------------------------------------------------------------------------------------------------


def _terms(text: str) -> Callable[[str], bool]:
    required: list[str] = []
    excluded: list[str] = []
    optional: list[str] = []
    for prefix, term in _tokenize_terms(text):
        {"": required, "-": excluded, "?": optional}[prefix].append(term)
    if optional and required:
        raise PatternError("mixing ?terms with plain terms is not supported by this emulation")

    def predicate(message: str) -> bool:
        if any(term in message for term in excluded):
            return False
        if optional:
            return any(term in message for term in optional)
        return all(term in message for term in required)

    return predicate


def _tokenize_terms(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        prefix = ""
        if text[i] in "-?":
            prefix, i = text[i], i + 1
            while i < len(text) and text[i].isspace():
                i += 1  # the guide writes `"ERROR" - "Exiting"` with a space after the minus
        if i < len(text) and text[i] == '"':
            term, i = _quoted(text, i)
        else:
            start = i
            while i < len(text) and not text[i].isspace():
                i += 1
            term = text[start:i]
            if not re.fullmatch(r"[A-Za-z0-9_]+", term):
                raise PatternError(f"term {term!r} has characters other than letters, digits and _; quote it")
        if term == "":
            raise PatternError("empty term")
        tokens.append((prefix, term))
    return tokens


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The string in double quotes at ``start`` (backslash escapes the next character), and the index after."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise PatternError("unterminated quoted string")


def _regex(body: str) -> re.Pattern[str]:
    if not body:
        raise PatternError("empty regular expression")
    if not _REGEX_ALLOWED.match(body):
        raise PatternError(f"regular expression %{body}% uses characters CloudWatch Logs does not accept")
    try:
        return re.compile(body)
    except re.error as exc:
        raise PatternError(f"invalid regular expression %{body}%: {exc}") from None


# -- JSON --------------------------------------------------------------------------------------------------

Node = Callable[[Any], bool]


def _json_match(predicate: Node, message: str) -> bool:
    try:
        document = json.loads(message)
    except ValueError:
        return False
    return isinstance(document, dict) and predicate(document)


def _select(document: Any, selector: str) -> Any:
    node = document
    for part in re.findall(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]", selector[1:]):
        key, index = part
        if key:
            if not isinstance(node, dict) or key not in node:
                return _MISSING
            node = node[key]
        else:
            if not isinstance(node, list) or int(index) >= len(node):
                return _MISSING
            node = node[int(index)]
    return node


def _is_value(node: Any) -> bool:
    return node is not _MISSING and not isinstance(node, (dict, list))


def _string_matcher(expected: str) -> Callable[[str], bool]:
    if expected == "*":
        return lambda _value: True
    lead, trail = expected.startswith("*"), expected.endswith("*") and len(expected) > 1
    core = expected[1 if lead else 0 : len(expected) - 1 if trail else len(expected)]
    if lead and trail:
        return lambda value: core in value
    if lead:
        return lambda value: value.endswith(core)
    if trail:
        return lambda value: value.startswith(core)
    return lambda value: value == core


def _text(node: Any) -> str:
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, float) and node.is_integer():
        return str(int(node))
    return str(node)


def _identity_check(path: str, expected: Any) -> Node:
    """``IS TRUE`` / ``IS FALSE`` / ``IS NULL`` / ``NOT EXISTS``: the selected node is exactly ``expected``."""
    return lambda doc: _select(doc, path) is expected


class _JsonParser:
    """Recursive descent: or := and ('||' and)*; and := atom ('&&' atom)*; atom := '(' or ')' | comparison."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Node:
        node = self._or()
        self._skip()
        if self.pos != len(self.text):
            raise PatternError(f"unexpected {self.text[self.pos :]!r} in JSON pattern")
        return node

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _take(self, token: str) -> bool:
        self._skip()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def _or(self) -> Node:
        terms = [self._and()]
        while self._take("||"):
            terms.append(self._and())
        return terms[0] if len(terms) == 1 else lambda doc: any(term(doc) for term in terms)

    def _and(self) -> Node:
        terms = [self._atom()]
        while self._take("&&"):
            terms.append(self._atom())
        return terms[0] if len(terms) == 1 else lambda doc: all(term(doc) for term in terms)

    def _atom(self) -> Node:
        if self._take("("):
            node = self._or()
            if not self._take(")"):
                raise PatternError("missing ) in JSON pattern")
            return node
        return self._comparison()

    def _comparison(self) -> Node:
        self._skip()
        selector = _SELECTOR.match(self.text, self.pos)
        if not selector or selector.group() == "$":
            raise PatternError(f"expected a selector such as $.log at {self.text[self.pos :]!r}")
        self.pos = selector.end()
        path = selector.group()
        for keyword, expected in (("IS TRUE", True), ("IS FALSE", False), ("IS NULL", None), ("NOT EXISTS", _MISSING)):
            if self._take(keyword):
                return _identity_check(path, expected)
        operator = next((op for op in _OPERATORS if self._take(op)), None)
        if operator is None:
            raise PatternError(f"expected an operator after {path}")
        return self._value(path, operator)

    def _value(self, path: str, operator: str) -> Node:
        self._skip()
        rest = self.text[self.pos :]
        if rest.startswith('"'):
            value, self.pos = _quoted(self.text, self.pos)
            return self._string_comparison(path, operator, _string_matcher(value))
        if rest.startswith("%"):
            end = self.text.find("%", self.pos + 1)
            if end < 0:
                raise PatternError("unterminated %regex%")
            regex = _regex(self.text[self.pos + 1 : end])
            self.pos = end + 1
            return self._string_comparison(path, operator, lambda value: regex.search(value) is not None)
        number = _NUMBER.match(self.text, self.pos)
        bare = _BARE.match(self.text, self.pos)
        if number and (not bare or bare.end() == number.end()):
            self.pos = number.end()
            return self._numeric_comparison(path, operator, float(number.group()), number.group())
        if not bare:
            raise PatternError(f"expected a value after {path} {operator}")
        self.pos = bare.end()
        return self._string_comparison(path, operator, _string_matcher(bare.group()))

    @staticmethod
    def _string_comparison(path: str, operator: str, matcher: Callable[[str], bool]) -> Node:
        if operator not in {"=", "!="}:
            raise PatternError(f"{operator} needs a number")
        negate = operator == "!="

        def node(doc: Any) -> bool:
            value = _select(doc, path)
            if not _is_value(value) or value is None:
                return False
            return matcher(_text(value)) != negate

        return node

    @staticmethod
    def _numeric_comparison(path: str, operator: str, expected: float, literal: str) -> Node:
        compare: dict[str, Callable[[float, float], bool]] = {
            "=": math.isclose,
            "!=": lambda a, b: not math.isclose(a, b),
            ">": lambda a, b: a > b,
            "<": lambda a, b: a < b,
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
        }

        def node(doc: Any) -> bool:
            value = _select(doc, path)
            if isinstance(value, bool) or not _is_value(value) or value is None:
                return False
            if isinstance(value, (int, float)):
                return compare[operator](float(value), expected)
            if operator in {"=", "!="}:  # a string field compared with a number-looking literal: as text
                return (str(value) == literal) != (operator == "!=")
            try:
                return compare[operator](float(str(value)), expected)
            except ValueError:
                return False

        return node
