"""Finds the C libraries the Python extension (setup.py) and the Node addon
(binding.gyp, node/install.js) link, and says in one line what to install
when one is missing.

llhttp: `pkg-config libllhttp` first, then Debian's and Homebrew's prefixes
(or only PISTON_LLHTTP_PREFIX when set). The first place that has llhttp.h
is the one used, header and library together: a library found elsewhere
would not be the one the header describes. The header is compiled through
a directory holding only a link to it (pin_header), so that another
llhttp.h earlier on the compiler's default path cannot stand in for it.

OpenSSL, nghttp2 and zlib: static libraries where they are installed (the
built module then needs nothing but libc), else the shared ones; for
PISTON_SHARED_DEPS=1 always the shared ones (a distribution's own package).

As a program (binding.gyp runs it at configure time; node/install.js before
node-gyp, for a one-line message):
    python3 native_deps.py check-node | node-cflags | node-include | node-libs | llhttp
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# what to install, per distribution, for each thing a build can lack
INSTALL = {
    "llhttp": ("libllhttp-dev", "llhttp-devel", "llhttp-dev", "llhttp"),
    "llhttp-static": ("libllhttp-dev", "llhttp-devel (has no static library: "
                      "set PISTON_LLHTTP_PREFIX to an llhttp built with one)",
                      "llhttp-static", "llhttp"),
    "openssl": ("libssl-dev", "openssl-devel", "openssl-dev", "openssl@3"),
    "nghttp2": ("libnghttp2-dev", "libnghttp2-devel", "nghttp2-dev", "libnghttp2"),
    "zlib": ("zlib1g-dev", "zlib-devel", "zlib-dev", "zlib"),
    "cc": ("build-essential", "gcc make", "build-base", "xcode-select --install"),
    "python-dev": ("python3-dev", "python3-devel", "python3-dev", "python3"),
}


class Missing(Exception):
    """Something the build needs is not installed; str() is the message."""


def install_hint(what):
    deb, fedora, alpine, brew = INSTALL[what]
    brew_cmd = brew if brew.startswith("xcode") else "brew install " + brew
    return ("Debian/Ubuntu: apt install %s; Fedora: dnf install %s; "
            "Alpine: apk add %s; Homebrew: %s" % (deb, fedora, alpine, brew_cmd))


def missing(what, problem):
    return Missing("piston: %s; install it (%s)" % (problem, install_hint(what)))


def run(*cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def pkg_config(name, *args):
    if not shutil.which("pkg-config"):
        return None
    return run("pkg-config", *args, name)


def multiarch():
    return (sysconfig.get_config_var("MULTIARCH")
            or run(os.environ.get("CC", "cc"), "-print-multiarch") or "")


def libdirs(prefix):
    arch = multiarch()
    dirs = [os.path.join(prefix, "lib", arch)] if arch else []
    return dirs + [os.path.join(prefix, "lib64"), os.path.join(prefix, "lib")]


# Debian's, then the usual local one, then Homebrew's (Apple silicon, Linux,
# and the formula's own keg on Intel macOS)
PREFIXES = ("/usr", "/usr/local", "/opt/homebrew", "/home/linuxbrew/.linuxbrew")


def candidates(pc_name, env_prefix, brew_formula):
    """(include dir, lib dirs, pkg-config version or None), best first."""
    prefix = os.environ.get(env_prefix)
    if prefix:
        return [(os.path.join(prefix, "include"), libdirs(prefix), None)]
    found = []
    inc = pkg_config(pc_name, "--variable=includedir")
    lib = pkg_config(pc_name, "--variable=libdir")
    if inc and lib:
        found.append((inc, [lib], pkg_config(pc_name, "--modversion")))
    for p in PREFIXES + ("/usr/local/opt/" + brew_formula, "/opt/homebrew/opt/" + brew_formula):
        found.append((os.path.join(p, "include"), libdirs(p), None))
    return found


def library_in(dirs, name, static):
    exts = (".a",) if static else (".so", ".dylib")
    for d in dirs:
        for ext in exts:
            path = os.path.join(d, "lib%s%s" % (name, ext))
            if os.path.exists(path):
                return path
    return None


def header_version(path):
    with open(path, errors="replace") as f:
        text = f.read()
    parts = [re.search(r"#define LLHTTP_VERSION_%s (\d+)" % p, text) for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m.group(1) for m in parts) if all(parts) else None


class Llhttp:
    def __init__(self, header, library, static):
        self.header = header  # the llhttp.h compiled against
        self.library = library  # the libllhttp.a or .so beside it
        self.static = static

    def link_args(self):
        if self.static:
            return [self.library]
        # the shared library by its directory, with no rpath: the loader
        # finds it where the system keeps it
        return ["-L" + os.path.dirname(self.library), "-lllhttp"]


def find_llhttp(require_static):
    """The llhttp to build with; static preferred, shared accepted unless
    require_static (the Node addon: a shared llhttp's symbols would bind
    to the copy inside Node)."""
    where = os.environ.get("PISTON_LLHTTP_PREFIX")
    for inc, dirs, pc_version in candidates("libllhttp", "PISTON_LLHTTP_PREFIX", "llhttp"):
        header = os.path.join(inc, "llhttp.h")
        if not os.path.isfile(header):
            continue
        static = library_in(dirs, "llhttp", True)
        shared = library_in(dirs, "llhttp", False)
        if not static and (require_static or not shared):
            kind = "libllhttp.a" if require_static else "libllhttp.a or libllhttp.so"
            what = "llhttp-static" if require_static and shared else "llhttp"
            raise missing(what, "found %s but no %s beside it (in %s)%s" % (
                header, kind, ", ".join(dirs),
                "; the Node addon links llhttp statically, as Node carries its own"
                if require_static else ""))
        version = header_version(header)
        if pc_version and version and pc_version != version:
            raise Missing("piston: %s is llhttp %s but pkg-config's libllhttp is %s: "
                          "reinstall llhttp so that header and library agree" % (header, version, pc_version))
        return Llhttp(header, static or shared, bool(static))
    raise missing("llhttp", "llhttp.h not found%s" % (" under " + where if where else ""))


def pin_header(llhttp, outdir):
    """A directory with only llhttp.h in it, a link to the header found."""
    os.makedirs(outdir, exist_ok=True)
    link = os.path.join(outdir, "llhttp.h")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(llhttp.header, link)
    return outdir


# the other libraries the engine links: (pkg-config name, library, hint key)
SYSTEM_LIBS = (("libssl", "ssl", "openssl"), ("libcrypto", "crypto", "openssl"),
               ("libnghttp2", "nghttp2", "nghttp2"), ("zlib", "z", "zlib"))

_pic = {}


def links_into_shared(path):
    """Whether a static library can go into a shared object: Debian's
    libnghttp2.a, for one, is built without -fPIC and cannot
    (scripts/build-nghttp2-pic.sh builds one that can)."""
    if path not in _pic:
        with tempfile.TemporaryDirectory() as tmp:
            cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
            # as the real links: the archive's symbols hidden (--exclude-libs)
            r = run(*cc, "-shared", "-Wl,--exclude-libs,ALL", "-o", os.path.join(tmp, "t.so"),
                    "-Wl,--whole-archive", path, "-Wl,--no-whole-archive")
            _pic[path] = r is not None
    return _pic[path]


def system_libs():
    """(link arguments, include dirs) for OpenSSL, nghttp2 and zlib: each
    static where a static library that can go into a shared object is
    installed, else shared (with no rpath)."""
    shared_only = os.environ.get("PISTON_SHARED_DEPS") == "1"
    args, includes, any_static = [], [], False
    for pc_name, lib, hint in SYSTEM_LIBS:
        places = candidates(pc_name, "PISTON_%s_PREFIX" % hint.upper(), INSTALL[hint][3])
        chosen = None
        for static in ((False,) if shared_only else (True, False)):
            for inc, dirs, _ in places:
                path = library_in(dirs, lib, static)
                if path and (not static or links_into_shared(path)):
                    chosen = (inc, path, static)
                    break
            if chosen:
                break
        if not chosen:
            raise missing(hint, "lib%s not found (pkg-config %s, %s)" % (
                lib, pc_name, ", ".join(d for _, dirs, _ in places for d in dirs)))
        inc, path, static = chosen
        if static:
            args.append(path)
            any_static = True
        else:
            args += ["-L" + os.path.dirname(path), "-l" + lib]
        if inc not in includes and inc != "/usr/include":
            includes.append(inc)
    # what a static libcrypto needs of libc
    return args + (["-ldl"] if any_static else []) + ["-pthread"], includes


def check_compiler(cc):
    exe = (cc or "cc").split()[0]
    if not shutil.which(exe):
        raise missing("cc", "no C compiler (%s) on PATH" % exe)


def check_python_headers():
    header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    if not os.path.isfile(header):
        raise missing("python-dev", "Python's headers (%s) are missing" % header)


def cflags():
    """csrc/cflags.txt; -Werror only where PISTON_WERROR=1 (the project's
    own builds: the Makefile, make dev, make node), not in a user's."""
    with open(os.path.join(HERE, "csrc", "cflags.txt")) as f:
        flags = [flag for line in f if line.startswith("-") for flag in line.split()]
    if os.environ.get("PISTON_WERROR") != "1":
        flags = [f for f in flags if f != "-Werror"]
    return flags


def piston_version():
    """MAJOR.MINOR.PATCH of csrc/piston.h: the C library's version, which
    the Python package (setup.py) and package.json carry too."""
    with open(os.path.join(HERE, "csrc", "piston.h")) as f:
        text = f.read()
    return ".".join(re.search(r"^#define PISTON_VERSION_%s (\d+)$" % p, text, re.M).group(1)
                    for p in ("MAJOR", "MINOR", "PATCH"))


def main(argv):
    what = argv[1] if len(argv) > 1 else "check-node"
    try:
        if what == "node-cflags":
            out = cflags()
        elif what == "node-include":
            pinned = pin_header(find_llhttp(True), os.path.join(HERE, "build", "llhttp-include"))
            out = [pinned] + system_libs()[1]
        elif what == "node-libs":
            out = find_llhttp(True).link_args() + system_libs()[0]
        elif what == "llhttp":
            ll = find_llhttp(False)
            out = [ll.header, ll.library]
        elif what == "check-node":
            check_compiler(os.environ.get("CC"))
            ll = find_llhttp(True)
            system_libs()
            out = ["piston: llhttp %s from %s" % (header_version(ll.header), ll.library)]
        else:
            sys.exit("native_deps.py: unknown request %r" % what)
    except Missing as e:
        print(e, file=sys.stderr)
        return 1
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
