"""
tls_certs.py: certificates and TLS clients for the end-to-end TLS tests.

make_pair() writes a self-signed certificate and its key with
`openssl req -x509` (a serial the caller picks, so a test can tell two
certificates apart); cert_info() reads the subject CN, the SAN names and
the serial of a DER certificate (what ssl.SSLSocket.getpeercert(True)
returns) with the cryptography module, or with `openssl x509` when that
module is missing; s_client() runs `openssl s_client` with the
arguments given and returns what it printed, and SClient drives one
interactively (a line, wait for the reply, the next line: SMTP forbids
pipelining behind EHLO, so feeding s_client all of its input at once is
not a fair client).
Nothing here starts Petrel.
"""

import os
import pwd
import re
import subprocess
import threading
import time

OPENSSL = "openssl"

try:
    from cryptography import x509 as _x509
    from cryptography.x509.oid import NameOID as _NameOID
except ImportError:          # pragma: no cover (Debian ships it)
    _x509 = None


def petrel_ids(user="petrel"):
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def make_pair(directory, stem, cn, sans=None, serial=1, key="ec",
              owner=None, key_mode=0o600):
    """Write DIR/STEM.pem and DIR/STEM.key: a self-signed certificate for
    CN=cn with subjectAltName DNS:sans (default [cn]) and the given serial.
    key: "ec" (P-256, fast) or "rsa" (2048 bits). owner: (uid, gid) for
    the key file (default: the petrel user, so the daemon can read it on
    a reload), or None to leave it root's. Returns (cert_path, key_path)."""
    cert = os.path.join(directory, stem + ".pem")
    keyf = os.path.join(directory, stem + ".key")
    if sans is None:
        sans = [cn]
    if key == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    else:
        newkey = ["-newkey", "rsa:2048"]
    cmd = [OPENSSL, "req", "-x509", "-nodes", "-days", "2",
           "-subj", "/CN=%s" % cn, "-set_serial", str(serial),
           "-keyout", keyf, "-out", cert] + newkey
    if sans:
        cmd += ["-addext", "subjectAltName=" +
                ",".join("DNS:%s" % s for s in sans)]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, "openssl req failed: %r" % r.stderr
    os.chmod(cert, 0o644)
    os.chmod(keyf, key_mode)
    if owner == "petrel":
        owner = petrel_ids()
    if owner is not None:
        os.chown(keyf, owner[0], owner[1])
    return cert, keyf


def replace_pair(directory, stem, cn, serial, key="ec", owner="petrel",
                 key_mode=0o600, key_from=None):
    """Make a new pair under temporary names, then rename it over
    DIR/STEM.pem and DIR/STEM.key (what certbot's deploy step amounts
    to). key_from: the path of another key to install instead of the new
    one (a key that does not match the new certificate)."""
    tmp = stem + ".new"
    cert, keyf = make_pair(directory, tmp, cn, serial=serial, key=key,
                           owner=owner, key_mode=key_mode)
    if key_from is not None:
        with open(key_from, "rb") as f:
            data = f.read()
        with open(keyf, "wb") as f:
            f.write(data)
    os.replace(keyf, os.path.join(directory, stem + ".key"))
    os.replace(cert, os.path.join(directory, stem + ".pem"))


def pem_to_der(path):
    r = subprocess.run([OPENSSL, "x509", "-in", path, "-outform", "DER"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def cert_info(der):
    """{"serial": int, "cn": str, "sans": [str]} of a DER certificate."""
    assert der, "no peer certificate"
    if _x509 is not None:
        c = _x509.load_der_x509_certificate(der)
        cns = c.subject.get_attributes_for_oid(_NameOID.COMMON_NAME)
        try:
            ext = c.extensions.get_extension_for_class(
                _x509.SubjectAlternativeName)
            sans = ext.value.get_values_for_type(_x509.DNSName)
        except _x509.ExtensionNotFound:
            sans = []
        return {"serial": c.serial_number,
                "cn": cns[0].value if cns else None, "sans": list(sans)}
    r = subprocess.run([OPENSSL, "x509", "-inform", "DER", "-noout",
                        "-serial", "-subject", "-ext", "subjectAltName",
                        "-nameopt", "multiline"],
                       input=der, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    serial = int(re.search(r"serial=([0-9A-Fa-f]+)", out).group(1), 16)
    cn = re.search(r"commonName\s*=\s*(\S+)", out)
    return {"serial": serial, "cn": cn.group(1) if cn else None,
            "sans": re.findall(r"DNS:([^,\s]+)", out)}


def s_client(args, stdin=b"", timeout=20):
    """Run `openssl s_client ARGS`; returns (returncode, stdout, stderr)
    as text. stdin is sent and then closed."""
    r = subprocess.run([OPENSSL, "s_client"] + list(args), input=stdin,
                       capture_output=True, timeout=timeout)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def brief_protocol(stderr):
    """The "Protocol version: X" that `s_client -brief` prints once the
    handshake is done, or None."""
    m = re.search(r"^Protocol version: (\S+)", stderr, re.M)
    return m.group(1) if m else None


class SClient:
    """`openssl s_client ARGS` driven line by line: write() a line (the
    caller passes -crlf so "\\n" goes out as CRLF), wait_out() for a
    line of its standard output matching a regex, finish() to close its
    input and collect (returncode, stdout, stderr)."""

    def __init__(self, args):
        self.proc = subprocess.Popen(["openssl", "s_client"] + list(args),
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = []
        self.err = []
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._read, daemon=True,
                                         args=(self.proc.stdout, self.out)),
                        threading.Thread(target=self._read, daemon=True,
                                         args=(self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _read(self, stream, lines):
        for raw in stream:
            with self.cond:
                lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_out(self, regex, timeout=20, start=0):
        """The first stdout line at index >= start matching regex."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.out[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and
                                 not any(t.is_alive() for t in
                                         self.threads)):
                    raise AssertionError(
                        "s_client printed no line matching %r; stdout:\n%s"
                        "\nstderr:\n%s" % (regex, "\n".join(self.out),
                                            "\n".join(self.err)))
                self.cond.wait(min(left, 0.1))

    def mark(self):
        with self.cond:
            return len(self.out)

    def write(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout=20):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("s_client did not exit")
        for t in self.threads:
            t.join(timeout=10)
        return (self.proc.returncode, "\n".join(self.out),
                "\n".join(self.err))
