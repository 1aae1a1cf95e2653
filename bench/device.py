"""Device cost (docs/benchmarks.md, "Device"): instructions per 10-ms frame on an emulated
Cortex-M4 against the multiply-accumulate count, hard, softfp and soft float and the
integer (int8) build, and the CPU load.

For each toolchain (arm-none-eabi-gcc when installed, the ziglang wheel's clang) and float
ABI, compiles the run (`tinykws.codegen.compile_run`) and verifies it on real clips
(`tinykws.device.verify`, so the counted code is code that matches PyTorch). Instructions
come from the emulator's basic-block counter (see docs/architecture.md, "Device").

Without --run, the model is a randomly initialised one of the pipeline's default shape
(FastGRNN, 2 layers x 128, 12 classes, full rank): hard-float costs do not depend on
weight values; soft-float ones vary by a few percent with the operands. The integer build
(`--precision int8`, soft-float ABI: the FPU-less target) is verified bit for bit against
its Python reference (run's quant/model_int.npz; for the random model, quantized here with
hidden-state ranges from 20 dev clips); its rows also give its agreement with the float
model on the verified clips.

CPU load at --mhz (80) = (featurizer + model instructions) x --cpi / cycles per 10 ms.
CPI 1.25 is an assumption, not a measurement: the Cortex-M4 issues most integer and FPU
instructions in 1 cycle, but loads take 2 (1 when pipelined back to back), vfma 3 (when
its result is needed next), vldm 1 + n, taken branches 2-4; flash wait states at 80 MHz
are assumed hidden by the flash accelerator (e.g. STM32's ART).

The integer featurizer (`tinykws.quant.features`, for cores without an FPU) gets its own
rows: per toolchain, built soft-float with a stand-in model, run on real clips (every frame
checked bit for bit against the Python reference), instructions per frame through the
float interface `mfcc_Filter` and the int16 one `mfcc_FilterInt16`, its flash and RAM;
and its difference from the float features over the whole dev testing list.

Usage:  python bench/device.py [--run RUN_DIR] [--hidden 128 --layers 2] [--clips 3]
        python bench/device.py --int-featurizer-only
Last line: `device hard_featurizer=N hard_model=N featurizer_macs=N model_macs=N
hard_model_per_mac=R hard_load=P soft_featurizer=N soft_model=N soft_load=P
softfp_featurizer=N softfp_model=N int8_featurizer=N int8_model=N int8_load=P int8_flash=B
int8_ram=B` (one line; the first toolchain's numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared/data/speech_commands_dev"
CATEGORIES = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on",
              "off", "stop", "go"]  # fmt: skip


def synthetic_run(run: Path, args: argparse.Namespace) -> Path:
    """A run folder: lists over the dev test clips and a random model of the asked shape."""
    import torch

    from tinykws.data.audio import load_audio
    from tinykws.features import FeatureParams, logmel
    from tinykws.models import ModelConfig, build_model
    from tinykws.run import RunDir

    rd = RunDir(run)
    lists = rd.lists
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "categories.txt").write_text("\n".join(CATEGORIES) + "\n")
    test = [line for line in (DATA / "testing_list.txt").read_text().split() if line]
    (lists / "testing_list.txt").write_text("\n".join(test) + "\n")
    rd.lists_json.write_text(json.dumps({"data_dir": str(DATA), "task": "google12"}))
    torch.manual_seed(0)
    cfg = ModelConfig(args.arch, 32, args.hidden, args.layers, len(CATEGORIES),
                      wrank=args.wrank, urank=args.urank,
                      frame_stride=getattr(args, "stride", 1))  # fmt: skip
    model = build_model(cfg)
    feats = np.concatenate([logmel(load_audio(DATA / p)[0], FeatureParams()) for p in test[:20]])
    model.set_normalization(torch.from_numpy(feats.mean(0)), torch.from_numpy(feats.std(0)))
    rd.train.mkdir(exist_ok=True)
    torch.save({"model_config": cfg.to_dict(), "feature_params": FeatureParams().to_dict(),
                "categories": CATEGORIES, "state_dict": model.state_dict()},
               rd.best)  # fmt: skip
    from tinykws.quant.calibrate import layer_ranges
    from tinykws.quant.model import quantize_model

    clips = np.stack([logmel(load_audio(DATA / p)[0], FeatureParams()) for p in test[:20]])
    ranges, inner = layer_ranges(model.eval(), clips)
    quantize_model(model, CATEGORIES, ranges, rank_max_abs=inner).save(rd.int_model)
    return run


def measure(run: Path, toolchain: str, build: str, clips: int) -> dict:
    """Compile `run` with one toolchain as `build` (hard, soft, int8), verify it, return the
    report as a dict."""
    from tinykws.codegen import compile_run
    from tinykws.device import VerifyConfig, verify
    from tinykws.run import Build
    from tinykws.toolchain import find_toolchain

    abi, precision = Build.named(build).float_abi, Build.named(build).precision
    os.environ["TINYKWS_TOOLCHAIN"] = toolchain  # compile_run uses find_toolchain()
    out = run / "device" / f"{build}-{toolchain}"
    compile_run(run, out, "cortex-m4", abi, precision=precision)
    report = verify(out, VerifyConfig(run_dir=run, max_clips=clips,
                                      toolchain=find_toolchain(toolchain), progress=False))
    if not report.ok:
        sys.exit(f"verify failed for {toolchain}/{abi}: {report.first_mismatch}")
    return report.to_dict()


STUB_MODEL = """
void completemodel_Predict(void *context, const float *input, float *output);
void completemodel_Reset(void);
void completemodel_Predict(void *context, const float *input, float *output)
{ (void)context; output[0] = input[0]; }
void completemodel_Reset(void) {}
"""


def _dev_clips(k: int) -> list[np.ndarray]:
    """k dev testing clips (evenly spaced), int16, padded to 1 s."""
    import soundfile as sf

    test = [p for p in (DATA / "testing_list.txt").read_text().split() if p]
    idx = np.linspace(0, len(test) - 1, min(k, len(test))).round().astype(int)
    out = []
    for i in idx:
        x = sf.read(DATA / test[i], dtype="int16")[0]
        out.append(np.pad(x, (0, max(0, 16000 - len(x)))))
    return out


def measure_int_featurizer(toolchain: str, clips: int, work: Path) -> dict:
    """The integer featurizer, soft float, on the emulated M4: instructions per frame through
    mfcc_Filter (float in/out) and mfcc_FilterInt16, flash/RAM, bit-exactness on real clips."""
    from tinykws.codegen.glue import copy_runtime
    from tinykws.codegen.featurizer import emit_int_featurizer
    from tinykws.device import HarnessShape, KWSDevice, build_image
    from tinykws.features import FeatureParams
    from tinykws.quant.features import frames_from_stream_q
    from tinykws.toolchain import elf_section_sizes, find_toolchain

    fp = FeatureParams()
    out = work / f"intfeat-{toolchain}"
    copy_runtime(out)
    for name, text in emit_int_featurizer(fp).items():
        (out / name).write_text(text)
    (out / "stub_model.c").write_text(STUB_MODEL)
    tc = find_toolchain(toolchain)
    S = tc.compile_to_asm([out / "featurizer.c"], out / "featurizer.S", "soft", include_dirs=[out])
    elf = build_image([S, out / "stub_model.c"], out / "build", "soft", tc, keep=["mfcc_FilterInt16"])
    dev = KWSDevice(elf, HarnessShape(fp.hop, fp.n_mels, 1, fp.first_block - 1))
    warm = fp.first_block - 1
    per_call, stack = [], 0
    for i, x in enumerate(_dev_clips(clips)):
        run = dev.run_clip(x.astype(np.float32), count=i == 0)
        ref = frames_from_stream_q(x).astype(np.float32) / 256
        if not np.array_equal(run.features[warm:], ref):
            sys.exit(f"integer featurizer ({toolchain}) differs from the Python reference")
        if run.counts is not None:
            per_call = run.counts.per_call["mfcc_Filter"][warm:]
            stack = dev.peak_stack(run.counts)
    # the int16 entry point, called directly: blocks of the first clip from a reset
    em = dev.em
    x = _dev_clips(1)[0]
    buf = em.addr("tkws_mailbox_data")
    em.call("mfcc_Reset")
    int_calls = []
    ref = frames_from_stream_q(x)
    for b in range(len(x) // fp.hop):
        em.uc.mem_write(buf, np.ascontiguousarray(x[b * fp.hop : (b + 1) * fp.hop]).tobytes())
        _, counts = em.call("mfcc_FilterInt16", 0, buf, buf + 2 * fp.hop,
                            count=["mfcc_FilterInt16"])
        int_calls.extend(counts.per_call["mfcc_FilterInt16"])
        got = np.frombuffer(bytes(em.uc.mem_read(buf + 2 * fp.hop, 2 * fp.n_mels)), "<i2")
        if b >= warm and not np.array_equal(got, ref[b - warm]):
            sys.exit(f"mfcc_FilterInt16 ({toolchain}) differs from the Python reference")
    s = elf_section_sizes(out / "build" / "featurizer.o")
    return {
        "toolchain": tc.version,
        "float_api": float(np.mean(per_call)),
        "int16_api": float(np.mean(int_calls[warm:])),
        "flash": s["text"] + s["rodata"] + s["data"],
        "ram": s["data"] + s["bss"] + stack,
        "stack": stack,
        "sizes": s,
    }


def int_feature_tolerance() -> dict:
    """|integer - float| features (ln units) over every dev testing clip."""
    from tinykws.features import frames_from_stream
    from tinykws.quant.features import frames_from_stream_q
    from tinykws.quant.formats import features_from_q

    clips = _dev_clips(10**6)
    d = np.concatenate([
        np.abs(features_from_q(frames_from_stream_q(x)) - frames_from_stream(x)).ravel() for x in clips
    ])
    return {"clips": len(clips), "values": d.size, "mean": float(d.mean()),
            "p99": float(np.percentile(d, 99)), "p99.9": float(np.percentile(d, 99.9)),
            "max": float(d.max()), "within_one_step": float(np.mean(d <= 1 / 256))}  # fmt: skip


def int_featurizer_rows(names: list[str], clips: int) -> None:
    """Print the integer featurizer's rows and its float tolerance."""
    print("integer featurizer (soft float, stand-in model; bit-exact with the Python reference)")
    print(f"{'toolchain':<22} {'mfcc_Filter':>11} {'FilterInt16':>11} {'flash B':>8} {'RAM B':>7} "
          f"{'stack B':>7}")  # fmt: skip
    first = None
    with tempfile.TemporaryDirectory(prefix="tinykws-bench-intfeat-") as tmp:
        for name in names:
            r = measure_int_featurizer(name, clips, Path(tmp))
            first = first or r
            print(f"{r['toolchain'][:22]:<22} {r['float_api']:>11,.0f} {r['int16_api']:>11,.0f} "
                  f"{r['flash']:>8,} {r['ram']:>7,} {r['stack']:>7,}", flush=True)  # fmt: skip
    t = int_feature_tolerance()
    print(f"|int - float| features over {t['clips']} dev testing clips ({t['values']:,} values, "
          f"ln units; one Q7.8 step = 0.0039): mean {t['mean']:.5f}, p99 {t['p99']:.4f}, "
          f"p99.9 {t['p99.9']:.4f}, max {t['max']:.4f}; {t['within_one_step']:.2%} within one step")
    print(f"int_featurizer float_api={first['float_api']:.0f} int16_api={first['int16_api']:.0f} "
          f"flash={first['flash']} ram={first['ram']} tol_mean={t['mean']:.5f} "
          f"tol_p999={t['p99.9']:.4f} tol_max={t['max']:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a trained run (default: a random model)")
    ap.add_argument("--arch", default="fastgrnn")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--wrank", type=int)
    ap.add_argument("--urank", type=int)
    ap.add_argument("--clips", type=int, default=3, help="clips verified per configuration")
    ap.add_argument("--toolchains", default=None, help="comma list of gcc,zig (default: all)")
    ap.add_argument("--mhz", type=float, default=80.0)
    ap.add_argument("--cpi", type=float, default=1.25, help="assumed cycles per instruction")
    ap.add_argument("--int-featurizer-only", action="store_true",
                    help="only the integer featurizer's rows and float tolerance")
    args = ap.parse_args()
    if args.int_featurizer_only:
        from tinykws.toolchain import available_toolchains

        names = args.toolchains.split(",") if args.toolchains else [
            "gcc" if t.name == "arm-none-eabi-gcc" else "zig" for t in available_toolchains()
        ]
        int_featurizer_rows(names, args.clips)
        return

    from tinykws.device import featurizer_macs, model_macs
    from tinykws.features import FeatureParams
    from tinykws.models import ModelConfig
    from tinykws.run import RunDir
    from tinykws.toolchain import available_toolchains

    with tempfile.TemporaryDirectory(prefix="tinykws-bench-device-") as tmp:
        run = args.run or synthetic_run(Path(tmp) / "run", args)
        if args.run is not None:  # keep the user's run folder clean: work on a copy
            import shutil

            run = Path(tmp) / "run"
            src, dst = RunDir(args.run), RunDir(run)
            shutil.copytree(src.lists, dst.lists)
            shutil.copytree(src.train, dst.train, ignore=lambda d, f: ["last.pt"])
            if src.quant.is_dir():
                shutil.copytree(src.quant, dst.quant)
            dst.features.symlink_to(src.features.resolve())  # quantize
        import torch

        ckpt = torch.load(RunDir(run).best, weights_only=True)
        cfg = ModelConfig.from_dict(ckpt["model_config"])
        fp = FeatureParams.from_dict(ckpt["feature_params"])
        fmacs, mmacs = featurizer_macs(fp), model_macs(cfg)
        names = args.toolchains.split(",") if args.toolchains else [
            "gcc" if t.name == "arm-none-eabi-gcc" else "zig" for t in available_toolchains()
        ]
        frame_cycles = args.mhz * 1e6 * fp.hop / fp.sample_rate
        print(f"model: {cfg.architecture} {cfg.num_layers} x {cfg.hidden_size}, "
              f"wrank {cfg.wrank}, urank {cfg.urank}, {cfg.num_classes} classes")  # fmt: skip
        print(f"MACs per frame: featurizer {fmacs['total']:,} ({fmacs}), "
              f"model {mmacs['total']:,} ({mmacs})")
        print(f"load at {args.mhz:g} MHz, assuming {args.cpi} cycles per instruction "
              f"({frame_cycles:,.0f} cycles per 10-ms frame)")
        header = (f"{'toolchain':<22} {'build':<6} {'featurizer':>11} {'/MAC':>5} {'model':>11} "
                  f"{'/MAC':>5} {'load':>6} {'flash B':>8} {'RAM B':>7} {'stack B':>7}  vs float")
        print(header)
        rows = {}
        for name in names:
            for build in ("hard", "softfp", "soft", "int8"):
                r = measure(run, name, build, args.clips)
                f_ins = r["instructions"]["featurizer"]["mean"]
                m_ins = r["instructions"]["model"]["mean"]
                load = (f_ins + m_ins) * args.cpi / frame_cycles
                rows[(name, build)] = (f_ins, m_ins, load, r["flash_bytes"], r["ram_bytes"])
                fm = r.get("float_model")
                vs = (f"argmax {fm['argmax_agreement']:.0%}, max diff {fm['max_abs_diff']:.3g}"
                      if fm else "")
                print(f"{r['toolchain'][:22]:<22} {build:<6} {f_ins:>11,.0f} "
                      f"{f_ins / fmacs['total']:>5.2f} {m_ins:>11,.0f} "
                      f"{m_ins / mmacs['total']:>5.2f} {load:>6.1%} {r['flash_bytes']:>8,} "
                      f"{r['ram_bytes']:>7,} {r['peak_stack_bytes']:>7,}  {vs}", flush=True)
        int_featurizer_rows(names, args.clips)
        first = names[0]
        hf, hm, hl = rows[(first, "hard")][:3]
        sf, sm, sl = rows[(first, "soft")][:3]
        pf, pm, _ = rows[(first, "softfp")][:3]
        qf, qm, ql, qflash, qram = rows[(first, "int8")]
        print(f"softfp vs hard float (instructions per frame): "
              f"{(pf + pm) / (hf + hm) - 1:+.2%} (goal: within 5 %)")
        print(f"int8 build: featurizer + model {qf + qm:,.0f} instructions per frame (goal "
              f"<= 120,000), flash {qflash:,} B (goal <= 72 KiB), RAM {qram:,} B (goal <= 8 KiB)")
        print(f"goals (hard float): model <= 1.5 x MACs -> {hm / mmacs['total']:.2f}x; "
              f"featurizer <= 25,000 instructions -> {hf:,.0f}")
        print(f"device toolchain={first} hard_featurizer={hf:.0f} hard_model={hm:.0f} "
              f"featurizer_macs={fmacs['total']} model_macs={mmacs['total']} "
              f"hard_model_per_mac={hm / mmacs['total']:.3f} hard_load={hl:.4f} "
              f"soft_featurizer={sf:.0f} soft_model={sm:.0f} soft_load={sl:.4f} "
              f"softfp_featurizer={pf:.0f} softfp_model={pm:.0f} "
              f"int8_featurizer={qf:.0f} int8_model={qm:.0f} int8_load={ql:.4f} "
              f"int8_flash={qflash} int8_ram={qram}")


if __name__ == "__main__":
    main()
