"""Check for exercise 1: predicted ViT views and LLM context length equal what a model measures."""
import pytest
import torch

from exercises import ex1_context as ex
from sparsecut import SparseCut, SparseCutConfig

B, T = 2, 5


def reference(cfg, text_len):
    model = SparseCut(cfg)
    return model.n_views, model.n_image_tokens + text_len


def measure(cfg, text_len):
    """Run a tiny model once; hooks read the ViT's batch and the first LLM layer's length."""
    torch.manual_seed(0)
    model = SparseCut(cfg).eval()
    seen = {}
    model.vit.blocks[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("views", a[0].size(0) // B))
    model.llm.transformer.h[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("tokens", a[0].size(1)))
    side = 2 * cfg.vit.image_size
    with torch.no_grad():
        model(torch.rand(B, 3, side, side), torch.randint(cfg.llm.vocab_size, (B, text_len)))
    return seen["views"], seen["tokens"]


@pytest.mark.parametrize("image_size", [8, 12])  # N = 4 or 9 tokens per view
@pytest.mark.parametrize("fusion, shortcut", [("mlp", "none"), ("concat", "sparse"),
                                              ("cross_attention", "dense_bottom"), ("naive", "none"),
                                              ("mlp", "deepstack")])
def test_prediction_matches_measurement(impl, fusion, shortcut, image_size):
    cfg = SparseCutConfig(vit=dict(image_size=image_size, patch_size=4, n_layer=4, n_head=2, n_embd=16),
                          llm=dict(block_size=64, vocab_size=20, n_layer=4, n_head=2, n_embd=16),
                          fusion=fusion, shortcut=shortcut, density=2)
    predict = impl(ex.predict, reference)
    assert tuple(predict(cfg, T)) == measure(cfg, T)
