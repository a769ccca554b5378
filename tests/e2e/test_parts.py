#!/usr/bin/python3
"""The parts of docs/architecture.md, checked on the build tree.

Each part is a CMake target that sees only its own headers and those of
the parts below it, and cmake/forbid.cmake stops it including a library
it may not use. Here a one-line source is compiled with exactly the flags
the build gives each part's own files: what the part may include must
compile, what it may not must fail. librelayq.so must export `relayq_*`
and nothing else, the `relayq` CLI must hold none of the daemon, and the
CLI core none of the transports (only its net part talks to mail servers).
Inside the daemon calls run downward: the modules' call graph, read from
the symbols each object of librq_daemon.a uses, has no cycle, and nothing
calls the engine (what the modules tell it goes through the hooks it
installs).
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

# part: (its CMake target dir inside the build tree, headers it may
# include, headers it may not)
PARTS = {
    "rq_base": ("worker/base/CMakeFiles/rq_base.dir", ["log.h", "util.h"],
                ["address.h", "smtp.h", "engine.h", "config.h", "<curl/curl.h>", "<uv.h>",
                 "<hiredis/hiredis.h>"]),
    "rq_mail": ("worker/mail/CMakeFiles/rq_mail.dir", ["address.h", "mime.h", "tenant.h", "log.h",
                                                        "<relayq/relayq.h>", "<openssl/evp.h>"],
                ["smtp.h", "curluv.h", "engine.h", "config.h", "internal.h", "client.h", "<curl/curl.h>",
                 "<uv.h>", "<hiredis/hiredis.h>", "<hiredis/async.h>", "<msgpack.h>"]),
    "rq_net": ("worker/net/CMakeFiles/rq_net.dir", ["smtp.h", "mailgun.h", "address.h", "<uv.h>",
                                                    "<curl/curl.h>"],
               ["engine.h", "rconn.h", "config.h", "internal.h", "<hiredis/hiredis.h>", "<msgpack.h>"]),
    "rq_config": ("worker/config/CMakeFiles/rq_config.dir", ["config.h", "settings.h", "route.h", "smtp.h"],
                  ["engine.h", "rconn.h", "tenants.h", "cli.h", "internal.h", "<hiredis/hiredis.h>", "<msgpack.h>"]),
    "rq_daemon": ("worker/CMakeFiles/rq_daemon.dir", ["engine.h", "smtp.h", "settings.h", "<hiredis/async.h>"],
                  ["cli.h", "probe.h", "internal.h", "client.h", "<msgpack.h>"]),
    "relayq_cli": ("producer/cli/CMakeFiles/relayq_cli.dir", ["cli.h", "cli_net.h", "tenant_cmd.h", "mime.h",
                                                             "message.h", "tenant.h", "<hiredis/hiredis.h>"],
                   ["smtp.h", "mailgun.h", "curluv.h", "tlsio.h", "settings.h", "config.h", "probe.h",
                    "tenant_probe.h", "engine.h", "delivery.h", "rconn.h", "tenants.h", "internal.h", "client.h",
                    "<curl/curl.h>", "<uv.h>", "<msgpack.h>"]),
    "relayq_cli_net": ("producer/cli/net/CMakeFiles/relayq_cli_net.dir", ["cli.h", "tenant_cmd.h", "probe.h",
                                                                         "smtp.h", "mailgun.h", "settings.h",
                                                                         "<curl/curl.h>", "<uv.h>"],
                       ["engine.h", "delivery.h", "rconn.h", "tenants.h", "internal.h", "client.h",
                        "<hiredis/hiredis.h>", "<msgpack.h>"]),
    "relayq_obj": ("producer/lib/CMakeFiles/relayq_obj.dir", ["internal.h", "tenant.h", "<msgpack.h>"],
                   ["util.h", "smtp.h", "<curl/curl.h>", "<uv.h>"]),
}


def compile_flags(target_dir):
    """The defines, include dirs and C flags CMake gives the target's files."""
    bdir = harness.build_dir()
    flags_make = os.path.join(bdir, target_dir, "flags.make")
    if os.path.isfile(flags_make):
        flags = []
        with open(flags_make) as f:
            for line in f:
                m = re.match(r"(C_DEFINES|C_INCLUDES|C_FLAGS) = (.*)$", line.rstrip("\n"))
                if m:
                    flags += shlex.split(m.group(2))
        return flags
    # Ninja keeps them per object in build.ninja.
    with open(os.path.join(bdir, "build.ninja")) as f:
        text = f.read()
    block = re.search(r"build %s/[^\n]*\.c\.o:[^\n]*\n((?:  [^\n]*\n)+)" % re.escape(target_dir), text)
    assert block, "no object of %s in build.ninja" % target_dir
    flags = []
    for line in block.group(1).splitlines():
        m = re.match(r"\s+(DEFINES|INCLUDES|FLAGS) = (.*)$", line)
        if m:
            flags += shlex.split(m.group(2))
    return flags


def compiler():
    """The C compiler the build tree uses (its flags may be clang's)."""
    with open(os.path.join(harness.build_dir(), "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"CMAKE_C_COMPILER:[A-Z]+=(.+)$", line.strip())
            if m:
                return m.group(1)
    return "cc"


def compiles(flags, header, workdir):
    src = os.path.join(workdir, "probe.c")
    with open(src, "w") as f:
        f.write("#include %s\nint probe_unused;\n" % (header if header.startswith("<") else '"%s"' % header))
    p = subprocess.run([compiler()] + [x for x in flags if x != "-Werror"] + ["-c", src, "-o", os.devnull],
                       capture_output=True, text=True, timeout=60)
    return p.returncode == 0, p.stderr


def test_parts_see_only_what_they_may():
    with tempfile.TemporaryDirectory(prefix="relayq-parts-") as work:
        for part, (target_dir, allowed, forbidden) in PARTS.items():
            flags = compile_flags(target_dir)
            for h in allowed:
                ok, err = compiles(flags, h, work)
                assert ok, "%s cannot include %s, which it may:\n%s" % (part, h, err)
            for h in forbidden:
                ok, _ = compiles(flags, h, work)
                assert not ok, "%s can include %s, which docs/architecture.md forbids it" % (part, h)


def test_forbidden_library_says_why():
    flags = compile_flags(PARTS["rq_mail"][0])
    with tempfile.TemporaryDirectory(prefix="relayq-parts-") as work:
        ok, err = compiles(flags, "<curl/curl.h>", work)
        assert not ok and "libcurl is not for this part" in err, err


def test_cli_core_says_why_not_the_transports():
    flags = compile_flags(PARTS["relayq_cli"][0])
    with tempfile.TemporaryDirectory(prefix="relayq-parts-") as work:
        ok, err = compiles(flags, "smtp.h", work)
        assert not ok and "smtp.h is the transports'" in err, err


def test_cli_core_links_no_transport():
    """The CLI core's archive calls nothing of the transports, libcurl,
    libuv or the CLI's net part: those commands reach it through cli_net.h."""
    lib = os.path.join(harness.build_dir(), "producer", "cli", "librelayq_cli.a")
    p = subprocess.run(["nm", "--undefined-only", lib], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    undefined = {line.split()[-1] for line in p.stdout.splitlines() if line.strip().startswith("U ")}
    assert "rq_addr_envelope" in undefined  # the mail core, which it does use
    net = sorted(s for s in undefined if re.match(r"(rq_(smtp|mailgun|curl|tlsio|oauth_http|settings|config)_|"
                                                  r"rq_probe_|cli_net_|cli_server_key|tenant_probe|cmd_tenant_(verify|test)\b|"
                                                  r"curl_|uv_)", s))
    assert not net, "the CLI core links the transports: %s" % net[:10]


def defined_symbols(path, dynamic):
    p = subprocess.run(["nm", "--defined-only"] + (["-D"] if dynamic else []) + [path],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return {line.split()[-1] for line in p.stdout.splitlines() if len(line.split()) == 3}


def test_shared_library_exports_only_the_public_api():
    syms = defined_symbols(os.path.join(harness.build_dir(), "librelayq.so"), dynamic=True)
    assert "relayq_job_encode" in syms and "relayq_enqueue" in syms, sorted(syms)
    stray = sorted(s for s in syms if not s.startswith("relayq_") or s.startswith("relayq__"))
    assert not stray, "librelayq.so exports more than relayq.h: %s" % stray


def test_cli_holds_none_of_the_daemon():
    syms = defined_symbols(harness.binary("relayq"), dynamic=False)
    daemon = sorted(s for s in syms if re.match(r"rq_(engine|fetch|delivery|status|tenants|heartbeat|metrics|"
                                                 r"rconn|redis_uv)_", s))
    assert not daemon, "the relayq CLI links daemon code: %s" % daemon[:10]
    assert any(s.startswith("rq_smtp_") for s in syms)  # the transports it does link


def daemon_call_graph():
    """module -> the daemon modules whose functions (or data) it uses."""
    lib = os.path.join(harness.build_dir(), "worker", "librq_daemon.a")
    p = subprocess.run(["nm", lib], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    defined, used, module = {}, {}, None
    for line in p.stdout.splitlines():
        if line.endswith(".o:"):
            module = line[:-1].split(".")[0]
            continue
        f = line.split()
        if len(f) == 3 and f[1] in "TDBR":
            defined[f[2]] = module
        elif len(f) == 2 and f[0] == "U":
            used.setdefault(module, set()).add(f[1])
    graph = {m: set() for m in set(defined.values()) | set(used)}
    for m, syms in used.items():
        graph[m] |= {defined[s] for s in syms if s in defined and defined[s] != m}
    return graph


def find_cycle(graph):
    """One cycle as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_daemon_calls_run_downward():
    graph = daemon_call_graph()
    assert {"engine", "fetch", "delivery", "status", "lines", "heartbeat"} <= set(graph), sorted(graph)
    callers = sorted(m for m, callees in graph.items() if "engine" in callees)
    assert not callers, "modules call the engine (use a hook it installs): %s" % callers
    cycle = find_cycle(graph)
    assert cycle is None, "daemon modules call each other in a circle: %s" % " -> ".join(cycle)
    # status.c is the only writer of statuses: it sits below delivery and lines.
    assert "status" in graph["delivery"] and "status" in graph["lines"]
    assert not graph["status"] & {"delivery", "lines", "fetch", "heartbeat", "metrics"}, graph["status"]


def test_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


if __name__ == "__main__":
    harness.main(globals())
