"""The published RFC 7208 test suite (the OpenSPF suite, release 2014.04, as
Debian's python3-spf ships it: rfc7208-tests.yml.gz) run through
`relayq dns check DOMAIN --expect-ip HOST --json`.

Each scenario's zone is served by dnsfix.ZoneDns, a small DNS server on
127.0.0.1 (python3-dnspython), not dnsmasq: the suite needs TXT values with
commas, several strings in one record, non-ASCII bytes, type SPF records,
CNAMEs and per-name failures, which dnsmasq's command line cannot express.
Zone semantics follow the suite's own driver (python3-spf's testspf.py):
SPF-type records stand in for TXT where a name has no TXT; "TIMEOUT" and
missing names under "error." answer SERVFAIL (the CLI treats a resolver that
never answers as unreachable and stops, a separate test in test_cli_dns.py,
so a timeout is served as the other temperror cause).

For every case it runs, the CLI must name the suite's result kind (the
"results" of the spf check in --json) and the check must pass exactly when
that result is pass, except for the documented choices (docs/dns.md):
  - "+all" anywhere in the tree fails the check (the result stays "pass");
  - the 10-lookup limit is counted over the whole include tree, so a tree
    over the limit fails the check even when evaluation stops earlier.
Cases that cannot be decided from the domain and address alone are skipped,
by category, and the categories are printed with their counts:
  - helo: the identity checked is the HELO name (empty MAIL FROM);
  - message: a mechanism (or redirect) needs the message: ptr, exists, or a
    valid macro in its domain-spec (expanded against the sender);
  - domain-argument: the MAIL FROM domain is not a valid domain name; the
    CLI refuses it as a usage error (exit 2) where check_host() says none.
"""

import gzip
import json
import os
import re
import subprocess

import yaml

import harness
from dnsfix import ZoneDns

SUITE = "/usr/share/doc/python3-spf/rfc7208-tests.yml.gz"

MACRO = re.compile(r"%\{[slodiphv]\d*r?[.\-+,/_=]*\}", re.I)
NEEDS_MESSAGE = re.compile(r"^[+\-~?]?(ptr|exists)([:/]|$)", re.I)


def load_zone(zonedata):
    """{name: [(type, value)]} with the suite driver's rules."""
    zone = {}
    for name, rrs in zonedata.items():
        out, spf_type, has_txt = [], [], False
        for rr in rrs:
            if rr == "TIMEOUT":
                out.append(("TIMEOUT", None))
                continue
            (t, v), = rr.items()
            if t in ("TXT", "SPF") and v != "TIMEOUT":
                if isinstance(v, str):
                    v = [v]
                if t == "TXT":
                    has_txt = True
                elif v != ["NONE"]:
                    spf_type.append(("TXT", v))
                if v == ["NONE"]:
                    continue
            out.append((t, v))
        if not has_txt:
            out += spf_type
        zone[name.lower().rstrip(".")] = out
    return zone


def spf_records(zone, name):
    return [" ".join(v) if isinstance(v, list) else v
            for t, v in zone.get(name.lower().rstrip("."), [])
            if t == "TXT" and re.match(r"(?i)v=spf1( |$)", "".join(v))]


def macros_valid(term):
    """Every '%' in term starts a valid macro-expand (RFC 7208 7.1)."""
    rest = re.sub(r"%%|%_|%-", "", MACRO.sub("", term))
    return "%" not in rest


def reachable_terms(zone, domain):
    """Every term of every record the evaluation can reach from domain
    (through include: and redirect=), in the order a walk finds them."""
    seen, todo = set(), [domain]
    while todo:
        name = todo.pop().lower().rstrip(".")
        if name in seen or len(seen) > 50:
            continue
        seen.add(name)
        for rec in spf_records(zone, name):
            for term in [t for t in rec.split(" ")[1:] if t]:
                yield term
                m = re.match(r"(?i)^[+\-~?]?include:(.*)$|^redirect=(.*)$", term)
                if m:
                    todo.append(m.group(1) or m.group(2) or "")


def needs_message(zone, domain):
    """True when some record the evaluation can reach has a term whose
    outcome depends on the message rather than on the domain and address."""
    for term in reachable_terms(zone, domain):
        low = term.lower()
        if low.startswith("exp=") or (re.match(r"^[a-z][a-z0-9._-]*=", low) and not low.startswith("redirect=")):
            continue  # explanation and unknown modifiers never change the result
        # A '%' that starts no valid macro is a syntax error: permerror
        # whatever the message, so such a case runs.
        if (NEEDS_MESSAGE.match(term) or MACRO.search(term)) and macros_valid(term):
            return True
    return False


def plus_all(zone, domain):
    """A '+all' or bare 'all' in some record of the tree (documented choice)."""
    return any(term.lower() in ("all", "+all") for term in reachable_terms(zone, domain))


def valid_domain(d):
    labels = d.rstrip(".").split(".")
    return (len(labels) >= 2 and all(0 < len(l) <= 63 for l in labels)
            and re.fullmatch(r"[A-Za-z0-9._-]+", d) is not None and len(d) <= 253)


def cases():
    with gzip.open(SUITE, "rt", encoding="utf-8") as f:
        for scenario in yaml.safe_load_all(f):
            zone = load_zone(scenario.get("zonedata", {}))
            for name, t in scenario["tests"].items():
                yield scenario["description"], name, zone, t


def run_check(dns, domain, host):
    cmd = [harness.binary("relayq"), "dns", "check", domain, "--expect-ip", host, "--json",
           "--dns-server", dns.address]
    try:
        return subprocess.run(cmd, env=harness._child_env(None), stdin=subprocess.DEVNULL, text=True,
                              capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("relayq dns check %s did not finish in 30 s" % domain) from None


def test_rfc7208_suite():
    if not os.path.exists(SUITE):
        harness.skip_unless(False, "%s missing (python3-spf)" % SUITE)
        return
    skipped = {"helo": [], "message": [], "domain-argument": []}
    choices = {"+all": [], "lookups over the whole tree": []}
    wrong, ran = [], 0
    with ZoneDns() as dns:
        for scen, name, zone, t in cases():
            mailfrom = t.get("mailfrom", "")
            if "@" not in mailfrom:
                skipped["helo"].append(name)
                continue
            domain = mailfrom.rsplit("@", 1)[1]
            if not valid_domain(domain):
                skipped["domain-argument"].append(name)
                continue
            if needs_message(zone, domain):
                skipped["message"].append(name)
                continue
            want = t["result"] if isinstance(t["result"], list) else [t["result"]]
            dns.set_zone(zone)
            p = run_check(dns, domain, t["host"])
            ran += 1
            try:
                doc = json.loads(p.stdout)
            except ValueError:
                wrong.append("%s (%s): exit %d, no JSON; stderr: %s" % (name, scen, p.returncode, p.stderr.strip()))
                continue
            spf = doc["checks"][0]
            got = [r["result"] for r in spf["results"]]
            if got != [r for r in got if r in want] or len(got) != 1:
                wrong.append("%s (%s): result %s, suite says %s; %s" % (name, scen, got, want, spf["detail"]))
                continue
            passes = got[0] == "pass"
            if spf["pass"] is True and not passes:
                wrong.append("%s: the check passed with result %s" % (name, got[0]))
            elif spf["pass"] is not True and passes:
                if plus_all(zone, domain) and "+all" in spf["detail"]:
                    choices["+all"].append(name)
                elif "more than 10 DNS lookups" in spf["detail"]:
                    choices["lookups over the whole tree"].append(name)
                else:
                    wrong.append("%s: result pass but the check says %s: %s" % (name, spf["status"], spf["detail"]))
            # Exit code (docs/cli.md): 2 when a check had an error (temperror),
            # else 1 when one failed or was not checked (DKIM here), else 0.
            states = [c["status"] for c in doc["checks"]]
            want_rc = 2 if "error" in states else 1 if ("fail" in states or "not_checked" in states) else 0
            if p.returncode != want_rc or (got[0] == "temperror") != (spf["status"] == "error"):
                wrong.append("%s: exit %d with statuses %s (spf result %s)" % (name, p.returncode, states, got[0]))
    print("  RFC 7208 suite: %d cases run, %d agree" % (ran, ran - len(wrong)))
    for k, v in choices.items():
        print("  documented choice (%s): %d: %s" % (k, len(v), " ".join(v)))
    for k, v in skipped.items():
        print("  skipped (%s): %d: %s" % (k, len(v), " ".join(v)))
    assert ran > 100, "only %d cases ran" % ran
    assert not wrong, "%d disagreements:\n  %s" % (len(wrong), "\n  ".join(wrong))


if __name__ == "__main__":
    harness.main(globals())
