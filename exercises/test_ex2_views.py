"""Check for exercise 2: low view = 2x2 area means, crops = the four tiles TL, TR, BL, BR."""
import torch

import fusion
from exercises import ex2_views as ex


def hand_image():
    """(2, 3, 4, 4): channel c of image 0 is 0..15 row-major plus 100c; image 1 is its negative."""
    img = torch.arange(16.0).view(1, 1, 4, 4) + 100 * torch.arange(3.0).view(1, 3, 1, 1)  # (1, 3, 4, 4)
    return torch.cat([img, -img])                                                         # (2, 3, 4, 4)


def test_hand_built_image(impl):
    make_views = impl(ex.make_views, fusion.make_views)
    low, crops = make_views(hand_image())
    assert low.shape == (2, 3, 2, 2) and crops.shape == (2, 4, 3, 2, 2)
    #  0  1 |  2  3
    #  4  5 |  6  7      low pixel = mean of its 2x2 block
    # ------+------      crops: TL, TR, BL, BR
    #  8  9 | 10 11
    # 12 13 | 14 15
    torch.testing.assert_close(low[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    expected_crops = torch.tensor([[[0, 1], [4, 5]], [[2, 3], [6, 7]],
                                   [[8, 9], [12, 13]], [[10, 11], [14, 15]]], dtype=torch.float)  # (4, 2, 2)
    torch.testing.assert_close(crops[0, :, 0], expected_crops)
    torch.testing.assert_close(low[0, 2], low[0, 0] + 200)           # channels stay apart
    torch.testing.assert_close(crops[0, :, 1], expected_crops + 100)
    torch.testing.assert_close(low[1], -low[0])                       # images stay apart
    torch.testing.assert_close(crops[1], -crops[0])


def test_matches_fusion_make_views(impl):
    make_views = impl(ex.make_views, fusion.make_views)
    torch.manual_seed(0)
    images = torch.rand(2, 3, 12, 12)
    for got, want in zip(make_views(images), fusion.make_views(images)):
        torch.testing.assert_close(got, want)
