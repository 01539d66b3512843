"""
Exercise 2 (easy): cut one image into SparseCut's five views.

The ViT has a fixed input size S x S. SparseCut shows it an image of side 2S twice:
- `low`: the whole image shrunk to S x S. Shrink by *area*: each low pixel is the mean of the
  2x2 block of pixels it covers (picking every other pixel would alias fine detail instead);
- `crops`: the image cut into four S x S tiles at full resolution, in the order
  top-left, top-right, bottom-left, bottom-right (TL, TR, BL, BR).

Write make_views with reshape/permute/mean on tensors (no loops over pixels needed).
    images (B, 3, 2S, 2S) -> low (B, 3, S, S), crops (B, 4, 3, S, S)
The check runs a hand-built 4x4 image whose every pixel you can compute on paper:
    SPARSECUT_STUDENT=1 python -m pytest -q exercises/test_ex2_views.py
Then compare with fusion.make_views, which does the low view in one F.interpolate call.
"""


def make_views(images):
    """images (B, 3, 2S, 2S) -> low (B, 3, S, S), crops (B, 4, 3, S, S) in order TL, TR, BL, BR."""
    raise NotImplementedError("exercise 2: return (low, crops) from images; "
                              "see the docstring of exercises/ex2_views.py")
