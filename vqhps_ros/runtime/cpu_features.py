"""What this CPU offers inference: its model name and the vector instructions that decide which precision pays.

Two facts drive choices elsewhere:

* bf16 is fast only where the CPU has bf16 dot products (x86: AVX512_BF16 or AMX-BF16; Arm: the BF16 extension).
  Elsewhere PyTorch emulates it: on an AVX2-only CPU the HRNet graph took 4767 ms per person in bf16 against
  828 ms in fp32. `native_bf16()` tells the two apart; the PyTorch engine refuses emulated bf16.
* ONNX Runtime's uint8 x int8 (U8S8) kernels on x86 without VNNI multiply with VPMADDUBSW, whose 16-bit sums can
  saturate; 7-bit weights (`reduce_range`) avoid that. `has_vnni()` tells whether the CPU has VNNI dot products,
  which accumulate in 32 bits, instead. Arm has no such issue.

Linux: read from /proc/cpuinfo (x86 "flags", Arm "Features"). Elsewhere, or when the file cannot be read, the model
name is what `platform` knows and the instruction sets are unknown; an unknown instruction set counts as absent.
Nothing here raises.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

X86_BF16 = frozenset({"avx512_bf16", "amx_bf16"})
X86_VNNI = frozenset({"avx512_vnni", "avx_vnni"})
ARM_BF16 = frozenset({"bf16"})

# (name shown, flags of which one provides it, whether its absence is worth saying): VNNI, dot products and bf16
# decide precisions, so "no BF16" is said; the other rows just name what is there.
X86_SUMMARY = (("AVX2", {"avx2"}, False), ("AVX-512", {"avx512f"}, False), ("VNNI", X86_VNNI, True),
               ("BF16", X86_BF16, True), ("AMX", {"amx_tile"}, False))
ARM_SUMMARY = (("NEON", {"asimd"}, False), ("DOTPROD", {"asimddp"}, True), ("I8MM", {"i8mm"}, False),
               ("BF16", ARM_BF16, True))

# Arm Ltd. (implementer 0x41) cores of the boards this package targets: /proc/cpuinfo on Arm has no model name,
# only "ARMv8 Processor rev 1 (v8l)" on some kernels.
ARM_CORES = {"0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1",
             "0xd40": "Neoverse-V1", "0xd42": "Cortex-A78AE", "0xd4f": "Neoverse-V2"}

ARCHITECTURES = {"amd64": "x86_64", "x86_64": "x86_64", "i386": "x86", "i686": "x86", "x86": "x86",
                 "arm64": "aarch64", "aarch64": "aarch64"}


@dataclass(frozen=True)
class CpuFeatures:
    """model: "AMD EPYC 7763 64-Core Processor", "Cortex-A78AE"... architecture: "x86_64", "x86", "aarch64" or what
    platform.machine() said. flags: lower-case instruction-set flags as Linux names them (empty: unknown)."""

    model: str
    architecture: str
    flags: frozenset[str] = frozenset()

    @property
    def is_x86(self) -> bool:
        return self.architecture in ("x86_64", "x86")

    @property
    def is_arm(self) -> bool:
        return self.architecture == "aarch64"

    @property
    def flags_known(self) -> bool:
        return bool(self.flags)

    def native_bf16(self) -> bool:
        """Whether bf16 matrix products run in hardware (not emulated through fp32)."""
        return bool(self.flags & (X86_BF16 if self.is_x86 else ARM_BF16 if self.is_arm else frozenset()))

    def has_vnni(self) -> bool:
        """Whether an x86 CPU has VNNI (AVX512-VNNI or AVX-VNNI) int8 dot products; False on other CPUs."""
        return self.is_x86 and bool(self.flags & X86_VNNI)

    def instruction_sets(self) -> list[str]:
        """["AVX2", "AVX-512", "VNNI", "no BF16"]: what is there, and the absence of what decides a precision."""
        summary = X86_SUMMARY if self.is_x86 else ARM_SUMMARY if self.is_arm else ()
        names = []
        for name, flags, say_absence in summary:
            if self.flags & flags:
                names.append(name)
            elif say_absence:
                names.append(f"no {name}")
        return names

    def describe(self) -> str:
        """One line: "Intel(R) Xeon(R) Platinum 8480+ (AVX2, AVX-512, VNNI, BF16, AMX)"."""
        if not self.flags_known:
            return f"{self.model} (instruction sets unknown)"
        return f"{self.model} ({', '.join(self.instruction_sets())})"


def parse_cpuinfo(text: str, machine: str) -> CpuFeatures:
    """The features in a /proc/cpuinfo text (its first processor; the others have the same flags) of a machine
    whose platform.machine() is `machine`."""
    fields = first_processor_fields(text)
    architecture = ARCHITECTURES.get(machine.lower(), machine or "unknown")
    flags = frozenset((fields.get("flags") or fields.get("features") or "").lower().split())
    return CpuFeatures(model_name(fields, architecture), architecture, flags)


def first_processor_fields(text: str) -> dict[str, str]:
    """'key : value' lines up to the first blank line after some content, keys lower-case; later ones are ignored."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, separator, value = line.partition(":")
        if separator:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def model_name(fields: dict[str, str], architecture: str) -> str:
    if fields.get("cpu implementer") == "0x41" and fields.get("cpu part") in ARM_CORES:
        return ARM_CORES[fields["cpu part"]]
    for key in ("model name", "hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    if fields.get("cpu part"):
        return f"{architecture} CPU (implementer {fields.get('cpu implementer', '?')}, part {fields['cpu part']})"
    return f"{architecture} CPU"


@functools.lru_cache(maxsize=1)
def this_cpu() -> CpuFeatures:
    """The features of the CPU this process runs on (read once)."""
    try:
        return parse_cpuinfo(CPUINFO.read_text(errors="replace"), platform.machine())
    except OSError:  # not Linux, or /proc not mounted: Windows' processor string still names the CPU
        unknown = parse_cpuinfo("", platform.machine())
        return CpuFeatures(platform.processor() or unknown.model, unknown.architecture)


def native_bf16() -> bool:
    """Whether this CPU runs bf16 in hardware (see `CpuFeatures.native_bf16`)."""
    return this_cpu().native_bf16()


def has_vnni() -> bool:
    """Whether this CPU is an x86 CPU with VNNI (see `CpuFeatures.has_vnni`)."""
    return this_cpu().has_vnni()


def describe() -> str:
    """This CPU in one line, e.g. "AMD EPYC 7763 64-Core Processor (AVX2, no VNNI, no BF16)"."""
    return this_cpu().describe()
