"""Check for exercise 3: the 2x2 gather on a hand-built token grid, and against fusion.gather_2x2."""
import torch

import fusion
from exercises import ex3_gather as ex


def hand_crops(s):
    """Stitched 2s x 2s grid whose token (r, c) has the single channel 10r + c, cut into the
    four s x s tiles TL, TR, BL, BR: (1, 4, s*s, 1). Plain loops, so it is easy to trust."""
    crops = torch.zeros(1, 4, s * s, 1)
    for tile in range(4):
        tile_row, tile_col = divmod(tile, 2)
        for a in range(s):
            for b in range(s):
                crops[0, tile, a * s + b, 0] = 10 * (tile_row * s + a) + (tile_col * s + b)
    return crops


def test_hand_built_grid(impl):
    gather_2x2 = impl(ex.gather_2x2, fusion.gather_2x2)
    out = gather_2x2(hand_crops(3))                      # low grid 3x3, stitched grid 6x6
    assert out.shape == (1, 9, 4)
    got = out[0].tolist()
    assert got[0] == [0, 1, 10, 11]                      # low (0, 0): rows 0-1, cols 0-1, all in TL
    assert got[2] == [4, 5, 14, 15]                      # low (0, 2): rows 0-1, cols 4-5, all in TR
    assert got[4] == [22, 23, 32, 33]                    # low (1, 1): one token from each tile
    assert got[6] == [40, 41, 50, 51]                    # low (2, 0): all in BL
    assert got[8] == [44, 45, 54, 55]                    # low (2, 2): all in BR
    for i in range(3):
        for j in range(3):
            r, c = 2 * i, 2 * j
            assert got[3 * i + j] == [10 * r + c, 10 * r + c + 1, 10 * (r + 1) + c, 10 * (r + 1) + c + 1]


def test_matches_fusion_gather_2x2(impl):
    gather_2x2 = impl(ex.gather_2x2, fusion.gather_2x2)
    torch.manual_seed(0)
    for s in (2, 3, 4):
        crops = torch.randn(2, 4, s * s, 3)              # (B, 4, N, C)
        torch.testing.assert_close(gather_2x2(crops), fusion.gather_2x2(crops))
