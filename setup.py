"""Builds the piston Python package and its C extension, piston._piston.

The extension is compiled together with the engine's sources (csrc/*.c, not
csrc/bin) and Debian's static llhttp, so the installed module depends on
nothing but libc:

    /usr/bin/python3 -m venv --system-site-packages .venv
    .venv/bin/pip install --no-build-isolation -e .
"""
import glob
import os
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def llhttp_static():
    found = sorted(glob.glob("/usr/lib/*/libllhttp.a")) + glob.glob("/usr/lib/libllhttp.a")
    if not found:
        sys.exit("setup.py: libllhttp.a not found; run scripts/setup-deps.sh "
                 "(Debian's libllhttp-dev)")
    return found[0]


def sources(directory):
    return sorted(os.path.relpath(p, HERE)
                  for p in glob.glob(os.path.join(HERE, directory, "*.c")))


def shared_cflags():
    # the Makefile's and binding.gyp's flags too: one list, so they cannot drift
    with open(os.path.join(HERE, "csrc", "cflags.txt")) as f:
        return [flag for line in f if line.startswith("-") for flag in line.split()]


ext = Extension(
    "piston._piston",
    # the binding (python/*.c: module, WSGI and ASGI hosts) and the engine
    sources=sources("python") + sources("csrc"),
    include_dirs=["csrc"],
    extra_compile_args=shared_cflags() + ["-O2"],
    # Python's own CFLAGS carry -DNDEBUG; keep the engine's assertions, as
    # the Makefile's build does
    undef_macros=["NDEBUG"],
    extra_link_args=[llhttp_static(), "-lnghttp2", "-lssl", "-lcrypto", "-lz", "-lpthread",
                     "-Wl,--version-script=python/_piston.map"],
    depends=glob.glob("csrc/*.h") + glob.glob("python/*.h")
    + ["python/_piston.map", "csrc/cflags.txt"],
)

setup(
    name="piston",
    version="0.1.0",
    description="Piston: a fast HTTP/1.1 server engine in C, with WSGI and ASGI hosts",
    package_dir={"": "python"},
    packages=["piston"],
    ext_modules=[ext],
    python_requires=">=3.9",
    entry_points={"console_scripts": ["piston = piston.cli:main"]},
    # keep setuptools' objects apart from the Makefile's build/
    options={"build": {"build_base": "build/python"}},
)
