"""sevref's Python API: build, sign, verify and digest, as typed functions.

The command line is a thin layer over this module: each command turns its
arguments into one call here and the result into output and an exit code, so
a program that imports sevref gets exactly what ``sevref`` does::

    from sevref import api

    built = api.build(["manifests/bookworm.yaml"], "site", signer=api.load_key("release.pem", b"..."))
    verdict = api.verify(
        "https://cvm.example.com/sev/",
        trusted_keys=["release.pub"],
        publisher="example-cvm", product="debian-ovmf", stream="debian",
        evidence=api.SnpReport("report.bin", vcek="vcek.der"),
    )
    if not verdict.accepted:
        raise SystemExit(verdict.reason)

Errors the caller can cause raise :class:`~sevref.errors.SevrefError` (its
``diagnostic()`` is one line); a publication that is not trusted raises
:class:`~sevref.errors.TrustError`, a subclass. A report or CoRIM that does not
hold is not an exception: :func:`verify` returns a :class:`Verdict` that says
why. The names in ``__all__`` are covered by the compatibility promise
(``docs/compatibility.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sevref.errors import ConfigError, OptionError, SevrefError, TrustError
from sevref.limits import DEFAULT_DEADLINE, DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_ENTRIES, DOWNLOAD_SECONDS

if TYPE_CHECKING:
    from sevref.digest import LaunchMeasureInputs
    from sevref.history import Snapshot
    from sevref.match import Match, ReportSignature
    from sevref.pipeline import BuildSummary, SignSummary
    from sevref.request import DigestRequest
    from sevref.sign import Signer
    from sevref.snp.products import Product
    from sevref.snp.validate import Acceptance
    from sevref.snp.verify import RootProvider, Roots
    from sevref.trust import TrustedPublication

__all__ = [
    "Built",
    "CorimRefused",
    "Digest",
    "Evidence",
    "LaunchMeasurement",
    "SevrefError",
    "SnpMeasurement",
    "SnpReport",
    "TrustError",
    "Verdict",
    "build",
    "digest",
    "load_key",
    "sign",
    "verify",
]

PathLike = str | os.PathLike[str]
"""A path, as text or a path object."""


# --------------------------------------------------------------------------- digest


@dataclass(frozen=True)
class Digest:
    """One launch's expected digest and what it was computed from."""

    value: bytes
    """GCTX.LD (32 bytes, SEV and SEV-ES) or MEASUREMENT (48 bytes, SEV-SNP and sev-snp-firmware)."""
    request: DigestRequest
    """The resolved configuration (defaults filled in)."""
    firmware_sha256: bytes
    """The SHA-256 of the firmware image that was measured."""
    firmware_size: int
    """Its size in bytes."""
    ap_reset_eip: int | None
    """The APs' reset address the firmware gives (SEV-ES and SEV-SNP), or None."""
    kernel_sha256: bytes | None
    """The SHA-256 of the kernel of a measured direct boot, or None."""
    initrd_sha256: bytes | None
    """The SHA-256 of its initrd, or None."""

    def hex(self) -> str:
        """The digest as lowercase hex, as ``sevref digest`` prints it.

        Returns:
            The hex text.
        """
        return self.value.hex()


def digest(
    mode: str,
    firmware: PathLike,
    *,
    names: Callable[[str], str] = str,
    **options: Any,
) -> Digest:
    """Compute the expected launch digest of one configuration.

    Args:
        mode: ``sev``, ``sev-es``, ``sev-snp`` or ``sev-snp-firmware``.
        firmware: the firmware image (pflash unit 0 or ``-bios``).
        names: how an error message names a field (the command line passes its option names).
        **options: the other fields of a configuration, as ``sevref digest --batch`` lines name
            them (:data:`sevref.request.BATCH_KEYS`: ``vcpus``, ``cpu``, ``cpu_signature``,
            ``vmm``, ``vmsa_profile``, ``sev_features``, ``guest_features``, ``kernel``,
            ``initrd``, ``cmdline``, ``firmware_sha256``, ``firmware_prefix``); None means the default.

    Returns:
        The digest, with the configuration it resolved to and the measured inputs.

    Raises:
        SevrefError: an unknown or bad field, or an input that cannot be read or measured.
    """
    from sevref.edge.inputs import Inputs, compute_digests
    from sevref.request import request_from_mapping

    values: dict[str, object] = {"mode": mode, "firmware": os.fspath(firmware), **options}
    request = request_from_mapping(values, Path(), names)
    inputs = Inputs()
    value = compute_digests([request], inputs)[0].unwrap()
    image = inputs.firmware(request.firmware, request.firmware_sha256)
    boot = inputs.boot(request)
    return Digest(
        value=value,
        request=request,
        firmware_sha256=image.sha256,
        firmware_size=image.info.size,
        ap_reset_eip=image.info.sev_es_reset_eip,
        kernel_sha256=None if boot is None else boot.kernel_sha256,
        initrd_sha256=None if boot is None else boot.initrd_sha256,
    )


# --------------------------------------------------------------------------- build and sign


def load_key(path: PathLike, passphrase: bytes) -> Signer:
    """Open a release key file (``sevref key generate``) to sign with.

    Args:
        path: the encrypted PEM key file.
        passphrase: its passphrase.

    Returns:
        The signer, for :func:`build` or :func:`sign`.

    Raises:
        SevrefError: the file cannot be read, or the passphrase does not open it.
    """
    from sevref.edge.keys import load_signer

    return load_signer(Path(path), passphrase)


def _chain(keys: PathLike | None) -> list[bytes]:
    from sevref.edge.keys import read_chain

    if keys is None:
        return []
    chain = read_chain(Path(keys))
    if not chain:
        raise ConfigError(f"--keys {os.fspath(keys)}: no 1.dsse.json; start a chain with sevref key chain")
    return chain


@dataclass(frozen=True)
class Built:
    """What :func:`build` wrote."""

    summary: BuildSummary
    """Counts, sizes, the key that signed it and the revocations that block more than they name."""
    previous: Snapshot | None
    """The release it follows (``previous``), or None."""
    previous_verified: bool
    """Whether that release was verified against the publisher's key chain (``keys``)."""


def build(
    manifests: Sequence[PathLike],
    out: PathLike,
    *,
    cache: PathLike | None = None,
    signer: Signer | None = None,
    keys: PathLike | None = None,
    issued: str | None = None,
    serial: int | None = None,
    previous: str | None = None,
    allow_removal: bool = False,
    jobs: int | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    allow: Sequence[PathLike] = (),
    download_seconds: float = DOWNLOAD_SECONDS,
    progress: TextIO | None = None,
) -> Built:
    """Build a publication from manifests into ``out``, atomically (``sevref build``).

    Args:
        manifests: the YAML manifest files forming one publication.
        out: the publication's folder, replaced as a whole when the new one is complete.
        cache: where downloaded packages are kept (default ``$SEVREF_CACHE`` or ``~/.cache/sevref``).
        signer: the release key (:func:`load_key`), or None for an unsigned build to :func:`sign` later.
        keys: the publisher's key chain folder (``sevref key chain``): published with a signed release (default
            one document naming ``signer``), and what ``previous`` is verified against, signed or not.
        issued: the issue time (``2026-11-26T00:00:00Z`` or ``now``; default the manifest's or ``SOURCE_DATE_EPOCH``).
        serial: the release's serial in place of the manifest's.
        previous: the folder or URL of the release this one follows; verified against ``keys`` when given.
        allow_removal: with ``previous``, accept active entries this release drops without a lifecycle rule.
        jobs: worker processes (default: all cores for large matrices).
        max_entries: refuse larger matrices.
        allow: folders outside the manifests' own from which they may name files.
        download_seconds: the longest one download a manifest asks for may take.
        progress: where progress lines go (None: nowhere).

    Returns:
        What was written.

    Raises:
        SevrefError: the first problem found; ``out`` is then untouched.
    """
    from sevref.edge.sources import default_cache
    from sevref.pipeline import build as build_publication

    check_build_options(
        jobs=jobs, serial=serial, previous=previous, allow_removal=allow_removal, download_seconds=download_seconds
    )
    chain = _chain(keys)
    followed = None if previous is None else _previous(previous, chain)
    summary = build_publication(
        [Path(p) for p in manifests],
        Path(out),
        cache=default_cache() if cache is None else Path(cache),
        jobs=jobs,
        max_entries=max_entries,
        issued=issued,
        serial=serial,
        progress=progress,
        signer=signer,
        keys=chain if signer is not None else (),  # an unsigned release publishes no chain: sign adds it
        allow=[Path(folder) for folder in allow],
        download_seconds=download_seconds,
        previous=followed,
        allow_removal=allow_removal,
    )
    return Built(summary, followed, followed is not None and bool(chain))


def check_build_options(
    *, jobs: int | None, serial: int | None, previous: str | None, allow_removal: bool, download_seconds: float
) -> None:
    """Refuse options of :func:`build` that are out of range or do not go together.

    :func:`build` calls it; the command line calls it first, before it opens a key.

    Args:
        jobs: as for :func:`build`.
        serial: as for :func:`build`.
        previous: as for :func:`build`.
        allow_removal: as for :func:`build`.
        download_seconds: as for :func:`build`.

    Raises:
        OptionError: the first problem.
    """
    from sevref.values import positive_seconds

    if jobs is not None and jobs < 1:
        raise OptionError(f"--jobs: expected 1 or more, found {jobs}")
    if serial is not None and serial < 1:
        raise OptionError(f"--serial: expected 1 or more, found {serial}")
    if allow_removal and previous is None:
        raise OptionError("--allow-removal goes with --previous")
    positive_seconds(download_seconds, "--download-timeout")


def _previous(location: str, chain: Sequence[bytes]) -> Snapshot:
    """The release a build follows: verified against the publisher's chain, or read as it is without one."""
    from sevref.verifier import previous_release, read_release, snapshot

    try:
        return snapshot(previous_release(location, chain) if chain else read_release(location))
    except TrustError as error:
        raise ConfigError(f"--previous {location}: {error.diagnostic()}") from error


def sign(
    folder: PathLike,
    signer: Signer,
    *,
    keys: PathLike | None = None,
    resign: bool = False,
    index_sha256: str | None = None,
) -> SignSummary:
    """Sign a publication that :func:`build` wrote unsigned, atomically (``sevref sign``).

    Args:
        folder: the publication.
        signer: the release key (:func:`load_key`, or a key on a PKCS#11 token: :mod:`sevref.edge.hsm`).
        keys: the publisher's key chain folder; default one document naming ``signer``.
        resign: replace the signatures of a publication that is signed already.
        index_sha256: refuse unless ``index.json`` has this SHA-256 (hex), as the unsigned build printed it.

    Returns:
        What was signed.

    Raises:
        SevrefError: any problem; ``folder`` is then untouched.
    """
    from sevref.pipeline import sign as sign_publication
    from sevref.values import parse_hex_bytes

    pin = None if index_sha256 is None else parse_hex_bytes(index_sha256.lower(), "--index-sha256", 32).hex()
    return sign_publication(Path(folder), signer, keys=_chain(keys), resign=resign, index_sha256=pin)


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class SnpReport:
    """An SEV-SNP attestation report, and how its signature and policy are judged."""

    report: PathLike
    """The report file (1,184 bytes)."""
    vcek: PathLike | None = None
    """The VCEK or VLEK that signed it (DER or PEM)."""
    report_certs: PathLike | None = None
    """Or the extended report's certificate table, which holds it."""
    amd_root: PathLike | None = None
    """The ARK and ASK (or ASVK) to check the chain to, in place of AMD's built-in roots."""
    skip_signature: bool = False
    """Accept the report without checking its signature (the verdict says so)."""
    acceptance: Acceptance | None = None
    """What the guest's policy and TCB may be (default: neither DEBUG nor MIGRATE_MA, any TCB)."""

    def check(self) -> None:
        """Refuse certificate options that do not go together.

        Raises:
            OptionError: the first problem.
        """
        if self.vcek is not None and self.report_certs is not None:
            raise OptionError("give the report's VCEK once: --vcek or --report-certs")
        if self.amd_root is not None and self.vcek is None and self.report_certs is None:
            raise OptionError("--amd-root goes with --vcek or --report-certs (the roots check the VCEK's chain)")
        if self.skip_signature and (self.vcek or self.report_certs or self.amd_root):
            raise OptionError("--skip-report-signature: give it without --vcek, --report-certs and --amd-root")


@dataclass(frozen=True)
class SnpMeasurement:
    """An SEV-SNP MEASUREMENT alone (neither a signature nor a policy is checked)."""

    measurement: str
    """96 hex digits."""


@dataclass(frozen=True)
class LaunchMeasurement:
    """An SEV or SEV-ES launch measurement, matched by scanning the candidates with the owner's TIK."""

    blob: str
    """QMP ``query-sev-launch-measure`` data: base64 of HMAC || MNONCE."""
    tik: PathLike
    """The TIK file (16 bytes, or 32 bytes TEK || TIK)."""
    inputs: LaunchMeasureInputs
    """The SEV API version, firmware build and guest policy the platform reported."""
    firmware: Sequence[str] | None = None
    """Only candidates of these firmware ids."""
    vcpus: int | None = None
    """Only candidates with this vCPU count."""


Evidence = SnpReport | SnpMeasurement | LaunchMeasurement
"""What a guest presents."""


class CorimRefused(SevrefError):
    """A CoRIM given to :func:`verify` does not hold against the publication."""


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` concluded."""

    publication: TrustedPublication | None
    """The trusted publication; None when a report was refused before the publication was read."""
    matches: tuple[Match, ...] = ()
    """The entries the evidence matched, each acceptable or refused with its notes."""
    evidence: str | None = None
    """What was matched, in words (None: no evidence, the publication alone was checked)."""
    signature: ReportSignature | None = None
    """How the report's signature was judged, or None."""
    corim: str | None = None
    """What the CoRIM check found, in one line, or None."""
    refused: str | None = None
    """Why the evidence was not accepted before matching (a report's signature or chain), or None."""

    @property
    def accepted(self) -> bool:
        """Whether the publication is trusted and the evidence (if any) matches an acceptable entry."""
        return self.status == 0

    @property
    def status(self) -> int:
        """The exit code ``sevref verify`` gives: 0 accepted, 1 no acceptable match, 3 not accepted."""
        if self.refused is not None or self.publication is None:
            return 3
        if self.evidence is not None and not any(m.acceptable for m in self.matches):
            return 1
        return 0

    @property
    def reason(self) -> str | None:
        """Why the verdict is not acceptance, in one line; None when it is."""
        if self.refused is not None:
            return f"not accepted: {self.refused}"
        if self.status == 0:
            return None
        problem = (
            "matches no published entry" if not self.matches else f"matches {len(self.matches)} entries, each refused"
        )
        if self.signature is not None and self.signature.blocking:
            problem += " (the report's signature was not checked: give --vcek or --report-certs)"
        return f"no match: {self.evidence} {problem}"


def verify(
    publication: PathLike,
    *,
    trusted_keys: Sequence[PathLike],
    publisher: str,
    product: str,
    stream: str,
    evidence: Evidence | None = None,
    at: datetime | None = None,
    state: PathLike | None = None,
    check_all_files: bool = True,
    timeout: float = DEFAULT_FETCH_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    require_timestamp: bool = False,
    max_age: timedelta | None = None,
    require_stateless: bool = False,
    corim: PathLike | None = None,
) -> Verdict:
    """Check a publication, then match a guest's evidence against it (``sevref verify``).

    Args:
        publication: its folder or URL (``https://...``).
        trusted_keys: the pinned public keys or pin files (``sevref key pin``).
        publisher: the publisher expected.
        product: the product expected.
        stream: the stream expected.
        evidence: what the guest presents (None: check the publication alone).
        at: when to check validity (default now).
        state: the verifier's state file, which refuses rollbacks and forks.
        check_all_files: check every listed file now (False: only the files matching reads).
        timeout: seconds within which each file must arrive whole.
        deadline: seconds within which every file of the run must have arrived.
        require_timestamp: refuse a release without a valid timestamp.
        max_age: refuse a timestamp older than this.
        require_stateless: refuse a match whose firmware keeps UEFI variables the measurement does not cover.
        corim: also check this CoRIM against the publication.

    Returns:
        The verdict; its ``status`` is the command's exit code.

    Raises:
        TrustError: the publication is not trusted.
        CorimRefused: ``corim`` does not hold against the publication.
        SevrefError: a bad file or value.
    """
    from sevref.match import ReportSignature, firmware_notes
    from sevref.snp import EvidenceError
    from sevref.values import positive_seconds
    from sevref.verifier import Request, trust

    when = datetime.now(UTC) if at is None else at
    positive_seconds(timeout, "--timeout")
    positive_seconds(deadline, "--deadline")
    signature = ReportSignature.unchecked("snp-measurement", False) if isinstance(evidence, SnpMeasurement) else None
    if isinstance(evidence, SnpReport):
        try:
            signature = _report_signature(evidence, when)
        except EvidenceError as error:
            return Verdict(None, evidence="the SEV-SNP report", refused=error.diagnostic())
    trusted = trust(
        Request(
            location=os.fspath(publication),
            keys=[Path(k) for k in trusted_keys],
            identity=(publisher, product, stream),
            at=when,
            state=None if state is None else Path(state),
            check_all_files=check_all_files,
            timeout=timeout,
            deadline=deadline,
            require_timestamp=require_timestamp,
            max_age=max_age,
        )
    )
    matches, what = _match(evidence, trusted, signature)
    matches = firmware_notes(matches, require_stateless)
    note = None if corim is None else _corim(Path(corim), trusted, when)
    return Verdict(trusted, tuple(matches), what, signature, note)


def _report_signature(evidence: SnpReport, at: datetime) -> ReportSignature:
    """Check the report's signature when a VCEK or certificate table is given; otherwise say why not."""
    from sevref.edge.files import read_bytes
    from sevref.limits import MAX_REPORT_FILE_BYTES
    from sevref.match import ReportSignature
    from sevref.snp.verify import endorsement_from_table, verify_report

    evidence.check()
    if evidence.vcek is None and evidence.report_certs is None:
        unchecked = ReportSignature.unchecked("snp-report", evidence.skip_signature)
        if unchecked is None:  # pragma: no cover - a report always has a statement
            raise ConfigError("the report's signature: nothing to say")
        return unchecked
    report = read_bytes(Path(evidence.report), "attestation report", MAX_REPORT_FILE_BYTES)
    if evidence.vcek is not None:
        endorsement = read_bytes(Path(evidence.vcek), "--vcek", MAX_REPORT_FILE_BYTES)
        what = f"--vcek {os.fspath(evidence.vcek)}"
    else:
        certs = Path(evidence.report_certs or "")
        what = f"--report-certs {certs}"
        endorsement = endorsement_from_table(read_bytes(certs, "--report-certs", MAX_REPORT_FILE_BYTES), report, what)
    verified = verify_report(report, endorsement, what, _roots(evidence.amd_root), at)
    return ReportSignature.checked(verified)


def _roots(amd_root: PathLike | None) -> RootProvider:
    """The roots: the ``amd_root`` file for every product, or AMD's built-in file of the product."""
    from sevref._resources import resource
    from sevref.edge.files import read_bytes
    from sevref.snp.verify import load_roots
    from sevref.snp.x509 import MAX_CERTIFICATE_BYTES

    limit = 4 * MAX_CERTIFICATE_BYTES
    if amd_root is not None:
        name = os.fspath(amd_root)
        given = load_roots(read_bytes(Path(name), "--amd-root", limit), f"--amd-root {name}")
        return lambda _product, _key: given

    def builtin(product: Product, key: int) -> Roots:
        file = product.roots(key)
        data = read_bytes(resource("snp", "roots", file), "AMD's built-in roots", limit)
        return load_roots(data, f"AMD's built-in {product.name} roots ({file})")

    return builtin


def _match(
    evidence: Evidence | None, publication: TrustedPublication, signature: ReportSignature | None
) -> tuple[list[Match], str | None]:
    """Match the evidence against the trusted publication: the matches, and what was matched in words."""
    from sevref.binfmt.report import parse_report
    from sevref.digest import parse_launch_measure_blob
    from sevref.edge.files import read_bytes, read_tik
    from sevref.limits import MAX_REPORT_FILE_BYTES
    from sevref.match import lookup_digest, scan_launch_measurement, snp_notes
    from sevref.snp.validate import Acceptance
    from sevref.values import parse_hex_bytes

    if isinstance(evidence, SnpReport):
        report = parse_report(read_bytes(Path(evidence.report), "attestation report", MAX_REPORT_FILE_BYTES))
        value = bytes(report.measurement).hex()
        verified = None if signature is None else signature.verified
        turin = None if verified is None else verified.product.turin_tcb
        acceptance = Acceptance() if evidence.acceptance is None else evidence.acceptance
        matches = snp_notes(lookup_digest(publication, value), report, acceptance, turin)
        if signature is not None and signature.blocking:
            matches = [m.with_notes([(signature.note, True)]) for m in matches]
        return matches, f"the SEV-SNP report's measurement {value}"
    if isinstance(evidence, SnpMeasurement):
        value = parse_hex_bytes(evidence.measurement.lower(), "--snp-measurement", 48).hex()
        return lookup_digest(publication, value), f"the SEV-SNP measurement {value}"
    if isinstance(evidence, LaunchMeasurement):
        measurement, nonce = parse_launch_measure_blob(evidence.blob)
        matches, tried = scan_launch_measurement(
            publication,
            measurement,
            nonce,
            evidence.inputs,
            read_tik(Path(evidence.tik)),
            firmware=evidence.firmware,
            vcpus=evidence.vcpus,
        )
        return matches, f"the launch measurement (tried against {tried} SEV/SEV-ES candidates)"
    return [], None


def _corim(path: Path, publication: TrustedPublication, at: datetime) -> str:
    """Check a CoRIM against the trusted publication; one line saying what was checked."""
    from sevref.corim import MAX_CORIM_BYTES
    from sevref.corim.read import check_corim
    from sevref.edge.files import read_bytes
    from sevref.errors import SignatureError

    data = read_bytes(path, "CoRIM", MAX_CORIM_BYTES)
    try:
        found = check_corim(data, publication, at, str(path))
    except SignatureError as error:
        raise CorimRefused(error.diagnostic()) from error
    values = len(found.values)
    return (
        f"corim: {path} ({found.id}, profile {found.profile.uri}) is signed by key {found.keyid[:16]}... "
        f"of this publisher; its {len(found.digests())} digests ({values} reference value{'s' if values != 1 else ''}) "
        "are all accepted by this release"
    )
