"""
What each design costs, end to end: the 5-view ViT, the fusion and the LLM, not only the LLM.

    python bench.py [--key=value ...] [--json='out/bench.json']
    python bench.py --quick          # a first look in seconds: 3 variants, fewer rounds

Every variant is measured in one run, on the same inputs, and reported as a ratio to the
LLaVA-1.5 baseline (timings on a shared machine are noisy; ratios measured together are not).
"""
import os
import sys
import time

import torch

from checkpoint import check_result_path, exit_in_one_line, provenance, write_json
from configurator import check_ranges, configure_or_exit
from llm import GPTConfig
from machine import measure_peak_flops, use_threads
from sparsecut import SparseCut, SparseCutConfig
from vit import ViTConfig

# model sizes: the main job's (config/shapes_cpu.py), so that the table prices what `python train.py` trains
_main = {}
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "config", "shapes_cpu.py")).read(), _main)
image_size, patch_size = 64, _main["patch_size"]
vit_n_layer, vit_n_head, vit_n_embd = _main["vit_n_layer"], _main["vit_n_head"], _main["vit_n_embd"]
n_layer, n_head, n_embd = _main["n_layer"], _main["n_head"], _main["n_embd"]
gelu = _main["gelu"]
vocab_size = 447
text_len = 16            # a question and its answer
batch_size = 32
decode_tokens = 16
repeats = 21             # timings are the median of this many runs (after one warm-up)
gen_tokens = 64          # the KV-cache column: generate this many tokens with the cache vs recomputing
kv_repeats = 3           # rounds that time the KV-cache column (recomputing every step is slow)
quick = False            # a first look in seconds: 3 variants, fewer rounds and tokens (QUICK below)
device = "cpu"
json = ""                # write the table as JSON here too (--json=out/bench.json)
seed = 1337
threads = None           # CPU threads; None: as many as are free at start (machine.py)
config = {k: v for k, v in globals().items() if not k.startswith("_") and type(v) in (int, float, str, bool, type(None))}
QUICK = dict(repeats=2, kv_repeats=1, gen_tokens=32, batch_size=8)  # what --quick sets, unless given too
QUICK_VARIANTS = ["baseline", "sparsecut-concat", "naive"]

VARIANTS = [  # (name, fusion, shortcut, what it is)
    ("baseline", "mlp", "none", "LLaVA-1.5: low view, MLP projector, no shortcuts"),
    ("xattn", "cross_attention", "none", "multi-res fusion at the input only"),
    ("concat", "concat", "none", "multi-res fusion at the input only"),
    ("sparsecut-xattn", "cross_attention", "sparse", "SparseCut: sparse, U-shaped shortcuts"),
    ("sparsecut-concat", "concat", "sparse", "SparseCut: sparse, U-shaped shortcuts"),
    ("deepstack", "mlp", "deepstack", "crop tokens of one level in 4 groups into layers 0..3"),
    ("naive", "naive", "none", "low view + 4 crops all in the context (5N tokens)"),
]


def build(fusion, shortcut):
    torch.manual_seed(seed)
    cfg = SparseCutConfig(vit=ViTConfig(image_size // 2, patch_size, vit_n_layer, vit_n_head, vit_n_embd),
                          llm=GPTConfig(5 * (image_size // 2 // patch_size) ** 2 + text_len + max(decode_tokens, gen_tokens),
                                        vocab_size, n_layer, n_head, n_embd, gelu=gelu),
                          fusion=fusion, shortcut=shortcut, density=2, order="u")
    return SparseCut(cfg).to(device)


def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn):
    """Seconds one call of fn takes (fn may return its own timing, to leave out its set-up)."""
    sync()
    t0 = time.perf_counter()
    own = fn()
    sync()
    return own if own is not None else time.perf_counter() - t0


def timers(model, images, idx):
    """{what: fn} for one variant: forward, one training step (end to end), prefill, decode, and
    generating gen_tokens greedily with the KV cache and without it (recomputing every step)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cache = [None]

    def step():
        _, loss = model(images, idx, idx)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def forward():
        model(images, idx)

    @torch.no_grad()
    def prefill():
        prefix, inject = model.fuse(model.encode(images))
        cache[0] = model.llm.new_cache()
        sync()
        t0 = time.perf_counter()
        model.llm(idx, prefix=prefix, inject=inject, cache=cache[0])
        sync()
        return time.perf_counter() - t0

    @torch.no_grad()
    def decode():  # decode_tokens steps after an untimed prefill; reported per token
        prefill()
        sync()
        t0 = time.perf_counter()
        for _ in range(decode_tokens):
            model.llm(idx[:, -1:], cache=cache[0])
        sync()
        return (time.perf_counter() - t0) / decode_tokens

    @torch.no_grad()
    def generate(use_cache):  # the LLM only: the image side is computed once, untimed
        prefix, inject = model.fuse(model.encode(images))
        sync()
        t0 = time.perf_counter()
        model.llm.generate(idx, gen_tokens, prefix=prefix, inject=inject, temperature=0, use_cache=use_cache)
        sync()
        return time.perf_counter() - t0

    return {"forward_s": forward, "train_step_s": step, "prefill_s": prefill, "decode_token_s": decode,
            "generate_cache_s": lambda: generate(True), "generate_recompute_s": lambda: generate(False)}


def main(argv):
    argv = ["--quick=True" if a == "--quick" else a for a in argv]  # the one bare flag
    configure_or_exit(config, argv, "bench.py")
    if config["quick"]:
        config.update({k: v for k, v in QUICK.items() if not any(a.startswith(f"--{k}=") for a in argv)})
    globals().update(config)
    check_ranges(config, "bench.py", at_least_1="image_size patch_size vit_n_layer vit_n_head vit_n_embd n_layer n_head "
                 "n_embd vocab_size text_len batch_size decode_tokens repeats gen_tokens kv_repeats")
    if json:  # before the benchmark, not after it
        try:
            check_result_path(json)
        except ValueError as e:
            sys.exit(f"bench.py: json={json!r}: {e}")
    use_threads(threads, "bench.py")
    variants = [v for v in VARIANTS if not quick or v[0] in QUICK_VARIANTS]
    torch.manual_seed(seed)
    images = torch.rand(batch_size, 3, image_size, image_size, device=device)
    idx = torch.randint(vocab_size, (batch_size, text_len), device=device)
    peak = measure_peak_flops(device, batch_size * ((image_size // 2 // patch_size) ** 2 + text_len), n_embd)  # a row
    try:
        models = [build(fusion, shortcut) for _, fusion, shortcut, _ in variants]
    except ValueError as e:  # sizes that do not fit together (n_embd vs n_head, patch vs image)
        sys.exit(f"bench.py: {e}")
    fns = [timers(m, images, idx) for m in models]
    times = [{k: [] for k in f} for f in fns]
    for rep in range(repeats + 1):  # round-robin over the variants, so that drift hits them all alike
        for f, t in zip(fns, times):
            for k, fn in f.items():
                if k.startswith("generate") and rep > kv_repeats:
                    continue
                s = timed(fn)
                if rep:  # the first round is a warm-up
                    t[k].append(s)
    rows = []
    for (name, _, _, what), model, t in zip(variants, models, times):
        fl = model.estimate_flops(text_len)
        med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
        rows.append({"variant": name, "what": what, "params": sum(p.numel() for p in model.parameters()),
                     "context": model.n_image_tokens + text_len, "flops_vit": fl["vit"],
                     "flops_fusion": fl["fusion"], "flops_llm": fl["llm"], "flops": fl["total"], **med,
                     "mfu": 3 * fl["total"] * batch_size / med["train_step_s"] / peak,
                     "kv_speedup": med["generate_recompute_s"] / med["generate_cache_s"]})
    base = rows[0]
    print(f"{len(rows)} variants, batch {batch_size}, text {text_len} tokens, device {device}, "
          f"{torch.get_num_threads()} threads; matmul peak {peak / 1e9:.0f} GFLOP/s; "
          f"ratios to '{base['variant']}', medians of {repeats}; kv: generating {gen_tokens} tokens "
          f"without the KV cache / with it, same variant, medians of {kv_repeats}")
    head = (f"{'variant':<17}{'params':>8}{'ctx':>5}{'MFLOP vit':>10}{'fusion':>8}{'llm':>8}{'total':>8}"
            f"{'fwd':>7}{'train':>7}{'prefill':>8}{'decode':>8}{'MFU':>6}{'kv':>7}")
    print(head)
    for r in rows:
        ratio = lambda k: f"{r[k] / base[k]:.2f}x"
        print(f"{r['variant']:<17}{r['params'] / 1e6:>7.2f}M{r['context']:>5}{r['flops_vit'] / 1e6:>10.0f}"
              f"{r['flops_fusion'] / 1e6:>8.0f}{r['flops_llm'] / 1e6:>8.0f}{ratio('flops'):>8}"
              f"{ratio('forward_s'):>7}{ratio('train_step_s'):>7}{ratio('prefill_s'):>8}"
              f"{ratio('decode_token_s'):>8}{100 * r['mfu']:>5.0f}%{r['kv_speedup']:>6.1f}x")
    print(f"baseline absolute: forward {1e3 * base['forward_s']:.1f} ms, train step "
          f"{1e3 * base['train_step_s']:.1f} ms, prefill {1e3 * base['prefill_s']:.1f} ms, "
          f"decode {1e3 * base['decode_token_s']:.2f} ms/token, {gen_tokens} tokens {1e3 * base['generate_cache_s']:.0f} ms "
          f"with the KV cache, {1e3 * base['generate_recompute_s']:.0f} ms recomputing")
    if json:
        write_json(json, {"config": config, "peak_flops": peak, "rows": rows, "run": provenance("bench.py", config, peak)})
        print(f"wrote {json}")
    return rows


if __name__ == "__main__":
    exit_in_one_line("bench.py")  # Ctrl-C, a kill, a full disk: one line, not a traceback
    main(sys.argv[1:])
