"""The generated operations: the committed `_ops.py` is exactly what `gen.py` writes
from the committed `docs/openapi.json`, and every operation is a method."""

import importlib.util
import inspect
import json
import unittest
from pathlib import Path

import r1client

SDK = Path(__file__).resolve().parents[1]
OPENAPI = SDK.parent.parent / "docs" / "openapi.json"


def load_gen():
    spec = importlib.util.spec_from_file_location("r1client_gen", SDK / "gen.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


class Generated(unittest.TestCase):
    def setUp(self) -> None:
        self.doc = json.loads(OPENAPI.read_text(encoding="utf-8"))

    def test_committed_ops_match_the_generator(self) -> None:
        want = load_gen().render(self.doc)
        committed = (SDK / "r1client" / "_ops.py").read_text(encoding="utf-8")
        self.assertTrue(
            committed == want,
            "sdk/python/r1client/_ops.py is out of date with docs/openapi.json: run python3 sdk/python/gen.py",
        )
        # And the installed package is that file too.
        installed = Path(inspect.getfile(r1client)).parent / "_ops.py"
        self.assertEqual(installed.read_text(encoding="utf-8"), want)

    def test_every_operation_is_a_method_with_its_parameters(self) -> None:
        ops = {}
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                if isinstance(op, dict) and "operationId" in op:
                    ops[op["operationId"]] = (method.upper(), path, op)
        self.assertEqual(set(ops), set(r1client.OPERATIONS))
        for op_id, (method, path, op) in ops.items():
            name = r1client.OPERATIONS[op_id][2]
            fn = getattr(r1client.Client, name)
            sig = inspect.signature(fn)
            wire = {p["name"] for p in op.get("parameters", [])}
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            wire |= set(body.get("properties", {}))
            py = {n.lower().replace("-", "_") for n in wire}
            self.assertEqual(set(sig.parameters) - {"self"}, py, op_id)
            self.assertIn(op.get("summary", ""), fn.__doc__, op_id)
            self.assertIn(f"{method} {path}", fn.__doc__, op_id)
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    self.assertEqual(sig.parameters[p["name"]].kind, inspect.Parameter.POSITIONAL_OR_KEYWORD)

    def test_the_generator_notices_a_changed_document(self) -> None:
        doc = json.loads(json.dumps(self.doc))
        doc["paths"]["/v1/sessions"]["post"]["summary"] = "Start a session, differently"
        self.assertNotEqual(load_gen().render(doc), (SDK / "r1client" / "_ops.py").read_text(encoding="utf-8"))

    def test_error_classes_cover_the_ten_codes(self) -> None:
        schema_codes = self.doc["components"]["schemas"]["ErrorCode"]
        codes = [a["const"] for a in schema_codes.get("oneOf", [])] or schema_codes.get("enum", [])
        self.assertEqual(sorted(codes), sorted(r1client.CODES))
        self.assertEqual(len(codes), 10)


if __name__ == "__main__":
    unittest.main()
