"""native_deps.py's choices on llhttp installations laid out in a
temporary directory (PISTON_LLHTTP_PREFIX, a pkg-config file of its own),
the real header and libraries linked in: what the Python build links when
only the shared library is there, and the header/library mismatch that
both builds refuse. The Node build's refusal, end to end, is in
tests/node/build.test.js; the builds' messages in test_packages.py."""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
import native_deps  # noqa: E402


@pytest.fixture
def installed(monkeypatch):
    for var in ("PISTON_LLHTTP_PREFIX", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR"):
        monkeypatch.delenv(var, raising=False)
    ll = native_deps.find_llhttp(require_static=False)
    libdir = os.path.dirname(ll.library)
    shared = [os.path.join(libdir, f) for f in os.listdir(libdir) if f.startswith("libllhttp.so")]
    assert shared, "no libllhttp.so installed in %s to lay out the cases" % libdir
    return ll.header, shared


def layout(tmp_path, header, libs):
    (tmp_path / "include").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "include" / "llhttp.h").symlink_to(header)
    for lib in libs:
        (tmp_path / "lib" / os.path.basename(lib)).symlink_to(lib)
    return tmp_path


def test_shared_only_python_links_it_without_rpath_node_refuses(tmp_path, monkeypatch, installed):
    header, shared = installed
    prefix = layout(tmp_path, header, shared)
    monkeypatch.setenv("PISTON_LLHTTP_PREFIX", str(prefix))
    ll = native_deps.find_llhttp(require_static=False)
    assert not ll.static
    assert ll.link_args() == ["-L" + str(prefix / "lib"), "-lllhttp"]
    with pytest.raises(native_deps.Missing, match=r"no libllhttp\.a beside it .*Node carries its own"):
        native_deps.find_llhttp(require_static=True)


def test_header_and_pkg_config_version_disagree(tmp_path, monkeypatch, installed):
    header, shared = installed
    prefix = layout(tmp_path, header, shared)
    pcdir = tmp_path / "pkgconfig"
    pcdir.mkdir()
    (pcdir / "libllhttp.pc").write_text(
        "prefix=%s\nlibdir=${prefix}/lib\nincludedir=${prefix}/include\n\n"
        "Name: libllhttp\nDescription: llhttp\nVersion: 99.0.0\n"
        "Libs: -L${libdir} -lllhttp\nCflags: -I${includedir}\n" % prefix)
    monkeypatch.setenv("PKG_CONFIG_LIBDIR", str(pcdir))
    with pytest.raises(native_deps.Missing, match=r"is llhttp [0-9.]+ but pkg-config's libllhttp is 99\.0\.0"):
        native_deps.find_llhttp(require_static=False)


def test_pinned_header_is_the_one_found(tmp_path, installed):
    header, _ = installed
    ll = native_deps.Llhttp(header, None, True)
    pinned = native_deps.pin_header(ll, str(tmp_path / "inc"))
    assert os.listdir(pinned) == ["llhttp.h"]
    assert os.path.realpath(os.path.join(pinned, "llhttp.h")) == os.path.realpath(header)
