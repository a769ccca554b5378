"""Deployment files checked without Docker or Kubernetes (neither runs in CI):
every YAML and JSON file parses; the Dockerfile builds with the cmake
commands CI runs (scripts/dev), installs only packages scripts/deps.sh knows
at build time and, at run time, the packages that hold the libraries the
built binary really links; every RELAYQ_* variable and worker --flag in
deploy/ and docs/operations.md exists in `relayq-worker --help`; Kubernetes
gives the worker longer than its grace period; the KEDA trigger watches the
list producers push to; the dashboard and alert rules use documented
metrics only."""

import glob
import json
import os
import re
import shlex
import subprocess

import yaml

import harness
from harness import ROOT, binary

DEPLOY = os.path.join(ROOT, "deploy")


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def worker_help():
    """(flags, env names) from relayq-worker --help."""
    out = subprocess.run([binary("relayq-worker"), "--help"], capture_output=True, text=True,
                         timeout=10, env={"PATH": os.environ.get("PATH", "")})
    assert out.returncode == 0, out.stderr
    flags = set(re.findall(r"^\s+--([a-z0-9-]+)", out.stdout, re.M)) - {"help"}
    envs = set(re.findall(r"\b(RELAYQ_[A-Z0-9_]+)\b", out.stdout))
    assert {"redis", "metrics", "metrics-tenants", "grace-period-s"} <= flags, flags
    assert {"RELAYQ_REDIS_URL", "RELAYQ_METRICS_ADDR", "RELAYQ_METRICS_TENANTS"} <= envs, envs
    return flags | {"help", "version"}, envs


def cli_help(*sub):
    """Long options listed by `relayq [SUB] --help`."""
    out = subprocess.run([binary("relayq")] + list(sub) + ["--help"], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0, (sub, out.stderr)
    text = out.stdout + out.stderr
    return set(re.findall(r"--([a-z0-9-]+)", text)), set(re.findall(r"\b(RELAYQ_[A-Z0-9_]+)\b", text))


def flags_in(argv):
    return [a[2:].split("=", 1)[0] for a in argv if isinstance(a, str) and a.startswith("--")]


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_objects():
    objs = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))):
        for d in load_yaml_docs(path):
            d["_file"] = os.path.basename(path)
            objs.append(d)
    return objs


def one(objs, kind):
    found = [o for o in objs if o.get("kind") == kind]
    assert len(found) == 1, "expected one %s, found %d" % (kind, len(found))
    return found[0]


def documented_metrics():
    rows = re.findall(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|", read("docs", "metrics.md"), re.M)
    assert len(rows) > 10, "no metric table in docs/metrics.md"
    return dict(rows)


def metric_names(expr, documented):
    """relayq_*/process_* names in a PromQL expression, histogram suffixes removed."""
    names = set()
    for n in re.findall(r"\b((?:relayq|process)_[a-z_]+)\b", expr):
        for suffix in ("_bucket", "_sum", "_count"):
            if n.endswith(suffix) and documented.get(n[:-len(suffix)]) == "histogram":
                n = n[:-len(suffix)]
        names.add(n)
    return names


def duration_s(v):
    m = re.match(r"^(?:(\d+)m)?(?:(\d+)s)?$", str(v))
    assert m and (m.group(1) or m.group(2)), "not a duration: %r" % v
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


# ---- tests ------------------------------------------------------------------------

def test_every_file_parses():
    files = glob.glob(os.path.join(DEPLOY, "**", "*.y*ml"), recursive=True)
    assert len(files) >= 9, files
    for path in files:
        assert load_yaml_docs(path), "%s is empty" % path
    for path in glob.glob(os.path.join(DEPLOY, "**", "*.json"), recursive=True):
        with open(path) as f:
            json.load(f)
    kinds = {o["kind"] for o in k8s_objects()}
    assert {"ConfigMap", "Secret", "Deployment", "PodDisruptionBudget", "ScaledObject",
            "TriggerAuthentication"} <= kinds, kinds
    for o in k8s_objects():
        assert "namespace" not in o["metadata"], "%s sets a namespace" % o["_file"]
        assert o["metadata"].get("name"), o["_file"]


def dockerfile():
    """Stages of deploy/Dockerfile: [{"from", "runs": [cmd], "lines": [instruction]}]."""
    text = read("deploy", "Dockerfile").replace("\\\n", " ")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    stages = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            stages.append({"from": image, "runs": [], "lines": []})
        elif stages:
            stages[-1]["lines"].append((instr, rest.strip()))
            if instr == "RUN":
                stages[-1]["runs"].extend(c.strip() for c in rest.split("&&"))
    return stages


def apt_packages(cmds):
    pkgs = []
    for c in cmds:
        if "apt-get install" in c:
            pkgs += [w for w in shlex.split(c.split("apt-get install", 1)[1]) if not w.startswith("-")]
    return pkgs


def test_dockerfile_builds_like_ci():
    stages = dockerfile()
    assert len(stages) == 2, "expected a build and a runtime stage"
    build, runtime = stages
    assert build["from"] == runtime["from"] == "debian:12-slim", (build["from"], runtime["from"])

    # scripts/dev: build() { cmake -S . -B "$dir" "$@"; cmake --build "$dir" -j "$JOBS"; } and
    # `scripts/dev test` (what .ci/run execs) passes the flags of its first build call.
    dev = read("scripts", "dev")
    assert "exec scripts/dev test" in read(".ci", "run")
    body = re.search(r"^build\(\) \{\n(.*?)\n\}", dev, re.M | re.S).group(1)
    assert 'cmake -S . -B "$dir" "$@"' in body and 'cmake --build "$dir" -j "$JOBS"' in body, body
    test_case = re.search(r"^  test\)\n(.*?);;", dev, re.M | re.S).group(1)
    ci_flags = shlex.split(re.search(r'build "\$BUILD_DIR" (.*)', test_case).group(1))
    assert ci_flags and all(f.startswith("-D") for f in ci_flags), ci_flags

    configure = [shlex.split(c) for c in build["runs"] if c.startswith("cmake -S")]
    assert len(configure) == 1, build["runs"]
    words = configure[0]
    assert words[:4] == ["cmake", "-S", ".", "-B"], words
    bdir = words[4]
    assert words[5:] == ci_flags, "Dockerfile configures with %r, CI with %r" % (words[5:], ci_flags)
    builds = [shlex.split(c) for c in build["runs"] if c.startswith("cmake --build")]
    assert len(builds) == 1 and builds[0][:3] == ["cmake", "--build", bdir] and "-j" in builds[0], builds

    # The build stage installs nothing that scripts/deps.sh (what CI installs) does not list.
    deps = read("scripts", "deps.sh")
    known = set(re.search(r"PKGS=\((.*?)\)", deps, re.S).group(1).split())
    build_pkgs = apt_packages(build["runs"])
    assert build_pkgs and set(build_pkgs) <= known, set(build_pkgs) - known
    for dev_pkg in ("libhiredis-dev", "libcurl4-openssl-dev", "libssl-dev", "libuv1-dev", "libmsgpack-dev"):
        assert dev_pkg in build_pkgs, dev_pkg

    # Everything CMakeLists.txt reads from the source tree is copied in.
    copied = {rest.split()[0] for instr, rest in build["lines"] if instr == "COPY" and "--from" not in rest}
    cmake_text = read("CMakeLists.txt") + read("tests", "CMakeLists.txt")
    used = set(re.findall(r"\$\{CMAKE_SOURCE_DIR\}/([A-Za-z0-9_.-]+)", cmake_text))
    used |= set(re.findall(r"add_subdirectory\((\w+)\)", read("CMakeLists.txt")))
    used.add("CMakeLists.txt")
    assert used <= copied, "not copied into the build stage: %s" % (used - copied)
    for path in copied:
        assert os.path.exists(os.path.join(ROOT, path)), path

    # The runtime stage: non-root, health check on /healthz, worker entrypoint.
    rt = dict(runtime["lines"][::-1])  # first occurrence wins
    user = rt["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, rt["USER"]
    assert "/healthz" in rt["HEALTHCHECK"] and "RELAYQ_METRICS_ADDR" in rt["HEALTHCHECK"], rt["HEALTHCHECK"]
    assert json.loads(rt["ENTRYPOINT"]) == ["relayq-worker"]
    copies = [rest for instr, rest in runtime["lines"] if instr == "COPY"]
    assert any("--from=build" in c and "%s/relayq-worker" % bdir in c for c in copies), copies
    env = dict(re.findall(r"(RELAYQ_\w+)=(\S+)", rt.get("ENV", "")))
    port = env["RELAYQ_METRICS_ADDR"].rsplit(":", 1)[1]
    assert rt["EXPOSE"] == port, (rt["EXPOSE"], port)


def test_runtime_image_has_the_libraries_the_binary_links():
    """Each library relayq-worker needs (ELF NEEDED) comes from a package the
    runtime stage installs, or from libc6, which debian:12-slim has."""
    runtime_pkgs = set(apt_packages(dockerfile()[1]["runs"])) | {"libc6"}
    exe = binary("relayq-worker")
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", exe], capture_output=True, text=True).stdout)
    assert len(needed) >= 5, needed
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    # The dynamic loader (NEEDED when the binary uses thread-local storage)
    # is listed by ldd with its path alone: "/lib64/ld-linux-x86-64.so.2 (0x...)".
    paths.update({os.path.basename(p): p for p in re.findall(r"^\s*(/\S+) \(0x", ldd, re.M)})
    for lib in needed:
        if "asan" in lib or "ubsan" in lib:
            continue  # the sanitizer build's runtime, not part of a release image
        path = paths.get(lib)
        assert path, "ldd does not resolve %s" % lib
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True)
        if owner.returncode:
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        assert owner.returncode == 0, "no package owns %s" % path
        pkg = owner.stdout.split(":")[0]
        assert pkg in runtime_pkgs, "%s comes from %s, which the runtime stage does not install" % (lib, pkg)


def test_settings_named_in_deploy_and_docs_exist():
    flags, envs = worker_help()
    cli_flags, cli_envs = cli_help()
    # Every RELAYQ_* name anywhere in deploy/ and the operations docs is a real setting.
    texts = {p: open(p).read() for p in glob.glob(os.path.join(DEPLOY, "**", "*"), recursive=True)
             if os.path.isfile(p)}
    texts["docs/operations.md"] = read("docs", "operations.md")
    texts["docs/metrics.md"] = read("docs", "metrics.md")
    # librelayq's error codes (RELAYQ_E..., include/relayq/relayq.h) are
    # not settings; the docs name them for producers.
    codes = set(re.findall(r"\b(RELAYQ_E[A-Z0-9_]+)\b", read("include", "relayq", "relayq.h")))
    for path, text in texts.items():
        unknown = set(re.findall(r"\b(RELAYQ_[A-Z0-9_]+)\b", text)) - envs - cli_envs - codes
        assert not unknown, "%s names settings relayq-worker does not have: %s" % (path, unknown)

    # Worker flags: Kubernetes args, compose commands, and relayq-worker lines in the docs.
    dep = one(k8s_objects(), "Deployment")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    used = flags_in(container.get("args", []) + container.get("command", []))
    compose = load_yaml_docs(os.path.join(DEPLOY, "docker-compose.yml"))[0]
    for name, svc in compose["services"].items():
        if svc.get("image") == compose["services"]["worker"]["image"] and "entrypoint" not in svc:
            used += flags_in(svc.get("command", []))
            for k in svc.get("environment", {}):
                assert k in envs, "compose service %s sets %s" % (name, k)
        elif svc.get("entrypoint") == ["relayq"]:
            sub_flags, _ = cli_help(svc["command"][0])
            bad = set(flags_in(svc["command"])) - sub_flags - cli_flags
            assert not bad, "compose service %s: relayq %s has no %s" % (name, svc["command"][0], bad)
    ops = read("docs", "operations.md")
    for line in re.findall(r"relayq-worker((?: +[^\n|`]*)?)", ops):
        used += flags_in(line.split())
    assert used, "no worker flags found at all"
    assert not set(used) - flags, "unknown relayq-worker flags: %s" % (set(used) - flags)

    # Environment from the ConfigMap and the container spec are settings too.
    cm = one(k8s_objects(), "ConfigMap")
    for k in cm["data"]:
        assert k in envs, "ConfigMap sets %s" % k
    for e in container.get("env", []):
        assert e["name"] in envs, "the Deployment sets %s" % e["name"]


def test_kubernetes_manifests_fit_together():
    objs = k8s_objects()
    cm, secret, dep = one(objs, "ConfigMap"), one(objs, "Secret"), one(objs, "Deployment")
    pdb, so, ta = one(objs, "PodDisruptionBudget"), one(objs, "ScaledObject"), one(objs, "TriggerAuthentication")
    data = cm["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]

    # SIGTERM: Kubernetes waits longer than the worker's grace period.
    grace = int(data.get("RELAYQ_GRACE_PERIOD_S", "30"))
    for e in container.get("env", []):
        if e["name"] == "RELAYQ_GRACE_PERIOD_S":
            grace = int(e["value"])
    assert spec["terminationGracePeriodSeconds"] > grace, (spec["terminationGracePeriodSeconds"], grace)
    assert "--grace-period-s" not in container.get("args", [])

    # Secrets come from the example Secret's keys; configuration from the ConfigMap.
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], ref
    assert {"name": cm["metadata"]["name"]} in [f["configMapRef"] for f in container["envFrom"]]
    secret_envs = {e["name"] for e in container["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]}
    assert {"RELAYQ_SECRET_KEY", "RELAYQ_PLATFORM_SMTP", "RELAYQ_REDIS_URL"} <= secret_envs, secret_envs
    for k in ("RELAYQ_SECRET_KEY", "RELAYQ_PLATFORM_SMTP", "RELAYQ_REDIS_URL"):
        assert k not in data, "%s belongs in the Secret" % k

    # Probes hit the port --metrics listens on.
    args = container["args"]
    addr = args[args.index("--metrics") + 1]
    port = int(addr.rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        p = container[probe]["httpGet"]["port"]
        assert ports.get(p, p) == port, (probe, p, port)
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)

    # Non-root, as the image's USER.
    uid = int(re.search(r"^USER (\d+)", read("deploy", "Dockerfile"), re.M).group(1))
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == uid

    # Selectors agree.
    labels = pod["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable"), pdb["spec"]

    # KEDA scales the Deployment on the lists producers LPUSH to: P:queue:NAME.
    assert so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert so["spec"]["minReplicaCount"] >= 1, "a worker must run to promote delayed jobs"
    prefix = data.get("RELAYQ_PREFIX", "relayq")
    queues = [q.strip() for q in data.get("RELAYQ_QUEUES", "default").split(",") if q.strip()]
    triggers = [t for t in so["spec"]["triggers"] if t["type"] == "redis"]
    lists = sorted(t["metadata"]["listName"] for t in triggers)
    assert lists == sorted("%s:queue:%s" % (prefix, q) for q in queues), lists
    for t in triggers:
        assert int(t["metadata"]["listLength"]) > 0
        assert t["authenticationRef"]["name"] == ta["metadata"]["name"]
    for ref in ta["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], ref
    # The default fetch batch keeps 4 x RELAYQ_FETCH_BATCH jobs in the shared
    # list under backlog: a target at or above that would never scale out.
    keep = 4 * int(data.get("RELAYQ_FETCH_BATCH", "32"))
    for t in triggers:
        assert int(t["metadata"]["listLength"]) * 2 <= keep, (t["metadata"]["listLength"], keep)


def test_compose_fits_together():
    compose = load_yaml_docs(os.path.join(DEPLOY, "docker-compose.yml"))[0]
    svcs = compose["services"]
    assert {"redis", "worker", "smtp"} <= set(svcs), set(svcs)
    w = svcs["worker"]
    assert os.path.normpath(os.path.join(DEPLOY, w["build"]["context"])) == ROOT
    assert os.path.exists(os.path.join(ROOT, w["build"]["dockerfile"]))
    env = {}
    for k, v in w["environment"].items():
        env[k] = v
    assert env["RELAYQ_REDIS_URL"].startswith("redis://redis:"), env
    assert re.match(r"smtps?://smtp:\d+$", env["RELAYQ_PLATFORM_SMTP"]), env
    grace = int(env.get("RELAYQ_GRACE_PERIOD_S", "30"))
    assert duration_s(w["stop_grace_period"]) > grace, (w["stop_grace_period"], grace)
    assert w["deploy"]["replicas"] >= 2 or "scale" in read("deploy", "docker-compose.yml")
    assert "service_healthy" in str(w["depends_on"]["redis"])
    # The redis image is the contract's minimum version or newer, with persistence on.
    m = re.match(r"redis:(\d+)\.(\d+)", svcs["redis"]["image"])
    assert m and (int(m.group(1)), int(m.group(2))) >= (6, 2), svcs["redis"]["image"]
    assert "--appendonly" in svcs["redis"]["command"]
    # Every mounted file exists.
    for name, svc in svcs.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert os.path.exists(os.path.join(DEPLOY, src)), (name, src)


def test_dashboard_and_alerts_use_documented_metrics():
    documented = documented_metrics()
    with open(os.path.join(DEPLOY, "grafana", "relayq-dashboard.json")) as f:
        dash = json.load(f)
    ids, exprs = set(), []
    for p in dash["panels"]:
        assert p["id"] not in ids, "duplicate panel id %s" % p["id"]
        ids.add(p["id"])
        for t in p.get("targets", []):
            exprs.append(t["expr"])
    assert len(exprs) >= 15, len(exprs)
    used = set()
    for e in exprs:
        assert e.count("(") == e.count(")"), e
        names = metric_names(e, documented)
        assert names, "no relayq metric in %r" % e
        used |= names
    assert not used - set(documented), "dashboard uses undocumented %s" % (used - set(documented))
    # The headline series are on the dashboard.
    for n in ("relayq_jobs_total", "relayq_queue_depth", "relayq_transaction_seconds",
              "relayq_enqueue_to_final_seconds", "relayq_inflight", "relayq_redis_connected",
              "relayq_tenant_jobs_total", "relayq_parked_total"):
        assert n in used, n

    rules = load_yaml_docs(os.path.join(DEPLOY, "prometheus", "relayq-alerts.yml"))[0]
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert len(alerts) >= 8
    for r in alerts:
        assert r["alert"] and r["expr"] and r["labels"]["severity"] in ("critical", "warning"), r
        assert r["annotations"]["summary"], r
        unknown = metric_names(r["expr"], documented) - set(documented)
        assert not unknown, (r["alert"], unknown)
    ops = read("docs", "operations.md")
    for r in alerts:
        assert r["alert"] in ops, "docs/operations.md does not explain %s" % r["alert"]


if __name__ == "__main__":
    harness.main(globals())
