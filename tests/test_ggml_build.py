"""The check that the installed llama.cpp uses the CPU's instructions (``edge_runtime/llm/ggml_build.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_runtime.llm.ggml_build import build_advice, cpu_flags, ggml_features, missing_features

# What llama-cpp-python 0.3.x prints, built by pip (GGML_NATIVE off) and built for the CPU.
PORTABLE_X86 = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
                "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
NATIVE_X86 = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
              "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
PORTABLE_ARM = "CPU : NEON = 1 | ARM_FMA = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
NATIVE_ARM = ("CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | OPENMP = 1 | "
              "REPACK = 1 | ")
ZEN4 = "fpu sse4_2 avx f16c avx2 fma bmi2 avx512f avx512bw avx512_vnni avx512_vbmi avx512_bf16".split()
ZEN3 = "fpu sse4_2 avx f16c avx2 fma bmi2".split()
PI5 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp".split()
PI4 = "fp asimd evtstrm crc32 cpuid".split()


def test_system_info_parsed_with_every_backend_part() -> None:
    feats = ggml_features(PORTABLE_X86 + "\nMETAL : EMBED_LIBRARY = 0 | ")
    assert feats["AVX2"] and feats["BMI2"] and not feats["EMBED_LIBRARY"]
    assert "AVX512" not in feats


@pytest.mark.parametrize("info, flags, missing", [
    (PORTABLE_X86, ZEN4, ["AVX512", "AVX512_VNNI", "AVX512_VBMI", "AVX512_BF16"]),
    (NATIVE_X86, ZEN4, []),
    (PORTABLE_X86, ZEN3, []),  # an AVX2 CPU loses nothing to the portable build
    (PORTABLE_ARM, PI5, ["DOTPROD", "FP16_VA"]),
    (NATIVE_ARM, PI5, []),
    (PORTABLE_ARM, PI4, []),  # the Pi 4's A72 has neither
    ("", ZEN4, []),  # no features listed: an unknown format, nothing to claim
])
def test_missing_features(info: str, flags: list, missing: list) -> None:
    assert missing_features(info, flags) == missing


def test_advice_names_the_features_and_the_rebuild() -> None:
    advice = build_advice(PORTABLE_X86, ZEN4)
    assert advice is not None and "AVX512, AVX512_VNNI" in advice and "GGML_NATIVE=ON" in advice
    assert build_advice(NATIVE_X86, ZEN4) is None


def test_cpu_flags_from_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd asimddp\nCPU part\t: 0xd0b\n")
    assert cpu_flags(x86) == {"fpu", "avx2", "avx512f"}
    assert cpu_flags(arm) == {"fp", "asimd", "asimddp"}
    assert cpu_flags(tmp_path / "absent") == set()


@pytest.mark.llm
def test_installed_build_uses_this_cpu() -> None:
    """The venv ``make setup`` builds must leave none of this CPU's features unused."""
    assert build_advice() is None
