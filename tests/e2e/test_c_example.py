#!/usr/bin/python3
"""librelayq as an installed library: `cmake --install`, pkg-config, and
examples/c built against it and run end to end.

The build tree in $RELAYQ_BUILD_DIR is installed into a temp prefix; the
example's Makefile takes every flag from `pkg-config --cflags --libs relayq`
(PKG_CONFIG_PATH pointing into the prefix), so a header or .pc mistake that
only shows outside the source tree fails here. The binary then enqueues an
invoice with a binary attachment against a real redis-server, a worker
delivers it through a tenant's own SMTP server whose password the example
sealed, and running it again with the same id shows idempotency (the same
checks as tests/e2e/test_producers.py, which C shares).
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import ROOT  # noqa: E402
from test_producers import check_producer  # noqa: E402

EXAMPLE_DIR = os.path.join(ROOT, "examples", "c")


def cache_value(name):
    """A variable from the build tree's CMakeCache.txt, or None."""
    try:
        with open(os.path.join(harness.build_dir(), "CMakeCache.txt")) as f:
            for line in f:
                m = re.match(r"%s:[A-Z]+=(.*)$" % re.escape(name), line.strip())
                if m:
                    return m.group(1)
    except OSError:
        pass
    return None


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, **kw)
    assert p.returncode == 0, "%s failed (%d):\n%s%s" % (" ".join(cmd), p.returncode,
                                                         p.stdout, p.stderr)
    return p


def test_install_pkg_config_and_c_example():
    prefix = tempfile.mkdtemp(prefix="relayq-install-")
    work = tempfile.mkdtemp(prefix="relayq-c-example-")
    try:
        run(["cmake", "--install", harness.build_dir(), "--prefix", prefix])
        assert os.path.isfile(os.path.join(prefix, "include", "relayq", "relayq.h"))
        pcs = glob.glob(os.path.join(prefix, "lib*", "**", "relayq.pc"), recursive=True)
        assert len(pcs) == 1, pcs  # lib/pkgconfig, or lib/<multiarch>/pkgconfig
        pcdir = os.path.dirname(pcs[0])
        env = dict(os.environ, PKG_CONFIG_PATH=pcdir)

        # relayq.pc is written at install time, so it names the prefix the
        # files went to (`cmake --install --prefix DIR`), not the configure-time
        # one: a user's plain `pkg-config` must find them without overrides.
        pkg_config = ["pkg-config"]
        baked = run(pkg_config + ["--variable=prefix", "relayq"], env=env).stdout.strip()
        assert os.path.realpath(baked) == os.path.realpath(prefix), \
            "relayq.pc says prefix=%s, but the files were installed into %s" % (baked, prefix)
        flags = run(pkg_config + ["--cflags", "--libs", "relayq"], env=env).stdout.split()
        assert "-I%s" % os.path.join(prefix, "include") in flags, flags
        assert "-lrelayq" in flags, flags
        version = run(pkg_config + ["--modversion", "relayq"], env=env).stdout.strip()
        assert re.match(r"^\d+\.\d+\.\d+$", version), version

        # Build out of tree, with the compiler and sanitizer flags the
        # library itself was built with (an ASan librelayq needs an ASan
        # executable).
        for f in ("producer.c", "Makefile"):
            shutil.copy(os.path.join(EXAMPLE_DIR, f), work)
        make = ["make", "-C", work, "PKG_CONFIG=%s" % " ".join(pkg_config)]
        cc = cache_value("CMAKE_C_COMPILER")
        if cc:
            make.append("CC=%s" % cc)
        if cache_value("RELAYQ_SANITIZE") == "ON":
            san = "-fsanitize=address,undefined -fno-omit-frame-pointer"
            make += ["CFLAGS=-O1 -g %s -Werror" % san, "LDFLAGS=%s" % san]
        else:
            make.append("CFLAGS=-O2 -g -Werror")
        build = run(make, env=env)
        assert "warning" not in build.stderr, build.stderr
        exe = os.path.join(work, "producer")
        # The rpath from the Makefile finds librelayq.so in the prefix.
        ldd = run(["ldd", exe]).stdout
        assert os.path.join(prefix, "lib") in ldd, ldd

        check_producer("c", [exe], events=False)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    harness.main(globals())
