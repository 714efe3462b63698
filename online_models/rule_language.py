"""The rules' condition language: a small, safe subset of Python expression syntax.

A condition is parsed with ``ast.parse`` and accepted only if every node is on a whitelist
(comparisons, ``and`` / ``or`` / ``not``, ``in`` / ``not in`` a literal list, ``+ - * / %`` on
numbers, ``abs`` / ``min`` / ``max``, names, number / string / boolean literals); it is then compiled
into nested closures. Nothing is ever passed to ``eval`` or ``exec``, attribute access, subscripts,
lambdas, comprehensions and every other call are refused, and the size of a condition (characters,
nodes, depth, list length) is bounded, so a rules file cannot run code or make a worker spin.

Arithmetic takes numbers only (``"a" * 10**9`` is refused when it runs, not computed). A condition
that meets a name the event does not have, a division by zero or mixed types raises
:class:`ConditionError` when it runs; the rule then does not fire (``online_models.rules``).

>>> c = compile_condition("amount <= 5 and (user_count_1m >= 2 or new_device > 0)")
>>> c({"amount": 1.0, "user_count_1m": 3, "new_device": 0}), c({"amount": 9.0, "user_count_1m": 3, "new_device": 1})
(True, False)
>>> compile_condition("country in ['FR', 'DE'] and not channel == 'pos'")({"country": "FR", "channel": "web"})
True
>>> compile_condition("__import__('os').system('true')")
Traceback (most recent call last):
...
online_models.rule_language.ConditionRefused: calls other than abs, min, max are not allowed (at column 1)
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from schemas.errors import StreamsenseError

MAX_CHARS = 2000
MAX_NODES = 200
MAX_DEPTH = 24
MAX_LIST_ITEMS = 1000

Env = Mapping[str, Any]
Node = Callable[[Env], Any]


class ConditionRefused(StreamsenseError):
    """A condition outside the language (or over its size bounds): refused when the rules are loaded."""


class ConditionError(StreamsenseError):
    """A condition that could not be evaluated on one event (a missing name, a division by zero, mixed types)."""


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConditionError(f"arithmetic on a non-number: {value!r}")
    return value


def _arith(op: Callable[[float, float], float]) -> Callable[[Any, Any], float]:
    def run(a: Any, b: Any) -> float:
        try:
            return op(_number(a), _number(b))
        except ZeroDivisionError:
            raise ConditionError("division by zero") from None
    return run


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def run(a: Any, b: Any) -> bool:
        try:
            return op(a, b)
        except TypeError:
            raise ConditionError(f"cannot compare {a!r} with {b!r}") from None
    return run


def _member(a: Any, b: Any) -> bool:
    try:
        return a in b
    except TypeError:
        raise ConditionError(f"cannot look for {a!r} in {b!r}") from None


BINARY = {ast.Add: _arith(operator.add), ast.Sub: _arith(operator.sub), ast.Mult: _arith(operator.mul),
          ast.Div: _arith(operator.truediv), ast.Mod: _arith(operator.mod)}
COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: _ordered(operator.lt), ast.LtE: _ordered(operator.le),
           ast.Gt: _ordered(operator.gt), ast.GtE: _ordered(operator.ge), ast.In: _member,
           ast.NotIn: lambda a, b: not _member(a, b)}
# name -> (function, fewest arguments, most arguments)
FUNCTIONS = {"abs": (lambda a: abs(_number(a)), 1, 1),
             "min": (lambda *a: min(map(_number, a)), 2, 8),
             "max": (lambda *a: max(map(_number, a)), 2, 8)}
CONSTANTS = (bool, int, float, str)


def _lookup(name: str) -> Node:
    def run(env: Env) -> Any:
        try:
            return env[name]
        except KeyError:
            raise ConditionError(f"the event has no {name!r}") from None
    return run


class _Compiler:
    def __init__(self) -> None:
        self.nodes = 0

    def refuse(self, node: ast.AST, why: str) -> ConditionRefused:
        return ConditionRefused(f"{why} (at column {getattr(node, 'col_offset', 0) + 1})")

    def compile(self, node: ast.AST, depth: int = 0) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise self.refuse(node, f"too large: at most {MAX_NODES} nodes and depth {MAX_DEPTH}")
        sub = lambda child: self.compile(child, depth + 1)  # noqa: E731
        match node:
            case ast.Constant(value=value) if type(value) in CONSTANTS:
                return lambda env: value
            case ast.Name(id=name) if name not in ("True", "False", "None"):
                return _lookup(name)
            case ast.List(elts=items) | ast.Tuple(elts=items) | ast.Set(elts=items):
                if len(items) > MAX_LIST_ITEMS or not all(isinstance(i, ast.Constant) for i in items):
                    raise self.refuse(node, f"a list holds at most {MAX_LIST_ITEMS} literals")
                members = frozenset(sub(i)({}) for i in items)
                return lambda env: members
            case ast.BoolOp(op=ast.And(), values=values):
                parts = [sub(v) for v in values]
                return lambda env: all(bool(p(env)) for p in parts)
            case ast.BoolOp(op=ast.Or(), values=values):
                parts = [sub(v) for v in values]
                return lambda env: any(bool(p(env)) for p in parts)
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                inner = sub(operand)
                return lambda env: not inner(env)
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                inner = sub(operand)
                return lambda env: -_number(inner(env))
            case ast.BinOp(op=op, left=left, right=right) if type(op) in BINARY:
                run, a, b = BINARY[type(op)], sub(left), sub(right)
                return lambda env: run(a(env), b(env))
            case ast.Compare(left=left, ops=ops, comparators=rights):
                if not all(type(op) in COMPARE for op in ops):
                    raise self.refuse(node, "unknown comparison")
                first, steps = sub(left), [(COMPARE[type(op)], sub(r)) for op, r in zip(ops, rights, strict=True)]
                return lambda env: _chain(first(env), steps, env)
            case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
                run, fewest, most = FUNCTIONS[name]
                if not fewest <= len(args) <= most:
                    raise self.refuse(node, f"{name} takes {fewest} to {most} arguments")
                parts = [sub(a) for a in args]
                return lambda env: run(*(p(env) for p in parts))
            case ast.Call():
                raise self.refuse(node, f"calls other than {', '.join(FUNCTIONS)} are not allowed")
        raise self.refuse(node, f"{type(node).__name__} is not part of the rules language")


def _chain(left: Any, steps: list[tuple[Callable[[Any, Any], bool], Node]], env: Env) -> bool:
    for compare, right in steps:
        value = right(env)
        if not compare(left, value):
            return False
        left = value
    return True


class Condition:
    """A compiled condition: ``condition(env)`` is True or False, or raises ConditionError."""

    __slots__ = ("text", "_run")

    def __init__(self, text: str, run: Node) -> None:
        self.text = text
        self._run = run

    def __call__(self, env: Env) -> bool:
        return bool(self._run(env))

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"


def compile_condition(text: str) -> Condition:
    """Parse and compile ``text``; raises ConditionRefused for anything outside the language."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHARS:
        raise ConditionRefused(f"a condition is a non-empty text of at most {MAX_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionRefused(f"not a valid condition: {exc.msg} (at column {exc.offset})") from None
    except (RecursionError, MemoryError):  # the parser's own limits, met before ours
        raise ConditionRefused("too deeply nested") from None
    return Condition(text, _Compiler().compile(tree.body))
