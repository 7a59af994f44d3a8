"""Builds the piston Python package's C extension, piston._piston; the
package's metadata is in pyproject.toml.

The extension is compiled together with the engine's sources (csrc/*.c, not
csrc/bin) and links llhttp, OpenSSL, nghttp2 and zlib statically where their
static libraries are installed, so the wheel depends on nothing but libc
(native_deps.py finds them, and says what to install when one is missing):

    python3 -m build --no-isolation     # sdist and wheel, offline
    make dev                            # the repository's editable .venv
"""
import glob
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import native_deps  # noqa: E402


def sources(directory):
    return sorted(os.path.relpath(p, HERE)
                  for p in glob.glob(os.path.join(HERE, directory, "*.c")))


class BuildExt(build_ext):
    """Finds the compiler, Python's headers and the libraries when the
    extension is built (not when an sdist is made), each missing one a
    line saying what to install."""

    def build_extensions(self):
        try:
            native_deps.check_compiler(self.compiler.compiler_so[0]
                                       if getattr(self.compiler, "compiler_so", None) else None)
            native_deps.check_python_headers()
            llhttp = native_deps.find_llhttp(require_static=False)
            libs, includes = native_deps.system_libs()
        except native_deps.Missing as e:
            sys.exit(str(e))
        pinned = native_deps.pin_header(llhttp, os.path.join(self.build_temp, "llhttp-include"))
        for ext in self.extensions:
            ext.include_dirs[:0] = [pinned] + includes
            ext.extra_link_args[:0] = llhttp.link_args() + libs
        super().build_extensions()


ext = Extension(
    "piston._piston",
    # the binding (python/*.c: module, WSGI and ASGI hosts) and the engine
    sources=sources("python") + sources("csrc"),
    include_dirs=["csrc"],
    # csrc/cflags.txt, the Makefile's and binding.gyp's too (-Werror only
    # with PISTON_WERROR=1: make dev)
    extra_compile_args=native_deps.cflags() + ["-O2"],
    # Python's own CFLAGS carry -DNDEBUG; keep the engine's assertions, as
    # the Makefile's build does
    undef_macros=["NDEBUG"],
    # the static libraries' symbols stay inside (python/_piston.map exports
    # only PyInit__piston): no clash with the OpenSSL of Python's ssl module
    extra_link_args=["-Wl,--exclude-libs,ALL", "-Wl,--version-script=python/_piston.map"],
    depends=glob.glob("csrc/*.h") + glob.glob("python/*.h")
    + ["python/_piston.map", "csrc/cflags.txt", "native_deps.py"],
)

setup(
    # the C library's version (csrc/piston.h) is the package's
    version=native_deps.piston_version(),
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExt},
    # keep setuptools' objects apart from the Makefile's build/; compile on
    # every core
    options={"build": {"build_base": "build/python"},
             "build_ext": {"parallel": os.cpu_count() or 1}},
)
