"""The integer build (integer featurizer + integer model) on the emulated Cortex-M4: every
feature and every class score of every frame equal to the Python integer reference.

On the device the model runs the SMLAD/SXTB16 inline-assembly matvec and the SSAT/USAT
clamps instead of the host's portable C, so this is the parity test of the assembly path,
with both cross-compilers, soft float (the target: no FPU) and hard float.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from codegen_host import toolchain_params
from test_quant_model import _int_model
from tinykws.codegen.emit import copy_runtime
from tinykws.codegen.emit_int import emit_int_model
from tinykws.codegen.int_featurizer import emit_int_featurizer
from tinykws.features import FeatureParams
from tinykws.quant.features import frames_from_stream_q
from tinykws.quant.model import scores_float
from tinykws.toolchain import find_toolchain

pytest.importorskip("unicorn", reason="the emulated Cortex-M4 needs the device extra (unicorn)")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
from realdata import REAL as DEV  # the dev set, or the committed mini set


def _clips(k: int) -> list[np.ndarray]:
    test = [p for p in (DEV / "testing_list.txt").read_text().split() if p]
    idx = np.linspace(0, len(test) - 1, k).round().astype(int)
    return [np.pad(x, (0, max(0, 16000 - len(x))))[:16000]
            for x in (sf.read(DEV / test[i], dtype="int16")[0] for i in idx)]


@pytest.mark.parametrize("abi", ["soft", "hard"])
@pytest.mark.parametrize("tc_name", toolchain_params())
def test_int_build_bit_exact_on_device(tmp_path, tc_name, abi):
    from tinykws.device import HarnessShape, KWSDevice, build_image

    _, im = _int_model(0, architecture="fastgrnn", hidden_size=40, num_layers=2)
    fp = FeatureParams()
    copy_runtime(tmp_path)
    for name, text in {**emit_int_featurizer(fp), **emit_int_model(im)}.items():
        (tmp_path / name).write_text(text)
    tc = find_toolchain(tc_name)
    srcs = [tc.compile_to_asm([tmp_path / f"{s}.c"], tmp_path / f"{s}.S", abi, include_dirs=[tmp_path])
            for s in ("featurizer", "model")]
    assert "smlad" in srcs[1].read_text()  # the DSP kernel, not the portable loop
    elf = build_image(srcs, tmp_path / "build", abi, tc)
    dev = KWSDevice(elf, HarnessShape(fp.hop, fp.n_mels, im.num_classes, fp.first_block - 1))
    for x in _clips(3):
        run = dev.run_clip(x.astype(np.float32))
        q = frames_from_stream_q(x, fp)
        np.testing.assert_array_equal(run.features[2:], q.astype(np.float32) / 256)
        _, ref = im.run(q[None])
        np.testing.assert_array_equal(run.scores, scores_float(ref[0]))
