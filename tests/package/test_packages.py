"""What users install, installed as they would: the sdist and the wheel
(python3 -m build) and the npm tarball (npm pack), each into a fresh
environment in a temporary directory (a plain venv, not
--system-site-packages; a new npm project), the example app copied there
and started from it, and a response checked. The wheel and the prebuilt
addon must need nothing but libc (`auditwheel show` for the wheel, and the
same look at the ELF dependencies of both), and both install and serve with no compiler on PATH.

Run by `make test-package` (after `make package`, which writes
$PISTON_DIST); a missing artefact is a failure, never a skip.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
import native_deps  # noqa: E402

DIST = os.path.abspath(os.environ.get("PISTON_DIST", os.path.join(REPO, "build", "dist")))
EXAMPLES = os.path.join(REPO, "examples")
# Debian's wheels of pip, setuptools and wheel (python3-pip-whl,
# python3-setuptools-whl, python3-wheel-whl): pip's isolated build of the
# sdist takes its build requirements from there, offline
DEBIAN_WHEELS = "/usr/share/python-wheels"

# what a self-contained module may need: the C library's parts, which every
# glibc system has (the manylinux policy's list, the ones we can meet)
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2",
                  "librt.so.1", "ld-linux-x86-64.so.2"}
COMPILERS = ("cc", "gcc", "clang", "c99", "x86_64-linux-gnu-gcc")


def dist_file(pattern):
    found = glob.glob(os.path.join(DIST, pattern))
    assert len(found) == 1, "expected one %s in %s (run `make package`), found %s" % (
        pattern, DIST, found)
    return found[0]


def elf_dependencies(path):
    """(NEEDED libraries, RPATH/RUNPATH entries, highest GLIBC_ version)."""
    readelf = shutil.which("readelf")
    assert readelf, "readelf (binutils) not found: run scripts/setup-deps.sh"
    dyn = subprocess.run([readelf, "-d", path], check=True, capture_output=True, text=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn))
    rpaths = re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[([^\]]*)\]", dyn)
    syms = subprocess.run([readelf, "--dyn-syms", "-W", path], check=True,
                          capture_output=True, text=True).stdout
    glibc = sorted({tuple(int(x) for x in v.split("."))
                    for v in re.findall(r"@GLIBC_([0-9.]+)", syms)})
    return needed, rpaths, glibc[-1] if glibc else None


def assert_self_contained(path):
    needed, rpaths, glibc = elf_dependencies(path)
    assert needed, "%s: no NEEDED entries at all: not a dynamic ELF module?" % path
    extra = sorted(needed - ALLOWED_NEEDED)
    assert not extra, "%s needs %s beyond libc (all of it: %s)" % (path, extra, sorted(needed))
    assert not rpaths, "%s carries an rpath: %s" % (path, rpaths)
    assert glibc, "%s: no versioned glibc symbols read" % path
    return glibc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path="/", timeout=30.0):
    """GET path once the server answers, as (status, body)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Running:
    """A server process started in cwd, stopped (and checked) at exit."""

    def __init__(self, cmd, cwd, env):
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        if exc[0] is not None:
            print(out)


def clean_env(path):
    """The environment of a new user's shell: nothing pointing into the
    checkout or at another package source, PATH as given."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PIP_", "PISTON_", "VIRTUAL_ENV", "NODE_", "npm_"))}
    env["PATH"] = path
    env["HOME"] = env.get("HOME", "/root")
    return env


def no_compiler_path(tmp_path, *tools):
    """A PATH with only links to the given programs: no C compiler."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in tools:
        target = shutil.which(tool)
        assert target, tool
        if not (bindir / tool).exists():
            (bindir / tool).symlink_to(target)
    path = str(bindir)
    assert not any(shutil.which(c, path=path) for c in COMPILERS), path
    return path


def fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    # plain: no --system-site-packages, only the pip and setuptools venv puts in
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return venv


def serve_wsgi_example(venv, app_dir, env):
    """examples/wsgi_app.py, copied next to nothing else, through the
    installed `piston` console script."""
    shutil.copy(os.path.join(EXAMPLES, "wsgi_app.py"), app_dir)
    shutil.copytree(os.path.join(EXAMPLES, "static"), app_dir / "static")
    port = free_port()
    cmd = [str(venv / "bin" / "piston"), "wsgi_app:app", "--bind", "127.0.0.1:%d" % port,
           "--static", "/static=static", "--route", "/health=OK"]
    with Running(cmd, app_dir, env):
        status, body = get(port, "/")
        assert status == 200 and b"Hello from Piston" in body, body
        assert get(port, "/health") == (200, b"OK")
        status, body = get(port, "/static/style.css")
        assert status == 200 and body == (app_dir / "static" / "style.css").read_bytes()


def installed_from(venv, env):
    """Where the venv's python imports piston from, and its version."""
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import piston; print(piston.__file__); print(piston.__version__)"],
                         check=True, capture_output=True, text=True, env=env, cwd=str(venv)).stdout
    return out.split()


def install_and_serve(tmp_path, venv, env, pip_args):
    """pip install pip_args into venv; piston imports from there, with the
    C library's version, and serves the example app."""
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *pip_args],
                       env=env, cwd=str(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    where, version = installed_from(venv, env)
    assert where.startswith(str(venv)), where
    assert version == native_deps.piston_version()
    app = tmp_path / "app"
    app.mkdir()
    serve_wsgi_example(venv, app, env)


def test_wheel_needs_only_libc(tmp_path):
    wheel = dist_file("piston-*.whl")
    auditwheel = os.environ.get("PISTON_AUDITWHEEL",
                                os.path.join(REPO, ".tools", "auditwheel", "bin", "auditwheel"))
    assert os.path.exists(auditwheel), "%s is missing: run scripts/setup-deps.sh" % auditwheel
    r = subprocess.run([auditwheel, "show", wheel], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    show = " ".join(r.stdout.split())
    # the wheel is named for the tag auditwheel finds it consistent with
    m = re.search(r'is consistent with the following platform tag: "(manylinux_\d+_\d+_x86_64)"', show)
    assert m, show
    assert wheel.endswith("-%s.whl" % m.group(1)), (wheel, show)
    assert "system-provided shared libraries: libc.so.6 with versions" in show, show
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if re.match(r"piston/_piston.*\.so$", n)]
        assert len(names) == 1, z.namelist()
        z.extract(names[0], tmp_path)
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        entry = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))).decode()
    glibc = assert_self_contained(str(tmp_path / names[0]))
    print("%s: needs glibc >= %s" % (os.path.basename(wheel), ".".join(map(str, glibc))))
    assert re.search(r"^Version: %s$" % re.escape(native_deps.piston_version()), meta, re.M), meta
    assert re.search(r"^Provides-Extra: uvloop$", meta, re.M), meta
    assert re.search(r"^Requires-Dist: uvloop.*; extra == .uvloop.$", meta, re.M), meta
    assert "piston = piston.cli:main" in entry, entry


def test_wheel_installs_and_serves_without_a_compiler(tmp_path):
    wheel = dist_file("piston-*.whl")
    venv = fresh_venv(tmp_path)
    env = clean_env(str(venv / "bin") + os.pathsep + no_compiler_path(tmp_path))
    install_and_serve(tmp_path, venv, env, ["--no-index", wheel])


@pytest.fixture(scope="module")
def sdist_venv(tmp_path_factory):
    """One plain venv for the sdist's builds: the failing ones (which
    install nothing) first, then the one that installs."""
    return fresh_venv(tmp_path_factory.mktemp("sdist"))


@pytest.mark.parametrize("lacking", ["compiler", "llhttp"])
def test_sdist_build_says_what_to_install(tmp_path, sdist_venv, lacking):
    sdist = dist_file("piston-*.tar.gz")
    venv = sdist_venv
    if lacking == "compiler":
        env = clean_env(str(venv / "bin") + os.pathsep + no_compiler_path(tmp_path))
        want = (r"^\s*piston: no C compiler \(\S+\) on PATH; install it \(Debian/Ubuntu: apt install "
                r"build-essential; Fedora: dnf install gcc make; Alpine: apk add build-base; "
                r"Homebrew: xcode-select --install\)$")
    else:
        empty = tmp_path / "no-llhttp"
        empty.mkdir()
        env = clean_env(str(venv / "bin") + os.pathsep + os.environ["PATH"])
        env["PISTON_LLHTTP_PREFIX"] = str(empty)
        want = (r"^\s*piston: llhttp\.h not found under %s; install it \(Debian/Ubuntu: apt install "
                r"libllhttp-dev; Fedora: dnf install llhttp-devel; Alpine: apk add llhttp-dev; "
                r"Homebrew: brew install llhttp\)$" % re.escape(str(empty)))
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index", "--find-links",
                        DEBIAN_WHEELS, sdist], env=env, cwd=str(tmp_path), capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(want, out, re.M), out


def test_sdist_builds_and_serves_in_a_plain_venv(tmp_path, sdist_venv):
    sdist = dist_file("piston-*.tar.gz")
    venv = sdist_venv
    env = clean_env(str(venv / "bin") + os.pathsep + os.environ["PATH"])
    # the user-facing command (README): pip's isolated build, its
    # setuptools and wheel from Debian's wheels, nothing downloaded
    install_and_serve(tmp_path, venv, env, ["--no-index", "--find-links", DEBIAN_WHEELS, sdist])


def npm_project(tmp_path, env, *install_args):
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(json.dumps(
        {"name": "app", "version": "1.0.0", "private": True}))
    r = subprocess.run(["npm", "install", "--offline", "--no-audit", "--no-fund",
                        "--foreground-scripts", *install_args, dist_file("piston-*.tgz")],
                       cwd=str(project), env=env, capture_output=True, text=True)
    return project, r


def test_npm_tarball_ships_a_prebuilt_addon_needing_only_libc(tmp_path):
    with tarfile.open(dist_file("piston-*.tgz")) as t:
        names = t.getnames()
        addons = [n for n in names if re.match(r"package/prebuilds/linux-x64/[^/]+\.node$", n)]
        assert len(addons) == 1, names
        assert any(n.startswith("package/node_modules/node-gyp-build/") for n in names), names
        pkg = json.load(t.extractfile("package/package.json"))
        t.extract(addons[0], tmp_path)
    assert pkg["version"] == native_deps.piston_version()
    assert ".glibc." in addons[0]
    glibc = assert_self_contained(str(tmp_path / addons[0]))
    print("%s: needs glibc >= %s" % (addons[0], ".".join(map(str, glibc))))


def test_npm_tarball_installs_and_serves_without_a_compiler(tmp_path):
    env = clean_env(no_compiler_path(tmp_path, "node", "npm", "sh"))
    project, r = npm_project(tmp_path, env)
    assert r.returncode == 0, r.stdout + r.stderr
    installed = project / "node_modules" / "piston"
    # the prebuilt addon, not a source build
    assert not (installed / "build").exists(), r.stdout + r.stderr
    shutil.copy(os.path.join(EXAMPLES, "node_app.mjs"), project)
    env_app = dict(env, PORT="0")
    with Running(["node", "node_app.mjs"], project, env_app) as s:
        line = s.proc.stdout.readline()
        m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert m, line
        assert get(int(m.group(1)), "/x?y=1") == (200, b"Hello from Piston: GET /x?y=1\n")
    # require() beside import, from the project, not the checkout
    script = ("const p = require('piston');"
              "if (!require.resolve('piston').startsWith(process.cwd())) throw new Error(require.resolve('piston'));"
              "const s = p.createServer((q, r) => r.end('cjs'));"
              "s.listen(0, '127.0.0.1', async () => {"
              " const r = await fetch('http://127.0.0.1:' + s.address().port + '/');"
              " console.log(r.status, await r.text()); s.close(); });")
    r = subprocess.run(["node", "-e", script], cwd=str(project), env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "200 cjs", r.stdout + r.stderr


def test_npm_tarball_types_check_a_typescript_app(tmp_path):
    env = clean_env(no_compiler_path(tmp_path, "node", "npm", "sh"))
    project, r = npm_project(tmp_path, env)
    assert r.returncode == 0, r.stdout + r.stderr
    # the app's own dev tools, as a TypeScript user has them: @types/node
    # and its one dependency (the checkout's copies, as nothing is
    # downloaded here) and tsc
    for dep in ("@types/node", "undici-types"):
        shutil.copytree(os.path.join(REPO, "node_modules", dep), project / "node_modules" / dep)
    shutil.copy(os.path.join(EXAMPLES, "node_app.mts"), project)
    (project / "tsconfig.json").write_text(json.dumps({
        "compilerOptions": {"strict": True, "noEmit": True, "module": "nodenext",
                            "moduleResolution": "nodenext", "target": "es2022",
                            "types": ["node"], "skipLibCheck": False},
        "files": ["node_app.mts"]}))
    tsc = os.path.join(REPO, "node_modules", "typescript", "bin", "tsc")
    r = subprocess.run(["node", tsc, "-p", "tsconfig.json"], cwd=str(project), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # and a wrong use is an error: tsc did read the package's declarations
    (project / "node_app.mts").write_text(
        "import piston from 'piston';\nconst n: number = piston.createServer();\nvoid n;\n")
    r = subprocess.run(["node", tsc, "-p", "tsconfig.json"], cwd=str(project), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "TS2322" in r.stdout, r.stdout + r.stderr


def test_npm_without_a_matching_prebuild_builds_from_source_and_says_what_is_missing(tmp_path):
    # a musl system: the glibc prebuild does not fit, so the install builds
    # from source, and here llhttp is missing (an empty prefix)
    empty = tmp_path / "no-llhttp"
    empty.mkdir()
    env = clean_env(os.environ["PATH"])
    env.update(LIBC="musl", PISTON_LLHTTP_PREFIX=str(empty))
    project, r = npm_project(tmp_path, env)
    assert r.returncode != 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "piston: no prebuilt addon for linux-x64 here; building from source" in out, out
    assert re.search(r"^piston: llhttp\.h not found under %s; install it \(Debian/Ubuntu: "
                     r"apt install libllhttp-dev; .*Homebrew: brew install llhttp\)$"
                     % re.escape(str(empty)), out, re.M), out


@pytest.fixture(autouse=True)
def _dist_exists():
    assert os.path.isdir(DIST), "%s is missing: run `make package`" % DIST
