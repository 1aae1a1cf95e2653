"""The integer featurizer on the emulated Cortex-M4: bit-exact with the Python reference.

On the device the DSP helpers are single instructions (SMULWB/SMULWT/SMLAWB, CLZ, SSAT) in
place of the host's portable C, so this is the parity test of the assembly path. The
featurizer is linked with the device harness and a one-line stand-in model (the harness
needs `completemodel_*`; the integer model has its own tests), run block by block on real
clips, every frame compared. Soft float (no FPU: the target) with both cross-compilers;
hard float and softfp too, since the same C builds for every ABI.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codegen_host import toolchain_params
from tinykws.codegen.glue import copy_runtime
from tinykws.codegen.featurizer import emit_int_featurizer
from tinykws.features import FeatureParams
from tinykws.quant.features import frames_from_stream_q
from tinykws.quant.formats import FEATURE_SCALE
from tinykws.toolchain import find_toolchain, fpu_instructions

pytest.importorskip("unicorn", reason="the emulated Cortex-M4 needs the device extra (unicorn)")
from realdata import REAL as DEV  # the dev set, or the committed mini set

STUB_MODEL = """\
/* Stand-in for the model: the harness calls it once the window is full. */
void completemodel_Predict(void *context, const float *input, float *output);
void completemodel_Reset(void);
void completemodel_Predict(void *context, const float *input, float *output)
{
    (void)context;
    output[0] = input[0];
}
void completemodel_Reset(void) {}
"""


def _clips(k: int) -> list[np.ndarray]:
    test = [p for p in (DEV / "testing_list.txt").read_text().split() if p]
    idx = np.linspace(0, len(test) - 1, k).round().astype(int)
    out = []
    for i in idx:
        x = sf.read(DEV / test[i], dtype="int16")[0]
        out.append(np.pad(x, (0, max(0, 16000 - len(x)))))
    return out


def _build(tmp: Path, tc_name: str, abi: str, params: FeatureParams = FeatureParams(),
           defines: tuple[str, ...] = ()):
    from tinykws.device import HarnessShape, KWSDevice, build_image

    copy_runtime(tmp)
    for name, text in emit_int_featurizer(params).items():
        (tmp / name).write_text(text)
    (tmp / "stub_model.c").write_text(STUB_MODEL)
    tc = find_toolchain(tc_name)
    S = tc.compile_to_asm([tmp / "featurizer.c"], tmp / "featurizer.S", abi, include_dirs=[tmp],
                          defines=defines)
    elf = build_image([S, tmp / "stub_model.c"], tmp / "build", abi, tc)
    shape = HarnessShape(params.hop, params.n_mels, 1, params.first_block - 1)
    return S.read_text(), KWSDevice(elf, shape)


@pytest.mark.parametrize("tc_name", toolchain_params())
def test_soft_float_build_is_bit_exact_on_real_clips(tmp_path, tc_name):
    asm, device = _build(tmp_path, tc_name, "soft")
    body = "\n".join(ln for ln in asm.splitlines() if not ln.lstrip().startswith("@"))
    assert fpu_instructions(body) == []
    assert not re.search(r"\b__aeabi_f", body), "the float wrapper must not call soft-float helpers"
    for insn in ("smulwb", "smulwt", "smlawb", "clz", "ssat"):
        assert re.search(rf"^\s*{insn}\s", body, re.M), f"no {insn}: DSP helpers not used"
    warm = FeatureParams().first_block - 1
    for x in _clips(6):
        run = device.run_clip(x.astype(np.float32))
        ref = frames_from_stream_q(x).astype(np.float32) / FEATURE_SCALE
        np.testing.assert_array_equal(run.features[warm:], ref)


@pytest.mark.parametrize("abi,defines", [("hard", ()), ("softfp", ()), ("soft", ("TKWS_NO_ASM",))],
                         ids=["hard", "softfp", "soft-portable-c"])  # fmt: skip
def test_other_builds_are_bit_exact_too(tmp_path, abi, defines):
    """The FPU ABIs, and the portable C (no DSP instructions) compiled for the M4."""
    params = FeatureParams(fft_size=256, window_size=200, hop=80, n_mels=20, fmax=7000.0)
    _, device = _build(tmp_path, "zig", abi, params, defines)  # radix-2 stage, other sizes
    x = _clips(1)[0]
    run = device.run_clip(x.astype(np.float32))
    ref = frames_from_stream_q(x, params).astype(np.float32) / FEATURE_SCALE
    np.testing.assert_array_equal(run.features[params.first_block - 1 :], ref)
