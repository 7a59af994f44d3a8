"""The extension module's constants come from the X-macro maps of
csrc/piston.h (PISTON_ERRNO_MAP, PISTON_OPTION_MAP, PISTON_EVENT_MAP): every
entry of each map is there, with the engine's value. And the package's
modules import each other without a cycle."""
import ast
import os
import re

import pytest

from conftest import ROOT
from piston import _piston

HEADER = os.path.join(ROOT, "csrc", "piston.h")
PACKAGE = os.path.join(ROOT, "python", "piston")


def x_macro_entries(name):
    """[(NAME, second argument)] of the X(...) entries of #define name(X)."""
    text = open(HEADER).read()
    m = re.search(r"#define %s\(X\)((?:[^\n]*\\\n)*[^\n]*)" % name, text)
    assert m, "no %s in piston.h" % name
    return re.findall(r"\bX\(\s*([A-Z0-9_]+)\s*,\s*([^,)]+)", m.group(1))


def test_maps_parsed():
    # the parse itself: a map that came out empty would pass the rest
    assert len(x_macro_entries("PISTON_ERRNO_MAP")) >= 11
    assert len(x_macro_entries("PISTON_OPTION_MAP")) >= 15
    assert len(x_macro_entries("PISTON_EVENT_MAP")) >= 4


def test_every_error_code():
    for name, value in x_macro_entries("PISTON_ERRNO_MAP"):
        assert getattr(_piston, "E_" + name) == int(value), name
    # the messages too: E_* and strerror come from the same map
    text = open(HEADER).read()
    for name, value, msg in re.findall(r'\bX\(([A-Z]+), (-\d+), "([^"]*)"\)', text):
        assert _piston.strerror(int(value)) == msg, name


def test_every_option_in_order():
    entries = x_macro_entries("PISTON_OPTION_MAP")
    for i, (name, _) in enumerate(entries):
        assert getattr(_piston, "OPT_" + name) == i, name


def test_every_event():
    for name, bit in x_macro_entries("PISTON_EVENT_MAP"):
        assert getattr(_piston, "EV_" + name) == int(bit), name


@pytest.mark.parametrize("name", ["E_CLOSED", "E_ADDRINUSE", "E_ADDRNOTAVAIL", "E_ACCES",
                                  "E_RESOLVE", "E_INVAL", "E_STATE", "E_AGAIN", "E_TOOBIG",
                                  "EV_BODY", "EV_DRAIN", "EV_CLOSED", "EV_TIMEOUT"])
def test_names_python_code_uses(name):
    assert isinstance(getattr(_piston, name), int)


def package_imports():
    """{module: {modules of the package it imports}}, imports inside
    functions included."""
    graph = {}
    for fn in os.listdir(PACKAGE):
        if not fn.endswith(".py"):
            continue
        mod = fn[:-3]
        deps = graph.setdefault(mod, set())
        for node in ast.walk(ast.parse(open(os.path.join(PACKAGE, fn)).read())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("piston."):
                deps.add(node.module.split(".")[1])
    return graph


def test_no_import_cycle():
    graph = package_imports()
    assert "config" in graph["asgi"] and "config" in graph["server"]
    state = {}

    def visit(mod, path):
        if state.get(mod) == "done":
            return
        assert state.get(mod) != "open", "import cycle: " + " -> ".join(path + [mod])
        state[mod] = "open"
        for dep in sorted(graph.get(mod, ())):
            if dep in graph:
                visit(dep, path + [mod])
        state[mod] = "done"

    for mod in sorted(graph):
        visit(mod, [])
