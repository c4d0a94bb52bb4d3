"""A hostile mirror on 127.0.0.1: slow, endless, redirecting, downgrading (python-tuf's attack list).

The golden publication is served by a local HTTP(S) server that misbehaves on
purpose, one way per scenario (the path's first segment). ``sevref verify``
runs against it in a subprocess with an address-space limit and a timeout, so
"bounded in time and memory" is enforced by the operating system, as in
``tests/test_hardening.py``; the subprocess also reports its peak resident
memory, which must stay under 200 MiB. No test asserts how long anything took:
a mirror that drips or answers just in time would hold a run far longer than
the bound the operating system sets, so ending within that bound is the proof.
Every scenario ends by itself (a drip stops after :data:`DRIP_SECONDS`), so no
server thread outlives the tests for long.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import resource
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sevref.edge.fetch import follow_redirect
from sevref.edge.remote import reader
from sevref.errors import FetchError, NotFoundError
from sevref.serialize import canonical
from sevref.sign import KEYS_PAYLOAD_TYPE, envelope
from tests.conftest import REPO
from tests.fuzz.verify import PUBLICATION, SIGNER

GOLDEN = REPO / "tests" / "golden"
MEMORY = 1 << 30  # address space of a hostile-mirror run
TIMEOUT = 120  # the OS's bound on a whole run; --timeout bounds each file
BOUNDED = 30  # the OS's bound on a run that --timeout or --deadline must end within a few seconds
DRIP_SECONDS = 40
"""A dripping scenario stops after this long, whatever the client does (the client gives up long before)."""
JUST_IN_TIME = 1.5
"""Seconds the just-in-time scenario waits before each answer (with --timeout 2: never late, always slow)."""
PEAK = 200 << 20  # the most resident memory a run may reach
INDEX = json.loads(PUBLICATION["index.json"])
LISTED = {f["path"]: f["size"] for f in INDEX["files"]}
FLOODED = min(LISTED, key=lambda p: abs(LISTED[p] - 1024) if p.endswith(".json") else 1 << 30)
"""A listed JSON file of about 1 KiB: the flood replaces it."""
KEYS_1 = json.loads(__import__("base64").b64decode(json.loads(PUBLICATION["keys/1.dsse.json"])["payload"]))


def _keys_document(version: int) -> bytes:
    """A valid keys/<version> signed by the publisher's key: a compromised publisher's endless chain."""
    return canonical(envelope(canonical({**KEYS_1, "version": version}), KEYS_PAYLOAD_TYPE, [SIGNER]))


class Counting(http.server.ThreadingHTTPServer):
    """A server that counts the TCP connections it accepts and the requests it answers."""

    daemon_threads = True
    accepted = 0
    """TCP connections accepted."""
    requests = 0
    """Requests received."""
    cert = ""
    """The HTTPS server's certificate file."""

    def get_request(self) -> tuple[Any, Any]:
        """Accept a connection, and count it."""
        self.accepted += 1
        return super().get_request()


class Hostile(http.server.BaseHTTPRequestHandler):
    """Serves the golden publication under /<scenario>/, misbehaving as the scenario says."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as web servers do on kept connections: a head and its body go out at once
    server: Counting
    other: str = ""
    """Base URL of the plain-HTTP server (for the https-to-http redirect)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # the name http.server calls
        self.server.requests += 1
        _, scenario, path = self.path.split("/", 2)
        handler = getattr(self, f"_{scenario.replace('-', '_')}", None)
        if handler is not None and handler(path):
            return
        if path in PUBLICATION:
            self._send(200, PUBLICATION[path])
        else:
            self._send(404, b"not found")

    # Each scenario returns True when it answered the request itself.

    def _drip(self, path: str) -> bool:
        if path != "index.dsse.json":
            return False
        self.send_response(200)
        self.send_header("Content-Length", str(len(PUBLICATION[path])))
        self.end_headers()
        return self._trickle(PUBLICATION[path])

    def _drip_headers(self, path: str) -> bool:
        if path != "index.dsse.json":
            return False
        return self._trickle(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10_000 + b"\r\n\r\n")

    def _drip_unannounced(self, path: str) -> bool:
        """No Content-Length: the body ends when the connection does (http.client hands the socket to the answer)."""
        if path != "index.dsse.json":
            return False
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        return self._trickle(PUBLICATION[path], 1.0)

    def _drip_chunked(self, path: str) -> bool:
        """Chunked: one byte a chunk, every second."""
        if path != "index.dsse.json":
            return False
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        return self._trickle(PUBLICATION[path], 1.0, chunked=True)

    def _drip_announced(self, path: str) -> bool:
        """With Content-Length, one byte every second."""
        if path != "index.dsse.json":
            return False
        self.send_response(200)
        self.send_header("Content-Length", str(len(PUBLICATION[path])))
        self.end_headers()
        return self._trickle(PUBLICATION[path], 1.0)

    def _trickle(self, data: bytes, every: float = 0.5, *, chunked: bool = False) -> bool:
        """One byte every ``every`` seconds, until the client gives up or :data:`DRIP_SECONDS` pass."""
        self.close_connection = True
        try:
            for byte in data[: int(DRIP_SECONDS / every)]:
                self.wfile.write(b"1\r\n" + bytes([byte]) + b"\r\n" if chunked else bytes([byte]))
                self.wfile.flush()
                time.sleep(every)
        except OSError:
            pass
        return True

    def _just_in_time(self, path: str) -> bool:
        """Every file, honestly, but each after :data:`JUST_IN_TIME` seconds."""
        time.sleep(JUST_IN_TIME)
        return False

    def _flood(self, path: str) -> bool:
        if path != FLOODED:
            return False
        self.send_response(200)
        self.send_header("Connection", "close")  # no Content-Length: the body ends when the connection does
        self.end_headers()
        self._stream(50 << 20)
        return True

    def _flood_envelope(self, path: str) -> bool:
        if path != "index.dsse.json":
            return False
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 30))  # a lie: nothing may be reserved from it
        self.end_headers()
        self._stream(100 << 20, b'{"payload":"' + b"A" * (1 << 16))
        return True

    def _stream(self, total: int, head: bytes = b"") -> None:
        chunk = b"x" * (1 << 16)
        self.close_connection = True
        try:
            self.wfile.write(head)
            for _ in range(total // len(chunk)):
                self.wfile.write(chunk)
        except OSError:
            pass

    def _endless_keys(self, path: str) -> bool:
        if not path.startswith("keys/"):
            return False
        version = int(path.removeprefix("keys/").removesuffix(".dsse.json"))
        self._send(200, _keys_document(version))
        return True

    def _redirect_ftp(self, path: str) -> bool:
        self._send(302, headers={"Location": f"ftp://127.0.0.1/{path}"})
        return True

    def _redirect_file(self, path: str) -> bool:
        self._send(302, headers={"Location": "file:///etc/passwd"})
        return True

    def _redirect_loop(self, path: str) -> bool:
        self._send(302, headers={"Location": f"/redirect-loop/{path}"})
        return True

    def _downgrade(self, path: str) -> bool:
        self._send(302, headers={"Location": f"{self.other}/plain/{path}"})
        return True

    def _gone(self, path: str) -> bool:
        if path != "keys/1.dsse.json":
            return False
        self._send(503, b"")
        return True


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _serve(server: http.server.ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Counting]]:
    """The hostile mirror over HTTP and HTTPS on 127.0.0.1 (the HTTPS server's certificate in its ``cert``)."""
    plain = Counting(("127.0.0.1", 0), Hostile)
    Hostile.other = f"http://127.0.0.1:{plain.server_address[1]}"
    cert, key = _certificate(tmp_path_factory.mktemp("tls"))
    secure = Counting(("127.0.0.1", 0), Hostile)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    secure.cert = str(cert)
    threads = [_serve(plain), _serve(secure)]
    try:
        yield {"http": plain, "https": secure}
    finally:
        for server in (plain, secure):
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join()


@pytest.fixture(scope="module")
def mirror(servers: dict[str, Counting]) -> dict[str, str]:
    """The hostile mirror's base URLs (``http``, ``https``) and the HTTPS server's certificate (``cert``)."""
    secure = servers["https"]
    return {
        "http": f"http://127.0.0.1:{servers['http'].server_address[1]}",
        "https": f"https://127.0.0.1:{secure.server_address[1]}",
        "cert": secure.cert,
    }


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


RUN = (
    "import os, sys\n"
    "from sevref._cli import main\n"
    "status = main(sys.argv[1:])\n"
    "peak = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:')) * 1024\n"
    "open(os.environ['SEVREF_TEST_PEAK'], 'w').write(str(peak))\n"
    "sys.exit(status)\n"
)
"""``sevref`` in-process, reporting its peak resident memory at the end.

The peak is ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's own address space. Not
``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the forked parent's resident size across ``execve`` into it
(``exec_mmap`` in fs/exec.c records the old mm's high-water mark in ``signal->maxrss``), so under pytest-xdist it
reported the test worker's size (212 MB in CI) rather than sevref's.
"""


def verify(
    base: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None, bound: int = TIMEOUT
) -> tuple[int, str, int]:
    """Run ``sevref verify`` against a mirror, bounded by the OS (``bound`` seconds); return (status, stderr, peak)."""
    peak = tmp_path / "peak"
    command = [sys.executable, "-c", RUN, "verify", "--publication", base]
    command += ["--trusted-key", str(GOLDEN / "key" / "golden.pub"), "--publisher", "golden", "--product", "tiny"]
    command += ["--stream", "test", "--at", "2026-02-01T00:00:00Z", *extra]
    environment = {**os.environ, "SEVREF_TEST_PEAK": str(peak), "no_proxy": "127.0.0.1", **(env or {})}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=bound, preexec_fn=_limit, env=environment, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stderr, int(peak.read_text()) if peak.exists() else 0


def refused(status: int, err: str, check: str) -> str:
    """The run was refused with one line naming ``check``; return what follows it."""
    assert status == 3, err
    assert len(err.splitlines()) == 1, err
    prefix = f"sevref: not trusted: {check}: "
    assert err.startswith(prefix), err
    return err.removeprefix(prefix).strip()


@pytest.mark.slow
def test_the_mirror_serves_the_golden_publication(mirror: dict[str, str], tmp_path: Path) -> None:
    status, err, peak = verify(f"{mirror['http']}/honest/", tmp_path)
    assert (status, err) == (0, "")
    assert 0 < peak < PEAK
    status, err, _ = verify(f"{mirror['https']}/honest/", tmp_path, env={"SSL_CERT_FILE": mirror["cert"]})
    assert (status, err) == (0, "")


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["drip", "drip-headers"])
def test_a_dripping_mirror_is_cut_off_at_the_deadline(scenario: str, mirror: dict[str, str], tmp_path: Path) -> None:
    status, err, peak = verify(f"{mirror['http']}/{scenario}/", tmp_path, "--timeout", "3")
    message = refused(status, err, "fetch")
    assert message == f"{mirror['http']}/{scenario}/index.dsse.json: {LATE}"
    assert 0 < peak < PEAK


LATE = "no complete answer within 3 s (--timeout); expected a faster server, or a longer --timeout"


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("scenario", ["drip-unannounced", "drip-announced", "drip-chunked"])
def test_a_drip_ends_at_the_timeout_however_the_answer_is_framed(
    scenario: str, scheme: str, mirror: dict[str, str], tmp_path: Path
) -> None:
    # A byte a second for DRIP_SECONDS: only --timeout ends the run within BOUNDED (issue 21: without a
    # Content-Length, http.client hands the socket to the answer and the old watchdog had none to shut).
    env = {"SSL_CERT_FILE": mirror["cert"]}
    status, err, _ = verify(f"{mirror[scheme]}/{scenario}/", tmp_path, "--timeout", "3", env=env, bound=BOUNDED)
    assert refused(status, err, "fetch") == f"{mirror[scheme]}/{scenario}/index.dsse.json: {LATE}"


@pytest.mark.slow
def test_a_mirror_that_answers_each_file_just_in_time_ends_at_the_deadline(
    mirror: dict[str, str], tmp_path: Path
) -> None:
    # Each file comes 1.5 s after it is asked for, within --timeout 2: some 80 files would take two minutes.
    base = f"{mirror['http']}/just-in-time/"
    status, err, _ = verify(base, tmp_path, "--timeout", "2", "--deadline", "5", bound=BOUNDED)
    message = refused(status, err, "fetch")
    assert message.startswith(base), message
    assert message.endswith(
        ": not fetched within the run's deadline of 5 s (--deadline); expected a faster server, or a longer --deadline"
    ), message


@pytest.mark.slow
def test_connections_are_kept_for_the_next_file(servers: dict[str, Counting], tmp_path: Path) -> None:
    plain = servers["http"]
    accepted, requests = plain.accepted, plain.requests
    status, err, _ = verify(f"http://127.0.0.1:{plain.server_address[1]}/honest/", tmp_path)
    assert (status, err) == (0, "")
    accepted, requests = plain.accepted - accepted, plain.requests - requests
    assert requests >= len(LISTED) and accepted <= 2, (accepted, requests)


@pytest.mark.slow
def test_a_flood_is_read_to_its_signed_size_and_one_byte(mirror: dict[str, str], tmp_path: Path) -> None:
    status, err, peak = verify(f"{mirror['http']}/flood/", tmp_path)
    size = LISTED[FLOODED]
    message = refused(status, err, "integrity")
    assert message.startswith(f"{FLOODED} has more than {size} bytes; the signed index says "), message
    assert message.endswith(f" ({size} bytes)"), message
    assert 0 < peak < PEAK, peak


@pytest.mark.slow
def test_an_endless_envelope_is_refused_at_its_cap(mirror: dict[str, str], tmp_path: Path) -> None:
    status, err, peak = verify(f"{mirror['http']}/flood-envelope/", tmp_path)
    assert refused(status, err, "fetch") == "index.dsse.json: more than 25165824 bytes, the most sevref reads of it"
    assert 0 < peak < PEAK, peak


@pytest.mark.slow
def test_an_endless_key_chain_is_read_to_its_limit(mirror: dict[str, str], tmp_path: Path) -> None:
    status, err, peak = verify(f"{mirror['http']}/endless-keys/", tmp_path)
    assert refused(status, err, "keys") == "more than 100 keys documents; sevref reads at most that many a run"
    assert 0 < peak < PEAK, peak


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "target"),
    [("redirect-ftp", "ftp://127.0.0.1/index.dsse.json"), ("redirect-file", "file:///etc/passwd")],
)
def test_redirects_lead_only_to_http_and_https(
    scenario: str, target: str, mirror: dict[str, str], tmp_path: Path
) -> None:
    status, err, _ = verify(f"{mirror['http']}/{scenario}/", tmp_path)
    message = refused(status, err, "fetch")
    assert message == (
        f"{mirror['http']}/{scenario}/index.dsse.json: redirected to {target}; expected an http:// or https:// URL"
    )


@pytest.mark.slow
def test_no_redirect_from_https_to_http(mirror: dict[str, str], tmp_path: Path) -> None:
    status, err, _ = verify(f"{mirror['https']}/downgrade/", tmp_path, env={"SSL_CERT_FILE": mirror["cert"]})
    message = refused(status, err, "fetch")
    assert message == (
        f"{mirror['https']}/downgrade/index.dsse.json: redirected from https down to http "
        f"({mirror['http']}/plain/index.dsse.json); expected an https:// URL"
    )


@pytest.mark.slow
def test_fetch_failures_are_named(mirror: dict[str, str], tmp_path: Path) -> None:
    # A redirect loop, a certificate nobody vouches for, a 404 for everything, a refused connection.
    status, err, _ = verify(f"{mirror['http']}/redirect-loop/", tmp_path)
    assert refused(status, err, "fetch").endswith("index.dsse.json: more than 5 redirects; expected the file")
    status, err, _ = verify(f"{mirror['https']}/honest/", tmp_path)
    assert refused(status, err, "fetch") == (
        f"{mirror['https']}/honest/index.dsse.json: certificate verify failed: self-signed certificate; "
        "expected the file"
    )
    status, err, _ = verify(f"{mirror['http']}/nothing-here/x/", tmp_path)
    assert refused(status, err, "fetch") == (
        f"{mirror['http']}/nothing-here/x/index.dsse.json: HTTP 404 (Not Found); expected 200 OK; "
        "no index.json either: no publication there"
    )
    status, err, _ = verify("http://127.0.0.1:9/", tmp_path, "--timeout", "5")
    assert refused(status, err, "fetch") == "http://127.0.0.1:9/index.dsse.json: Connection refused; expected the file"
    # Only a 404 ends the key chain: a 503 on keys/1 is an error, not an empty chain.
    status, err, _ = verify(f"{mirror['http']}/gone/", tmp_path)
    assert refused(status, err, "fetch") == (
        f"{mirror['http']}/gone/keys/1.dsse.json: HTTP 503 (Service Unavailable); expected 200 OK"
    )


# --------------------------------------------------------------------------- the readers, in-process


def test_the_folder_reader_bounds_and_names_what_it_reads(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "big.json").write_bytes(b"x" * 1000)
    (tmp_path / "site" / "folder").mkdir()
    (tmp_path / "secret").write_bytes(b"secret")
    (tmp_path / "site" / "link").symlink_to(tmp_path / "secret")
    fetch = reader(str(tmp_path / "site"))
    assert fetch("big.json", 10) == b"x" * 11  # the limit and one byte: enough to refuse, no more
    assert fetch("big.json", 5000) == b"x" * 1000
    with pytest.raises(NotFoundError, match=r"/site/missing\.json: not found$"):
        fetch("missing.json", 10)
    with pytest.raises(FetchError, match=r"/site/folder: not a regular file$"):
        fetch("folder", 10)
    with pytest.raises(FetchError, match=r"/site/link: outside the publication"):
        fetch("link", 10)
    with pytest.raises(FetchError, match=r"/nowhere: no such folder$") as raised:
        reader(str(tmp_path / "nowhere"))("index.dsse.json", 10)
    assert not isinstance(raised.value, NotFoundError)  # a missing folder is no missing file


@pytest.mark.parametrize(
    ("current", "location", "expected"),
    [
        ("http://a/x/index.json", "https://b/y/index.json", "https://b/y/index.json"),
        ("http://a/x/index.json", "/z/index.json", "http://a/z/index.json"),
        ("https://a/x/index.json", "HTTPS://b/index.json", "https://b/index.json"),
        ("https://a/x/index.json", "http://a/x/index.json", "from https down to http"),
        ("http://a/x/index.json", "ftp://a/index.json", "expected an http:// or https:// URL"),
        ("http://a/x/index.json", "file:///etc/passwd", "expected an http:// or https:// URL"),
        ("http://a/x/index.json", "data:text/plain,hi", "expected an http:// or https:// URL"),
        ("http://a/x/index.json", None, "a redirect without a Location; expected one"),
    ],
)
def test_redirect_policy(current: str, location: str | None, expected: str) -> None:
    if expected.startswith(("http://", "https://")):
        assert follow_redirect(current, location) == expected
    else:
        with pytest.raises(FetchError, match=expected):
            follow_redirect(current, location)
