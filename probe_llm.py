"""
What reaches the LLM? `python probe.py --ckpt=out/ckpt.pt --llm=True` (probe.py's probes, on the LLM side).

- llm_features / probe_llm: the LLM's residual stream at the image positions, probed like the ViT's
  levels (probe.py), as each LLM layer reads it: after the shortcut added before it.
- path_gradients: what the answer loss asks of each path into the LLM (the fused prefix and each
  shortcut), per question type: the rms of what the path adds and of the gradient reaching it.
"""
import torch

from data.batches import to_float
from probe import CLASSES, fit_probe, labels, owners, var_share


@torch.no_grad()
def llm_features(model, images, keep, batch=100):
    """The LLM's residual stream at the image positions of the low view's object tokens, keep
    (M, N) bool: {'in L': (T, Cl)} as layer L reads it (after the shortcut added before it), and
    'out' after the last layer. Image positions come first and attend only to each other, so the
    text does not matter: one token stands in for it."""
    model.eval()
    blocks, N = model.llm.transformer.h, model.config.vit.n_patches
    grabbed = []
    hooks = [b.register_forward_pre_hook(lambda m, a: grabbed.append(a[0][:, :N])) for b in blocks]
    hooks.append(blocks[-1].register_forward_hook(lambda m, a, out: grabbed.append(out[:, :N])))
    names = [f"in {i}" for i in range(len(blocks))] + ["out"]
    feats = {}
    for i in range(0, len(images), batch):
        x = to_float(images[i:i + batch])
        model(x, torch.zeros(len(x), 1, dtype=torch.long))
        k = torch.from_numpy(keep[i:i + batch]).flatten()                       # (B*N,)
        for name, h in zip(names, grabbed):
            feats.setdefault(name, []).append(h.reshape(-1, h.size(-1))[k])     # (t, Cl)
        grabbed.clear()
    for h in hooks:
        h.remove()
    return {name: torch.cat(f) for name, f in feats.items()}


def probe_llm(model, train, test, steps=50, l2=1e-3):
    """Like probe_levels, for the LLM's stream at the image positions (low-view object tokens):
    colour and texture (each position's fused token holds its 2x2 crop tokens too)."""
    out = {}
    for images, masks, records in (train, test):
        owner = owners(masks, model.config.vit.image_size // model.config.vit.patch_size)[:, 0]  # (M, N)
        y = {a: torch.from_numpy(l[:, 0][owner > 0]) for a, l in labels(owner[:, None], records).items()}
        out.setdefault("data", []).append((llm_features(model, images, owner > 0), y))
    (f, y), (ft, yt) = out["data"]
    return {name: {f"image/{a}": {"acc": fit_probe(f[name], y[a], ft[name], yt[a], len(CLASSES[a]), steps, l2),
                                  "var_share": var_share(f[name], y[a])} for a in ("colour", "texture")}
            for name in f}


def path_gradients(model, images, records, question_types, batch=64):
    """What the answer loss asks of each path into the LLM, per question type: the rms of the fused
    prefix and of each injected shortcut, and the rms of the loss's gradient with respect to it,
    over every question of the given scenes. {type: {path: {"rms": float, "grad_rms": float}}}."""
    from data.batches import Examples
    from data.tokenizer import get_tokenizer
    model.eval()
    names = [f"prefix (block {model.main_level})"] + [f"block {b} -> layer {l}" for b, l in model.shortcuts]
    out, tok = {}, get_tokenizer()
    for t in question_types:
        ex = Examples(tok, records, [t], 0.0, model.llm.config.block_size - model.n_image_tokens)
        sums, n = {}, 0
        for i in range(0, len(ex.scene), batch):
            idx, targets, scene = ex.batch(torch.arange(i, min(i + batch, len(ex.scene))))
            prefix, inject = model.fuse(model.encode(to_float(images[scene.numpy()])))
            # shortcuts into one layer are summed: they share that sum's gradient (and rms)
            paths = [prefix] + [inject[l] for _, l in model.shortcuts]
            for p in paths:
                p.retain_grad()
            _, loss = model.llm(idx, targets=targets, prefix=prefix, inject=inject)
            loss.backward()
            for name, p in zip(names, paths):
                rms = sums.setdefault(name, [0.0, 0.0])
                rms[0] += p.detach().pow(2).mean().item() * len(idx)
                rms[1] += p.grad.pow(2).mean().item() * len(idx)
            n += len(idx)
            model.zero_grad(set_to_none=True)
        out[t] = {name: {"rms": (a / n) ** 0.5, "grad_rms": (g / n) ** 0.5} for name, (a, g) in sums.items()}
    return out


def probe_llm_paths(model, train, test, cfg, c):
    """probe.py --llm=True: both of the above on its scenes, printed; returns {'llm': ..., 'grads': ...}."""
    out = {"llm": probe_llm(model, train, test, c["steps"], c["l2"])}
    print("\nthe LLM's stream at the image positions, as each layer reads it (after its shortcut): "
          "probe accuracy / var_share\n" + f"{'':<8}" + "".join(f"{k:>22}" for k in ("image/colour", "image/texture")))
    for name, r in out["llm"].items():
        print(f"{name:<8}" + "".join(f"{r[k]['acc']:>14.3f} / {r[k]['var_share']:.3f}" for k in r))
    out["grads"] = path_gradients(model, test[0], test[2], cfg.get("question_types") or ["colour", "texture"])
    print(f"\nthe paths into the LLM on the {len(test[0])} {c['split']} scenes' questions: rms of what each adds, "
          f"and of the answer loss's gradient with respect to it")
    for t, r in out["grads"].items():
        print(f"{t:<10}" + "   ".join(f"{name}: {v['rms']:.3f} / grad {v['grad_rms']:.2e}" for name, v in r.items()))
    return out
