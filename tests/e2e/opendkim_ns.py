"""
opendkim_ns.py: run OpenDKIM's opendkim-testmsg against a loopback DNS
server, inside a private network and mount namespace, for
test_dkim_opendkim.py.

    unshare -n -m /usr/bin/python3 opendkim_ns.py SPEC.json > RESULT.json

opendkim-testmsg has no option for its DNS server: libopendkim asks
glibc's stub resolver (res_ninit/res_nquery, libresolv being part of libc
since glibc 2.34), which reads /etc/resolv.conf, and that names a server
off this host. So the test runs this script in new namespaces
(`unshare -n -m`: unshare(1) makes the mount propagation private), where
it
  - refuses to go on unless its network and mount namespaces differ from
    the caller's (SPEC "parent_ns") and the only interface is lo: it never
    binds the host's port 53 nor mounts over the host's resolv.conf, and
    no packet can leave loopback, there being no other interface;
  - brings lo up;
  - bind-mounts a file saying "nameserver 127.0.0.1" over /etc/resolv.conf
    (seen only in this mount namespace; gone when the process exits);
  - serves SPEC "records" (owner name, TXT text or list of strings) with
    dnsserver.DNSServer on 127.0.0.1:53;
  - runs opendkim-testmsg once per SPEC "runs" entry ({"args": [...],
    "stdin": base64}), with a timeout, and notes the DNS queries each run
    made.
SPEC: {"testmsg": PATH, "parent_ns": {"net": ..., "mnt": ...},
       "records": [[name, text], ...], "runs": [{"args":..., "stdin":...}]}
RESULT on stdout: {"interfaces": [...], "resolv_conf": TEXT,
    "ns": {"net": ..., "mnt": ...},
    "runs": [{"rc": N, "stdout": b64, "stderr": b64,
              "queries": [[name, type, proto], ...]}, ...]}
Exit status 0 with RESULT, or 1 with the reason on stderr.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dnsserver import DNSServer  # noqa: E402

RUN_TIMEOUT = 20


def die(msg):
    sys.stderr.write("opendkim_ns: %s\n" % msg)
    sys.exit(1)


def own_ns():
    return {k: os.readlink("/proc/self/ns/%s" % k) for k in ("net", "mnt")}


def main():
    if len(sys.argv) != 2:
        die("usage: unshare -n -m python3 opendkim_ns.py SPEC.json")
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    ns = own_ns()
    for k in ("net", "mnt"):
        if ns[k] == spec["parent_ns"][k]:
            die("not in a private %s namespace (run under unshare -n -m)"
                % k)
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        die("interfaces other than lo: %r" % interfaces)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    tmp = tempfile.mkdtemp(prefix="petrel-opendkim-ns-")
    conf = os.path.join(tmp, "resolv.conf")
    with open(conf, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    subprocess.run(["mount", "--bind", conf, "/etc/resolv.conf"],
                   check=True)
    with open("/etc/resolv.conf") as f:
        resolv = f.read()

    result = {"interfaces": interfaces, "resolv_conf": resolv, "ns": ns,
              "runs": []}
    with DNSServer(host="127.0.0.1", port=53) as srv:
        for name, text in spec["records"]:
            srv.add(name, "TXT", text)
        for run in spec["runs"]:
            srv.reset_queries()
            try:
                r = subprocess.run([spec["testmsg"]] + run["args"],
                                   input=base64.b64decode(run["stdin"]),
                                   capture_output=True, timeout=RUN_TIMEOUT,
                                   cwd=tmp)
                rc, out, err = r.returncode, r.stdout, r.stderr
            except subprocess.TimeoutExpired:
                rc, out, err = None, b"", b"timed out"
            result["runs"].append({
                "rc": rc,
                "stdout": base64.b64encode(out).decode(),
                "stderr": base64.b64encode(err).decode(),
                "queries": [list(q) for q in srv.transcript]})
    shutil.rmtree(tmp, ignore_errors=True)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
