#!/usr/bin/python3
# bench/peer_torch.py — the plain-PyTorch peer (issue 19, "Must show": peers):
# times one CFG UNet step and one VAE decode of diffusers' own
# UNet2DConditionModel and AutoencoderKL classes, built with SD 1.5's config
# (or SDXL's with --arch sdxl), on Debian's python3-torch (1.13), so that
# bench/README.md can put "plain PyTorch" beside `sdserve bench` and
# stable-diffusion.cpp (bench/peer_sdcpp.sh).  Nothing of PyTorch or diffusers
# lives in this repo: install the Debian packages and export diffusers'
# source outside it (bench/README.md, "Peers in one sitting (issue 19)"):
#
#   apt-get install python3-torch python3-packaging
#   git clone https://github.com/huggingface/diffusers && cd diffusers &&
#     mkdir -p /work/peer/diffusers && git archive v0.25.0 src/diffusers | tar -x -C /work/peer/diffusers
#
# Usage: bench/peer_torch.py --diffusers /work/peer/diffusers/src
#            [--arch sd15|sdxl] [--dtype bf16|fp32] [-W N] [-H N]
#            [--threads N] [--repeats R] [--skip unet,decode]
#   --diffusers  the directory holding the exported `diffusers` package
#                (default: $DIFFUSERS_SRC, else /work/peer/diffusers/src, else
#                whatever PYTHONPATH finds)
#
# What it measures, per stage: a warm-up run (oneDNN builds its primitives
# then; printed as `first`), then --repeats (>= 3) timed runs
# whose median is printed, in the line format of `sdserve bench`:
#   unet cfg step  MED s  (G GFLOP, R GFLOP/s)  runs a b c  first f
#   vae decode     MED s  ...
# UNet = one CFG step: batch 2 (cond + uncond), latent 4 x H/8 x W/8, context
# 77 x 768 (SDXL: 77 x 2048 plus the pooled 1280 and 6 time ids).  Decode =
# batch 1 latent -> W x H image.  Both run under torch.inference_mode(), the
# weights and inputs in --dtype and channels-last, torch.set_num_threads(N),
# denormals flushed (as our engine runs).  GFLOP are counted during the
# warm-up by forward hooks: convs and linears (multiply-add = 2) and
# attention's two T² products (QKᵀ and PV), the same rule as our
# `unet_flops`/`vae_decode_flops`, so the figures are comparable (SD 1.5 at
# 512²: 1606.5 GFLOP per CFG step, 2514.5 per decode).
#
# The weights are random (diffusers' default init, seed 0): the speed of these
# dense kernels does not depend on the values on a CPU without AMX (on AMX
# the operands' bits change the clock, bench/README.md; random weights behave
# like real ones there too).  No checkpoint is read.
#
# Shims: diffusers 0.25's package imports, at import time, modules it never
# uses to build or run the two model classes, and none is in Debian 12's
# python3-torch dependencies; stub modules stand in for them in sys.modules
# before the import: huggingface_hub (+ .constants, .file_download, .utils:
# hub downloads), safetensors (+ .torch: the file format) and tqdm
# (+ .auto: progress bars); and diffusers.dependency_versions_check, whose
# only job is to check at import that filelock (the hub's download lock) is
# installed, is replaced by a no-op.  The stubs' attributes are inert:
# functions return their first argument (so decorators are identities),
# CamelCase names are exception classes, UPPER_CASE names are strings.
# packaging is the real one (Debian's python3-packaging).
#
# BLAS: PyTorch sends fp32 linears and batched matmuls to the system BLAS
# (bf16 ones and every conv go to oneDNN).  Debian's default libblas.so.3 is
# the reference BLAS (~2 GFLOP/s here), so for --dtype fp32 run with
# OpenBLAS's (bench/peers.sh does): LD_LIBRARY_PATH=<dir of OpenBLAS's
# libblas.so.3> OPENBLAS_NUM_THREADS=N.  The library in use is printed.
import argparse
import importlib.machinery
import os
import statistics
import sys
import time
import types

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
    attention_head_dim=8,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"))

SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280), cross_attention_dim=2048,
    attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10),
    use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                      "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))

VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4)

ARCH = {"sd15": (SD15_UNET, 768, 512), "sdxl": (SDXL_UNET, 2048, 1024)}


class _StubModule(types.ModuleType):
    """An inert stand-in for a package diffusers imports but never calls here."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name.isupper():
            value = "/nonexistent/" + name
        elif name[:1].isupper():
            value = type(name, (Exception,), {})
        else:
            def value(*args, **kwargs):
                return args[0] if args else None
        setattr(self, name, value)
        return value


def install_shims():
    for name in ("huggingface_hub", "huggingface_hub.constants",
                 "huggingface_hub.file_download", "huggingface_hub.utils",
                 "safetensors", "safetensors.torch", "tqdm", "tqdm.auto"):
        if name in sys.modules:
            continue
        mod = _StubModule(name)
        mod.__path__ = []          # a package, so submodule imports resolve
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        mod.__version__ = "0.0-stub"
        sys.modules[name] = mod
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, mod)
    # diffusers checks at import that filelock (hub download locks) is
    # installed; the check is the module's only content
    check = types.ModuleType("diffusers.dependency_versions_check")
    check.dep_version_check = lambda pkg, hint=None: None
    sys.modules.setdefault(check.__name__, check)


def import_diffusers(path):
    for cand in (path, os.environ.get("DIFFUSERS_SRC"),
                 "/work/peer/diffusers/src"):
        if cand and os.path.isdir(os.path.join(cand, "diffusers")):
            sys.path.insert(0, cand)
            break
    else:
        if path:
            sys.exit(f"peer_torch: --diffusers: no 'diffusers' package under '{path}'")
    install_shims()
    import diffusers
    from diffusers.models import AutoencoderKL, UNet2DConditionModel
    return diffusers, UNet2DConditionModel, AutoencoderKL


class FlopCounter:
    """Counts convs, linears and attention's T² products by hooks (MAC = 2)."""

    def __init__(self, torch, model):
        self.torch = torch
        self.flops = 0
        self.on = False
        self.handles = []
        nn = torch.nn
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                self.handles.append(mod.register_forward_hook(self._dense))
            if hasattr(mod, "processor") and hasattr(mod, "to_q"):
                mod.processor = _CountingProcessor(mod.processor, self)

    def _dense(self, mod, inputs, out):
        if not self.on:
            return
        if isinstance(mod, self.torch.nn.Conv2d):
            kh, kw = mod.kernel_size
            per_out = mod.in_channels // mod.groups * kh * kw
        else:
            per_out = mod.in_features
        self.flops += 2 * out.numel() * per_out

    def attention(self, attn, hidden, context):
        if not self.on:
            return
        if hidden.ndim == 4:
            b, _, h, w = hidden.shape
            tq = h * w
        else:
            b, tq = hidden.shape[0], hidden.shape[1]
        tk = tq if context is None else context.shape[1]
        inner = attn.to_q.out_features
        self.flops += 2 * 2 * b * tq * tk * inner   # QKᵀ and PV

    def count(self, fn):
        self.flops, self.on = 0, True
        try:
            fn()
        finally:
            self.on = False
        return self.flops


class _CountingProcessor:
    def __init__(self, inner, counter):
        self.inner = inner
        self.counter = counter

    def __call__(self, attn, hidden_states, encoder_hidden_states=None,
                 attention_mask=None, temb=None, scale=1.0):
        self.counter.attention(attn, hidden_states, encoder_hidden_states)
        return self.inner(attn, hidden_states,
                          encoder_hidden_states=encoder_hidden_states,
                          attention_mask=attention_mask, temb=temb, scale=scale)


def time_stage(torch, name, fn, counter, repeats):
    t0 = time.perf_counter()
    gflop = counter.count(fn) / 1e9
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    med = statistics.median(runs)
    print(f"{name:<15}{med:8.3f} s  ({gflop:.1f} GFLOP, {gflop / med:.1f} GFLOP/s)"
          f"  runs {' '.join(f'{r:.3f}' for r in runs)}  first {first:.3f}",
          flush=True)
    return med


def build(torch, cls, config, dtype):
    torch.manual_seed(0)
    model = cls(**config).eval()
    return model.to(dtype=dtype, memory_format=torch.channels_last)


def run_unet(torch, unet_cls, arch, dtype, w, h, repeats):
    config, ctx_dim, _ = ARCH[arch]
    unet = build(torch, unet_cls, config, dtype)
    g = torch.Generator().manual_seed(1)
    lat = torch.randn(2, 4, h // 8, w // 8, generator=g).to(dtype)
    lat = lat.contiguous(memory_format=torch.channels_last)
    ctx = torch.randn(2, 77, ctx_dim, generator=g).to(dtype)
    t = torch.tensor([500.0, 500.0])
    extra = {}
    if arch == "sdxl":
        extra["added_cond_kwargs"] = {
            "text_embeds": torch.randn(2, 1280, generator=g).to(dtype),
            "time_ids": torch.tensor([[h, w, 0, 0, h, w]] * 2, dtype=dtype)}
    counter = FlopCounter(torch, unet)
    out = []

    def step():
        out[:] = [unet(lat, t, encoder_hidden_states=ctx, **extra).sample]

    med = time_stage(torch, "unet cfg step", step, counter, repeats)
    check_finite(torch, "unet", out[0])
    del unet, out
    return med


def run_decode(torch, vae_cls, arch, dtype, w, h, repeats):
    vae = build(torch, vae_cls, dict(VAE, sample_size=ARCH[arch][2]), dtype)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, 4, h // 8, w // 8, generator=g).to(dtype)
    z = z.contiguous(memory_format=torch.channels_last)
    counter = FlopCounter(torch, vae)
    out = []

    def decode():
        out[:] = [vae.decode(z).sample]

    med = time_stage(torch, "vae decode", decode, counter, repeats)
    check_finite(torch, "decode", out[0])
    return med


def blas_in_use():
    """The BLAS library this process mapped (fp32 linears and bmm go there;
    bf16 ones and all convs go to oneDNN)."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.rsplit("/", 1)[-1]}
    return ", ".join(sorted(os.path.realpath(p) for p in libs)) or "none mapped"


def check_finite(torch, what, x):
    n = x.numel()
    bad = n - int(torch.isfinite(x.float()).sum())
    if bad:
        sys.exit(f"peer_torch: {what}: {bad} of {n} values not finite")
    print(f"{'':15}all {n} values finite, shape {tuple(x.shape)}", flush=True)


def header_comment():
    """This file's top comment, for --help."""
    lines = []
    with open(__file__, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#!"):
                continue
            if not line.startswith("#"):
                break
            lines.append(line[2:].rstrip())
    return "\n".join(lines)


def parse_args():
    p = argparse.ArgumentParser(description=header_comment(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--diffusers", help="directory holding the diffusers package")
    p.add_argument("--arch", choices=sorted(ARCH), default="sd15")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("-W", "--width", type=int)
    p.add_argument("-H", "--height", type=int)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", default="", help="comma list of unet,decode")
    a = p.parse_args()
    native = ARCH[a.arch][2]
    a.width = a.width or native
    a.height = a.height or native
    for name in ("width", "height"):
        v = getattr(a, name)
        if v <= 0 or v % 8:
            p.error(f"--{name} must be a positive multiple of 8, got {v}")
    if a.threads <= 0:
        p.error(f"--threads must be > 0, got {a.threads}")
    if a.repeats < 3:
        p.error(f"--repeats must be >= 3 (a median of at least three), got {a.repeats}")
    a.skip = {s for s in a.skip.split(",") if s}
    unknown = a.skip - {"unet", "decode"}
    if unknown:
        p.error(f"--skip: unknown stage(s) {', '.join(sorted(unknown))}")
    return a


def main():
    a = parse_args()
    diffusers, unet_cls, vae_cls = import_diffusers(a.diffusers)
    import torch
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"peer_torch: torch {torch.__version__} (oneDNN "
          f"{'on' if torch.backends.mkldnn.is_available() else 'off'}), diffusers "
          f"{diffusers.__version__}; {a.arch} {a.width}x{a.height}, {a.dtype}, "
          f"channels-last, {torch.get_num_threads()} threads, {a.repeats} repeats; "
          f"load {load}", flush=True)
    print(f"peer_torch: BLAS {blas_in_use()}", flush=True)
    with torch.inference_mode():
        if "unet" not in a.skip:
            run_unet(torch, unet_cls, a.arch, dtype, a.width, a.height, a.repeats)
        if "decode" not in a.skip:
            run_decode(torch, vae_cls, a.arch, dtype, a.width, a.height, a.repeats)


if __name__ == "__main__":
    main()
