"""Check for exercise 4: a table of patterns worked out by hand, then sparsecut.shortcut_pattern."""
import pytest

import sparsecut
from exercises import ex4_pattern as ex

TABLE = [  # (kind, density, order, n_vit, n_llm, main_level) -> pairs
    # the paper's 13B model: ViT-L 24 blocks (main 22), 40 LLM layers, 8 shortcuts
    (("sparse", 8, "parallel", 24, 40, -2), [(2, 4), (5, 9), (7, 14), (10, 19), (13, 24), (16, 29), (18, 34), (21, 39)]),
    (("sparse", 8, "u", 24, 40, -2), [(21, 4), (18, 9), (16, 14), (13, 19), (10, 24), (7, 29), (5, 34), (2, 39)]),
    # 10 blocks below the main level: 3.33 -> 3, 6.67 -> 7, 10 -> 10, minus one: levels 2, 6, 9
    (("dense_bottom", 3, "parallel", 12, 10, -2), [(2, 0), (6, 1), (9, 2)]),
    (("dense_top", 3, "u", 12, 10, -2), [(9, 7), (6, 8), (2, 9)]),
    # halves round up: 5 layers, 2 shortcuts: 2.5 -> 3, 5 -> 5, minus one: layers 2, 4
    (("sparse", 2, "parallel", 6, 5, -2), [(1, 2), (3, 4)]),
    # main_level -1: all 5 blocks below the last one are candidates
    (("sparse", 2, "u", 6, 4, -1), [(4, 1), (2, 3)]),
    (("sparse", 1, "u", 6, 4, -2), [(3, 3)]),
    (("none", 3, "u", 12, 10, -2), []),
]


@pytest.mark.parametrize("args, pairs", TABLE)
def test_table(impl, args, pairs):
    shortcut_pattern = impl(ex.shortcut_pattern, sparsecut.shortcut_pattern)
    assert [tuple(p) for p in shortcut_pattern(*args)] == pairs


@pytest.mark.parametrize("kind", ["none", "sparse", "dense_bottom", "dense_top"])
@pytest.mark.parametrize("order", ["u", "parallel"])
def test_matches_sparsecut(impl, kind, order):
    shortcut_pattern = impl(ex.shortcut_pattern, sparsecut.shortcut_pattern)
    for n_vit in range(3, 9):
        for n_llm in range(1, 9):
            for main_level in (-1, -2):
                main = main_level % n_vit
                for density in range(1, min(main, n_llm) + 1):
                    args = (kind, density, order, n_vit, n_llm, main_level)
                    assert [tuple(p) for p in shortcut_pattern(*args)] == sparsecut.shortcut_pattern(*args), args
