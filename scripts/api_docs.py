"""Write the route tables and the model reference of docs/api.md from the operation table
(``mist_core.operations``) and the daemon's OpenAPI document (``make docs``).

Only the text between markers is replaced; everything around them stays as written by hand:

    <!-- operations: auth users.get -->  ...  <!-- end operations -->
    <!-- models -->  ...  <!-- end models -->

A marker names parts (``auth``: every operation of ``mist.auth``) and operations (``apps.source``); an
operation goes to the marker naming it, else to the one naming its part, and each operation is in exactly
one table.

Usage: ``python scripts/api_docs.py [--check]``: with ``--check``, change nothing and exit 1 when docs/api.md
is not what this script makes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mist_core.operations import EMPTY, OPERATIONS, Argument, Operation, model_type  # noqa: E402
from mist_core.server.app import create_app  # noqa: E402

DOC = ROOT / "docs" / "api.md"
OPERATIONS_BLOCK = re.compile(r"(<!-- operations: ([^>]*?) -->\n)(.*?)(<!-- end operations -->)", re.DOTALL)
MODELS_BLOCK = re.compile(r"(<!-- models -->\n)(.*?)(<!-- end models -->)", re.DOTALL)
# Schemas of the document that are not worth a section: FastAPI's own, and the pages (see "Pagination").
NOT_MODELS = re.compile(r"HTTPValidationError|ValidationError|Page_.*")


class _NoCore:
    def api(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("only the OpenAPI document is read")


def openapi() -> dict[str, Any]:
    document = create_app(_NoCore()).openapi()
    # The items of the streams are in no response schema: add them, so the models below cover them too.
    items = [(o.returns, "serialization") for o in OPERATIONS.values() if o.stream]
    _, extra = models_json_schema(items, ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in extra.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    return document


# ---------------------------------------------------------------------------------------------- text


def prose(text: str) -> str:
    """The first paragraph of a docstring on one line, in Markdown."""
    paragraph = text.strip().split("\n\n")[0]
    return re.sub(r"``([^`]+)``", r"`\1`", " ".join(line.strip() for line in paragraph.splitlines()))


def anchor(name: str) -> str:
    return "#" + re.sub(r"[^a-z0-9 _-]", "", name.lower()).replace(" ", "-")


def type_name(annotation: Any) -> str:
    """A result or field type as the reference writes it: ``[User]``, ``Page[App]``, a link to a model."""
    if annotation is None:
        return ""
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return f"[`[{item.__name__}]`]({anchor(item.__name__)})"
    meta = getattr(annotation, "__pydantic_generic_metadata__", None) or {}
    if meta.get("origin") is not None:
        (item,) = meta["args"]
        return f"[`{meta['origin'].__name__}[{item.__name__}]`]({anchor(item.__name__)})"
    return f"[`{annotation.__name__}`]({anchor(annotation.__name__)})"


def wire_value(argument: Argument) -> str:
    """What the query string shows for an argument: its default as sent, or the form of a time."""
    value = argument.codec.encode(argument.default) if argument.codec else argument.default
    if datetime in (argument.annotation, *typing.get_args(argument.annotation)):
        return "ISO-8601"
    if value is None or value is EMPTY:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------------------------- routes


def schema_of(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a ``$ref`` (or an ``anyOf`` of one and null) followed."""
    for option in schema.get("anyOf", []):
        if "$ref" in option:
            schema = option
    if "$ref" in schema:
        return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def fields_of(schema: dict[str, Any], names: list[str] | None = None) -> str:
    required = set(schema.get("required", []))
    shown = names if names is not None else list(schema.get("properties", {}))
    return "{" + ", ".join(n if n in required else f"{n}?" for n in shown) + "}"


def parameters(document: dict[str, Any], operation: Operation) -> str:
    """The query string and the body of ``operation``, as the table's third column shows them."""
    parts = []
    query = operation.placed("query")
    if query:
        parts.append("`?" + "&".join(f"{a.wire}={wire_value(a)}" for a in query) + "`")
    notes = []
    for a in query:
        said = [a.description or (a.codec.description if a.codec else "")]
        if a.wire != a.name:
            said.append(f"the argument `{a.name}`")
        if a.required:
            said.insert(0, "required")
        if any(said):
            notes.append(f"`{a.wire}`: " + ", ".join(s for s in said if s))
    route = document["paths"]["/v1" + operation.path][operation.method.lower()]
    body = route.get("requestBody")
    if body is not None:
        content = body["content"]
        schema = schema_of(
            document, (content.get("application/json") or next(iter(content.values())))["schema"]
        )
        whole, spread = operation.placed("model"), operation.placed("spread")
        if whole:
            model = model_type(whole[0].annotation)
            assert model is not None
            text = f"[`{model.__name__}`]({anchor(model.__name__)}) `{fields_of(schema)}`"
        elif spread:
            model = model_type(spread[0].annotation)
            assert model is not None
            beside = [name for name, _, _ in operation.body_fields]
            text = f"`{fields_of(schema, beside)}` beside the fields of [`{model.__name__}`]({anchor(model.__name__)})"
        else:
            text = f"`{fields_of(schema)}`"
        if not body.get("required"):
            text += " (or no body)"
        parts.append(text)
    if notes:
        parts.append("(" + "; ".join(notes) + ")")
    return " ".join(parts)


def answer(operation: Operation) -> str:
    if operation.stream:
        what = f"SSE of {type_name(operation.returns)}"
    elif operation.returns is None:
        what = ""
    elif operation.returns is str:
        what = "`text/plain`"
    else:
        what = type_name(operation.returns)
    status = "" if operation.status == 200 and what else str(operation.status)
    head = " ".join(p for p in (status, what) if p)
    return f"{head}: {prose(operation.doc)}" if operation.doc else head


def route_table(document: dict[str, Any], operations: list[Operation]) -> str:
    lines = ["| operation | method | path | query / body | answer |", "| --- | --- | --- | --- | --- |"]
    for o in operations:
        cells = [f"`{o.name}`", o.method, f"`/v1{o.path}`", parameters(document, o), answer(o)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def placement(markers: list[list[str]]) -> list[list[Operation]]:
    """The operations of each marker, in the table's order; every operation in exactly one."""
    chosen: list[list[Operation]] = [[] for _ in markers]
    for operation in OPERATIONS.values():
        exact = [i for i, names in enumerate(markers) if operation.name in names]
        by_part = [i for i, names in enumerate(markers) if operation.part in names]
        where = exact or by_part
        if len(where) != 1:
            raise SystemExit(
                f"{operation.name} is in {len(where)} tables of {DOC.name}: name it (or its part) in exactly one "
                "'<!-- operations: ... -->' marker"
            )
        chosen[where[0]].append(operation)
    return chosen


# ---------------------------------------------------------------------------------------------- models


def field_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}]({anchor(name)})"
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        text = " or ".join(field_type(s) for s in options)
        return text + (" or null" if nullable else "")
    if "enum" in schema:
        return " \\| ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {field_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of string to {field_type(schema['additionalProperties'])}"
    if kind == "string" and "format" in schema:
        return schema["format"]
    return str(kind)


def models(document: dict[str, Any]) -> str:
    bodies = {o.body_name for o in OPERATIONS.values()}
    out = []
    for name, schema in sorted(document["components"]["schemas"].items()):
        if name in bodies or NOT_MODELS.fullmatch(name):
            continue
        out.append(f"### {name}\n")
        if schema.get("description"):
            out.append(prose(schema["description"]) + "\n")
        if "enum" in schema:
            out.append(f"One of {', '.join(f'`{json.dumps(v)}`' for v in schema['enum'])}.\n")
            continue
        required = set(schema.get("required", []))
        lines = ["| field | type | default |", "| --- | --- | --- |"]
        for field, spec in schema.get("properties", {}).items():
            if field in required:
                default = "required"
            else:
                default = f"`{json.dumps(spec['default'])}`" if "default" in spec else "optional"
            lines.append(f"| `{field}` | {field_type(spec)} | {default} |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- the file


def render(text: str) -> str:
    """``text`` (docs/api.md) with every generated block made again."""
    document = openapi()
    blocks = list(OPERATIONS_BLOCK.finditer(text))
    chosen = placement([m.group(2).split() for m in blocks])
    tables = iter(route_table(document, operations) for operations in chosen)
    text = OPERATIONS_BLOCK.sub(lambda m: m.group(1) + next(tables) + m.group(4), text)
    if not MODELS_BLOCK.search(text):
        raise SystemExit(f"{DOC.name} has no '<!-- models -->' ... '<!-- end models -->' block")
    return MODELS_BLOCK.sub(lambda m: m.group(1) + "\n" + models(document) + "\n" + m.group(3), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/api.md is not up to date")
    args = parser.parse_args()
    current = DOC.read_text()
    made = render(current)
    if args.check:
        if made != current:
            print(f"{DOC.relative_to(ROOT)} is not up to date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if made != current:
        DOC.write_text(made)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
