"""/proc/cpuinfo texts of CPUs that decide precisions differently, and their parsed features (for patching
`cpu_features.this_cpu` in engine and quantiser tests). Flags lines are real ones, shortened where they repeat."""

from vqhps_ros.runtime.cpu_features import parse_cpuinfo

# Zen 2: AVX2, no AVX-512, no VNNI, no bf16. Two processors: only the first is read.
EPYC_AVX2 = """\
processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 23
model		: 49
model name	: AMD EPYC 7742 64-Core Processor
stepping	: 0
cpu MHz		: 2250.000
cache size	: 512 KB
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht \
syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid aperfmperf pni \
pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic \
cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext \
perfctr_llc mwaitx cpb cat_l3 cdp_l3 hw_pstate ssbd mba ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 cqm \
rdt_a rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves clzero irperf xsaveerptr rdpru wbnoinvd \
arat npt lbrv svm_lock nrip_save tsc_scale vmcb_clean umip rdpid overflow_recov succor smca sme sev sev_es
bugs		: sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass retbleed smt_rsb
bogomips	: 4491.53

processor	: 1
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7742 64-Core Processor
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep avx2 avx512f avx512_bf16
"""

# Cascade Lake: AVX-512 and VNNI, no bf16 (the CPUs where bf16 is emulated with AVX-512).
XEON_VNNI = """\
processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse \
sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic \
movbe popcnt aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch fsgsbase bmi1 hle avx2 smep bmi2 erms invpcid rtm \
mpx avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves \
pku ospke avx512_vnni md_clear flush_l1d arch_capabilities
"""

# Sapphire Rapids: AVX-512 with VNNI and BF16, AMX.
XEON_BF16 = """\
processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss \
ht syscall nx pdpe1gb rdtscp lm constant_tsc pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes \
xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq \
rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni \
avx512_bf16 wbnoinvd arat avx512vbmi umip pku ospke waitpkg avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni \
avx512_bitalg avx512_vpopcntdq rdpid cldemote movdiri movdir64b md_clear serialize tsxldtrk amx_bf16 avx512_fp16 \
amx_tile amx_int8 arch_capabilities
"""

# Jetson AGX Orin: Cortex-A78AE, NEON and dot products, no I8MM, no BF16.
JETSON_ORIN = """\
processor	: 0
model name	: ARMv8 Processor rev 1 (v8l)
BogoMIPS	: 62.50
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp \
uscat ilrcpc flagm paca pacg
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd42
CPU revision	: 1

processor	: 1
model name	: ARMv8 Processor rev 1 (v8l)
"""

EPYC_AVX2_CPU = parse_cpuinfo(EPYC_AVX2, "x86_64")
XEON_VNNI_CPU = parse_cpuinfo(XEON_VNNI, "x86_64")
XEON_BF16_CPU = parse_cpuinfo(XEON_BF16, "x86_64")
JETSON_ORIN_CPU = parse_cpuinfo(JETSON_ORIN, "aarch64")
