"""Exports of a trusted publication for verifiers that exist today.

* ``trustee``: a Confidential Containers Trustee RVPS message of type
  ``sample`` (``rvps/src/lib.rs``: ``{"version": "0.1.0", "type": "sample",
  "payload": base64(JSON)}``; ``rvps/src/extractors/sample/mod.rs`` reads the
  payload as a map of reference value names to lists). Its payload names the
  reference value the default policy reads:
  ``input.snp.measurement in query_reference_value("snp_launch_measurement")``
  (``attestation-service/src/ear_token/ear_default_policy_cpu.rego``, v0.16.0
  to v0.21.0; ``... in data.reference.snp_launch_measurement`` in v0.13.0 to
  v0.15.0). The values must be written the way Trustee's SNP verifier writes
  the report's ``measurement`` claim (``deps/verifier/src/snp/mod.rs``):
  ``hex::encode`` (lowercase hex) from v0.18.0 on, ``STANDARD.encode``
  (base64) in v0.13.0 to v0.17.0. Hex is the default. Trustee does not attest
  SEV or SEV-ES guests.
* ``virt-qemu-sev-validate``: a command line for libvirt's offline validator
  (``tools/virt-qemu-sev-validate``, libvirt 9.0.0 as Debian 12 ships it in
  ``libvirt-clients-qemu``) that checks a guest against one entry. The tool
  builds legacy VMSAs only (MXCSR and FCW zero, no SEV_FEATURES) and QEMU's
  VMSA only, so only entries of that kind can be exported. The tool hashes
  whatever file ``--firmware`` names, so the command first checks that file's
  sha256 against the publication's (GNU coreutils ``sha256sum --check``) and
  runs the tool only if it matches: other firmware with a measurement of its
  own never gets the tool's "OK".
* ``corim``: a signed CoRIM (IETF RATS, draft-ietf-rats-corim-11) of every
  value a verifier may accept, under AMD's SEV-SNP profile or sevref's SEV
  profile (:mod:`sevref.corim`).

The seam: a format is one implementation of :class:`ExportFormat` and one
row of :data:`FORMATS`, which the command line maps ``--format`` to; the
options a format takes are declared in its row, so that the command line
refuses the others without a chain of ``if format ==``. Every format exports
only what a verifier may accept, through one function, :func:`accepted`.
"""

from __future__ import annotations

import base64
import enum
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sevref.digest import Mode
from sevref.errors import ConfigError
from sevref.ids import parse_entry_id
from sevref.match import Match, all_groups, entry, firmware_record, lookup_digest
from sevref.records import EntryStatus, FirmwareRecord, GroupRecord
from sevref.serialize import canonical, json_line
from sevref.trust import TrustedPublication

if TYPE_CHECKING:
    from sevref.sign import Signer

__all__ = [
    "FORMATS",
    "TRUSTEE_NAME",
    "Accepted",
    "ExportFormat",
    "ExportRequest",
    "TrusteeEncoding",
    "accepted",
    "cpu_fms",
    "trustee_message",
    "virt_qemu_sev_validate",
]

TRUSTEE_NAME = "snp_launch_measurement"
"""The reference value Trustee's default policy compares the SNP measurement with."""


class TrusteeEncoding(enum.StrEnum):
    """How Trustee's SNP verifier writes the ``measurement`` claim, by Trustee version."""

    HEX = "hex"
    """Lowercase hex: Trustee v0.18.0 and later (``hex::encode``)."""
    BASE64 = "base64"
    """Standard base64: Trustee v0.13.0 to v0.17.0 (``STANDARD.encode``)."""

    def write(self, digest: bytes) -> str:
        """Write a measurement as Trustee's claim has it.

        Args:
            digest: the 48-byte measurement.

        Returns:
            Its text.
        """
        if self is TrusteeEncoding.HEX:
            return digest.hex()
        return base64.b64encode(digest).decode("ascii")


def trustee_message(
    publication: TrustedPublication,
    firmware: Sequence[str] | None = None,
    encoding: TrusteeEncoding = TrusteeEncoding.HEX,
) -> dict[str, str]:
    """A Trustee RVPS ``sample`` message with the publication's active SEV-SNP measurements.

    Args:
        publication: the trusted publication.
        firmware: only these firmware ids.
        encoding: how the Trustee version that reads it writes SNP measurements
            (hex from v0.18.0, base64 before).

    Returns:
        The message (register it with ``rvps-tool register``).

    Raises:
        ConfigError: a firmware id the publication does not have, or nothing to export.
    """
    unknown = sorted(set(firmware or ()) - _firmware_ids(publication))
    if unknown:
        raise ConfigError(f"export trustee: --firmware {unknown[0]}: the publication has no firmware of that id")
    digests = {digest for a in accepted(publication, {Mode.SEV_SNP}, firmware) for _, digest in a.entries}
    values = sorted(encoding.write(bytes.fromhex(digest)) for digest in digests)
    if not values:
        raise ConfigError("export trustee: the publication has no active SEV-SNP entries (for the firmware asked for)")
    payload = canonical({TRUSTEE_NAME: values})
    return {"version": "0.1.0", "type": "sample", "payload": base64.b64encode(payload).decode("ascii")}


@dataclass(frozen=True)
class Accepted:
    """A group's entries that a verifier may accept."""

    group: GroupRecord
    """The group."""
    entries: tuple[tuple[int | None, str], ...]
    """(vCPU count, digest) of each acceptable entry, by vCPU count; may be empty."""


def accepted(
    publication: TrustedPublication, modes: Collection[Mode], firmware: Sequence[str] | None = None
) -> list[Accepted]:
    """The entries every export writes: active ones, without any digest that a revoked entry carries.

    An export's consumer compares the digest alone. A digest that a revoked
    entry carries is therefore left out even where an active entry (the same
    launch on another host stack, say) carries it too, or the revocation would
    not hold. Deprecated entries are left out too: an export has no way to say
    "move to the successor".

    Args:
        publication: the trusted publication.
        modes: the launch modes wanted.
        firmware: only these firmware ids (revocations of any firmware count).

    Returns:
        One item per group of those modes and firmware, by group id.

    Raises:
        TrustError: the publication's files fail their checks.
    """
    groups = list(all_groups(publication))
    revoked = {
        digest
        for group in groups
        for count, digest in group.entries
        if group.state_at(count).status is EntryStatus.REVOKED
    }
    return [
        Accepted(
            group,
            tuple(
                (count, digest)
                for count, digest in group.entries
                if group.state_at(count).status is EntryStatus.ACTIVE and digest not in revoked
            ),
        )
        for group in sorted(groups, key=lambda g: g.id)
        if group.mode in modes and (firmware is None or group.firmware in firmware)
    ]


def _firmware_ids(publication: TrustedPublication) -> set[str]:
    """The firmware ids a publication lists (``firmware/<id>.json``)."""
    return {
        p[len("firmware/") : -len(".json")]
        for p in publication.files
        if p.startswith("firmware/") and p.endswith(".json")
    }


def cpu_fms(signature: int) -> tuple[int, int, int]:
    """Split a CPUID signature into family, model and stepping, as QEMU composes it.

    Args:
        signature: CPUID Fn0000_0001 EAX.

    Returns:
        (family, model, stepping).
    """
    base_family = signature >> 8 & 0xF
    family = base_family + (signature >> 20 & 0xFF if base_family == 0xF else 0)
    model = (signature >> 16 & 0xF) << 4 | signature >> 4 & 0xF
    return family, model, signature & 0xF


def _published_entry(publication: TrustedPublication, entry_id: str, what: str) -> Match:
    """An entry the user asked for, which the signed index must say exists.

    An id that names no entry is the user's mistake, not a publication that
    fails its checks: a group's shard file is chosen by its id, so a group the
    index lists no shard for, or that its shard lacks, is not published
    (:func:`sevref.match.entry` calls that an integrity failure, as it is when
    a digest table points there).

    Raises:
        ConfigError: the id is malformed or names no published entry.
        TrustError: the publication's files fail their checks.
    """
    group_id, vcpus = parse_entry_id(entry_id)
    path = f"groups/{publication.index.layout.group_shard(group_id)}.json"
    groups = publication.read(path)["groups"] if publication.has(path) else []
    group = next((GroupRecord.from_dict(g) for g in groups if g["id"] == group_id), None)
    if group is None:
        raise ConfigError(f"{what} is not in the publication (it has no entry group {group_id})")
    if group.digest_for(vcpus) is None:
        counts = "without a vCPU count" if vcpus is None else f"for {vcpus} vCPUs"
        raise ConfigError(f"{what} is not in the publication (entry group {group_id} has no entry {counts})")
    return entry(publication, entry_id)


def _installed_path(firmware: FirmwareRecord) -> str:
    if firmware.debian is not None:
        return "/" + firmware.debian.path
    return firmware.file or firmware.id


# The operator's inputs, as shell expansions (the validator's options in
# libvirt 9.0.0 tools/virt-qemu-sev-validate, parse_command_line and
# check_usage). --build-id takes $BUILD_ID, else $BUILD. The keys are given as
# the validator wants them, "--tk or both of --tek/--tik": each option is
# written only when its variable is set, and the tool refuses a wrong mix.
# ${V:+--opt} ${V:+"$V"} rather than ${V:+--opt "$V"}: zsh does not split the
# latter into two words.
_OPERATOR_ARGS = (
    '--measurement "$MEASUREMENT" --api-major "$API_MAJOR" --api-minor "$API_MINOR" --build-id "${BUILD_ID:-$BUILD}"'
)
_KEY_ARGS = (
    '${TK_FILE:+--tk} ${TK_FILE:+"$TK_FILE"} ${TIK_FILE:+--tik} ${TIK_FILE:+"$TIK_FILE"} '
    '${TEK_FILE:+--tek} ${TEK_FILE:+"$TEK_FILE"}'
)


def virt_qemu_sev_validate(publication: TrustedPublication, entry_id: str) -> str:
    """A ``virt-qemu-sev-validate`` command that checks a guest against one entry.

    The command runs as printed under libvirt's validator (libvirt 9.0.0, as
    Debian 12 ships it) once the operator's shell variables are set:
    ``MEASUREMENT`` (the base64 launch measurement and nonce that QMP
    ``query-sev-launch-measure`` returns), ``API_MAJOR``, ``API_MINOR``,
    ``BUILD_ID`` (or ``BUILD``), and the guest owner's keys: ``TIK_FILE`` with
    ``TEK_FILE`` (16 bytes each), or ``TK_FILE`` (32 bytes, TEK then TIK).
    The policy is the entry's expected one, in decimal (the tool declares
    ``--policy`` as an ``int``); an entry without one takes ``$POLICY``, in
    decimal too.

    The command first checks that the file it names has the published
    firmware's sha256 (``sha256sum --check``) and runs the tool only if so:
    the tool hashes whatever file it is given, and would say "OK" to other
    firmware and a measurement of that firmware.

    Args:
        publication: the trusted publication.
        entry_id: the entry.

    Returns:
        A comment line with the expected GCTX.LD and the firmware file's
        sha256, then the command line.

    Raises:
        ConfigError: the entry is not in the publication, is revoked or has
            the digest of a revoked entry, or is not one libvirt's tool can
            reproduce.
        TrustError: the publication's files fail their checks.
    """
    what = f"export virt-qemu-sev-validate: entry {entry_id}"
    match = _published_entry(publication, entry_id, what)
    group = match.group
    if match.state.status is EntryStatus.REVOKED:
        # The tool only checks a measurement against the command's inputs: it would answer "OK" to a
        # launch the publisher revoked, so a revoked entry is not exported (as for Trustee).
        raise ConfigError(f"{what} is revoked ({match.state.describe()}); the tool would accept what it revokes")
    shadow = next((m for m in lookup_digest(publication, match.digest) if m.state.status is EntryStatus.REVOKED), None)
    if shadow is not None:
        # The tool compares the measurement alone, so it would accept the revoked launch too.
        raise ConfigError(
            f"{what} has the GCTX.LD of revoked entry {shadow.entry_id} ({shadow.state.describe()}); "
            "the tool would accept what that revokes"
        )
    if group.mode not in (Mode.SEV, Mode.SEV_ES):
        raise ConfigError(f"{what} is {group.mode}; the tool validates SEV and SEV-ES only")
    if group.vmm != "qemu":
        raise ConfigError(f"{what} runs on {group.vmm}; the tool builds the VMSAs of QEMU only")
    if group.mode is Mode.SEV_ES and (group.vmsa_profile != "legacy" or group.sev_features != 0):
        features = None if group.sev_features is None else f"{group.sev_features:#x}"
        raise ConfigError(
            f"{what} has VMSA profile {group.vmsa_profile} with sev_features {features}; "
            f"the tool builds legacy VMSAs with sev_features 0x0 only"
        )
    if group.boot is not None:
        raise ConfigError(f"{what} boots a kernel; give the tool --kernel, --initrd and --cmdline yourself")
    firmware = firmware_record(publication, group.firmware)
    path = _installed_path(firmware)
    if any(c in path for c in "\\\n\r"):
        # sha256sum --check reads such a name only escaped, and coreutils versions escape \r differently.
        raise ConfigError(f"{what}: firmware file name {path!r} has a backslash or a line break; rename the file")
    args = ["virt-qemu-sev-validate", "--firmware", path]
    if group.mode is Mode.SEV_ES:
        family, model, stepping = cpu_fms(group.cpu_signature or 0)
        args += ["--num-cpus", str(match.vcpus), "--cpu-family", str(family), "--cpu-model", str(model)]
        args += ["--cpu-stepping", str(stepping)]
    policy = '"$POLICY"' if group.policy is None else str(group.policy)
    # "HASH  NAME" is the line sha256sum writes and --check reads (two spaces: text mode; GNU coreutils
    # md5sum.c); --quiet prints nothing for a match, "NAME: FAILED" and exit 1 otherwise. The pipeline's
    # status is sha256sum's, so the validator runs only for the published firmware.
    check = f"printf '%s  %s\\n' {firmware.sha256} {shlex.quote(path)} | sha256sum --check --quiet -"
    line = f"{check} && {shlex.join(args)} {_OPERATOR_ARGS} --policy {policy} {_KEY_ARGS}"
    comment = (
        f"# entry {entry_id}: GCTX.LD {match.digest}; the command checks first that {path} has sha256 {firmware.sha256}"
    )
    return f"{comment}\n{line}"


@dataclass(frozen=True)
class ExportRequest:
    """What the user asked an export for; each format reads the fields its row declares."""

    firmware: tuple[str, ...] | None = None
    """``--firmware``: only these firmware ids."""
    trustee_encoding: TrusteeEncoding = TrusteeEncoding.HEX
    """``--trustee-encoding``."""
    entry: str | None = None
    """``--entry``: one entry."""
    corim_profile: str | None = None
    """``--corim-profile``: a name in :data:`sevref.corim.PROFILES`."""
    signer: Signer | None = None
    """``--signing-key`` or ``--pkcs11``: the publication's key."""


class ExportFormat(Protocol):
    """One export format: a row of :data:`FORMATS`."""

    @property
    def binary(self) -> bool:
        """Whether it writes bytes (else a line of text)."""

    @property
    def options(self) -> frozenset[str]:
        """The options of ``sevref export`` it takes, besides the trust options."""

    @property
    def required(self) -> tuple[tuple[str, ...], ...]:
        """The options it cannot do without: one of each tuple."""

    def export(self, publication: TrustedPublication, request: ExportRequest) -> bytes:
        """Write the publication in this format.

        Args:
            publication: the trusted publication.
            request: the user's request.

        Returns:
            The bytes to write (text formats: UTF-8 with a final newline).
        """


class _Trustee:
    binary = False
    options = frozenset({"--firmware", "--trustee-encoding"})
    required: tuple[tuple[str, ...], ...] = ()

    def export(self, publication: TrustedPublication, request: ExportRequest) -> bytes:
        message = trustee_message(publication, request.firmware, request.trustee_encoding)
        return (json_line(message) + "\n").encode("utf-8")


class _VirtQemuSevValidate:
    binary = False
    options = frozenset({"--entry"})
    required = (("--entry",),)

    def export(self, publication: TrustedPublication, request: ExportRequest) -> bytes:
        if request.entry is None:  # pragma: no cover - the command line requires it
            raise ConfigError("export virt-qemu-sev-validate: expected an entry")
        return (virt_qemu_sev_validate(publication, request.entry) + "\n").encode("utf-8")


class _Corim:
    binary = True
    # The key's secrets (--passphrase-file, --pkcs11-module, --pin-file) go with the key's option.
    options = frozenset({"--corim-profile", "--signing-key", "--pkcs11"})
    required = (("--signing-key", "--pkcs11"),)

    def export(self, publication: TrustedPublication, request: ExportRequest) -> bytes:
        # Imported here: the other formats never load cbor2 (and sevref.corim imports this module).
        from sevref.corim import DEFAULT_PROFILE, corim_bytes  # noqa: PLC0415

        if request.signer is None:  # pragma: no cover - the command line requires it
            raise ConfigError("export corim: expected the publication's signing key")
        return corim_bytes(publication, request.signer, request.corim_profile or DEFAULT_PROFILE)


FORMATS: Mapping[str, ExportFormat] = {
    "trustee": _Trustee(),
    "virt-qemu-sev-validate": _VirtQemuSevValidate(),
    "corim": _Corim(),
}
"""Every export format, by the name ``--format`` takes."""


def formats_taking(option: str, formats: Iterable[str] = FORMATS) -> list[str]:
    """The formats that take an option (for the command line's messages).

    Args:
        option: an option of ``sevref export``.
        formats: the names to look in.

    Returns:
        Their names, in table order.
    """
    return [name for name in formats if option in FORMATS[name].options]
