"""DNS fixtures for the `relayq dns` / `relayq dnsbl` end-to-end tests.

DnsServer(records) runs a private dnsmasq (Debian's dnsmasq-base,
/usr/sbin/dnsmasq) on 127.0.0.1:<free port> that answers only from the
given records: no upstream servers, no /etc/hosts, no config file. Names
under the records' top-level labels that are not in the table get
NXDOMAIN (dnsmasq --local), any other name REFUSED.

    with DnsServer([("TXT", "example.test", "v=spf1 -all"),
                    ("A", "mx.example.test", "192.0.2.1"),
                    ("AAAA", "mx.example.test", "2001:db8::1"),
                    ("MX", "example.test", "mx.example.test")]) as dns:
        run([... "--dns-server", dns.address])

A TXT value longer than 255 bytes is sent as several strings in one
record, as a DNS UI would split it, so readers must join them (RFC 7208
3.3). dnsmasq reads ',' as a string separator, so values may not contain
one.

SilentDns() binds a UDP (and TCP) port that never answers, for "the
resolver is unreachable" cases.

Every wait has a deadline; the processes are children of the test (see
harness._popen) and are killed with it.
"""

import os
import socket
import subprocess
import tempfile
import time

import dns.exception
import dns.message
import dns.query
import dns.rcode

import harness

DNSMASQ = "/usr/sbin/dnsmasq"


def _free_udp_port():
    """A port free for both UDP and TCP on 127.0.0.1 a moment ago."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise AssertionError("no free port for a DNS server")


class DnsServer:
    """dnsmasq serving RECORDS [(type, name, value)] on 127.0.0.1."""

    def __init__(self, records, start_timeout=10.0):
        self.records = list(records)
        self.port = None
        self.proc = None
        self.start_timeout = start_timeout
        self.tmp = tempfile.mkdtemp(prefix="relayq-dns-")
        self.log_path = os.path.join(self.tmp, "dnsmasq.log")

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _args(self):
        args = []
        hosts = {}
        tops = set()
        for rtype, name, value in self.records:
            rtype = rtype.upper()
            tops.add(name.rstrip(".").rsplit(".", 1)[-1])
            if rtype == "TXT":
                if "," in value:
                    raise ValueError("dnsmasq splits TXT values at ','; avoid it: %r" % value)
                chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
                args.append("--txt-record=%s,%s" % (name, ",".join(chunks)))
            elif rtype in ("A", "AAAA"):
                hosts.setdefault(name, []).append(value)
            elif rtype == "MX":
                args.append("--mx-host=%s,%s,10" % (name, value))
            else:
                raise ValueError("unsupported record type %r" % rtype)
        # One --host-record per address: dnsmasq keeps only one address of
        # each family from a single option.
        for name, addrs in hosts.items():
            args += ["--host-record=%s,%s" % (name, a) for a in addrs]
        for top in sorted(tops):
            args.append("--local=/%s/" % top)
        return args

    def start(self):
        if not os.access(DNSMASQ, os.X_OK):
            raise AssertionError("%s is missing: install dnsmasq-base (scripts/deps.sh)" % DNSMASQ)
        self.port = _free_udp_port()
        cmd = [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
               "--port", str(self.port), "--listen-address", "127.0.0.1", "--bind-interfaces",
               "--pid-file=", "--no-negcache", "--log-facility=" + self.log_path, "--log-queries"]
        cmd += self._args()
        self.log = open(os.path.join(self.tmp, "stderr.log"), "wb")
        self.proc = harness._popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        q = dns.message.make_query("relayq-probe.invalid", "A")
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited with %s: %s" % (self.proc.returncode, self.log_text()))
            try:
                dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.5)
                return
            except (OSError, dns.exception.Timeout):
                pass
            if time.monotonic() >= deadline:
                raise AssertionError("dnsmasq did not answer within %s s: %s"
                                     % (self.start_timeout, self.log_text()))
            time.sleep(0.05)

    def query(self, name, rtype="A"):
        """(rcode text, [answer strings]) straight from the server, for tests
        that check the fixture itself."""
        r = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=self.port, timeout=2)
        return dns.rcode.to_text(r.rcode()), [rr.to_text() for s in r.answer for rr in s]

    def log_text(self):
        out = []
        for p in (os.path.join(self.tmp, "stderr.log"), self.log_path):
            try:
                with open(p, "r", errors="replace") as f:
                    out.append(f.read()[-20000:])
            except OSError:
                pass
        return "\n".join(out)

    def stop(self):
        harness.stop_process(self.proc, 5)
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def close(self):
        self.stop()
        subprocess.run(["rm", "-rf", self.tmp], check=False)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class SilentDns:
    """A UDP and TCP port on 127.0.0.1 that accepts queries and never answers."""

    def __init__(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.tcp.bind(("127.0.0.1", self.port))
            self.tcp.listen(8)
        except OSError:
            self.tcp.close()
            self.tcp = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        self.udp.close()
        if self.tcp:
            self.tcp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ZoneDns:
    """A tiny authoritative DNS server in this process (python3-dnspython)
    on 127.0.0.1, UDP and TCP, for record sets dnsmasq cannot express:
    TXT values with commas, several strings, non-ASCII bytes, SERVFAIL for
    one name, CNAME chains, type SPF (99).

    zone: {lowercase name without trailing dot: [(rtype, value), ...]} with
    rtype "TXT"/"SPF" (value: list of str, each one character-string, sent
    as UTF-8), "A", "AAAA", "PTR", "CNAME" (value: str), "MX" (value:
    (preference, exchange)). Failures follow the RFC 7208 suite's driver
    (python3-spf's testspf.py): an entry ("TIMEOUT", None) makes every
    lookup of a type with no record listed before it answer SERVFAIL,
    (TYPE, "TIMEOUT") does so for that type, and a missing name under
    "error." answers SERVFAIL. Any other name not in the zone gets NXDOMAIN. `zone` may be
    replaced between queries (set_zone) so one server serves many
    scenarios.
    """

    def __init__(self, zone=None):
        import threading
        self.zone = zone or {}
        self.port = _free_udp_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(16)
        self.queries = []
        self._stop = False
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def set_zone(self, zone):
        self.zone = zone
        self.queries = []

    def _rrsets(self, name, qtype, owner=None):
        """(rcode, [rrset]) for name (text, no escapes)/qtype, following one CNAME."""
        import dns.name
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset
        key = name.lower().rstrip(".")
        entries = self.zone.get(key)
        if entries is None:
            return (dns.rcode.SERVFAIL if key.startswith("error.") else dns.rcode.NXDOMAIN), []
        out = []
        if owner is None:
            owner = dns.name.from_text(name)
        for rtype, value in entries:
            if rtype == "TIMEOUT":
                if not out:
                    return dns.rcode.SERVFAIL, []
                break
            if value == "TIMEOUT":
                if dns.rdatatype.from_text(rtype) == qtype:
                    return dns.rcode.SERVFAIL, []
                continue
            if rtype == "CNAME" and qtype != dns.rdatatype.CNAME:
                rs = dns.rrset.from_text(owner, 60, "IN", "CNAME", value.rstrip(".") + ".")
                rcode, more = self._rrsets(value, qtype)
                if rcode == dns.rcode.SERVFAIL:
                    return rcode, []
                return dns.rcode.NOERROR, [rs] + more
            if dns.rdatatype.from_text(rtype) != qtype:
                continue
            if rtype in ("TXT", "SPF"):
                from dns.rdtypes.ANY.TXT import TXT
                rd = TXT(dns.rdataclass.IN, qtype, [s.encode("utf-8") for s in value])
            elif rtype == "MX":
                rd = dns.rdata.from_text("IN", "MX", "%d %s." % (value[0], value[1].rstrip(".")))
            elif rtype in ("PTR",):
                rd = dns.rdata.from_text("IN", rtype, value.rstrip(".") + ".")
            else:
                rd = dns.rdata.from_text("IN", rtype, value)
            rs = next((r for r in out if r.rdtype == qtype), None)
            if rs is None:
                rs = dns.rrset.RRset(owner, dns.rdataclass.IN, qtype)
                out.append(rs)
            rs.add(rd, 60)
        return dns.rcode.NOERROR, out

    def _answer(self, wire):
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        r.flags |= 0x0400  # AA
        if q.question:
            qn = q.question[0]
            # The raw labels: SPF may look up names with spaces or '%' (RFC 7208 7.1).
            text = ".".join(l.decode("latin-1") for l in qn.name.labels if l)
            self.queries.append((text, qn.rdtype))
            rcode, rrsets = self._rrsets(text, qn.rdtype, owner=qn.name)
            r.set_rcode(rcode)
            r.answer = rrsets
        return r

    def _serve_udp(self):
        while not self._stop:
            try:
                wire, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            try:
                r = self._answer(wire)
                out = r.to_wire()
                if len(out) > 512:  # no EDNS from libresolv: truncate, client retries on TCP
                    r.answer = []
                    r.flags |= 0x0200  # TC
                    out = r.to_wire()
                self.udp.sendto(out, peer)
            except Exception:  # a garbled query gets no answer, like a real server
                continue

    def _serve_tcp(self):
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(5)
                    head = b""
                    while len(head) < 2:
                        chunk = conn.recv(2 - len(head))
                        if not chunk:
                            raise OSError("closed")
                        head += chunk
                    n = int.from_bytes(head, "big")
                    wire = b""
                    while len(wire) < n:
                        chunk = conn.recv(n - len(wire))
                        if not chunk:
                            raise OSError("closed")
                        wire += chunk
                    out = self._answer(wire).to_wire()
                    conn.sendall(len(out).to_bytes(2, "big") + out)
                except Exception:
                    continue

    def close(self):
        self._stop = True
        for s in (self.udp, self.tcp):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
