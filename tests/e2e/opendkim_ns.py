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
  - carries out SPEC "runs" in order, noting the DNS queries each made:
      {"args": [...], "stdin": base64}
        opendkim-testmsg with these arguments, with a timeout;
      {"libsign": {"key": PATH, "selector": S, "domain": D,
                   "alg": "rsa-sha256"|"ed25519-sha256"|"rsa-sha1",
                   "canon": "relaxed/simple"...}, "stdin": base64}
        sign with libopendkim itself (ctypes; dkim_sign(), dkim_chunk(),
        dkim_eom(), dkim_getsighdr_d(), with opendkim-testmsg's library
        flags FIXCRLF|STRICTHDRS), for what opendkim-testmsg cannot do:
        it always signs with the library's default, rsa-sha1, and
        relaxed/simple. stdout is "DKIM-Signature: " + the field + CRLF +
        the message, as opendkim-testmsg -C writes it; rc 0, or 1 with
        the library's error on stderr.
SPEC: {"testmsg": PATH, "parent_ns": {"net": ..., "mnt": ...},
       "records": [[name, text], ...], "runs": [{"args":..., "stdin":...}]}
RESULT on stdout: {"interfaces": [...], "resolv_conf": TEXT,
    "ns": {"net": ..., "mnt": ...},
    "runs": [{"rc": N, "stdout": b64, "stderr": b64,
              "queries": [[name, type, proto], ...]}, ...]}
Exit status 0 with RESULT, or 1 with the reason on stderr.
"""

import base64
import ctypes
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

# libopendkim's dkim.h (2.11): dkim_alg_t, dkim_canon_t, library flags.
LIBOPENDKIM = "libopendkim.so.11"
DKIM_ALGS = {"rsa-sha1": 0, "rsa-sha256": 1, "ed25519-sha256": 2}
DKIM_CANONS = {"simple": 0, "relaxed": 1}
DKIM_OP_SETOPT = 1
DKIM_OPTS_FLAGS = 0
DKIM_LIBFLAGS_FIXCRLF = 0x0100
DKIM_LIBFLAGS_STRICTHDRS = 0x1000
DKIM_SIGNHEADER = b"DKIM-Signature"


def die(msg):
    sys.stderr.write("opendkim_ns: %s\n" % msg)
    sys.exit(1)


def own_ns():
    return {k: os.readlink("/proc/self/ns/%s" % k) for k in ("net", "mnt")}


def load_libopendkim():
    lib = ctypes.CDLL(LIBOPENDKIM)
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.dkim_init.restype = vp
    lib.dkim_init.argtypes = [vp, vp]
    lib.dkim_sign.restype = vp
    lib.dkim_sign.argtypes = [vp, cp, vp, cp, cp, cp, ctypes.c_int,
                              ctypes.c_int, ctypes.c_int, ctypes.c_ssize_t,
                              ctypes.POINTER(ctypes.c_int)]
    lib.dkim_options.argtypes = [vp, ctypes.c_int, ctypes.c_int, vp,
                                 ctypes.c_size_t]
    lib.dkim_chunk.argtypes = [vp, cp, ctypes.c_size_t]
    lib.dkim_eom.argtypes = [vp, vp]
    lib.dkim_getsighdr_d.argtypes = [vp, ctypes.c_size_t,
                                     ctypes.POINTER(cp),
                                     ctypes.POINTER(ctypes.c_size_t)]
    lib.dkim_geterror.restype = cp
    lib.dkim_geterror.argtypes = [vp]
    lib.dkim_getresultstr.restype = cp
    lib.dkim_getresultstr.argtypes = [ctypes.c_int]
    lib.dkim_free.argtypes = [vp]
    lib.dkim_close.argtypes = [vp]
    return lib


def libsign(lib, p, msg):
    """(rc, stdout, stderr) of signing msg with libopendkim."""
    with open(p["key"], "rb") as f:
        key = f.read()
    hc, bc = p["canon"].split("/")
    dl = lib.dkim_init(None, None)
    if not dl:
        return 1, b"", b"dkim_init() failed"
    flags = ctypes.c_uint(DKIM_LIBFLAGS_FIXCRLF | DKIM_LIBFLAGS_STRICTHDRS)
    status = ctypes.c_int(0)
    dkim = None
    try:
        dkim = lib.dkim_sign(dl, b"petrel-test", None, key,
                             p["selector"].encode(), p["domain"].encode(),
                             DKIM_CANONS[hc], DKIM_CANONS[bc],
                             DKIM_ALGS[p["alg"]], -1, ctypes.byref(status))
        if not dkim:
            return 1, b"", b"dkim_sign(): " + \
                lib.dkim_getresultstr(status.value)
        # After dkim_sign(), as opendkim-testmsg does.
        lib.dkim_options(dl, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS,
                         ctypes.byref(flags), ctypes.sizeof(flags))
        for step, call in (("dkim_chunk()",
                            lambda: lib.dkim_chunk(dkim, msg, len(msg))),
                           ("dkim_chunk()",
                            lambda: lib.dkim_chunk(dkim, None, 0)),
                           ("dkim_eom()", lambda: lib.dkim_eom(dkim, None))):
            rc = call()
            if rc != 0:
                err = lib.dkim_geterror(dkim) or b""
                return 1, b"", ("%s: " % step).encode() + \
                    lib.dkim_getresultstr(rc) + b": " + err
        hdr = ctypes.c_char_p()
        n = ctypes.c_size_t()
        rc = lib.dkim_getsighdr_d(dkim, len(DKIM_SIGNHEADER) + 2,
                                  ctypes.byref(hdr), ctypes.byref(n))
        if rc != 0:
            return 1, b"", b"dkim_getsighdr_d(): " + \
                lib.dkim_getresultstr(rc)
        field = ctypes.string_at(hdr, n.value)
        return 0, DKIM_SIGNHEADER + b": " + field + b"\r\n" + msg, b""
    finally:
        if dkim:
            lib.dkim_free(dkim)
        lib.dkim_close(dl)


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
        lib = None
        for run in spec["runs"]:
            srv.reset_queries()
            data = base64.b64decode(run["stdin"])
            if "libsign" in run:
                if lib is None:
                    lib = load_libopendkim()
                rc, out, err = libsign(lib, run["libsign"], data)
            else:
                try:
                    r = subprocess.run([spec["testmsg"]] + run["args"],
                                       input=data, capture_output=True,
                                       timeout=RUN_TIMEOUT, cwd=tmp)
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
