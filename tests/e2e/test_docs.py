"""Docs stay true to the code: every worker flag and variable is in
docs/configuration.md, and every local link in README.md and docs/ resolves."""

import os
import re
import subprocess

import harness
from harness import ROOT, build_dir


def test_every_worker_setting_is_documented():
    out = subprocess.run([os.path.join(build_dir(), "relayq-worker"), "--help"], capture_output=True,
                         text=True, timeout=10).stdout
    flags = re.findall(r"^  --([a-z0-9-]+)", out, re.M)
    envs = re.findall(r"\[(RELAYQ_[A-Z_]+)", out)
    assert len(flags) > 20 and len(envs) > 20
    doc = open(os.path.join(ROOT, "docs", "configuration.md")).read()
    missing = [f for f in flags if f not in ("help,",) and "`--%s" % f not in doc and f != "help"]
    missing += [e for e in envs if "`%s`" % e not in doc]
    assert not missing, "undocumented settings: %s" % missing


def test_local_links_resolve():
    files = [os.path.join(ROOT, "README.md")]
    for d, _, names in os.walk(os.path.join(ROOT, "docs")):
        files += [os.path.join(d, n) for n in names if n.endswith(".md")]
    broken = []
    for f in files:
        text = open(f).read()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # external
            path = os.path.normpath(os.path.join(os.path.dirname(f), target))
            if not os.path.exists(path):
                broken.append("%s -> %s" % (os.path.relpath(f, ROOT), target))
    assert not broken, "broken links:\n" + "\n".join(broken)


if __name__ == "__main__":
    harness.main(globals())
