"""Throwaway certificates for the TLS tests, made with the openssl command:
a CA, server and client certificates it signs, and a self-signed one no CA
knows. Shared by tests/protocol and tests/python (tests/node/pki.js makes
the same with the same commands)."""

import os
import subprocess
import tempfile


def openssl(*args, **kw):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, **kw)


class PKI:
    """A CA, server certificates signed by it (one per name), a client
    certificate, and a self-signed one no CA knows."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="piston-pki-")
        self.ca, self.ca_key = self.path("ca.pem"), self.path("ca.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-days", "2", "-keyout", self.ca_key, "-out", self.ca,
                "-subj", "/CN=Piston Test CA")
        self.server = self.issue("localhost", san="DNS:localhost,IP:127.0.0.1")
        self.client = self.issue("client one", client=True)
        self.stranger = self.self_signed("stranger")

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, cn, san=None, client=False):
        stem = cn.replace(" ", "_")
        key, csr, cert = self.path(stem + ".key"), self.path(stem + ".csr"), self.path(stem + ".pem")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        ext = self.path(stem + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" % (san or "DNS:" + stem))
            f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                "-CAcreateserial", "-days", "2", "-out", cert, "-extfile", ext)
        return cert, key

    def self_signed(self, cn):
        key, cert = self.path(cn + "-ss.key"), self.path(cn + "-ss.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-days", "2", "-keyout", key, "-out", cert, "-subj", "/CN=" + cn)
        return cert, key
