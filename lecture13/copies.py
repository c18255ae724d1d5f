"""The copy report of ``python -m lecture13 grade``: answers that match the published solution or
another submission once names, comments and formatting are normalised.

Two answers match when their syntax trees are the same after every name the answer binds itself
(functions, arguments, variables) is renamed in order of appearance, docstrings are dropped and
the layout is forgotten (``ast.dump`` without positions). Names the answer only reads (``torch``,
``math``, a module's function) keep their names: they carry the meaning. A stub that still raises
``NotImplementedError`` matches nothing. The report is a flag for the instructor, never a deduction.
"""
from __future__ import annotations

import ast
import builtins
import hashlib


class _Rename(ast.NodeTransformer):
    def __init__(self, bound: set[str]):
        self.bound, self.names = bound, {}

    def _name(self, name: str) -> str:
        if name not in self.bound:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        node.id = self._name(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self._name(node.arg)
        node.annotation = None
        return node

    def _function(self, node):
        node.name = self._name(node.name)
        node.returns = None
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        self.generic_visit(node)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node):
        node.name = self._name(node.name)
        self.generic_visit(node)
        return node


def _bound_names(tree: ast.AST) -> set[str]:
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
    return bound - set(dir(builtins))


def fingerprint(source: str) -> str | None:
    """A digest of the normalised answer; None for an unparsable answer or an unanswered stub."""
    from .grading_answer import parse_cell

    try:
        tree = parse_cell(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not tree.body or "NotImplementedError" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}:
        return None
    try:
        normal = ast.dump(_Rename(_bound_names(tree)).visit(tree), annotate_fields=False, include_attributes=False)
    except RecursionError:
        return None
    return hashlib.sha256(normal.encode()).hexdigest()


def copy_report(fingerprints: dict[str, dict[str, str]], published: dict[str, str]) -> dict[str, str]:
    """{student: "grade_id: matches ...; ..."} for every student with at least one match.
    ``fingerprints``: student → {grade_id: fingerprint}; ``published``: grade_id → fingerprint of
    the solution."""
    by_answer: dict[tuple[str, str], list[str]] = {}
    for student, answers in fingerprints.items():
        for grade_id, digest in answers.items():
            by_answer.setdefault((grade_id, digest), []).append(student)
    report = {}
    for student, answers in sorted(fingerprints.items()):
        parts = []
        for grade_id, digest in answers.items():
            others = sorted(s for s in by_answer[(grade_id, digest)] if s != student)
            what = (["the published solution"] if published.get(grade_id) == digest else []) + others[:5]
            if len(others) > 5:
                what.append(f"{len(others) - 5} more")
            if what:
                parts.append(f"{grade_id}: same as {', '.join(what)}")
        if parts:
            report[student] = "; ".join(parts)
    return report
