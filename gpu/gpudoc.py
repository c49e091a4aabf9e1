#!/usr/bin/env python3
"""gpudoc.py OUT DOC — write the results of a gpu/gpubench.sh run in OUT into
the Markdown page DOC (docs/bench/gpu.md).

Only the part of DOC between the two marker lines below is written; the rest
of the page (how to run, the hand-written history) is kept as it is. A DOC
without the markers gets them, after its first line; a missing DOC is
created. Everything comes from OUT: meta.json (the card, the date, the
parameters), parts.tsv, grng.jsonl with runs/NAME/{summary.json,metrics.csv},
torch-steps.jsonl, torch-race.jsonl, xla/{xla,torch}.jsonl and
xla/summary.txt, webgpu/gpubench.txt. Run it again on a kept OUT to rebuild
the section.
"""

import csv
import json
import os
import re
import statistics
import sys

BEGIN = "<!-- gpudoc: begin (written by gpu/gpudoc.py from a gpu/gpubench.sh run; edits between these lines are lost) -->"
END = "<!-- gpudoc: end -->"

MODELS = {  # key: (table name, description, batch, native train arguments)
    "mlp": ("MNIST MLP", "784-256-256-10:relu on MNIST", 128, "--data mnist --model 784-256-256-10:relu --batch 128"),
    "vit": ("ViT", "grng's default `vit` (7×7 patches, width 64, depth 4, 4 heads, MLP ×2, mean pooling; 138,890 "
            "parameters) on MNIST", 64, "--data mnist --model vit --batch 64"),
    "use": ("fine-tuning", "use-lite:tokens=32,rank=8,alpha=8: the Universal Sentence Encoder lite with LoRA "
            "adapters on q and v and a dense head, on sentiment", 32,
            "--data sentiment --model use-lite:tokens=32,rank=8,alpha=8 --batch 32"),
}


def jsonl(path):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def fmt(v, digits=2, unit=""):
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    return f"{v:.{digits}f}{unit}"


def grng_run(out, idx, warmup):
    """The figures of one native train run: step times from metrics.csv,
    the result from summary.json."""
    d = os.path.join(out, "runs", idx["run"])
    r = dict(idx)
    try:
        rows = list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))
        s = json.load(open(os.path.join(d, "summary.json")))
    except (OSError, ValueError):
        last = ""
        try:
            last = open(os.path.join(out, "runs", idx["run"] + ".log")).read().strip().splitlines()[-1]
        except (OSError, IndexError):
            pass
        r["error"] = f"no results: {last or 'see runs/' + idx['run'] + '.log'}"
        return r
    ms = [float(x["step_ms"]) for x in rows]
    timed = ms[warmup:] if len(ms) > warmup else ms[1:]
    hit = next((int(x["step"]) for x in rows if x["test_acc"] and float(x["test_acc"]) >= (s["config"].get("target") or 2)), None)
    res = s["result"]
    r.update(model=s["config"]["model"], opt=s["optimizer"], status=s["status"], error=s.get("error"),
             ms_median=statistics.median(timed) if timed else None, ms_mean=statistics.mean(timed) if timed else None,
             first_ms=ms[0] if ms else None, ms_mean_rest=statistics.mean(ms[1:]) if len(ms) > 1 else None,
             time_to_target_s=res.get("time_to_target_seconds"), steps_to_target=hit, test_acc=res.get("test_acc"),
             train_s=res.get("train_seconds"), steps=len(ms), rejected=res.get("rejected_steps"),
             device_name=s.get("device"), programs=res.get("programs"))
    return r


def hp_text(records, key):
    """The hyperparameters PyTorch ran with, as k=v."""
    hp = next((r[key] for r in records if key in r), None)
    return ", ".join(f"{k} {v:g}" for k, v in hp.items()) if hp else "not recorded"


def model_key(spec):
    if spec.startswith("vit"):
        return "vit"
    if spec.startswith("use-lite"):
        return "use"
    return "mlp"


def section(out):
    meta = json.load(open(os.path.join(out, "meta.json")))
    warmup = meta["warmup"]
    grng = [grng_run(out, i, warmup) for i in jsonl(os.path.join(out, "grng.jsonl"))]
    tsteps = jsonl(os.path.join(out, "torch-steps.jsonl"))
    trace = [r for r in jsonl(os.path.join(out, "torch-race.jsonl")) if r.get("what") == "race"]
    torch_meta = next((r for r in tsteps + trace), None)
    tdev = (torch_meta or {}).get("device", "")
    card = meta.get("card") or (tdev if tdev and not tdev.startswith("cpu") else "") or "none found (nvidia-smi gave no GPU)"
    L = []
    w = L.append
    if meta.get("cpu_mode"):
        w(f"## CPU mode run, {meta['date'][:10]}")
        w("")
        w("**A check that every part of the script runs, at tiny sizes, on a machine without a GPU "
          "(xla on SimpleGo, WebGPU on a CPU adapter, PyTorch on the CPU): not a measurement.**")
    else:
        w(f"## {card.split(',')[0]}, {meta['date'][:10]}")
    w("")
    w(f"- card: {card}")
    if torch_meta:
        w(f"- PyTorch {torch_meta['torch']} on {torch_meta['device']}, float32 with TF32 "
          f"{'on' if torch_meta.get('tf32') else 'off'}")
    dn = sorted({r['device_name'] for r in grng if r.get('device_name')})
    if dn:
        w("- grng devices: " + "; ".join(f"`{d}`" for d in dn))
    w(f"- host: {meta.get('cpu') or '?'}, {meta.get('cores')} cores; grng {meta.get('rev')}; run {meta['date']}")
    w(f"- xla precision mode: {meta['xla_mode']} "
      f"({'NVIDIA_TF32_OVERRIDE=0, IEEE float32 products' if meta['xla_mode'] == 'fp32' else 'XLA default, TF32 where the card has it'});"
      " WebGPU computes in float32")
    w("- written by `gpu/gpudoc.py` from the output of `bash gpu/gpubench.sh`" + (" with `CPU=1`" if meta.get("cpu_mode") else ""))
    parts = [l.rstrip("\n").split("\t", 1) for l in open(os.path.join(out, "parts.tsv"))] if os.path.exists(os.path.join(out, "parts.tsv")) else []
    for k, v in parts:
        w(f"- part {k}: {v}")
    w("")

    # --- per-step times
    w("### Per-step time")
    w("")
    w(f"Milliseconds a step, median (mean) over steps {warmup + 1}–{meta['steps']}"
      + (f" ({warmup + 1}–{meta['steps_use']} for the fine-tuning model)" if "use" in meta["models"] else "")
      + ", each run its own process. "
      "K-FAC is grng's `ngd` preset (factors every F steps, inverses every S by Cholesky in float64 on the "
      "host, factored Tikhonov damping adapted by Levenberg–Marquardt, KL clipping) and, in PyTorch, the K-FAC that "
      "`gpu/torchbench.py` writes on the same schedule and rules (Cholesky in float32 on the device), both at the "
      f"binary's `ngd` defaults ({hp_text(tsteps + trace, 'kfac_hp')}); PyTorch's AdamW at its `adamw` defaults "
      f"({hp_text(tsteps + trace, 'adamw_hp')}). The mean spreads K-FAC's refreshes over "
      "the steps, the median is a step without one. RING is grng's `ring` at its defaults (S = 8, Newton–Schulz).")
    w("")
    for m in meta["models"]:
        w(f"- {MODELS[m][0]}: {MODELS[m][1]}, batch {MODELS[m][2]}")
    w("")
    devs = meta["devices"]
    w("| model | batch | optimizer | " + " | ".join(f"grng {d}" for d in devs) + " | PyTorch |")
    w("| --- | ---: | --- | " + " | ".join("---:" for _ in devs) + " | ---: |")
    topt = {"adamw": "adamw", "ngd": "kfac"}
    for m in meta["models"]:
        name, _, batch, _ = MODELS[m]
        for o in meta["opts"]:
            cells = []
            for d in devs:
                r = next((r for r in grng if r["what"] == "steps" and r["device"] == d and r.get("model") and model_key(r["model"]) == m and r.get("opt") == o), None)
                if r is None:
                    cells.append("—")
                elif r.get("error") or r.get("rc"):
                    cells.append("failed")
                else:
                    cells.append(f"{fmt(r['ms_median'])} ({fmt(r['ms_mean'])})")
            t = next((t for t in tsteps if model_key(t["model"]) == m and t["opt"] == topt.get(o)), None)
            if m == "use":
                tc = "no port"
            elif t is None:
                tc = "—"
            else:
                tc = f"{fmt(t['ms_median'])} ({fmt(t['ms_mean'])})"
            label = {"adamw": "AdamW", "ngd": "K-FAC (ngd)", "ring": "RING"}.get(o, o)
            w(f"| {name} | {batch} | {label} | " + " | ".join(cells) + f" | {tc} |")
    w("")
    w("PyTorch has no row for the fine-tuning model: it is the TF.js Universal Sentence Encoder lite with LoRA "
      "adapters, and there is no PyTorch port of it. RING has no PyTorch implementation.")
    w("")
    w("Commands:")
    w("")
    w("```sh")
    for m in meta["models"]:
        n = meta["steps_use"] if m == "use" else meta["steps"]
        w(f"native train --device D {MODELS[m][3]} --opt O --steps {n} --checkpoint-every 0 --quiet --out DIR")
    w(f"python3 gpu/torchbench.py steps --data DATA --device {meta['torch_device']} --models mlp,vit --opts adamw,kfac "
      f"--steps {meta['steps']} --warmup {warmup}")
    w("```")
    w("")

    # --- GEMM
    xrows = jsonl(os.path.join(out, "xla", "xla.jsonl"))
    trows = jsonl(os.path.join(out, "xla", "torch.jsonl"))
    wtxt = ""
    for f in ("webgpu/gpubench.txt", "webgpu.log"):
        if os.path.exists(os.path.join(out, f)):
            wtxt = open(os.path.join(out, f)).read()
            break
    wg = {int(n): float(g) for n, g in re.findall(r"^webgpu gemm n=(\d+): ([\d.]+) GFLOP/s", wtxt, re.M)}
    wt = {int(n): float(g) for n, g in re.findall(r"^torch\s+gemm n=(\d+): ([\d.]+) GFLOP/s", wtxt, re.M)}
    cols = []  # (title, {n: GFLOP/s})
    for mode in ("fp32", "default"):
        d = {r["n"]: r["gflops"] for r in xrows if r.get("op") == "gemm" and r.get("label") == mode and "gflops" in r}
        if d:
            prec = next((r["mode"] for r in xrows if r.get("op") == "precision" and r.get("label") == mode), None)
            cols.append((f"grng xla {mode}" + (f" ({prec})" if prec else ""), d))
    if wg:
        cols.append(("grng webgpu (float32)", wg))
    for lab, title in (("highest", "PyTorch fp32"), ("high", "PyTorch TF32")):
        d = {r["n"]: r["gflops"] for r in trows if r.get("op") == "gemm" and r.get("label") == lab}
        if lab == "highest" and not d:
            d = wt
        if d:
            cols.append((title, d))
    w("### GEMM rates")
    w("")
    if cols:
        ns = sorted({n for _, d in cols for n in d})
        w("C = A·B, n×n float32, GFLOP/s (`gpu/xla/gpubench.sh`: xlabench -what gemm and torch.matmul; "
          "`gpu/webgpu/gpubench.sh`: the WebGPU device's tiled kernel).")
        w("")
        w("| n | " + " | ".join(t for t, _ in cols) + " |")
        w("| ---: | " + " | ".join("---:" for _ in cols) + " |")
        for n in ns:
            w(f"| {n} | " + " | ".join(fmt(d[n], 0 if d[n] >= 100 else 1) if n in d else "—" for _, d in cols) + " |")
    else:
        w("No GEMM figures in this run (parts xla and webgpu above).")
    w("")

    # --- race
    w(f"### Time to {100 * meta['target']:g}% test accuracy")
    w("")
    w(f"The MNIST MLP, batch 128, {meta['race_epochs']:g} epoch(s) of the full training set, the test set evaluated every "
      f"{meta['eval_every']} steps; {meta['race_rounds']} round(s), the runs of a round one after the other. "
      f"\"{100 * meta['target']:g}% at\" is the training time until the first evaluation at the target: the sum of the step "
      "times, the first step (where XLA compiles its programs and PyTorch warms up cuBLAS) included, the evaluations not "
      "(WebGPU builds its pipelines when the device opens, before the first step: that is in \"process\" only). "
      "\"process\" is the wall time of the whole run's process (start, data, device, compilation, the epoch, every "
      "evaluation). grng's figures are `native train`'s time_to_target_seconds; PyTorch's are measured the same way.")
    w("")
    w(f"| framework | optimizer | {100 * meta['target']:g}% at (s) | steps to it | first step (ms) | mean step after (ms) | test acc. % | process (s) |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    groups = []
    for d in meta["race_devices"]:
        for o in meta["race_opts"]:
            rs = [r for r in grng if r["what"] == "race" and r["device"] == d and r.get("opt") == o]
            groups.append((f"grng {d}", {"adamw": "AdamW", "ngd": "K-FAC (ngd)", "ring": "RING"}.get(o, o), rs, "grng"))
    for o in meta["torch_opts"]:
        rs = [r for r in trace if r["opt"] == o]
        groups.append(("PyTorch", {"adamw": "AdamW", "kfac": "K-FAC"}.get(o, o), rs, "torch"))

    def many(rs, key, digits):
        vals = [fmt(r.get(key), digits) if not (r.get("error") or r.get("rc")) else "failed" for r in rs]
        return ", ".join(vals) if vals else "—"

    for fw, o, rs, kind in groups:
        for r in rs:
            if kind == "grng":
                r["process_s"] = r["wall_ms"] / 1e3
            else:
                r["process_s"] = r["wall_ms"] / 1e3 if r.get("wall_ms") else None
                r["test_acc"] = r.get("test_acc")
        acc = [fmt(100 * r["test_acc"], 2) if r.get("test_acc") is not None else "—" for r in rs]
        w(f"| {fw} | {o} | {many(rs, 'time_to_target_s', 2)} | {many(rs, 'steps_to_target', 0)} | {many(rs, 'first_ms', 0)} | "
          f"{many(rs, 'ms_mean_rest', 2)} | {', '.join(acc) or '—'} | {many(rs, 'process_s', 1)} |")
    w("")
    w("Commands (rounds alternate the optimizers; one process a run):")
    w("")
    w("```sh")
    w(f"native train --device D --data mnist --model 784-256-256-10:relu --batch 128 --opt O --epochs {meta['race_epochs']:g} "
      f"--eval-every {meta['eval_every']} --target {meta['target']:g} --checkpoint-every 0 --quiet --out DIR")
    w(f"python3 gpu/torchbench.py race --data DATA --device {meta['torch_device']} --opts O --epochs {meta['race_epochs']:g} "
      f"--eval-every {meta['eval_every']} --target {meta['target']:g}")
    w("```")
    w("")
    fails = [r for r in grng if r.get("rc") or r.get("error")]
    if fails:
        w("Runs that failed: " + "; ".join(f"`{r['run']}` ({(r.get('error') or 'exit ' + str(r['rc']))[:160]})" for r in fails))
        w("")
    for title, f in (("gpu/xla/gpubench.sh summary", "xla/summary.txt"), ("gpu/webgpu/gpubench.sh output", "webgpu/gpubench.txt")):
        p = os.path.join(out, f)
        if os.path.exists(p) and os.path.getsize(p):
            w(f"<details><summary>{title}</summary>")
            w("")
            w("```")
            # the output without the machine's paths and the driver's noise
            keep = [l for l in open(p).read().rstrip().splitlines()
                    if not re.match(r"(VK_DRIVER_FILES=|error: XDG_RUNTIME_DIR|gpubench: libvulkan)", l)]
            w("\n".join(keep))
            w("```")
            w("")
            w("</details>")
            w("")
    return "\n".join(L).rstrip() + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gpudoc.py OUT DOC")
    out, doc = sys.argv[1], sys.argv[2]
    body = section(out)
    old = open(doc).read() if os.path.exists(doc) else "# On a GPU\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
    else:
        first, _, rest = old.partition("\n")
        head, tail = first + "\n\n", "\n\n" + rest.lstrip("\n")
    new = head + BEGIN + "\n\n" + body + "\n" + END + tail
    tmp = doc + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, doc)
    print(f"gpudoc: wrote {doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
