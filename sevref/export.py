"""Exports of a trusted publication for verifiers that exist today.

* ``trustee``: a Confidential Containers Trustee RVPS message of type
  ``sample`` (``rvps/src/lib.rs``: ``{"version": "0.1.0", "type": "sample",
  "payload": base64(JSON)}``) whose payload names reference values the
  default attestation policy reads: ``snp_launch_measurement`` holds the
  SEV-SNP measurements, base64-encoded as Trustee's SNP verifier reports them
  (``deps/verifier/src/snp``). Trustee does not attest SEV or SEV-ES guests.
* ``virt-qemu-sev-validate``: the arguments of libvirt's validator for one
  entry. The tool builds legacy VMSAs only (MXCSR and FCW zero, no
  SEV_FEATURES), so only entries of that profile can be exported.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence

from sevref.digest import Mode
from sevref.errors import ConfigError
from sevref.match import all_groups, entry, firmware_record
from sevref.records import EntryStatus, FirmwareRecord
from sevref.serialize import canonical
from sevref.trust import TrustedPublication

__all__ = ["TRUSTEE_NAME", "cpu_fms", "trustee_message", "virt_qemu_sev_validate"]

TRUSTEE_NAME = "snp_launch_measurement"
"""The reference value Trustee's default policy compares the SNP measurement with."""


def trustee_message(publication: TrustedPublication, firmware: Sequence[str] | None = None) -> dict[str, str]:
    """A Trustee RVPS ``sample`` message with the publication's active SEV-SNP measurements.

    Args:
        publication: the trusted publication.
        firmware: only these firmware ids.

    Returns:
        The message (register it with ``rvps-tool register``).

    Raises:
        ConfigError: nothing to export.
    """
    values = sorted(
        {
            base64.b64encode(bytes.fromhex(digest)).decode("ascii")
            for group in all_groups(publication)
            if group.mode is Mode.SEV_SNP
            and group.status is EntryStatus.ACTIVE
            and (firmware is None or group.firmware in firmware)
            for _, digest in group.entries
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


def virt_qemu_sev_validate(publication: TrustedPublication, entry_id: str) -> str:
    """The ``virt-qemu-sev-validate`` arguments that check a guest against one entry.

    The measurement, platform version, TIK and policy are the operator's; they
    appear as shell variables to fill in.

    Args:
        publication: the trusted publication.
        entry_id: the entry.

    Returns:
        One shell command line, with the firmware's expected sha256 in a comment.

    Raises:
        ConfigError: the entry is not one libvirt's tool can reproduce.
    """
    match = entry(publication, entry_id)
    group = match.group
    if group.mode not in (Mode.SEV, Mode.SEV_ES):
        raise ConfigError(
            f"export virt-qemu-sev-validate: entry {entry_id} is {group.mode}; the tool validates SEV and SEV-ES only"
        )
    if group.mode is Mode.SEV_ES and (group.vmsa_profile != "legacy" or group.sev_features != 0):
        features = None if group.sev_features is None else f"{group.sev_features:#x}"
        raise ConfigError(
            f"export virt-qemu-sev-validate: entry {entry_id} has VMSA profile {group.vmsa_profile} with "
            f"sev_features {features}; the tool builds legacy VMSAs with sev_features 0x0 only"
        )
    if group.boot is not None:
        raise ConfigError(
            f"export virt-qemu-sev-validate: entry {entry_id} boots a kernel; give the tool --kernel, --initrd and --cmdline yourself"
        )
    firmware = firmware_record(publication, group.firmware)
    args = ["virt-qemu-sev-validate", "--firmware", _installed_path(firmware)]
    if group.mode is Mode.SEV_ES:
        family, model, stepping = cpu_fms(group.cpu_signature or 0)
        args += [
            "--num-cpus",
            str(match.vcpus),
            "--cpu-family",
            str(family),
            "--cpu-model",
            str(model),
            "--cpu-stepping",
            str(stepping),
        ]
    args += [
        "--measurement",
        "$MEASUREMENT",
        "--api-major",
        "$API_MAJOR",
        "--api-minor",
        "$API_MINOR",
        "--build-id",
        "$BUILD",
    ]
    args += ["--policy", "$POLICY" if group.policy is None else f"{group.policy:#x}", "--tik", "$TIK_FILE"]
    line = " ".join(a if a.startswith("$") else shlex.quote(a) for a in args)
    return f"# entry {entry_id}: GCTX.LD {match.digest}; the firmware file must have sha256 {firmware.sha256}\n{line}"
