"""The whole keyword spotter on the emulated Cortex-M4 (docs/benchmarks.md, "Device"):
instructions per 10-ms frame of featurizer + model + detector over a recording, for the
hard-float build and the integer (int8, soft-float ABI: the FPU-less target) build, with
the device detections checked against their Python reference (`tinykws verify --stream`:
`tinykws detect` for hard float, the bit-exact integer reference for int8).

The model is bench/device.py's (a random FastGRNN of the pipeline's default shape unless
--run is given, quantized there for int8; hard-float costs do not depend on the weights);
the detector is the run's (`detector.json`, else the defaults). The recording is --seconds
of the dev test clips one after another. The int8 build is counted twice: `int8` is the
all-integer firmware loop (int16 samples -> mfcc_FilterInt16 -> completemodel_PredictQ ->
detector_ProcessQ; its detections checked over the whole recording), `int8 float-if` its
float interface (mfcc_Filter -> completemodel_Predict -> detector_Process, what
docs/examples/kws_loop.c calls; checked over the counted blocks). The peer, from the same counts: the Python default
for non-rolling models, `window` mode, needs K = 10 model steps a frame (one per staggered
state). The int8 rows also give how many of the float model's detections (`tinykws detect
--mode rolling`) the int8 spotter makes too.

Usage:  python bench/stream_device.py [--run RUN_DIR] [--seconds 30] [--toolchains gcc,zig]
                                      [--builds hard,int8] [--stride 2]

`max` is the sum of each part's costliest call: with a frame stride (the random model's
--stride, or the run's) the model's cost differs between frames, and the target holds for
the costliest frame, not the mean.
Last line: `stream_device toolchain=... featurizer=N model=N detector=N total=N target=120000
[int8_featurizer=N int8_model=N int8_detector=N int8_total=N int8_float_interface_total=N]`
(the first toolchain's; int8_*: the integer loop).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TINYKWS_NO_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from device import DATA, synthetic_run  # noqa: E402  (bench/device.py)

TARGET = 120_000  # issue 10: featurizer + model + detector, 2 x 128 model (int8: the same goal)
WINDOW_K = 10  # window mode at its default 100-ms hop: ceil(98 / 10) states


def stream_wav(path: Path, seconds: float) -> Path:
    """Dev test clips back to back (with 0.3 s of quiet between), `seconds` long."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    test = [line for line in (DATA / "testing_list.txt").read_text().split() if line]
    parts, n = [], 0
    for i in rng.permutation(len(test)):
        x, _ = sf.read(DATA / test[i], dtype="int16")
        parts += [x, rng.normal(0, 30, 4800).astype(np.int16)]
        n += len(x) + 4800
        if n >= seconds * 16000:
            break
    sf.write(path, np.concatenate(parts)[: int(seconds * 16000)], 16000)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a trained run (default: a random 2 x 128 model)")
    ap.add_argument("--arch", default="fastgrnn")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--wrank", type=int)
    ap.add_argument("--urank", type=int)
    ap.add_argument("--stride", type=int, default=1, help="frame stride of the random model")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--count-blocks", type=int, default=300, help="blocks counted (3 s)")
    ap.add_argument("--toolchains", default=None, help="comma list of gcc,zig (default: all)")
    ap.add_argument("--builds", default="hard,int8", help="comma list of hard,int8")
    args = ap.parse_args()

    from tinykws.codegen import compile_run
    from tinykws.device.verify_stream import verify_stream
    from tinykws.run import RunDir
    from tinykws.toolchain import available_toolchains, find_toolchain

    names = args.toolchains.split(",") if args.toolchains else [
        "gcc" if t.name == "arm-none-eabi-gcc" else "zig" for t in available_toolchains()]
    builds = args.builds.split(",")
    if not builds or not set(builds) <= {"hard", "int8"}:
        sys.exit(f"--builds: a comma list of hard,int8, not {args.builds!r}")
    with tempfile.TemporaryDirectory(prefix="tinykws-bench-stream-") as tmp:
        run = Path(tmp) / "run"
        if args.run is None:
            synthetic_run(run, args)
        else:  # work on a copy: keep the user's run folder clean
            src, dst = RunDir(args.run), RunDir(run)
            shutil.copytree(src.lists, dst.lists)
            shutil.copytree(src.train, dst.train, ignore=lambda d, f: ["last.pt"])
            if src.detector.is_file():
                shutil.copy(src.detector, dst.detector)
            if src.quant.is_dir():
                shutil.copytree(src.quant, dst.quant)
            if src.features.is_dir():  # int8 quantizes when quant/ is stale
                dst.features.symlink_to(src.features.resolve())
        wav = stream_wav(Path(tmp) / "stream.wav", args.seconds)
        print(f"{'toolchain':<22} {'build':<13} {'featurizer':>10} {'model':>8} {'detector':>8} "
              f"{'total':>8} {'max':>8} {'window K=10':>11}  detections device = python")
        rows = {}
        for name in names:
            os.environ["TINYKWS_TOOLCHAIN"] = name  # compile_run uses find_toolchain()
            for build in builds:
                out = run / "device" / f"{build}-{name}"
                if build == "int8":
                    compile_run(run, out, "cortex-m4", "soft", precision="int8")
                else:
                    compile_run(run, out, "cortex-m4", "hard")
                r = verify_stream(out, wav, run_dir=run, toolchain=find_toolchain(name),
                                  count_blocks=args.count_blocks, progress=False)
                ins = r.instructions
                f, m, d = (ins[k]["mean"] for k in ("featurizer", "model", "detector"))
                rows[(name, build)] = (f, m, d, ins["total"], ins["max_total"])
                verdict = "identical" if r.ok else "DIFFERENT"
                fm = r.float_model
                vs = (f"; float model {len(fm['detections'])}, {fm['matched']} matched"
                      if fm else "")
                soft = ins.get("soft_float_calls")
                vs += f"; soft-float calls: {', '.join(soft) or 'none'}" if soft is not None else ""
                print(f"{r.toolchain[:22]:<22} {build:<13} {f:>10,.0f} {m:>8,.0f} {d:>8,.0f} "
                      f"{ins['total']:>8,.0f} {ins['max_total']:>8,} {f + WINDOW_K * m + d:>11,.0f}  "
                      f"{len(r.device_detections)} = {len(r.python_detections)} ({verdict}){vs}",
                      flush=True)
                fi = r.float_interface
                if fi is not None:
                    fins = fi["instructions"]
                    ff, fmod, fd = (fins[k]["mean"] for k in ("featurizer", "model", "detector"))
                    rows[(name, "int8 float-if")] = (ff, fmod, fd, fins["total"], fins["max_total"])
                    print(f"{'':<22} {'int8 float-if':<13} {ff:>10,.0f} {fmod:>8,.0f} {fd:>8,.0f} "
                          f"{fins['total']:>8,.0f} {fins['max_total']:>8,} {ff + WINDOW_K * fmod + fd:>11,.0f}  "
                          f"first {fi['frames']} frames: {'equal' if fi['ok'] else 'DIFFERENT'}"
                          f"; soft-float calls: {', '.join(fins['soft_float_calls']) or 'none'}",
                          flush=True)
                if not r.ok:
                    sys.exit(f"device and Python differ: {r.first_difference or r.first_mismatch}")
        first = names[0]
        line = f"stream_device toolchain={first}"
        for build in builds:
            f, m, d, total, worst = rows[(first, build)]
            what = "integer loop" if build == "int8" else build
            print(f"target ({what}): featurizer + model + detector <= {TARGET:,} instructions "
                  f"in the costliest frame -> at most {worst:,} (mean {total:,.0f}) "
                  f"({'met' if worst <= TARGET else 'NOT met'})")
            pre = "" if build == "hard" else "int8_"
            line += (f" {pre}featurizer={f:.0f} {pre}model={m:.0f} {pre}detector={d:.0f} "
                     f"{pre}total={total:.0f} {pre}max={worst}")
            if build == "hard":
                line += f" target={TARGET}"
            else:
                fi = rows[(first, 'int8 float-if')]
                line += f" int8_float_interface_total={fi[3]:.0f} int8_float_interface_max={fi[4]}"
        print(line)


if __name__ == "__main__":
    main()
