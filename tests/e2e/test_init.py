"""`moatd init DIR` through the real binary, checked with real clients:
the layout, the modes, refusal and --force, and real TLS handshakes with
the generated certificates (openssl s_server, curl, Python ssl).

Skipped while main.c does not yet dispatch `init` (moatd_data skips).
"""

import base64
import json
import os
import re
import socket
import ssl
import stat
import subprocess

import pytest

import moat_harness as mh

SECRET_KEYS = sorted([
    "tls.crt", "tls.key", "ca.crt", "client-ca.crt", "jwt-signing.pem",
    "jwt-signing.kid", "keyring.json", "audit-signing.pem",
    "audit-signing.pub", "audit-signing.kid", "moatd-client.crt",
    "moatd-client.key", "ssh-host-ed25519.key", "ssh-host-ecdsa.key"])
PKI_FILES = sorted(["ca.key", "ca.crt", "ingress.crt", "ingress.key",
                    "moatd-client.crt", "moatd-client.key", "moat-proxy.crt",
                    "moat-proxy.key"])
VERSION_RE = re.compile(r"^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$")


def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


def tree(d):
    """{relative path: (mode, link target or file bytes)} of a tree."""
    out = {}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                v = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                v = open(p, "rb").read()
            else:
                v = None
            out[os.path.relpath(p, d)] = (st.st_mode, v)
    return out


def test_init_layout(moatd_data):
    d = moatd_data
    assert mode(d) == 0o700
    sec = d / "secrets"
    assert mode(sec) == 0o700
    ver = os.readlink(sec / "..data")
    assert VERSION_RE.match(ver), ver
    assert mode(sec / ver) == 0o700
    assert sorted(os.listdir(sec)) == sorted(SECRET_KEYS + ["..data", ver])
    assert sorted(os.listdir(sec / ver)) == SECRET_KEYS
    for k in SECRET_KEYS:
        assert os.readlink(sec / k) == f"..data/{k}"
        assert stat.S_ISREG(os.lstat(sec / ver / k).st_mode)
        assert mode(sec / ver / k) == 0o600
    assert mode(d / "pki") == 0o700
    assert sorted(os.listdir(d / "pki")) == PKI_FILES
    for f in PKI_FILES:
        assert mode(d / "pki" / f) == 0o600
    assert [n for n in os.listdir(d) if n.startswith(".init-tmp")] == []
    # The CA's private key is nowhere in secrets/.
    ca_key = (d / "pki" / "ca.key").read_bytes()
    for k in SECRET_KEYS:
        assert (sec / k).read_bytes() != ca_key
    kr = json.loads((sec / "keyring.json").read_text())
    assert kr["primary"] == "k1" and kr["keys"][0]["id"] == "k1"
    assert len(base64.b64decode(kr["keys"][0]["key"], validate=True)) == 32
    assert re.fullmatch(r"[0-9a-f]{16}", (sec / "jwt-signing.kid").read_text())


def test_init_output_and_refusal(moatd_bin, tmp_path):
    d = tmp_path / "data"
    try:
        cp = mh.moatd_init(d)
    except mh.InitUnsupported as e:
        pytest.skip(str(e))
    out = cp.stdout + cp.stderr
    assert str(d / "secrets") in out and str(d / "pki") in out
    assert "BEGIN" not in out and "PRIVATE" not in out
    key = json.loads((d / "secrets" / "keyring.json").read_text())[
        "keys"][0]["key"]
    assert key not in out

    before = tree(d)
    ca_before = (d / "secrets" / "ca.crt").read_bytes()
    again = mh.moatd_init(d, check=False)
    assert again.returncode == 1
    assert "--force" in again.stderr and "already" in again.stderr
    assert tree(d) == before

    forced = mh.moatd_init(d, "--force")
    assert forced.returncode == 0
    assert (d / "secrets" / "ca.crt").read_bytes() != ca_before
    assert (d / "pki" / "ca.key").read_bytes() != before["pki/ca.key"][1]
    assert [n for n in os.listdir(d) if n.startswith(".init-tmp")] == []

    usage = subprocess.run([str(moatd_bin), "init"], capture_output=True,
                           text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr


def openssl_verify(ca, cert, purpose):
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca),
                           "-purpose", purpose, str(cert)],
                          capture_output=True, text=True)


def test_certificates_verify_with_openssl(moatd_data):
    sec, pki = moatd_data / "secrets", moatd_data / "pki"
    assert openssl_verify(sec / "ca.crt", sec / "tls.crt",
                          "sslserver").returncode == 0
    assert openssl_verify(sec / "client-ca.crt", pki / "ingress.crt",
                          "sslclient").returncode == 0
    assert openssl_verify(sec / "ca.crt", pki / "moatd-client.crt",
                          "sslclient").returncode == 0
    # Client certificates are not server certificates.
    assert openssl_verify(sec / "ca.crt", pki / "ingress.crt",
                          "sslserver").returncode != 0
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in",
                           str(sec / "tls.crt")], capture_output=True,
                          text=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    assert "IP Address:0:0:0:0:0:0:0:1" in text
    assert "TLS Web Server Authentication" in text
    assert "ecdsa-with-SHA256" in text and "prime256v1" in text


@pytest.fixture
def s_server(procs, moatd_data):
    """openssl s_server with the init'd server certificate, requiring a
    client certificate from client-ca.crt, like moatd behind an ingress."""
    sec = moatd_data / "secrets"
    port = mh.free_port()
    p = procs.start(["openssl", "s_server", "-accept", str(port),
                     "-cert", sec / "tls.crt", "-cert_chain", sec / "tls.crt",
                     "-key", sec / "tls.key", "-CAfile", sec / "client-ca.crt",
                     "-Verify", "1", "-verify_return_error", "-www"],
                    name="s_server", check_sanitizer=False)
    mh.wait_for_port(port, proc=p)
    return port


def test_tls_handshakes_with_generated_certs(s_server, moatd_data, test_ca):
    sec, pki = moatd_data / "secrets", moatd_data / "pki"
    ingress = dict(cert=pki / "ingress.crt", key=pki / "ingress.key")
    for host in ("localhost", "127.0.0.1"):
        r = mh.curl(f"https://{host}:{s_server}/", ca=sec / "ca.crt",
                    **ingress)
        assert r.status == 200
    # ::1 through Python's ssl, when the host has IPv6 loopback.
    try:
        socket.create_connection(("::1", s_server), 1).close()
        has_v6 = True
    except OSError:
        has_v6 = False
    if has_v6:
        r = mh.https_request(f"https://[::1]:{s_server}/", ca=sec / "ca.crt",
                             **ingress)
        assert r.status == 200
    # The moatd client certificate is accepted by the same CA.
    r = mh.curl(f"https://localhost:{s_server}/", ca=sec / "ca.crt",
                cert=pki / "moatd-client.crt", key=pki / "moatd-client.key")
    assert r.status == 200
    # Without a client certificate, or with one of another CA: refused.
    with pytest.raises(mh.CurlError):
        mh.curl(f"https://localhost:{s_server}/", ca=sec / "ca.crt")
    rogue = test_ca("rogue").issue("ingress", dns=["ingress"], client=True)
    with pytest.raises(mh.CurlError):
        mh.curl(f"https://localhost:{s_server}/", ca=sec / "ca.crt",
                cert=rogue.cert, key=rogue.key)
    # The chain verifies for localhost; another name does not.
    s = mh.openssl_s_client("127.0.0.1", s_server, ca=sec / "ca.crt",
                            verify_hostname="localhost", **ingress)
    assert s.verified, s.output
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx = mh.ssl_client_context(sec / "ca.crt", **ingress)
        with socket.create_connection(("127.0.0.1", s_server), 5) as raw:
            ctx.wrap_socket(raw, server_hostname="example.com")


def test_python_swap_on_init_dir(moatd_data, test_ca):
    sec = moatd_data / "secrets"
    old = os.readlink(sec / "..data")
    ca_before = (sec / "ca.crt").read_bytes()
    new = test_ca("next").issue("localhost", dns=["localhost"], server=True)
    ver = mh.secrets_swap(sec, {"tls.crt": new.cert.read_bytes(),
                                "tls.key": new.key.read_bytes()})
    assert os.readlink(sec / "..data") == ver != old
    assert not (sec / old).exists()
    assert (sec / "tls.crt").read_bytes() == new.cert.read_bytes()
    assert (sec / "ca.crt").read_bytes() == ca_before
    assert sorted(os.listdir(sec / ver)) == SECRET_KEYS
