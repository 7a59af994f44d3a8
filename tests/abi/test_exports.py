"""The exported ABI of every binary we ship, read back with `nm -D`.

libpiston.so must export exactly the PISTON_EXPORT functions of piston.h,
each bound to the version node of csrc/piston.sym. The Python extension and
the Node addon carry their own copy of the engine (and of llhttp) and must
export only their module entry points: a leaked piston_* or llhttp_* there
would be resolved against another copy loaded in the same process (Node has
its own llhttp). The version written in piston.h, the one setup.py gives the
Python package and package.json's must agree, and the shared library must
report it and carry its soname.

Run by `make test-abi` (after `make all dev node`); a missing artefact is a
failure, never a skip.
"""

import ctypes
import glob
import json
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, os.environ.get("PISTON_BUILD", "build"))
HEADER = os.path.join(REPO, "csrc", "piston.h")
LIBPISTON = os.path.join(BUILD, "libpiston.so")
# node-gyp always builds into ./build, whatever the Makefile's BUILD is
NODE_ADDON = os.path.join(REPO, "build", "Release", "piston.node")
# `make dev` installs editable: setuptools builds under build/python and
# copies the extension next to the package
PY_EXTENSIONS = sorted(
    glob.glob(os.path.join(REPO, "python", "piston", "_piston*.so"))
    + glob.glob(os.path.join(REPO, "build", "python", "lib*", "piston", "_piston*.so"))
)

ABI_VERSION_NODE = "PISTON_0"
PY_ALLOWED = {"PyInit__piston"}
# what Node looks up in an addon it loads (the second only in newer Node)
NODE_REQUIRED = {"napi_register_module_v1"}
NODE_ALLOWED = NODE_REQUIRED | {"node_api_module_get_api_version_v1"}


def header_text():
    with open(HEADER) as f:
        return f.read()


def declared_exports():
    """Names of the functions piston.h declares PISTON_EXPORT."""
    text = re.sub(r"/\*.*?\*/", " ", header_text(), flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    # preprocessor lines, continuations included (the macro's own definition
    # and the X-macro tables)
    text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
    names = re.findall(r"\bPISTON_EXPORT\b[^;{}()]*?\b(piston_\w+)\s*\(", text)
    # every PISTON_EXPORT must have given a name: otherwise this parser
    # missed a declaration and the comparison below would be vacuous
    assert len(names) == len(re.findall(r"\bPISTON_EXPORT\b", text)), (
        "could not parse every PISTON_EXPORT declaration in piston.h"
    )
    assert len(names) == len(set(names)), "a function is declared twice"
    assert len(names) > 10, names
    return set(names)


def dynamic_exports(path):
    """{name: version or None} of the defined dynamic symbols of path."""
    assert os.path.exists(path), "%s is missing: run `make all dev node` first" % path
    nm = shutil.which("nm")
    assert nm, "nm (binutils) not found: run scripts/setup-deps.sh"
    out = subprocess.run([nm, "-D", "--defined-only", path], check=True,
                         capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        fields = line.split()
        if not fields:
            continue
        name = fields[-1]
        if len(fields) >= 2 and fields[-2] == "A":
            continue  # the version node's own absolute symbol (PISTON_0)
        base, _, version = name.replace("@@", "@").partition("@")
        syms[base] = version or None
    return syms


def difference(what, got, want):
    extra = sorted(set(got) - set(want))
    missing = sorted(set(want) - set(got))
    lines = ["%s: exported symbols differ from the expected list" % what]
    if extra:
        lines.append("  exported but not expected: " + ", ".join(extra))
    if missing:
        lines.append("  expected but not exported: " + ", ".join(missing))
    return "\n".join(lines)


def test_libpiston_exports_exactly_the_header():
    want = declared_exports()
    got = dynamic_exports(LIBPISTON)
    assert set(got) == want, difference(LIBPISTON, got, want)
    unversioned = sorted(n for n, v in got.items() if v != ABI_VERSION_NODE)
    assert not unversioned, "%s: not bound to %s: %s" % (
        LIBPISTON, ABI_VERSION_NODE, ", ".join(unversioned))


def test_python_extension_exports_only_its_init():
    assert PY_EXTENSIONS, ("no python/piston/_piston*.so nor "
                           "build/python/lib*/piston/_piston*.so: run `make dev`")
    for path in PY_EXTENSIONS:
        got = dynamic_exports(path)
        assert set(got) == PY_ALLOWED, difference(path, got, PY_ALLOWED)


def test_node_addon_exports_only_its_registration():
    got = dynamic_exports(NODE_ADDON)
    # the optional entry point is expected only where it is exported
    want = NODE_REQUIRED | (set(got) & NODE_ALLOWED)
    assert set(got) == want, difference(NODE_ADDON, got, want)


def header_version():
    text = header_text()
    parts = {}
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(r"^#define PISTON_VERSION_%s (\d+)$" % part, text, re.M)
        assert m, "PISTON_VERSION_%s not found in piston.h" % part
        parts[part] = int(m.group(1))
    m = re.search(r'^#define PISTON_VERSION_STRING "([^"]*)"$', text, re.M)
    assert m, "PISTON_VERSION_STRING not found in piston.h"
    numbers = "%(MAJOR)d.%(MINOR)d.%(PATCH)d" % parts
    assert m.group(1) == numbers, (
        "PISTON_VERSION_STRING %r is not MAJOR.MINOR.PATCH %r" % (m.group(1), numbers))
    return numbers, parts["MAJOR"]


def test_version_agrees_everywhere():
    version, major = header_version()
    # the Python package's version is read from piston.h by setup.py
    # (pyproject.toml declares it dynamic): what setuptools computes
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        assert re.search(r'^dynamic = \[[^\]]*"version"', f.read(), re.M), (
            "pyproject.toml must leave the version to setup.py (dynamic)")
    out = subprocess.run([sys.executable, "setup.py", "--version"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out and out[-1] == version, "setup.py --version %r, piston.h %r" % (out, version)
    with open(os.path.join(REPO, "package.json")) as f:
        npm = json.load(f)["version"]
    assert npm == version, "package.json version %r, piston.h %r" % (npm, version)

    lib = ctypes.CDLL(LIBPISTON)
    lib.piston_version.restype = ctypes.c_char_p
    assert lib.piston_version().decode() == version


def test_soname_and_links():
    version, major = header_version()
    soname = "libpiston.so.%d" % major
    real = os.path.join(BUILD, "libpiston.so." + version)
    assert os.path.isfile(real) and not os.path.islink(real), real
    for link in (LIBPISTON, os.path.join(BUILD, soname)):
        assert os.path.realpath(link) == os.path.realpath(real), (
            "%s does not point to %s" % (link, real))
    readelf = shutil.which("readelf")
    assert readelf, "readelf (binutils) not found: run scripts/setup-deps.sh"
    out = subprocess.run([readelf, "-d", real], check=True,
                         capture_output=True, text=True).stdout
    assert "Library soname: [%s]" % soname in out, out
