// loader.js starts grng's WebAssembly module (github.com/grng/grng/wasm) and keeps the
// status bar in step with window.grng, the page's JS-visible state:
//
//   grng.phase       "loading" | "compiling" | "starting" | "ready" | "error" | "exited"
//   grng.ready       true once Go has chosen the device and installed train()
//   grng.error       why the page failed ("" when it did not)
//   grng.requested   the ?device= parameter: "auto" (default), "cpu" or "webgpu"
//   grng.device      the active device: "webgpu" or "cpu"
//   grng.deviceName  its core.Device name, e.g. "webgpu (browser)" or "cpu"
//   grng.fallback    why the CPU is used when WebGPU is not ("" otherwise)
//   grng.adapter     the WebGPU adapter's info {vendor, architecture, device,
//                    description, isFallbackAdapter}, or null
//   grng.busy, opt, runDevice, step, steps, loss, acc, testLoss, stepsPerSec
//                    the training run in progress or the last one; runError
//                    why the last one failed
//   grng.frames      frames the UI has drawn; grng.ui {view, state}: its view
//                    and its state in URL-parameter form
//   grng.gpuErrors   WebGPU errors seen (uncaptured: validation errors of
//                    submitted work); gpuErrorLog the first few messages
//   grng.timing      milliseconds since navigation start: wasmReady (module
//                    compiled), goStarted, uiReady (the UI built), firstFrame,
//                    deviceReady
//   grng.train({opt, steps, device, seed, batch, hp, model, evalEvery, schedule})
//                    a Promise of the result of a training run on digits
//   grng.lesson      "finetune" with ?lesson=finetune (the fine-tuning
//                    lesson, no canvas), "" otherwise
//   grng.ft          the fine-tuning lesson: phase ("fetching the model",
//                    "fetching the sentences", "building the models",
//                    "training", "paused", "done", "error"), error, device,
//                    config {tokens, batch, rank, alpha, heldOut, evalEvery,
//                    steps, seed}, files [{name, bytes}], modelBytes, modelMs (the
//                    model fetched and loaded), modelFetchMs (of which the
//                    fetches), dataBytes, dataMs, trainN, buildMs (the two
//                    models and optimizers built, the sentence classified),
//                    firstStep (ms after navigation), text (the sentence
//                    last classified), models [{opt, hp, note, step,
//                    loss, acc (held-out; null before the first
//                    evaluation), accStep, probs, stepsPerSec}]
//   grng.ftText      the sentence the lesson classifies (the text box sets it)
//   grng.ftPaused    true pauses the lesson's training (the Pause button)
"use strict";
(() => {
  const params = new URLSearchParams(location.search);
  const requested = (params.get("device") || "auto").toLowerCase();
  const lesson = params.get("lesson") === "finetune" ? "finetune" : "";
  const g = (window.grng = {
    version: 1,
    lesson,
    ft: null,
    ftText: "",
    ftPaused: false,
    phase: "loading",
    ready: false,
    error: "",
    requested,
    device: "",
    deviceName: "",
    fallback: "",
    adapter: null,
    optimizers: [],
    busy: false,
    opt: "",
    runDevice: "",
    step: 0,
    steps: 0,
    loss: null,
    acc: null,
    testLoss: null,
    stepsPerSec: null,
    runError: "",
    frames: 0,
    ui: { view: "", state: "" },
    timing: {},
    train: () => Promise.reject(new Error("grng is not ready yet (phase " + g.phase + ")")),
  });

  const $ = (id) => document.getElementById(id);

  // Count the WebGPU errors that no error scope catches (validation errors
  // of a command buffer surface only here, after the submit): the Go side
  // reads grng.gpuErrors around its self-test and every training run, so
  // that a broken device is never reported as a working one.
  g.gpuErrors = 0;
  g.gpuErrorLog = [];
  g.gpuLost = "";
  if (window.GPUAdapter && GPUAdapter.prototype.requestDevice) {
    const requestDevice = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = async function (...args) {
      const dev = await requestDevice.apply(this, args);
      dev.addEventListener("uncapturederror", (ev) => {
        ev.preventDefault(); // logged here, a few times, not once per error
        g.gpuErrors++;
        const msg = String((ev.error && ev.error.message) || ev.error);
        if (g.gpuErrorLog.length < 5) {
          g.gpuErrorLog.push(msg);
          console.error("grng: WebGPU error " + g.gpuErrors + ": " + msg);
        }
      });
      dev.lost.then((info) => {
        g.gpuLost = (info && (info.message || info.reason)) || "lost";
      });
      return dev;
    };
  }

  // adapterInfo asks the browser for a WebGPU adapter only to describe it:
  // the Go side opens its own (gpu/webgpu on the JS backend, whose adapter
  // info is empty).
  async function adapterInfo() {
    if (requested === "cpu" || !navigator.gpu) return null;
    try {
      const a = await navigator.gpu.requestAdapter();
      if (!a) return null;
      const i = a.info || {};
      return {
        vendor: i.vendor || "",
        architecture: i.architecture || "",
        device: i.device || "",
        description: i.description || "",
        isFallbackAdapter: !!(i.isFallbackAdapter ?? a.isFallbackAdapter),
      };
    } catch (e) {
      return null;
    }
  }

  async function instantiate(go) {
    const resp = await fetch("grng.wasm");
    if (!resp.ok) {
      throw new Error("grng.wasm: HTTP " + resp.status + ": " + (await resp.text()));
    }
    g.phase = "compiling";
    if (WebAssembly.instantiateStreaming) {
      return WebAssembly.instantiateStreaming(resp, go.importObject);
    }
    return WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject);
  }

  async function start() {
    if (typeof Go !== "function") throw new Error("wasm_exec.js did not load");
    const go = new Go();
    go.argv = ["grng"];
    const [adapter, result] = await Promise.all([adapterInfo(), instantiate(go)]);
    g.adapter = adapter;
    g.timing.wasmReady = performance.now();
    // The WebGPU binding's JS backend reads wasm.instance.exports.mem.
    window.wasm = result;
    g.phase = "starting";
    g.timing.goStarted = performance.now();
    await go.run(result.instance);
    g.phase = "exited";
    g.ready = false;
    if (!g.error) g.error = "the Go program exited (see the console)";
  }

  const fmt = (v, digits) => (v === null || v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits));

  function render() {
    const pill = $("grng-device");
    const run = $("grng-run");
    if (!pill) return;
    let cls = "pill";
    if (g.error) {
      pill.textContent = "error";
      cls += " error";
    } else if (!g.device) {
      pill.textContent = g.phase + "…";
    } else if (g.device === "webgpu") {
      const a = g.adapter;
      const what = a ? [a.vendor, a.architecture].filter(Boolean).join(" ") || a.description : "";
      pill.textContent = "WebGPU" + (what ? " · " + what : "") + (a && a.isFallbackAdapter ? " (fallback adapter)" : "");
      cls += " webgpu";
    } else {
      pill.textContent = "CPU" + (g.fallback ? " · " + g.fallback : "");
      cls += " cpu";
    }
    pill.className = cls;
    pill.title = g.fallback || g.deviceName;
    if (g.error) {
      run.textContent = g.error;
    } else if (lesson) {
      const ft = g.ft;
      run.textContent = !ft ? g.phase + "…" : ft.error ? "fine-tuning failed: " + ft.error : "fine-tuning: " + ft.phase;
    } else if (g.runError && !g.busy) {
      run.textContent = "training failed: " + g.runError;
    } else if (g.opt) {
      run.textContent =
        `digits · ${g.opt} on ${g.runDevice} · step ${g.step}/${g.steps} · loss ${fmt(g.loss, 4)}` +
        ` · test acc ${g.acc === null ? "–" : fmt(100 * g.acc, 1) + "%"}` +
        (g.stepsPerSec ? ` · ${fmt(g.stepsPerSec, 1)} steps/s` : "") +
        (g.busy ? " …" : "");
    } else if (g.ready) {
      run.textContent = "ready: train an MLP on the scikit-learn digits, or use the labs above";
    } else {
      run.textContent = g.phase + "…";
    }
    const btn = $("grng-train");
    btn.disabled = !g.ready || g.busy;
    const sel = $("grng-opt");
    if (g.optimizers.length && sel.options.length !== g.optimizers.length) {
      sel.replaceChildren(...g.optimizers.map((n) => new Option(n, n, n === "ring", n === "ring")));
    }
    const lk = $("grng-lesson");
    const lp = new URLSearchParams(location.search);
    if (lesson) {
      lp.delete("lesson");
      lk.textContent = "back to the labs";
    } else {
      lp.set("lesson", "finetune");
      lk.textContent = "fine-tune a transformer";
    }
    const lq = lp.toString();
    lk.href = lq ? "?" + lq : location.pathname;
    if (lesson) renderFinetune();
    const sw = $("grng-switch");
    const p = new URLSearchParams(location.search);
    if (g.device === "cpu" && requested === "cpu") {
      p.delete("device");
      sw.textContent = "try WebGPU";
    } else {
      p.set("device", "cpu");
      sw.textContent = "use the CPU";
    }
    const q = p.toString();
    sw.href = q ? "?" + q : location.pathname;
  }

  const mib = (n) => (n / (1 << 20)).toFixed(1) + " MiB";
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");

  // renderFinetune shows grng.ft in the lesson's panel.
  function renderFinetune() {
    const ft = g.ft;
    const st = $("grng-ft-status");
    if (!ft) {
      st.textContent = g.error || "starting…";
      return;
    }
    const c = ft.config || {};
    let msg = ft.error ? "Failed: " + ft.error : ft.phase.charAt(0).toUpperCase() + ft.phase.slice(1);
    if (ft.device) msg += " on " + (ft.device === "webgpu" ? "WebGPU" : "the CPU");
    if (ft.trainN) msg += ` · ${ft.trainN} training sentences, batches of ${c.batch}, ${c.tokens} tokens a sentence`;
    if (ft.firstStep) msg += ` · first step ${(ft.firstStep / 1000).toFixed(1)} s after the page opened`;
    st.textContent = msg;
    $("grng-ft-pause").textContent = g.ftPaused ? "Resume" : "Pause";
    $("grng-ft-pause").disabled = !ft.models || ft.phase === "done";
    (ft.models || []).forEach((m, i) => {
      const el = $("grng-ft-m" + i);
      if (!el) return;
      el.querySelector(".note").textContent = m.note;
      const [neg, pos] = m.probs || [null, null];
      const pred = el.querySelector(".pred");
      if (pos === null) {
        pred.textContent = "–";
      } else {
        pred.textContent = (pos >= 0.5 ? "positive " + pct(pos) : "negative " + pct(neg)) + (ft.text !== g.ftText ? " …" : "");
      }
      el.querySelector("meter").value = pos === null ? 0.5 : pos;
      el.querySelector(".stats").textContent =
        `step ${m.step}/${c.steps} · batch loss ${fmt(m.loss, 3)} · held-out accuracy ` +
        (m.acc === null ? `at step ${c.evalEvery}` : `${pct(m.acc)} (${c.heldOut} sentences, at step ${m.accStep})`) +
        (m.stepsPerSec ? ` · ${fmt(m.stepsPerSec, 2)} steps/s` : "");
    });
    if (ft.files) {
      $("grng-ft-sizes").textContent =
        `Model: ${ft.files.length} files, ${mib(ft.modelBytes)} (${ft.files.map((f) => f.name + " " + mib(f.bytes)).join(", ")}),` +
        ` fetched and loaded by the Go loader in ${(ft.modelMs / 1000).toFixed(1)} s` +
        ` (the fetches ${(ft.modelFetchMs / 1000).toFixed(1)} s); sentences ${mib(ft.dataBytes || 0)}` +
        (ft.dataMs ? `, fetched and tokenized in ${(ft.dataMs / 1000).toFixed(1)} s` : "") + ".";
    }
  }

  // The status bar wraps where the page is narrow: keep the body (and so
  // ebiten's canvas) at the viewport's height less the bar's real height,
  // and tell ebiten, which sizes its canvas on window resizes only.
  let barHeight = -1;
  function fitBody() {
    const bar = $("grng-bar");
    if (!bar) return;
    const h = Math.ceil(bar.getBoundingClientRect().height);
    if (h === barHeight) return;
    barHeight = h;
    document.documentElement.style.setProperty("--grng-bar-h", h + "px");
    window.dispatchEvent(new Event("resize"));
  }

  function wire() {
    if (window.ResizeObserver) new ResizeObserver(fitBody).observe($("grng-bar"));
    fitBody();
    if (lesson) {
      $("grng-digits").hidden = true;
      $("grng-ft").hidden = false;
      const box = $("grng-ft-text");
      g.ftText = box.value;
      box.addEventListener("input", () => {
        g.ftText = box.value;
      });
      $("grng-ft-pause").addEventListener("click", () => {
        g.ftPaused = !g.ftPaused;
        render();
      });
    }
    $("grng-train").addEventListener("click", () => {
      const steps = Math.max(1, Math.min(100000, parseInt($("grng-steps").value, 10) || 200));
      g.train({ opt: $("grng-opt").value, steps }).catch((e) => {
        g.runError = String((e && e.message) || e);
        render();
      });
    });
    setInterval(render, 100);
    render();
  }

  wire();
  start().catch((e) => {
    g.phase = "error";
    g.error = String((e && e.message) || e);
    console.error("grng:", e);
    render();
  });
})();
