"""CPU features from /proc/cpuinfo: model names, the instruction sets that decide precisions, failure-free reading."""

import pytest
from cpuinfo_samples import EPYC_AVX2, JETSON_ORIN, XEON_BF16, XEON_VNNI

from vqhps_ros.runtime import cpu_features
from vqhps_ros.runtime.cpu_features import CpuFeatures, parse_cpuinfo


@pytest.mark.parametrize(
    ("text", "machine", "native_bf16", "vnni", "described"),
    [
        (EPYC_AVX2, "x86_64", False, False, "AMD EPYC 7742 64-Core Processor (AVX2, no VNNI, no BF16)"),
        (XEON_VNNI, "x86_64", False, True, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz (AVX2, AVX-512, VNNI, no BF16)"),
        (XEON_BF16, "x86_64", True, True, "Intel(R) Xeon(R) Platinum 8480+ (AVX2, AVX-512, VNNI, BF16, AMX)"),
        (JETSON_ORIN, "aarch64", False, False, "Cortex-A78AE (NEON, DOTPROD, no BF16)"),
        ("", "x86_64", False, False, "x86_64 CPU (instruction sets unknown)"),
    ],
)
def test_canned_cpuinfo(text, machine, native_bf16, vnni, described):
    cpu = parse_cpuinfo(text, machine)
    assert cpu.native_bf16() is native_bf16
    assert cpu.has_vnni() is vnni
    assert cpu.describe() == described


def test_only_the_first_processor_is_read():
    """The EPYC sample's second processor lists AVX-512 and bf16; the first processor's flags are the CPU's."""
    cpu = parse_cpuinfo(EPYC_AVX2, "x86_64")
    assert "avx2" in cpu.flags and "avx512f" not in cpu.flags and "bogomips" not in cpu.flags
    assert cpu.instruction_sets() == ["AVX2", "no VNNI", "no BF16"]


def test_arm_features_and_architecture_names():
    orin = parse_cpuinfo(JETSON_ORIN, "aarch64")
    assert orin.is_arm and not orin.is_x86
    assert {"asimd", "asimddp"} <= orin.flags and "bf16" not in orin.flags
    assert parse_cpuinfo(JETSON_ORIN.replace("0xd42", "0xfff"), "arm64").model == "ARMv8 Processor rev 1 (v8l)"
    graviton3 = parse_cpuinfo(JETSON_ORIN.replace("asimddp", "asimddp i8mm bf16").replace("0xd42", "0xd40"), "arm64")
    assert graviton3.architecture == "aarch64" and graviton3.native_bf16() and not graviton3.has_vnni()
    assert graviton3.describe() == "Neoverse-V1 (NEON, DOTPROD, I8MM, BF16)"
    assert parse_cpuinfo("", "AMD64").architecture == "x86_64"


def test_unknown_machines_know_nothing_and_claim_nothing():
    riscv = parse_cpuinfo("processor : 0\nisa : rv64imafdc\n", "riscv64")
    assert (riscv.model, riscv.architecture) == ("riscv64 CPU", "riscv64")
    assert not riscv.native_bf16() and not riscv.has_vnni() and riscv.instruction_sets() == []
    assert CpuFeatures("M2", "arm64").describe() == "M2 (instruction sets unknown)"


def test_this_cpu_reads_the_file_once_and_never_fails(monkeypatch, tmp_path):
    (tmp_path / "cpuinfo").write_text(XEON_BF16)
    monkeypatch.setattr(cpu_features, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(cpu_features.platform, "machine", lambda: "x86_64")
    cpu_features.this_cpu.cache_clear()
    try:
        assert cpu_features.native_bf16() and cpu_features.has_vnni()
        assert cpu_features.describe().startswith("Intel(R) Xeon(R) Platinum 8480+ (")
        (tmp_path / "cpuinfo").write_text(EPYC_AVX2)
        assert cpu_features.native_bf16()  # read once: later changes to the file do not count
        cpu_features.this_cpu.cache_clear()
        monkeypatch.setattr(cpu_features, "CPUINFO", tmp_path / "absent")  # macOS, Windows, no /proc
        monkeypatch.setattr(cpu_features.platform, "processor", lambda: "Intel64 Family 6 Model 85, GenuineIntel")
        cpu = cpu_features.this_cpu()
        assert cpu.describe() == "Intel64 Family 6 Model 85, GenuineIntel (instruction sets unknown)"
        assert not cpu.native_bf16() and not cpu.has_vnni()
    finally:
        cpu_features.this_cpu.cache_clear()


def test_this_machine_is_described_in_one_line():
    cpu_features.this_cpu.cache_clear()
    line = cpu_features.describe()
    assert "\n" not in line and line.startswith(cpu_features.this_cpu().model + " (")
