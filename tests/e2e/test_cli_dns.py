"""End-to-end tests of `relayq dns check` and `relayq dnsbl check` against a
private dnsmasq (tests/e2e/dnsfix.py) answering from fixed records. See
docs/dns.md for what each check does.
"""

import base64
import json
import os
import subprocess
import tempfile
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

import harness
from dnsfix import DnsServer, SilentDns
from harness import RedisServer, free_port, run_relayq

PLATFORM_INCLUDE = "_spf.platform.test"
PLATFORM_IP = "198.51.100.10"
PLATFORM_SPF = ("TXT", PLATFORM_INCLUDE, "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:10::/48 -all")


def rsa_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def p_value(key):
    """The p= of a DKIM record for key (base64 SubjectPublicKeyInfo)."""
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def write_temp(text):
    fd, path = tempfile.mkstemp(prefix="relayq-dkim-", suffix=".pem")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def relayq(*args, env=None, timeout=30):
    """Runs the CLI without Redis (dns and dnsbl do not need it)."""
    cmd = [harness.binary("relayq")] + [str(a) for a in args]
    try:
        return subprocess.run(cmd, env=harness._child_env(env), stdin=subprocess.DEVNULL, text=True,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("relayq %s did not finish within %s s; stderr: %s"
                             % (" ".join(map(str, args)), timeout, e.stderr)) from None


def lines(out):
    """{check name: line} from the text output."""
    res = {}
    for line in out.splitlines():
        word, rest = line.split(" ", 1)
        name, _ = rest.split(":", 1)
        res[name] = line
    return res


def good_domain(key, domain="good.test", selector="s1"):
    return [
        ("TXT", domain, "v=spf1 ip4:192.0.2.0/24 include:%s mx ~all" % PLATFORM_INCLUDE),
        ("TXT", domain, "google-site-verification=not-spf"),
        ("MX", domain, "mx." + domain),
        ("A", "mx." + domain, "192.0.2.25"),
        PLATFORM_SPF,
        ("TXT", "%s._domainkey.%s" % (selector, domain), "v=DKIM1; k=rsa; p=" + p_value(key)),
        ("TXT", "_dmarc." + domain, "v=DMARC1; p=reject; rua=mailto:dmarc@" + domain),
    ]


# ---- dns check ----------------------------------------------------------------------

def test_good_domain_passes_every_check():
    key = rsa_key()
    path = write_temp(pem(key))
    try:
        with DnsServer(good_domain(key)) as dns:
            r = relayq("dns", "check", "good.test", "--selector", "s1", "--expect-include", PLATFORM_INCLUDE,
                       "--expect-ip", PLATFORM_IP, "--expect-ip", "2001:db8:10::25", "--expect-ip", "192.0.2.25",
                       "--dkim-key", path, "--dns-server", dns.address)
            assert r.returncode == 0, (r.stdout, r.stderr, dns.log_text())
            got = lines(r.stdout)
            assert sorted(got) == ["dkim", "dmarc", "spf"], r.stdout
            assert all(l.startswith("PASS ") for l in got.values()), r.stdout
            assert "authorises %s" % PLATFORM_IP in got["spf"], got["spf"]
            assert "includes %s" % PLATFORM_INCLUDE in got["spf"], got["spf"]
            assert "RSA 2048-bit key matching" in got["dkim"], got["dkim"]
            assert "p=reject" in got["dmarc"], got["dmarc"]

            # The same through --json, and the resolver from the environment.
            r = relayq("dns", "check", "good.test.", "--selector", "s1", "--json",
                       "--expect-include", PLATFORM_INCLUDE, env={"RELAYQ_DNS_SERVER": dns.address})
            assert r.returncode == 0, (r.stdout, r.stderr)
            doc = json.loads(r.stdout)
            assert doc["domain"] == "good.test"
            checks = {c["name"]: c for c in doc["checks"]}
            assert [c["name"] for c in doc["checks"]] == ["spf", "dkim", "dmarc"]
            assert all(c["pass"] is True and c["fix"] is None for c in checks.values()), doc
            assert checks["spf"]["record"].startswith("v=spf1 ip4:192.0.2.0/24"), checks["spf"]
    finally:
        os.unlink(path)


def test_missing_include_fails_with_the_corrected_record():
    recs = [("TXT", "noinc.test", "v=spf1 mx -all"), ("MX", "noinc.test", "mx.noinc.test"),
            ("A", "mx.noinc.test", "192.0.2.25"), PLATFORM_SPF,
            ("TXT", "_dmarc.noinc.test", "v=DMARC1; p=none; rua=mailto:d@noinc.test")]
    with DnsServer(recs) as dns:
        r = relayq("dns", "check", "noinc.test", "--expect-include", PLATFORM_INCLUDE,
                   "--expect-ip", PLATFORM_IP, "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        got = lines(r.stdout)
        fix = "v=spf1 mx include:%s -all" % PLATFORM_INCLUDE
        assert got["spf"].startswith("FAIL spf: include:%s is missing" % PLATFORM_INCLUDE), got["spf"]
        # The include covers the expected address, so no ip4: is added.
        assert "until include:%s is added" % PLATFORM_INCLUDE in got["spf"], got["spf"]
        assert got["spf"].endswith('replace it with this TXT record at noinc.test: "%s"' % fix), got["spf"]
        assert got["dkim"].startswith("UNCHECKED dkim: not checked: no selector given"), got["dkim"]
        assert got["dmarc"].startswith("PASS dmarc:") and "p=none" in got["dmarc"], got["dmarc"]

        r = relayq("dns", "check", "noinc.test", "--expect-include", PLATFORM_INCLUDE, "--json",
                   "--dns-server", dns.address)
        assert r.returncode == 1
        spf = json.loads(r.stdout)["checks"][0]
        assert spf["pass"] is False and spf["fix"] == fix and spf["record"] == "v=spf1 mx -all", spf

        # An address nothing covers gets its own ip4: before the -all.
        r = relayq("dns", "check", "noinc.test", "--expect-ip", "203.0.113.9", "--dns-server", dns.address)
        assert r.returncode == 1
        assert '"v=spf1 mx ip4:203.0.113.9 -all"' in r.stdout, r.stdout


def test_no_spf_record_suggests_one():
    with DnsServer([("TXT", "bare.test", "hello"), PLATFORM_SPF,
                    ("TXT", "_dmarc.bare.test", "v=DMARC1; p=quarantine")]) as dns:
        r = relayq("dns", "check", "bare.test", "--expect-include", PLATFORM_INCLUDE, "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        spf = lines(r.stdout)["spf"]
        assert "bare.test has no SPF record" in spf, spf
        assert spf.endswith('add this TXT record at bare.test: "v=spf1 include:%s ~all"' % PLATFORM_INCLUDE), spf


def test_two_spf_records_fail_and_are_merged():
    recs = [("TXT", "two.test", "v=spf1 include:%s ~all" % PLATFORM_INCLUDE),
            ("TXT", "two.test", "v=spf1 ip4:192.0.2.1 -all"), PLATFORM_SPF,
            ("TXT", "_dmarc.two.test", "v=DMARC1; p=reject")]
    with DnsServer(recs) as dns:
        r = relayq("dns", "check", "two.test", "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        spf = lines(r.stdout)["spf"]
        assert spf.startswith("FAIL spf: two.test has 2 SPF records"), spf
        # The terms of both, in the order DNS gave the records, and the
        # milder all last.
        fix = spf.split('replace them with this one TXT record at two.test: "', 1)[1].rstrip('"')
        assert fix in ("v=spf1 include:%s ip4:192.0.2.1 ~all" % PLATFORM_INCLUDE,
                       "v=spf1 ip4:192.0.2.1 include:%s ~all" % PLATFORM_INCLUDE), spf


def test_plus_all_fails():
    with DnsServer([("TXT", "open.test", "v=spf1 mx +all"), ("TXT", "_dmarc.open.test", "v=DMARC1; p=none")]) as dns:
        r = relayq("dns", "check", "open.test", "--expect-ip", "203.0.113.50", "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        spf = lines(r.stdout)["spf"]
        assert "'+all'" in spf and "every server on the internet" in spf, spf
        assert spf.endswith('"v=spf1 mx ~all"'), spf


def test_spf_syntax_error_and_lookup_limit():
    recs = [("TXT", "typo.test", "v=spf1 ipv4:192.0.2.1 -all"),
            ("TXT", "deep.test", "v=spf1 a mx include:l1.deep.test include:l2.deep.test -all"),
            ("TXT", "l1.deep.test", "v=spf1 a:x.deep.test a:y.deep.test mx:deep.test include:l3.deep.test ~all"),
            ("TXT", "l2.deep.test", "v=spf1 exists:%{i}.deep.test ptr ~all"),
            ("TXT", "l3.deep.test", "v=spf1 a a ~all")]
    with DnsServer(recs) as dns:
        r = relayq("dns", "check", "typo.test", "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        spf = lines(r.stdout)["spf"]
        assert "'ipv4:192.0.2.1' is not an SPF mechanism" in spf, spf
        assert "TXT record at" not in spf, spf  # no automatic fix for a typo
        r = relayq("dns", "check", "deep.test", "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "more than 10 DNS lookups" in lines(r.stdout)["spf"], r.stdout


def test_spf_broken_domain_spec_is_permerror_not_error():
    """A label DNS cannot carry is a record error to fix (permerror, exit 1),
    not a failed lookup (ERROR, exit 2); ':' and '/' inside a domain are
    legal (RFC 7208 section 12)."""
    recs = [("TXT", "empty.test", "v=spf1 a:mail.example...com ip4:192.0.2.1 -all"),
            ("TXT", "long.test", "v=spf1 a:%s.long.test ip4:192.0.2.1 -all" % ("a" * 64)),
            ("TXT", "colon.test", "v=spf1 a:foo:bar/baz.colon.test -all"),
            ("A", "foo:bar/baz.colon.test", "192.0.2.9")]
    with DnsServer(recs) as dns:
        for dom, why in (("empty.test", "has an empty label"), ("long.test", "longer than 63 characters")):
            r = relayq("dns", "check", dom, "--expect-ip", "192.0.2.1", "--json", "--dns-server", dns.address)
            assert r.returncode == 1, (dom, r.stdout, r.stderr)
            spf = json.loads(r.stdout)["checks"][0]
            assert spf["status"] == "fail" and why in spf["detail"], spf
            assert "correct that term (or remove it)" in spf["detail"], spf
            assert spf["results"] == [{"ip": "192.0.2.1", "result": "permerror"}], spf
        r = relayq("dns", "check", "colon.test", "--expect-ip", "192.0.2.9", "--json", "--dns-server", dns.address)
        spf = json.loads(r.stdout)["checks"][0]
        assert spf["results"] == [{"ip": "192.0.2.9", "result": "pass"}] and spf["status"] == "pass", \
            (spf, dns.log_text())


def test_missing_dmarc_suggests_a_record():
    with DnsServer([("TXT", "nodmarc.test", "v=spf1 -all")]) as dns:
        r = relayq("dns", "check", "nodmarc.test", "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        got = lines(r.stdout)
        assert got["spf"].startswith("PASS spf"), got
        assert got["dmarc"].startswith("FAIL dmarc: no DMARC record at _dmarc.nodmarc.test"), got["dmarc"]
        assert got["dmarc"].endswith('add this TXT record at _dmarc.nodmarc.test: '
                                     '"v=DMARC1; p=none; rua=mailto:dmarc@nodmarc.test"'), got["dmarc"]
    # A subdomain without its own record inherits the organisational one.
    with DnsServer([("TXT", "mail.org.test", "v=spf1 -all"),
                    ("TXT", "_dmarc.org.test", "v=DMARC1; p=reject; rua=mailto:d@org.test")]) as dns:
        r = relayq("dns", "check", "mail.org.test", "--dns-server", dns.address)
        assert "organisational domain" in lines(r.stdout)["dmarc"], r.stdout
        assert lines(r.stdout)["dmarc"].startswith("PASS dmarc"), r.stdout
        # No selector: DKIM is not checked, which is not a pass (exit 1).
        assert lines(r.stdout)["dkim"].startswith("UNCHECKED dkim: not checked"), r.stdout
        assert r.returncode == 1, (r.stdout, r.stderr)
        r = relayq("dns", "check", "mail.org.test", "--json", "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        dkim = json.loads(r.stdout)["checks"][1]
        assert dkim["status"] == "not_checked" and dkim["pass"] is None, dkim


def test_dkim_key_mismatch_and_missing_record():
    published, ours = rsa_key(), rsa_key()
    path = write_temp(pem(ours))
    try:
        with DnsServer(good_domain(published)) as dns:
            r = relayq("dns", "check", "good.test", "--selector", "s1", "--dkim-key", path,
                       "--dns-server", dns.address)
            assert r.returncode == 1, (r.stdout, r.stderr)
            dkim = lines(r.stdout)["dkim"]
            assert "is not the public half of %s" % path in dkim, dkim
            assert dkim.endswith('replace it with this TXT record at s1._domainkey.good.test: '
                                 '"v=DKIM1; k=rsa; p=%s"' % p_value(ours)), dkim
            assert lines(r.stdout)["spf"].startswith("PASS"), r.stdout

            # Another selector has no record: the fix is the record to add.
            r = relayq("dns", "check", "good.test", "--selector", "s2", "--dkim-key", path, "--json",
                       "--dns-server", dns.address)
            assert r.returncode == 1
            dkim = json.loads(r.stdout)["checks"][1]
            assert dkim["name"] == "dkim" and dkim["pass"] is False, dkim
            assert dkim["fix"] == "v=DKIM1; k=rsa; p=" + p_value(ours), dkim
            assert dkim["fix_at"] == "s2._domainkey.good.test", dkim

            # A public key file works as well as a private one.
            pub = write_temp(published.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
            try:
                r = relayq("dns", "check", "good.test", "--selector", "s1", "--dkim-key", pub,
                           "--dns-server", dns.address)
                assert r.returncode == 0, (r.stdout, r.stderr)
            finally:
                os.unlink(pub)
    finally:
        os.unlink(path)


def test_dkim_ed25519_and_revoked():
    ed = ed25519.Ed25519PrivateKey.generate()
    raw = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    path = write_temp(pem(ed))
    recs = [("TXT", "ed.test", "v=spf1 -all"),
            ("TXT", "e1._domainkey.ed.test", "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()),
            ("TXT", "old._domainkey.ed.test", "v=DKIM1; k=rsa; p="),
            ("TXT", "_dmarc.ed.test", "v=DMARC1; p=reject")]
    try:
        with DnsServer(recs) as dns:
            r = relayq("dns", "check", "ed.test", "--selector", "e1", "--dkim-key", path, "--dns-server", dns.address)
            assert r.returncode == 0, (r.stdout, r.stderr)
            assert "Ed25519" in lines(r.stdout)["dkim"], r.stdout
            r = relayq("dns", "check", "ed.test", "--selector", "old", "--dns-server", dns.address)
            assert r.returncode == 1, (r.stdout, r.stderr)
            assert "revoked" in lines(r.stdout)["dkim"], r.stdout
    finally:
        os.unlink(path)


def test_tenant_selector_and_sealed_key():
    key = rsa_key()
    secret = os.urandom(32)
    env = {"RELAYQ_SECRET_KEY": base64.b64encode(secret).decode()}
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    nonce = os.urandom(12)
    sealed = "enc:v1:" + base64.b64encode(nonce + AESGCM(secret).encrypt(nonce, pem(key).encode(), None)).decode()
    with RedisServer() as rs, DnsServer(good_domain(key, selector="t1")) as dns:
        rs.client.hset(rs.key("tenant", "acme"), mapping={
            "dkim_domain": "good.test", "dkim_selector": "t1", "dkim_private_key": sealed,
            "smtp_password": "enc:v1:" + base64.b64encode(b"x" * 40).decode()})  # not needed, never opened
        r = run_relayq(rs, "dns", "check", "good.test", "--tenant", "acme", "--dns-server", dns.address, env=env)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "matching tenant acme's dkim_private_key" in lines(r.stdout)["dkim"], r.stdout
        # Without the key the sealed value cannot be read: an error, not a failed check.
        r = run_relayq(rs, "dns", "check", "good.test", "--tenant", "acme", "--dns-server", dns.address)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert "RELAYQ_SECRET_KEY" in r.stderr, r.stderr
        r = run_relayq(rs, "dns", "check", "good.test", "--tenant", "nobody", "--dns-server", dns.address, env=env)
        assert r.returncode == 2 and "no settings" in r.stderr, (r.stdout, r.stderr)


def test_unreachable_resolver_is_an_error_within_bounded_time():
    with SilentDns() as silent:
        t0 = time.monotonic()
        r = relayq("dns", "check", "good.test", "--selector", "s1", "--dns-server", silent.address, timeout=60)
        took = time.monotonic() - t0
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert r.stdout == "", r.stdout
        assert r.stderr.count("\n") == 1 and "did not answer" in r.stderr and silent.address in r.stderr, r.stderr
        assert took < 15, took
        t0 = time.monotonic()
        r = relayq("dnsbl", "check", "192.0.2.1", "--dns-server", silent.address, timeout=60)
        assert r.returncode == 2 and "did not answer" in r.stderr, (r.stdout, r.stderr)
        assert time.monotonic() - t0 < 15
    # Nothing listening at all: refused at once.
    port = free_port()
    r = relayq("dns", "check", "good.test", "--dns-server", "127.0.0.1:%d" % port, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("relayq: the DNS server 127.0.0.1:%d" % port), r.stderr


def test_usage_errors():
    for args in (["dns"], ["dns", "check"], ["dns", "check", "a.test", "b.test"], ["dns", "check", "not a domain"],
                 ["dns", "check", "a.test", "--expect-ip", "300.1.1.1"], ["dns", "check", "a.test", "--bogus"],
                 ["dns", "check", "a.test", "--dns-server", "localhost:53"],
                 ["dnsbl", "check", "example.com"], ["dnsbl", "check", "192.0.2.1", "--zone", "bad zone"]):
        r = relayq(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("relayq: ") and r.stderr.count("\n") == 1, (args, r.stderr)
    r = relayq("dns", "--help")
    assert r.returncode == 0 and "--expect-include" in r.stdout
    r = relayq("dnsbl", "--help")
    assert r.returncode == 0 and "zen.spamhaus.org" in r.stdout
    r = relayq("dns", "check", "a.test", "--dkim-key", "/nonexistent/key.pem", "--dns-server", "127.0.0.1:1")
    assert r.returncode == 2 and "/nonexistent/key.pem" in r.stderr, r.stderr


# ---- dnsbl check ----------------------------------------------------------------------

DNSBL = [
    ("A", "2.0.0.127.bl.test", "127.0.0.2"),
    ("TXT", "2.0.0.127.bl.test", "Listed for testing; see https://bl.test/lookup"),
    ("A", "66.113.0.203.bl.test", "127.0.0.4"),
    ("A", "66.113.0.203.bl.test", "127.0.0.10"),
    ("A", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test", "127.0.0.3"),
    ("A", "66.113.0.203.refused.test", "127.255.255.254"),
    ("A", "66.113.0.203.hijack.test", "198.51.100.1"),
    ("A", "2.0.0.127.other.test", "127.0.0.2"),  # the RFC 5782 test entry
    ("A", "2.0.0.127.refused.test", "127.255.255.254"),
    ("A", "2.0.0.127.hijack.test", "127.0.0.2"),
]


def test_dnsbl_listed_and_unlisted():
    with DnsServer(DNSBL) as dns:
        r = relayq("dnsbl", "check", "192.0.2.1", "--zone", "bl.test", "--zone", "other.test",
                   "--dns-server", dns.address)
        assert r.returncode == 0, (r.stdout, r.stderr, dns.log_text())
        r = relayq("dnsbl", "check", "203.0.113.66", "--zone", "bl.test", "--zone", "other.test",
                   "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr, dns.log_text())
        out = r.stdout.splitlines()
        assert out[0].startswith("FAIL bl.test: 203.0.113.66 is listed (127.0.0."), out
        assert out[1] == "PASS other.test: 203.0.113.66 is not listed", out
        r = relayq("dnsbl", "check", "127.0.0.2", "--zone", "bl.test", "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert r.stdout.startswith("FAIL bl.test: 127.0.0.2 is listed (127.0.0.2): Listed for testing; "
                                   "see https://bl.test/lookup"), r.stdout

        # A zone without its test entry cannot vouch for anything.
        r = relayq("dnsbl", "check", "192.0.2.1", "--zone", "empty.test", "--dns-server", dns.address)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert r.stdout.startswith("UNCHECKED empty.test: not checked: the zone does not list its test entry"), \
            r.stdout
        r = relayq("dnsbl", "check", "192.0.2.1", "--zone", "empty.test", "--json", "--dns-server", dns.address)
        assert r.returncode == 2, (r.stdout, r.stderr)
        z = json.loads(r.stdout)["zones"][0]
        assert z["status"] == "not_checked" and z["listed"] is None, z
        # Asking for the test address itself of a zone that does not list it:
        # still not checked, not clean.
        r = relayq("dnsbl", "check", "127.0.0.2", "--zone", "empty.test", "--dns-server", dns.address)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert r.stdout.startswith("UNCHECKED empty.test: not checked"), r.stdout

        r = relayq("dnsbl", "check", "192.0.2.1", "--zone", "bl.test", "--dns-server", dns.address)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert r.stdout == "PASS bl.test: 192.0.2.1 is not listed\n"

        # IPv6 in nibble form (RFC 5782 2.4), several codes, JSON.
        r = relayq("dnsbl", "check", "2001:db8::1", "--zone", "bl.test", "--json", "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        doc = json.loads(r.stdout)
        assert doc["ip"] == "2001:db8::1" and doc["listed"] is True
        assert doc["zones"][0]["codes"] == ["127.0.0.3"] and doc["zones"][0]["status"] == "listed", doc
        r = relayq("dnsbl", "check", "203.0.113.66", "--zone", "bl.test", "--json", "--dns-server", dns.address)
        z = json.loads(r.stdout)["zones"][0]
        assert sorted(z["codes"]) == ["127.0.0.10", "127.0.0.4"] and z["reason"] is None, z


def test_dnsbl_refused_codes_are_errors_not_listings():
    with DnsServer(DNSBL) as dns:
        r = relayq("dnsbl", "check", "203.0.113.66", "--zone", "refused.test", "--dns-server", dns.address)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert r.stdout.startswith("ERROR refused.test: the list refused the query (127.255.255.254: "
                                   "queries through public or open resolvers are refused)"), r.stdout
        # Not listed, but the zone's test entry says the resolver is refused.
        r = relayq("dnsbl", "check", "192.0.2.1", "--zone", "refused.test", "--dns-server", dns.address)
        assert r.returncode == 2 and "refuses this resolver" in r.stdout, (r.stdout, r.stderr)
        r = relayq("dnsbl", "check", "203.0.113.66", "--zone", "hijack.test", "--dns-server", dns.address)
        assert r.returncode == 2 and "not a blocklist code" in r.stdout, r.stdout
        # A listing elsewhere still wins: exit 1.
        r = relayq("dnsbl", "check", "203.0.113.66", "--zone", "refused.test", "--zone", "bl.test",
                   "--dns-server", dns.address)
        assert r.returncode == 1, (r.stdout, r.stderr)
        # The default zones are all asked; this resolver refuses them (REFUSED): errors.
        r = relayq("dnsbl", "check", "192.0.2.1", "--json", "--dns-server", dns.address)
        assert r.returncode == 2, (r.stdout, r.stderr)
        zones = [z["zone"] for z in json.loads(r.stdout)["zones"]]
        assert zones == ["zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org", "dnsbl.sorbs.net",
                         "psbl.surriel.com", "dnsbl-1.uceprotect.net"], zones


def test_fixture_answers_what_it_was_given():
    with DnsServer([("TXT", "long.test", "x" * 300), ("A", "h.test", "192.0.2.7")]) as dns:
        rcode, answers = dns.query("long.test", "TXT")
        assert rcode == "NOERROR" and len(answers) == 1 and answers[0].count('"') == 4, answers
        assert dns.query("h.test") == ("NOERROR", ["192.0.2.7"])
        assert dns.query("nope.test")[0] == "NXDOMAIN"


if __name__ == "__main__":
    harness.main(globals())
