"""
Exercise 3 (medium): ConcatFusion's 2x2 gather (the authors' `cross_mlp`), space-to-depth.

The ViT turned each of the 4 crops into an s x s grid of tokens (N = s*s, row-major), and the
low view into one s x s grid too. The crops together see the image at twice the resolution:
stitched back (TL TR over BL BR) they form a 2s x 2s grid. Low token (i, j) covers the same
area as the 2x2 block of stitched tokens at rows 2i, 2i+1 and columns 2j, 2j+1.

Write gather_2x2: for every low token, concatenate those four high-res tokens' channels,
in row-major order: (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1).
    crops (B, 4, N, C) -> (B, N, 4*C)
ConcatFusion then concatenates [low, gather_2x2(crops)] (5C channels) and projects with an MLP.
Use reshape/permute only. Hint: when s is odd, a low token's block straddles the tiles.
    SPARSECUT_STUDENT=1 python -m pytest -q exercises/test_ex3_gather.py
Then read fusion.gather_2x2 and compare.
"""


def gather_2x2(crops):
    """crops (B, 4, s*s, C), tiles TL, TR, BL, BR -> (B, s*s, 4*C)."""
    raise NotImplementedError("exercise 3: return the (B, N, 4C) gathered tokens; "
                              "see the docstring of exercises/ex3_gather.py")
