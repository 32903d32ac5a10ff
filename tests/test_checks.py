"""The shared validation of public boundaries (hsfuse._checks): one pair checker, one integer checker."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hsfuse._checks import check_pair, check_positive_int, pair_ratio
from hsfuse.errors import InputError
from hsfuse.types import infer_ratio


def _pair(n=1, L=5, m=2, h=4, w=3, r=2):
    return torch.rand(n, L, h, w), torch.rand(n, m, r * h, r * w)


def test_check_pair_returns_float_tensors_and_the_ratio():
    hsi, msi = _pair(r=3)
    h, m, r = check_pair(hsi.numpy(), msi.to(torch.float64), ratio=3.0, hsi_bands=5, msi_bands=2, single=True,
                         finite=True)
    assert r == 3 and isinstance(h, torch.Tensor) and h.shape == (1, 5, 4, 3) and m.dtype == torch.float64
    _, _, r = check_pair(*_pair(n=2, r=4))
    assert r == 4


def test_check_pair_batch_mismatch():
    hsi, msi = _pair(n=2)
    with pytest.raises(InputError, match=r"^fusion: the HSI batch \(2\) and the MSI batch \(1\) differ; give one MSI "
                                         "per HSI$"):
        check_pair(hsi, msi[:1])


def test_check_pair_single():
    with pytest.raises(InputError, match="^UDALN fits one image pair at a time, got a batch of 2; call it once per "
                                         "pair$"):
        check_pair(*_pair(n=2), single=True, who="UDALN")


def test_check_pair_sizes_not_related_by_an_integer_ratio():
    hsi, msi = _pair(h=4, w=3, r=2)
    with pytest.raises(InputError, match=r"^gsa: HSI 4x3 and MSI 8x5 are not related by one integer ratio in both "
                                         "directions; crop the images so that MSI = ratio x HSI in height and "
                                         "width$"):
        check_pair(hsi, msi[..., :5], who="gsa")
    with pytest.raises(InputError, match="HSI 4x3 and MSI 8x9 are not related by one integer ratio"):
        check_pair(hsi, torch.rand(1, 2, 8, 9))  # integer per axis, but not the same ratio


def test_infer_ratio_says_the_same_sentence():
    hsi, msi = _pair(h=4, w=3, r=2)
    with pytest.raises(InputError) as tensor_level:
        check_pair(hsi, msi[..., :5])
    with pytest.raises(InputError) as cube_level:
        infer_ratio((4, 3), (8, 5))
    assert str(tensor_level.value) == f"fusion: {cube_level.value}"


def test_check_pair_ratio_disagreement():
    with pytest.raises(InputError, match=r"^estimate_hysure: ratio 3 disagrees with the image sizes: HSI 4x3 and MSI "
                                         "8x6 give ratio 2; drop the ratio or crop the images$"):
        check_pair(*_pair(r=2), ratio=3, who="estimate_hysure")
    with pytest.raises(InputError, match=r"ratio must be a positive integer \(the HSI/MSI resolution ratio\), got "
                                         "2.5"):
        check_pair(*_pair(r=2), ratio=2.5)


def test_pair_ratio_of_grids_without_tensors():
    """The ratio check of cubes and lazy scenes (hsfuse pair, fuse_scene): no prefix without ``who``, a zero-sized
    grid and a non-integer ratio refused with InputError (not a ZeroDivisionError or a silent truncation)."""
    assert pair_ratio((4, 3), (12, 9)) == 3 and pair_ratio((4, 3), (12, 9), 3.0) == 3
    with pytest.raises(InputError, match=r"^ratio 2 disagrees with the image sizes: HSI 4x3 and MSI 12x9 give ratio 3"):
        pair_ratio((4, 3), (12, 9), 2)
    with pytest.raises(InputError, match="positive integer"):
        pair_ratio((4, 3), (12, 9), 2.5)
    with pytest.raises(InputError, match=r"^HSI 0x3 and MSI 12x9 are not related by one integer ratio"):
        pair_ratio((0, 3), (12, 9))


def test_check_pair_band_counts():
    hsi, msi = _pair(L=5, m=2)
    with pytest.raises(InputError, match=r"^low-resolution HSI must have 6 bands \(dim 1\), got 5"):
        check_pair(hsi, msi, hsi_bands=6)
    with pytest.raises(InputError, match=r"^multispectral image must have 3 bands \(dim 1\), got 2"):
        check_pair(hsi, msi, msi_bands=3)


def test_check_pair_nan_only_when_asked():
    hsi, msi = _pair()
    msi[0, 1, 2, 2] = math.nan
    msi[0, 0, 0, 0] = math.inf
    check_pair(hsi, msi)  # finite=False: values are the caller's business
    with pytest.raises(InputError, match=r"^multispectral image contains 2 NaN/inf value\(s\); replace or mask them"):
        check_pair(hsi, msi, finite=True)


def test_check_pair_shape():
    hsi, msi = _pair()
    with pytest.raises(InputError, match=r"low-resolution HSI must have shape \(N, C, H, W\)"):
        check_pair(hsi[0], msi)


def test_check_positive_int():
    assert check_positive_int(np.int64(3), "tile") == 3 and type(check_positive_int(np.int64(3), "tile")) is int
    assert check_positive_int(0, "overlap", minimum=0) == 0
    for bad in (True, 2.0, 0, -1, "3", None):
        with pytest.raises(InputError, match=f"^tile must be an integer >= 1, got {bad!r}$".replace("(", r"\(")):
            check_positive_int(bad, "tile")
    with pytest.raises(InputError, match="overlap must be an integer >= 0, got -1"):
        check_positive_int(-1, "overlap", minimum=0)
