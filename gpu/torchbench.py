#!/usr/bin/env python3
"""torchbench.py — PyTorch beside grng on the same models, batches and data.

The PyTorch half of gpu/gpubench.sh. It builds, in PyTorch, the models that
grng's `native train` builds, trains them on MNIST read from grng's data
folder, and prints one JSON object a line:

  steps  per-step time (ms; median and mean after warm-up) of AdamW and K-FAC
         on the MNIST MLP 784-256-256-10:relu and on grng's default ViT
         (nn "vit": patch 7, width 64, depth 4, heads 4, MLP ratio 2, mean
         pooling, no class token), on real MNIST batches;
  race   one epoch of the MNIST MLP, evaluating the test set every N steps:
         the training time (the sum of the step times, the first step
         included, the evaluations not) at the first evaluation that reaches
         the target accuracy, as `native train --target` reports it.

The models are written here to match grng's: the same layers, activations
(GELU in its tanh form), initialisation (He normal for layers followed by
ReLU/GELU and for the patch embedding, Xavier uniform otherwise, zero biases,
positions N(0, 0.02²)), layer-norm ε (1e-5), loss (mean cross-entropy) and
linear learning-rate decay to 0 over the run (native train's default
--schedule linear).

AdamW is torch.optim.AdamW at grng's defaults (lr 3e-3, β 0.9/0.999, ε 1e-8,
weight decay 0.01 on every parameter, as grng decays its bias rows too).

K-FAC is written here (class KFAC) on the schedule and rules of grng's `ngd`
preset (native train --list-hp ngd; gpu/gpubench.sh passes that binary's
defaults with --kfac-hp, and adamw's with --adamw-hp, and values this file
does not implement are refused; the defaults below are ngd's when it was
written): Kronecker factors of every linear layer
(its bias as an extra input column; over tokens, every token a row:
K-FAC-expand), diagonal blocks for the layer norms and position embeddings,
from labels sampled from the model (true Fisher) every F = 10 steps into
running averages (decay 0.95); inverses of the damped factors every S = 100
steps by Cholesky in float32 on the device; factored Tikhonov damping
λ_A = π√ρ, λ_G = √ρ/π (ρ = 1e-4, π balancing the factors' mean traces), held
between inversions; ρ adapted by Levenberg–Marquardt (φ = 0.995 per step,
checked every T = 5 steps on the same batch against the damped Kronecker
model); step α/L with α = 1 and L the number of blocks; KL clipping 0.01.
What grng does and this does not: it re-inverts when ρ moves by more than 2×
between refreshes and backs off from non-finite steps (neither happens in
these runs), and it inverts in float64 on the host. The clip factor is
computed on the device (no host sync a step), as a PyTorch user would.

Usage:
  torchbench.py steps --data DIR [--device cuda] [--models mlp,vit] [--opts adamw,kfac]
                      [--steps 220] [--warmup 20]
  torchbench.py check --data DIR [--device cuda]   (K-FAC's statistics against brute force)
  torchbench.py race  --data DIR [--device cuda] [--opts adamw,kfac] [--target 0.97]
                      [--epochs 1] [--eval-every 10] [--batch 128]

DIR is grng's data folder (GRNG_DATA), holding mnist/*-ubyte.gz.
"""

import argparse
import gzip
import json
import math
import os
import platform
import statistics
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# --- data ---------------------------------------------------------------------


def read_idx(path):
    """An IDX file (gzip or plain) as a uint8 tensor of its shape."""
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    t = torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8)
    return t.reshape(dims)


def load_mnist(data_dir, dev):
    """MNIST train and test on dev: images n×784 float32 in [0, 1] (grng's
    scaling of unsigned bytes), labels int64."""
    d = os.path.join(data_dir, "mnist")

    def part(prefix):
        names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        out = []
        for n in names:
            p = os.path.join(d, n + ".gz")
            if not os.path.exists(p):
                p = os.path.join(d, n)
            out.append(read_idx(p))
        x = out[0].reshape(out[0].shape[0], -1).float().div_(255)
        return x.to(dev), out[1].long().to(dev)

    return part("train"), part("t10k")


# --- models (grng's, written in PyTorch) -------------------------------------------


def dense(i, o, act):
    """nn.Linear initialised as grng's nn.Dense.Init: He normal before ReLU or
    GELU, Xavier uniform otherwise; zero bias."""
    l = nn.Linear(i, o)
    with torch.no_grad():
        if act in ("relu", "gelu"):
            l.weight.normal_(0, math.sqrt(2 / i))
        else:
            lim = math.sqrt(6 / (i + o))
            l.weight.uniform_(-lim, lim)
        l.bias.zero_()
    return l


class MLP(nn.Module):
    """784-256-256-10:relu."""

    def __init__(self, widths=(784, 256, 256, 10)):
        super().__init__()
        n = len(widths) - 1
        self.layers = nn.ModuleList(dense(widths[i], widths[i + 1], "relu" if i < n - 1 else "identity") for i in range(n))

    def forward(self, x):
        for i, l in enumerate(self.layers):
            x = l(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class PosEmbed(nn.Module):
    """Learned positions added to the tokens (grng: nn.PositionEmbedding)."""

    def __init__(self, t, c):
        super().__init__()
        self.e = nn.Parameter(torch.randn(t, c) * 0.02)

    def forward(self, x):
        return x + self.e


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v, o projections (so that
    each is a Kronecker block, as in grng's nn.Attention)."""

    def __init__(self, c, heads):
        super().__init__()
        self.h = heads
        self.q, self.k, self.v, self.o = (dense(c, c, "identity") for _ in range(4))

    def forward(self, x):
        m, t, c = x.shape
        h, d = self.h, c // self.h

        def split(z):
            return z.reshape(m, t, h, d).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        if hasattr(F, "scaled_dot_product_attention"):
            a = F.scaled_dot_product_attention(q, k, v)
        else:
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1) @ v
        return self.o(a.transpose(1, 2).reshape(m, t, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + att(LN x), then x + down(gelu(up(LN x)))."""

    def __init__(self, c, heads, ratio):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c, eps=1e-5), nn.LayerNorm(c, eps=1e-5)
        self.att = Attention(c, heads)
        self.up, self.down = dense(c, ratio * c, "gelu"), dense(ratio * c, c, "identity")

    def forward(self, x):
        x = x + self.att(self.ln1(x))
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class ViT(nn.Module):
    """grng's default "vit" (core/nn/vit.go) on 28×28×1 images: 7×7 patches
    embedded by a linear map (grng: a 7×7 stride-7 conv, He normal), 16
    learned positions, 4 blocks of width 64 with 4 heads and MLP ratio 2, a
    final layer norm, mean pooling over the patches, a dense classifier."""

    def __init__(self, side=28, chans=1, patch=7, width=64, depth=4, heads=4, ratio=2, classes=10):
        super().__init__()
        self.side, self.chans, self.p = side, chans, patch
        self.t = (side // patch) ** 2
        self.embed = dense(patch * patch * chans, width, "relu")  # He normal, as InitKaiming
        self.pos = PosEmbed(self.t, width)
        self.blocks = nn.ModuleList(Block(width, heads, ratio) for _ in range(depth))
        self.ln = nn.LayerNorm(width, eps=1e-5)
        self.out = dense(width, classes, "identity")

    def forward(self, x):
        m, p, s, c = x.shape[0], self.p, self.side, self.chans
        x = x.reshape(m, s // p, p, s // p, p, c).permute(0, 1, 3, 2, 4, 5).reshape(m, self.t, p * p * c)
        x = self.pos(self.embed(x))
        for b in self.blocks:
            x = b(x)
        return self.out(self.ln(x).mean(dim=1))


MODELS = {"mlp": ("784-256-256-10:relu", MLP, 128), "vit": ("vit", ViT, 64)}


# --- K-FAC (grng's ngd preset, in PyTorch) ----------------------------------------------


class KFAC:
    """K-FAC on the schedule and damping of grng's ngd (see the module doc)."""

    def __init__(self, model, lr=1.0, rho=1e-4, phi=0.995, T=5, S=100, Fevery=10, decay=0.95, klclip=0.01):
        self.model, self.lr, self.rho, self.phi, self.T, self.S, self.F = model, lr, rho, phi, T, S, Fevery
        self.rho0 = rho
        self.decay, self.klclip = decay, klclip
        self.k = 0
        self.capture = False
        self.kron, self.diag = [], []  # [module, state dict]
        covered = set()
        for mod in model.modules():
            if isinstance(mod, nn.Linear):
                self.kron.append([mod, {}])
                mod.register_forward_hook(self._hook)
                covered.update({id(mod.weight), id(mod.bias)})
            elif isinstance(mod, (nn.LayerNorm, PosEmbed)):
                self.diag.append([mod, {}])
                mod.register_forward_hook(self._hook)
                covered.update(id(p) for p in mod.parameters())
        left = [n for n, p in model.named_parameters() if id(p) not in covered]
        if left:
            raise ValueError(f"K-FAC has no block for {left}")
        # one block per weight matrix, as grng counts them (a layer norm has two)
        self.L = len(self.kron) + sum(len(list(m.parameters())) for m, _ in self.diag)

    def _hook(self, mod, inp, out):
        """On a factor step's forward pass: keep the module's input and
        output (the sampled-label pass asks for the gradients of the outputs)."""
        if self.capture:
            mod._kfac_in, mod._kfac_out = inp[0].detach(), out

    @staticmethod
    def _avg(st, key, batch, decay):
        if key in st:
            st[key].mul_(decay).add_(batch, alpha=1 - decay)
        else:
            st[key] = batch.clone()

    def _factors(self, logits, m):
        """The sampled-label backward pass and the running averages."""
        with torch.no_grad():
            ys = torch.multinomial(torch.softmax(logits.detach().float(), -1), 1).squeeze(1)
        # the errors of every block's output under the sampled labels (no
        # weight gradients: autograd computes only what is asked for)
        mods = [mod for mod, _ in self.kron + self.diag]
        outs = torch.autograd.grad(F.cross_entropy(logits, ys, reduction="sum"), [mod._kfac_out for mod in mods])
        for mod, g in zip(mods, outs):
            mod._kfac_gout = g
            del mod._kfac_out
        with torch.no_grad():
            for mod, st in self.kron:
                x = mod._kfac_in.reshape(-1, mod.in_features)
                x = torch.cat([x, torch.ones_like(x[:, :1])], 1)
                e = mod._kfac_gout.reshape(-1, mod.out_features)
                self._avg(st, "A", x.T @ x / x.shape[0], self.decay)
                self._avg(st, "G", e.T @ e / m, self.decay)
                del mod._kfac_in, mod._kfac_gout
            for mod, st in self.diag:
                gy = mod._kfac_gout
                if isinstance(mod, nn.LayerNorm):
                    x = mod._kfac_in
                    xh = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + mod.eps)
                    red = tuple(range(1, gy.dim() - 1))
                    gs = [(gy * xh).sum(red) if red else gy * xh, gy.sum(red) if red else gy]
                else:
                    gs = [gy]
                for i, g in enumerate(gs):
                    self._avg(st, i, (g * g).mean(0), self.decay)
                del mod._kfac_in, mod._kfac_gout

    def _invert(self):
        """Damped inverses by Cholesky (float32, on the device); the
        damping is held until the next inversion."""
        r = math.sqrt(self.rho)
        with torch.no_grad():
            for mod, st in self.kron:
                A, G = st["A"], st["G"]
                pi = math.sqrt((A.diagonal().sum().item() / A.shape[0]) / max(G.diagonal().sum().item() / G.shape[0], 1e-30))
                pi = min(max(pi, 1e-4), 1e4)
                for key, M, lam in (("Ai", A, max(pi * r, 1e-8)), ("Gi", G, max(r / pi, 1e-8))):
                    D = M + lam * torch.eye(M.shape[0], device=M.device, dtype=M.dtype)
                    c, info = torch.linalg.cholesky_ex(D)
                    if info.item() != 0:  # not positive definite in float32: float64 once
                        c = torch.linalg.cholesky(D.double())
                        st[key] = torch.cholesky_inverse(c).float()
                    else:
                        st[key] = torch.cholesky_inverse(c)

    def step(self, x, y, sched):
        """One step on (x, y) with the learning-rate schedule factor sched;
        returns the loss tensor (not read)."""
        model, k = self.model, self.k
        model.zero_grad(set_to_none=True)
        factors = k % self.F == 0
        self.capture = factors
        logits = model(x)
        self.capture = False
        loss = F.cross_entropy(logits, y)
        loss.backward(retain_graph=factors)
        if factors:
            self._factors(logits, x.shape[0])
        if k % self.S == 0:
            self._invert()
        lm = (k + 1) % self.T == 0
        with torch.no_grad():
            deltas, gtd = [], 0
            for mod, st in self.kron:
                g = torch.cat([mod.weight.grad, mod.bias.grad[:, None]], 1)  # out × (in+1)
                d = st["Gi"] @ g @ st["Ai"]
                deltas.append((mod, d))
                gtd = gtd + (g * d).sum()
            for mod, st in self.diag:
                for i, p in enumerate(mod.parameters()):
                    d = p.grad / (st[i] + max(self.rho, 1e-8))
                    deltas.append((p, d))
                    gtd = gtd + (p.grad * d).sum()
            eta = self.lr / self.L
            # KL clip ν = min(1, √(c/(η²⟨g, Δ⟩))), on the device
            eta_t = eta * torch.clamp(torch.sqrt(self.klclip / (eta * eta * gtd.abs() + 1e-30)), max=1.0)

            def move(s):  # w -= s·Δ, s a 0-d tensor
                for p, d in deltas:
                    if isinstance(p, nn.Linear):
                        p.weight.sub_(s * d[:, :-1])
                        p.bias.sub_(s * d[:, -1])
                    else:
                        p.sub_(s * d)

            if lm:
                # grng's order: the whole step, the check on the same batch,
                # then the schedule's shrink of the step.
                move(eta_t)
                after = F.cross_entropy(model(x), y).item()
                e = eta_t.item()
                pred = -e * gtd.item() + 0.5 * e * e * gtd.item()
                r = (after - loss.item()) / pred if pred < 0 else float("nan")
                w = self.phi**self.T
                if r > 0.75:
                    self.rho *= w
                elif not r >= 0.25:
                    self.rho /= w
                self.rho = min(max(self.rho, 1e-10), 1e4)
                if sched != 1:
                    move(-(1 - sched) * eta_t)
            else:
                move(sched * eta_t)
        self.k += 1
        return loss


class AdamW:
    """torch.optim.AdamW at grng's adamw defaults, with the schedule factor."""

    def __init__(self, model, lr=3e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.01):
        self.model, self.lr = model, lr
        kw = {"foreach": True} if next(model.parameters()).is_cuda else {}
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd, **kw)

    @classmethod
    def from_hp(cls, model, hp):
        """From grng's adamw hyperparameters (native train --list-hp adamw)."""
        if hp.get("warmup", 0) != 0:
            raise ValueError("adamw: warmup > 0 is not written here")
        return cls(model, **{k: hp[k] for k in ("lr", "beta1", "beta2", "eps", "wd") if k in hp})

    def step(self, x, y, sched):
        for g in self.opt.param_groups:
            g["lr"] = self.lr * sched
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss


OPTS = {"adamw": AdamW, "kfac": KFAC}

# What this file implements of grng's ngd hyperparameters; any other value
# of these is refused rather than silently run differently.
KFAC_FIXED = {"damping": 2, "fisher": 0, "reduce": 0, "eigen": 0, "gamma": 0, "momentum": 0, "follow": 0}


def kfac_from_hp(model, hp):
    """K-FAC from grng's ngd hyperparameters (native train --list-hp ngd)."""
    for k, want in KFAC_FIXED.items():
        if k in hp and hp[k] != want:
            raise ValueError(f"kfac: {k}={hp[k]:g} is not written here (only {k}={want})")
    names = {"lr": "lr", "rho": "rho", "phi": "phi", "T": "T", "S": "S", "F": "Fevery", "decay": "decay", "klclip": "klclip"}
    kw = {names[k]: (int(v) if k in ("T", "S", "F") else v) for k, v in hp.items() if k in names}
    return KFAC(model, **kw)


def parse_hp(spec):
    """grng's --hp form, "k=v,k=v", as a dict of floats."""
    out = {}
    for kv in filter(None, (x.strip() for x in (spec or "").split(","))):
        k, _, v = kv.partition("=")
        out[k] = float(v)
    return out


def make_opt(name, model, a):
    if name == "adamw":
        return AdamW.from_hp(model, parse_hp(a.adamw_hp))
    if name == "kfac":
        return kfac_from_hp(model, parse_hp(a.kfac_hp))
    raise ValueError(f"unknown optimizer {name} (want adamw or kfac)")


def hp_record(opt):
    if isinstance(opt, KFAC):
        return {"kfac_hp": {"lr": opt.lr, "rho": opt.rho0, "phi": opt.phi, "T": opt.T, "S": opt.S, "F": opt.F,
                            "decay": opt.decay, "klclip": opt.klclip}}
    g = opt.opt.param_groups[0]
    return {"adamw_hp": {"lr": opt.lr, "beta1": g["betas"][0], "beta2": g["betas"][1], "eps": g["eps"], "wd": g["weight_decay"]}}


# --- runs ---------------------------------------------------------------------------


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def device_name(dev):
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def header(dev):
    return {"impl": "torch", "torch": torch.__version__, "device": device_name(dev),
            "tf32": bool(dev.type == "cuda" and torch.backends.cuda.matmul.allow_tf32)}


def batches(n, batch, gen, dev):
    """Shuffled index batches over n samples, epoch after epoch (dropping a
    short last batch)."""
    while True:
        perm = torch.randperm(n, generator=gen).to(dev)
        for i in range(0, n - batch + 1, batch):
            yield perm[i : i + batch]


def evaluate(model, x, y, chunk=2000):
    with torch.no_grad():
        hit = 0
        for i in range(0, x.shape[0], chunk):
            hit += (model(x[i : i + chunk]).argmax(1) == y[i : i + chunk]).sum().item()
    return hit / x.shape[0]


def cmd_steps(a, dev):
    (xtr, ytr), _ = load_mnist(a.data, dev)
    for mname in a.models.split(","):
        spec, cls, default_batch = MODELS[mname]
        batch = a.batch or default_batch
        for oname in a.opts.split(","):
            torch.manual_seed(a.seed)
            model = cls().to(dev)
            opt = make_opt(oname, model, a)
            gen = torch.Generator().manual_seed(a.seed)
            it = batches(xtr.shape[0], batch, gen, dev)
            ms, loss0, loss = [], None, None
            for k in range(a.steps):
                idx = next(it)
                sync(dev)
                t0 = time.perf_counter()  # the batch gather is timed, as grng's step time counts it
                loss = opt.step(xtr[idx], ytr[idx], 1 - k / a.steps)
                sync(dev)
                ms.append(1e3 * (time.perf_counter() - t0))
                if k == 0:
                    loss0 = loss.item()
            timed = ms[a.warmup :]
            r = header(dev)
            r.update(what="steps", model=spec, batch=batch, opt=oname, steps=a.steps, warmup=a.warmup,
                     ms_median=statistics.median(timed), ms_mean=statistics.mean(timed), first_ms=ms[0],
                     loss_first=loss0, loss_last=loss.item(), params=sum(p.numel() for p in model.parameters()), **hp_record(opt))
            if oname == "kfac":
                r.update(blocks=opt.L, rho_last=opt.rho)
            print(json.dumps(r), flush=True)
            del model, opt


def cmd_race(a, dev):
    (xtr, ytr), (xte, yte) = load_mnist(a.data, dev)
    spec, cls, _ = MODELS["mlp"]
    total = int(a.epochs * xtr.shape[0]) // a.batch
    for i, oname in enumerate(a.opts.split(",")):
        torch.manual_seed(a.seed)
        wall0 = time.perf_counter()
        start_ns = a.process_start_ns if i == 0 else time.time_ns()  # the process's start for its first run
        model = cls().to(dev)
        opt = make_opt(oname, model, a)
        gen = torch.Generator().manual_seed(a.seed)
        it = batches(xtr.shape[0], a.batch, gen, dev)
        train_s, hit_s, hit_step, hit_wall, first_ms, acc = 0.0, None, None, None, None, float("nan")
        ms = []
        for k in range(total):
            idx = next(it)
            sync(dev)
            t0 = time.perf_counter()
            opt.step(xtr[idx], ytr[idx], 1 - k / total)
            sync(dev)
            dt = time.perf_counter() - t0
            ms.append(1e3 * dt)
            train_s += dt
            if (k + 1) % a.eval_every == 0 or k + 1 == total:
                acc = evaluate(model, xte, yte)
                if hit_s is None and acc >= a.target:
                    hit_s, hit_step, hit_wall = train_s, k + 1, time.perf_counter() - wall0
                    if a.stop:
                        break
        r = header(dev)
        r.update(what="race", round=a.round, model=spec, batch=a.batch, opt=oname, epochs=a.epochs, target=a.target,
                 eval_every=a.eval_every, steps=len(ms), time_to_target_s=hit_s, steps_to_target=hit_step,
                 wall_to_target_s=hit_wall, first_ms=ms[0], ms_mean_rest=statistics.mean(ms[1:]) if len(ms) > 1 else None,
                 train_s=train_s, test_acc=acc, wall_ms=(time.time_ns() - start_ns) / 1e6, **hp_record(opt))
        print(json.dumps(r), flush=True)
        del model, opt


def cmd_check(a, dev):
    """The K-FAC statistics written by hand against brute force, on a ViT
    and 4 random images: the diagonal blocks (layer norms, positions)
    against per-sample gradients taken one sample at a time, the
    classifier's Γ against softmax − one-hot of the sampled labels."""
    torch.manual_seed(a.seed)
    model = ViT().to(dev)
    opt = KFAC(model, decay=0.0)
    x = torch.rand(4, 784, device=dev)
    opt.capture = True
    logits = model(x)
    opt.capture = False
    torch.manual_seed(a.seed + 1)
    opt._factors(logits, 4)
    torch.manual_seed(a.seed + 1)
    ys = torch.multinomial(torch.softmax(logits.detach(), -1), 1).squeeze(1)
    worst = 0.0
    for mod, st in opt.diag:
        ps = list(mod.parameters())
        want = [torch.zeros_like(p) for p in ps]
        for i in range(4):
            gs = torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), ys[i : i + 1], reduction="sum"), ps)
            for w, g in zip(want, gs):
                w += g * g / 4
        for j, w in enumerate(want):
            worst = max(worst, ((st[j] - w).abs().max() / w.abs().max()).item())
    e = torch.softmax(logits.detach(), -1) - F.one_hot(ys, 10).float()
    G = opt.kron[-1][1]["G"]
    gerr = ((G - e.T @ e / 4).abs().max() / (e.T @ e / 4).abs().max()).item()
    ok = worst < 1e-4 and gerr < 1e-4
    print(json.dumps({"what": "check", "diag_max_rel_err": worst, "classifier_G_rel_err": gerr, "ok": ok}))
    if not ok:
        sys.exit("torchbench: K-FAC statistics do not match the brute-force ones")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("steps", "race", "check"):
        s = sub.add_parser(name)
        s.add_argument("--data", required=True, help="grng's data folder, holding mnist/")
        s.add_argument("--device", default="cuda", help="cuda or cpu")
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--tf32", action="store_true", help="allow TF32 products (default: IEEE float32, as grng's fp32 rows)")
        s.add_argument("--adamw-hp", default="", help="grng's adamw hyperparameters, \"k=v,...\" (the defaults of native train --list-hp adamw)")
        s.add_argument("--kfac-hp", default="", help="grng's ngd hyperparameters, \"k=v,...\" (the defaults of native train --list-hp ngd)")
    s = sub.choices["steps"]
    s.add_argument("--models", default="mlp,vit")
    s.add_argument("--opts", default="adamw,kfac")
    s.add_argument("--steps", type=int, default=220)
    s.add_argument("--warmup", type=int, default=20)
    s.add_argument("--batch", type=int, default=0, help="0: the model's batch (MLP 128, ViT 64)")
    s = sub.choices["race"]
    s.add_argument("--opts", default="adamw,kfac")
    s.add_argument("--target", type=float, default=0.97)
    s.add_argument("--epochs", type=float, default=1)
    s.add_argument("--eval-every", type=int, default=10)
    s.add_argument("--batch", type=int, default=128)
    s.add_argument("--stop", action="store_true", help="stop at the target instead of finishing the epoch")
    s.add_argument("--round", type=int, default=1, help="the round number, copied into the record")
    s.add_argument("--process-start-ns", type=int, default=0,
                   help="time.time_ns() when the caller started this process (default: now); wall_ms counts from it")
    a = p.parse_args()
    if getattr(a, "process_start_ns", None) == 0:
        a.process_start_ns = time.time_ns()
    dev = torch.device(a.device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("torchbench: torch sees no CUDA device (use --device cpu)")
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        torch.backends.cudnn.allow_tf32 = a.tf32
        torch.set_float32_matmul_precision("high" if a.tf32 else "highest")
    {"steps": cmd_steps, "race": cmd_race, "check": cmd_check}[a.cmd](a, dev)


if __name__ == "__main__":
    main()
