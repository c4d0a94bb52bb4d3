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
  VMSA only, so only entries of that kind can be exported.
"""

from __future__ import annotations

import base64
import enum
import shlex
from collections.abc import Sequence

from sevref.digest import Mode
from sevref.errors import ConfigError
from sevref.match import all_groups, entry, firmware_record
from sevref.records import EntryStatus, FirmwareRecord
from sevref.serialize import canonical
from sevref.trust import TrustedPublication

__all__ = ["TRUSTEE_NAME", "TrusteeEncoding", "cpu_fms", "trustee_message", "virt_qemu_sev_validate"]

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
        ConfigError: nothing to export.
    """
    values = sorted(
        {
            encoding.write(bytes.fromhex(digest))
            for group in all_groups(publication)
            if group.mode is Mode.SEV_SNP and (firmware is None or group.firmware in firmware)
            for count, digest in group.entries
            if group.state_at(count).status is EntryStatus.ACTIVE
        }
    )
    if not values:
        raise ConfigError("export trustee: the publication has no active SEV-SNP entries (for the firmware asked for)")
    payload = canonical({TRUSTEE_NAME: values})
    return {"version": "0.1.0", "type": "sample", "payload": base64.b64encode(payload).decode("ascii")}


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

    Args:
        publication: the trusted publication.
        entry_id: the entry.

    Returns:
        A comment line with the expected GCTX.LD and the firmware file's
        sha256, then the command line.

    Raises:
        ConfigError: the entry is not one libvirt's tool can reproduce.
    """
    match = entry(publication, entry_id)
    group = match.group
    what = f"export virt-qemu-sev-validate: entry {entry_id}"
    if match.state.status is EntryStatus.REVOKED:
        # The tool only checks a measurement against the command's inputs: it would answer "OK" to a
        # launch the publisher revoked, so a revoked entry is not exported (as for Trustee).
        raise ConfigError(f"{what} is revoked ({match.state.describe()}); the tool would accept what it revokes")
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
    args = ["virt-qemu-sev-validate", "--firmware", _installed_path(firmware)]
    if group.mode is Mode.SEV_ES:
        family, model, stepping = cpu_fms(group.cpu_signature or 0)
        args += ["--num-cpus", str(match.vcpus), "--cpu-family", str(family), "--cpu-model", str(model)]
        args += ["--cpu-stepping", str(stepping)]
    policy = '"$POLICY"' if group.policy is None else str(group.policy)
    line = f"{shlex.join(args)} {_OPERATOR_ARGS} --policy {policy} {_KEY_ARGS}"
    return f"# entry {entry_id}: GCTX.LD {match.digest}; the firmware file must have sha256 {firmware.sha256}\n{line}"
