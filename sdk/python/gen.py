#!/usr/bin/env python3
"""Writes `r1client/_ops.py` from the committed OpenAPI document (`docs/openapi.json`):
a TypedDict or alias per component schema and one method per `operationId`, with the
operation's parameters as keyword arguments and its descriptions as the docstring.

    python3 sdk/python/gen.py            # regenerate r1client/_ops.py
    python3 sdk/python/gen.py --check    # exit 1 when the committed file has drifted

The output depends only on the document (sorted, no timestamps), so the test suite
checks that the committed file is exactly what this script writes.
"""

import json
import keyword
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
OPENAPI = HERE.parent.parent / "docs" / "openapi.json"
OUTPUT = HERE / "r1client" / "_ops.py"

HTTP_METHODS = ("get", "post", "delete", "put", "patch")


def py_name(name: str) -> str:
    """A Python identifier for a wire name: `Idempotency-Key` -> `idempotency_key`,
    `session.send` -> `session_send`; keywords get a trailing underscore."""
    n = re.sub(r"[^0-9a-zA-Z_]", "_", name).lower()
    if n[:1].isdigit():
        n = "_" + n
    return n + "_" if keyword.iskeyword(n) else n


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def py_type(schema: Optional[Dict[str, Any]], quote: bool = False) -> str:
    """The annotation for a JSON Schema (as the r1 catalog writes them); with `quote`,
    references to other schemas are strings (for module-level aliases, which are
    evaluated before every name they mention exists)."""
    if not schema:
        return "Any"
    if "$ref" in schema:
        name = ref_name(schema["$ref"])
        return repr(name) if quote else name
    if "const" in schema:
        return f"Literal[{json.dumps(schema['const'])}]"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            alts = schema[key]
            if alts and all("const" in a for a in alts):
                return "Literal[" + ", ".join(json.dumps(a["const"]) for a in alts) + "]"
            parts: List[str] = []
            for a in alts:
                t = py_type(a, quote)
                if t not in parts:
                    parts.append(t)
            return parts[0] if len(parts) == 1 else "Union[" + ", ".join(parts) + "]"
    t = schema.get("type")
    if isinstance(t, list):
        parts = [py_type({**schema, "type": x}, quote) for x in t if x != "null"]
        base = parts[0] if len(parts) == 1 else "Union[" + ", ".join(parts) + "]"
        return f"Optional[{base}]" if "null" in t else base
    if t == "string":
        return "str"
    if t == "integer":
        return "int"
    if t == "number":
        return "float"
    if t == "boolean":
        return "bool"
    if t == "null":
        return "None"
    if t == "array":
        return f"List[{py_type(schema.get('items'), quote)}]"
    if t == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not schema.get("properties"):
            return f"Dict[str, {py_type(extra, quote)}]"
        return "Dict[str, Any]"
    return "Any"


def doc_text(text: str) -> str:
    """Text that is safe inside a triple-quoted docstring."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').rstrip()


def indent(text: str, prefix: str) -> str:
    return "\n".join((prefix + line).rstrip() for line in text.splitlines())


def first_sentence(text: str) -> str:
    """The description's first paragraph on one line."""
    para = text.strip().split("\n\n", 1)[0]
    return " ".join(para.split())


def render_schema(name: str, schema: Dict[str, Any]) -> str:
    """A component schema as a TypedDict (objects with properties) or an alias."""
    desc = schema.get("description", "")
    if schema.get("type") == "object" and schema.get("properties"):
        required = set(schema.get("required", []))
        lines = [f"{name} = TypedDict("]
        lines.append(f"    {name!r},")
        lines.append("    {")
        for prop, ps in sorted(schema["properties"].items()):
            lines.append(f"        {prop!r}: {py_type(ps)!r},")
        lines.append("    },")
        lines.append("    total=False,")
        lines.append(")")
        doc = [first_sentence(desc)] if desc else []
        if required:
            doc.append("Always present: " + ", ".join(f"`{r}`" for r in sorted(required)) + ".")
        if doc:
            lines.insert(0, "\n".join("# " + d for d in doc))
        return "\n".join(lines)
    alias = f"{name} = {py_type(schema, quote=True)}"
    if py_type(schema) == "Dict[str, Any]" and schema.get("type") != "object":
        alias = f"{name} = Any"
    return (f"# {first_sentence(desc)}\n" if desc else "") + alias


class Param:
    """One argument of a generated method."""

    def __init__(self, wire: str, where: str, schema: Dict[str, Any], required: bool, desc: str) -> None:
        self.wire = wire
        self.where = where
        self.name = py_name(wire)
        self.schema = schema
        self.required = required
        self.desc = desc


def params_of(op: Dict[str, Any]) -> List[Param]:
    """An operation's path, query, header and body parameters, in that order (body
    fields sorted by name)."""
    out: List[Param] = []
    for p in op.get("parameters", []):
        schema = p.get("schema", {})
        desc = p.get("description") or schema.get("description", "")
        out.append(Param(p["name"], p["in"], schema, bool(p.get("required")), desc))
    body = op.get("requestBody")
    if body:
        schema = body["content"]["application/json"]["schema"]
        required = set(schema.get("required", []))
        for prop, ps in sorted(schema.get("properties", {}).items()):
            out.append(Param(prop, "body", ps, prop in required, ps.get("description", "")))
    names = [p.name for p in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SystemExit(f"{op['operationId']}: parameters map to the same Python name: {dupes}")
    return out


def result_type(op: Dict[str, Any]) -> Tuple[str, List[str]]:
    """The result annotation and the success statuses."""
    types: List[str] = []
    statuses: List[str] = []
    for status, resp in sorted(op.get("responses", {}).items()):
        if not status.startswith("2"):
            continue
        statuses.append(status)
        schema = resp.get("content", {}).get("application/json", {}).get("schema")
        t = py_type(schema)
        if t not in types:
            types.append(t)
    if not types:
        return "Any", statuses
    return (types[0] if len(types) == 1 else "Union[" + ", ".join(types) + "]"), statuses


def render_method(path: str, method: str, op: Dict[str, Any], schemas: Dict[str, Any]) -> str:
    op_id = op["operationId"]
    params = params_of(op)
    rtype, statuses = result_type(op)
    positional = [p for p in params if p.where == "path"]
    keyword_req = [p for p in params if p.where != "path" and p.required]
    keyword_opt = [p for p in params if p.where != "path" and not p.required]
    sig = ["self"] + [f"{p.name}: {py_type(p.schema)}" for p in positional]
    if keyword_req or keyword_opt:
        sig.append("*")
    sig += [f"{p.name}: {py_type(p.schema)}" for p in keyword_req]
    sig += [f"{p.name}: Optional[{py_type(p.schema)}] = None" for p in keyword_opt]
    lines = [f"    def {py_name(op_id)}({', '.join(sig)}) -> {rtype}:"]

    doc: List[str] = [doc_text(op.get("summary", op_id)) + ".", ""]
    if op.get("description"):
        doc += [doc_text(op["description"]), ""]
    if params:
        doc.append("Args:")
        for p in params:
            where = {"path": "path", "query": "query", "header": f"header `{p.wire}`", "body": "body"}[p.where]
            text = doc_text(" ".join(p.desc.split())) or "(undocumented)"
            doc.append(f"    {p.name} ({where}): {text}")
        doc.append("")
    rdesc = ""
    if rtype in schemas:
        rdesc = first_sentence(schemas[rtype].get("description", ""))
    doc.append("Returns:")
    doc.append(f"    {rtype}: {doc_text(rdesc)}".rstrip())
    doc.append("")
    facts = [f"`{method.upper()} {path}` ({', '.join(statuses)})", f"operation `{op_id}`"]
    for ext, label in (("x-r1-capability", "capability"), ("x-r1-idempotency", "idempotency"), ("x-r1-mcp-tool", "MCP tool")):
        if ext in op:
            facts.append(f"{label} `{op[ext]}`")
    doc.append(doc_text("; ".join(facts) + "."))
    lines.append('        """' + indent("\n".join(doc), "        ").lstrip() + '\n        """')

    def as_dict(ps: List[Param]) -> str:
        if not ps:
            return "None"
        return "{" + ", ".join(f"{p.wire!r}: {p.name}" for p in ps) + "}"

    path_d = as_dict(positional)
    query_d = as_dict([p for p in params if p.where == "query"])
    header_d = as_dict([p for p in params if p.where == "header"])
    body_ps = [p for p in params if p.where == "body"]
    body_d = as_dict(body_ps) if body_ps else ("{}" if "requestBody" in op else "None")
    lines.append(
        f"        return cast({rtype}, self._op({op_id!r}, {method.upper()!r}, {path!r}, {path_d}, {query_d}, {body_d}, {header_d}))"
    )
    return "\n".join(lines)


def render(doc: Dict[str, Any]) -> str:
    """The whole `_ops.py` for an OpenAPI document."""
    schemas = doc.get("components", {}).get("schemas", {})
    ops: List[Tuple[str, str, Dict[str, Any]]] = []
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                ops.append((path, method, item[method]))
    ops.sort(key=lambda o: o[2]["operationId"])
    ids = [o[2]["operationId"] for o in ops]
    if len(set(map(py_name, ids))) != len(ids):
        raise SystemExit("two operationIds map to the same method name")

    out: List[str] = [
        '"""Every operation of the r1 daemon as a typed method, and the result types.',
        "",
        "Generated by `sdk/python/gen.py` from `docs/openapi.json`; do not edit. A test fails",
        "when this file differs from what the generator writes.",
        '"""',
        "",
        "# fmt: off",
        "from __future__ import annotations",
        "",
        "from typing import Any, Dict, List, Literal, Optional, Tuple, TypedDict, Union, cast",
        "",
        "#: The protocol id the daemon must answer in its handshake.",
        f"PROTOCOL = {doc['info']['version']!r}",
        "",
        "#: Every operationId, with its HTTP method, path template and method name here.",
        "OPERATIONS: Dict[str, Tuple[str, str, str]] = {",
    ]
    for path, method, op in ops:
        out.append(f"    {op['operationId']!r}: ({method.upper()!r}, {path!r}, {py_name(op['operationId'])!r}),")
    out += ["}", "", ""]
    for name in sorted(schemas):
        out.append(render_schema(name, schemas[name]))
        out.append("")
    out += [
        "",
        "class Operations:",
        '    """One method per catalog operation; `Client` supplies `_op`, which sends it."""',
        "",
        "    def _op(",
        "        self,",
        "        operation_id: str,",
        "        method: str,",
        "        path: str,",
        "        path_params: Optional[Dict[str, Any]],",
        "        query: Optional[Dict[str, Any]],",
        "        body: Optional[Dict[str, Any]],",
        "        headers: Optional[Dict[str, Any]],",
        "    ) -> Any:",
        "        raise NotImplementedError",
    ]
    for path, method, op in ops:
        out.append("")
        out.append(render_method(path, method, op, schemas))
    return "\n".join(out) + "\n"


def main(argv: List[str]) -> int:
    text = render(json.loads(OPENAPI.read_text(encoding="utf-8")))
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date with {OPENAPI}; run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
