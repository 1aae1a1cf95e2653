"""`tinykws compile`: a run folder -> featurizer/model .c/.h/.S for the Cortex-M4.

Checks, for both float ABIs and every available cross-compiler: the files exist; the
hard-float .S uses the FPU and the soft-float one does not; both assemble (with
arm-none-eabi-gcc -c when present); the generated C of featurizer and model links into one
host program (no duplicate symbols) that runs the ELL-style firmware loop.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

from codegen_host import ARM_GCC, NO_ARM_GCC, STRICT, host_cc, toolchain_params
from eval_helpers import save_checkpoint
from tinykws.codegen import compile_run
from tinykws.errors import TinyKWSError
from tinykws.models import ModelConfig, build_model

CATS = ["_silence_", "_unknown_", "yes", "no"]
FPU_INSN = re.compile(r"^\s*v(?:fma|mla|add|mul|sub|div|ldr|ldm|cvt|mov)\S*\.?f?32?\b", re.M)
ANY_VFP = re.compile(r"^\s*v[a-z]+(?:\.[a-z0-9]+)*\s", re.M)


def make_run(root: Path, **cfg) -> Path:
    """A run folder with train/best.pt as `tinykws train` writes it (tiny model)."""
    torch.manual_seed(0)
    config = ModelConfig(**{"architecture": "fastgrnn", "hidden_size": 16, "num_layers": 2,
                            "num_classes": len(CATS), **cfg})
    save_checkpoint(root, build_model(config), CATS)
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


@pytest.mark.parametrize("toolchain", toolchain_params())
@pytest.mark.parametrize("abi", ["hard", "soft", "softfp"])
def test_compile_writes_self_contained_asm(run_dir, tmp_path, monkeypatch, toolchain, abi):
    from tinykws.toolchain import asm_float_abi, find_toolchain

    monkeypatch.setenv("TINYKWS_TOOLCHAIN", toolchain)
    r = compile_run(run_dir, out_dir=tmp_path / abi, float_abi=abi)
    for name in ("featurizer.h", "featurizer.c", "featurizer.S", "model.h", "model.c", "model.S"):
        assert r.files[name].is_file() and r.files[name].stat().st_size > 0, name
    for S in (r.featurizer_S, r.model_S):
        text = S.read_text()
        body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("@"))
        assert asm_float_abi(text) == abi
        if abi in ("hard", "softfp"):
            assert re.search(r"^\s*v(add|mul|sub|fma)\.f32", body, re.M), f"{S.name}: no FPU maths"
            if S.stem == "model":  # the matrix-vector kernel
                assert len(re.findall(r"^\s*vfma\.f32", body, re.M)) >= 32, "no vfma kernel"
        else:
            found = ANY_VFP.findall(body)
            assert not found, f"{S.name}: soft float uses FPU instructions {found[:5]}"
            assert "__aeabi_f" in body
        # ELL entry points are defined (global) in the .S
        for sym in (["mfcc_Filter", "mfcc_Reset", "mfcc_GetInputSize"] if "featurizer" in S.name
                    else ["completemodel_Predict", "completemodel_Reset",
                          "completemodel_GetOutputSize", "completemodel_categories"]):
            assert re.search(rf"^\s*\.glob(?:a)?l\s+{sym}\b", text, re.M), f"{S.name}: {sym} not global"
        assert not re.search(r"^\s*\.glob(?:a)?l\s+tkws_", text, re.M), "runtime symbols must be static"
        obj = find_toolchain().assemble(S, tmp_path / abi / (S.stem + ".o"), abi)
        assert obj.stat().st_size > 0


@pytest.mark.skipif(ARM_GCC is None, reason=NO_ARM_GCC)
def test_zig_asm_assembles_with_arm_none_eabi_gcc(run_dir, tmp_path, monkeypatch):
    """What firmware engineers do with our .S: `arm-none-eabi-gcc -c`, whichever compiler made it."""
    monkeypatch.setenv("TINYKWS_TOOLCHAIN", "zig")
    for abi, flags in (("hard", ["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]),
                       ("soft", ["-mfloat-abi=soft"])):
        r = compile_run(run_dir, out_dir=tmp_path / abi, float_abi=abi)
        for S in (r.featurizer_S, r.model_S):
            proc = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", *flags, "-c",
                                   str(S), "-o", str(S.with_suffix(".o"))],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr


FIRMWARE = r"""
/* The seed's firmware loop, against the generated headers: blocks -> mfcc_Filter ->
 * completemodel_Predict -> best class. Both generated .c files link into one program. */
#include <stdio.h>
#include "featurizer.h"
#include "model.h"

int main(void)
{
    float block[MFCC_INPUT_SIZE];
    float features[MFCC_OUTPUT_SIZE];
    float scores[COMPLETEMODEL_OUTPUT_SIZE];
    int32_t best = -1, frames = 0;
    TensorShape shape;
    mfcc_Reset();
    completemodel_Reset();
    for (int32_t b = 0; b < 100; ++b) {
        for (int32_t i = 0; i < MFCC_INPUT_SIZE; ++i) {
            block[i] = (float)(((b * MFCC_INPUT_SIZE + i) * 7919) % 2001 - 1000);
        }
        mfcc_Filter(0, block, features);
        if (!mfcc_IsFrameValid()) {
            continue;
        }
        completemodel_Predict(0, features, scores);
        ++frames;
    }
    best = 0;
    for (int32_t k = 1; k < COMPLETEMODEL_COUNT; ++k) {
        best = scores[k] > scores[best] ? k : best;
    }
    completemodel_GetOutputShape(0, &shape);
    printf("%d %d %s %d\n", (int)frames, (int)shape.channels, completemodel_categories[best],
           (int)(mfcc_GetInputSize(0) + completemodel_GetInputSize(0)));
    return 0;
}
"""


def test_firmware_loop_links_both_modules_on_host(run_dir, tmp_path, monkeypatch):
    r = compile_run(run_dir, out_dir=tmp_path / "hard", float_abi="hard")
    main = tmp_path / "hard" / "main.c"
    main.write_text(FIRMWARE)
    exe = tmp_path / "fw"
    proc = subprocess.run([host_cc(), *STRICT, "-O2", "-I", str(r.out_dir), str(main),
                           str(r.files["featurizer.c"]), str(r.files["model.c"]), "-o", str(exe)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "98" and out[1] == "4" and out[2] in CATS and out[3] == "192"


def test_compile_errors_are_clear(tmp_path):
    with pytest.raises(TinyKWSError, match="no train/best.pt"):
        compile_run(tmp_path)
    run = make_run(tmp_path / "r")
    with pytest.raises(TinyKWSError, match="unknown target"):
        compile_run(run, target="cortex-m0")
    with pytest.raises(TinyKWSError, match="float ABI"):
        compile_run(run, float_abi="softer")


def test_cli_compile(run_dir, tmp_path):
    from typer.testing import CliRunner

    from tinykws.cli import app

    res = CliRunner().invoke(app, ["compile", str(run_dir), "--float-abi", "soft",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "model.S").is_file() and (tmp_path / "o" / "featurizer.S").is_file()
