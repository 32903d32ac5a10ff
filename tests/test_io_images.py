"""PNG/JPEG/TIFF images and CAVE folders of per-band PNGs.

Independent source: a minimal PNG encoder and decoder written here from the PNG specification (W3C PNG,
2nd ed., sections 7.2 scanlines, 9.2 filter types, 11.2.2 IHDR), used to build files we read and to decode
files we write, so 16-bit values are checked without trusting Pillow or GDAL. CAVE band wavelengths
400:10:700 nm are from the CAVE database page (31 bands, 10 nm steps).
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from hsfuse.errors import FileFormatError, InputError, OutputExistsError
from hsfuse.io.cave import read_cave, write_cave
from hsfuse.io.rgb import read_image, write_png
from hsfuse.types import Cube

RNG = np.random.default_rng(17)
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def png_encode(arr: np.ndarray) -> bytes:
    """(H, W) or (H, W, C) uint8/uint16 -> PNG bytes (filter type 0, one IDAT)."""
    arr = arr if arr.ndim == 3 else arr[:, :, None]
    h, w, c = arr.shape
    depth = 16 if arr.dtype == np.uint16 else 8
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = arr.astype(">u2" if depth == 16 else "u1").reshape(h, -1).view(np.uint8).reshape(h, -1)
    raw = b"".join(b"\0" + r.tobytes() for r in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_decode(data: bytes) -> tuple[np.ndarray, int, int]:
    """PNG bytes -> ((H, W, C) array, bit depth, colour type); non-interlaced, all five filter types."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    w, h, depth, ctype, _, _, interlace = ihdr
    assert interlace == 0 and depth in (8, 16)
    c = _CHANNELS[ctype]
    bpp = c * depth // 8
    stride = w * bpp
    raw = zlib.decompress(idat)
    out = bytearray()
    prev = bytearray(stride)
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            cc = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    arr = np.frombuffer(bytes(out), dtype=">u2" if depth == 16 else "u1").reshape(h, w, c)
    return arr.astype(np.uint16 if depth == 16 else np.uint8), depth, ctype


# --------------------------------------------------------------------------------------------- images


@pytest.mark.parametrize("bands, names", [(1, ["gray"]), (2, ["gray", "A"]), (3, ["R", "G", "B"]), (4, ["R", "G", "B", "A"])])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_read_hand_made(tmp_path, bands, names, dtype):
    top = np.iinfo(dtype).max
    data = RNG.integers(0, top + 1, (5, 7, bands)).astype(dtype)
    (tmp_path / "a.png").write_bytes(png_encode(data))
    cube = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(cube.data, data)
    assert cube.data.dtype == dtype and cube.band_names == names and cube.wavelengths is None


@pytest.mark.parametrize("bands", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_write_decoded_independently(tmp_path, bands, dtype):
    data = RNG.integers(0, np.iinfo(dtype).max + 1, (5, 7, bands)).astype(dtype)
    write_png(Cube(data), tmp_path / "w.png")
    decoded, depth, ctype = png_decode((tmp_path / "w.png").read_bytes())
    assert depth == 8 * np.dtype(dtype).itemsize and _CHANNELS[ctype] == bands
    np.testing.assert_array_equal(decoded, data)
    np.testing.assert_array_equal(read_image(tmp_path / "w.png").data, data)
    assert os.listdir(tmp_path) == ["w.png"]


def test_png_scaling_and_refusals(tmp_path):
    x = np.array([[0.0, 0.5, 1.0]])[:, :, None]  # (1, 3, 1) in [0, 1]
    with pytest.raises(InputError, match="bit_depth"):
        write_png(Cube(x), tmp_path / "a.png")
    with pytest.raises(InputError, match="scale="):
        write_png(Cube(x), tmp_path / "a.png", bit_depth=8)
    write_png(Cube(x), tmp_path / "a.png", bit_depth=8, scale=255)
    assert png_decode((tmp_path / "a.png").read_bytes())[0].ravel().tolist() == [0, 128, 255]  # round(127.5) = 128
    with pytest.raises(InputError, match="outside the 8-bit range"):
        write_png(Cube(np.full((2, 2, 1), 300, np.int32)), tmp_path / "b.png", bit_depth=8)
    with pytest.raises(InputError, match="NaN"):
        write_png(Cube(np.full((2, 2, 1), np.nan)), tmp_path / "b.png", bit_depth=8, scale=1.0)
    with pytest.raises(InputError, match="1-4 bands"):
        write_png(Cube(np.zeros((2, 2, 5), np.uint8)), tmp_path / "b.png")
    with pytest.raises(OutputExistsError):
        write_png(Cube(x), tmp_path / "a.png", bit_depth=8, scale=255)
    assert os.listdir(tmp_path) == ["a.png"]


def test_tiff_and_jpeg(tmp_path):
    rgb16 = RNG.integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", rgb16, photometric="rgb")
    cube = read_image(tmp_path / "a.tif")
    np.testing.assert_array_equal(cube.data, rgb16)
    assert cube.band_names == ["R", "G", "B"]
    tifffile.imwrite(tmp_path / "p.tif", np.moveaxis(rgb16, 2, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "p.tif").data, rgb16)
    Image.fromarray(RNG.integers(0, 256, (8, 9, 3)).astype(np.uint8)).save(tmp_path / "j.jpg")
    jpg = read_image(tmp_path / "j.jpg")
    assert jpg.shape == (8, 9, 3) and jpg.data.dtype == np.uint8 and jpg.band_names == ["R", "G", "B"]


def test_truncated_and_garbage_images(tmp_path):
    data = RNG.integers(0, 65536, (32, 32, 3)).astype(np.uint16)
    for name in ("t8.png", "t16.png"):
        raw = png_encode(data if name == "t16.png" else (data >> 8).astype(np.uint8))
        (tmp_path / name).write_bytes(raw[: len(raw) // 2])
        with pytest.raises(FileFormatError, match=name):
            read_image(tmp_path / name)
    (tmp_path / "g.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(FileFormatError, match="g.jpg"):
        read_image(tmp_path / "g.jpg")


# --------------------------------------------------------------------------------------------- CAVE


def _cave_by_hand(root, scene: str, data: np.ndarray, nested: bool = True):
    """A folder laid out as the CAVE download: <scene>_ms/<scene>_ms/<scene>_ms_NN.png + an RGB .bmp."""
    top = root / f"{scene}_ms"
    inner = top / f"{scene}_ms" if nested else top
    inner.mkdir(parents=True)
    for i in range(data.shape[2]):
        (inner / f"{scene}_ms_{i + 1:02d}.png").write_bytes(png_encode(data[:, :, i]))
    Image.fromarray(np.zeros((data.shape[0], data.shape[1], 3), np.uint8)).save(top / f"{scene}_RGB.bmp")
    return top


def test_cave_nested_folder(tmp_path):
    data = RNG.integers(0, 65536, (5, 7, 31)).astype(np.uint16)
    top = _cave_by_hand(tmp_path, "balloons", data)
    cube = read_cave(top)
    np.testing.assert_array_equal(cube.data, data)
    assert cube.data.dtype == np.uint16
    np.testing.assert_array_equal(cube.wavelengths, np.arange(400, 701, 10))
    assert cube.attrs["scene"] == "balloons_ms" and cube.attrs["low_byte_zero"] is False


def test_cave_8bit_shifted_recorded_and_other_band_counts(tmp_path):
    data = (RNG.integers(0, 256, (4, 6, 5)) * 256).astype(np.uint16)  # 8-bit data in the high byte
    cube = read_cave(_cave_by_hand(tmp_path, "toy", data, nested=False))
    np.testing.assert_array_equal(cube.data, data)  # raw values kept
    assert cube.attrs["low_byte_zero"] is True and cube.wavelengths is None  # 5 bands: not CAVE's 31
    assert read_cave(tmp_path / "toy_ms", wavelengths=[1.0, 2.0, 3.0, 4.0, 5.0]).wavelengths[-1] == 5.0


def test_cave_write_decoded_independently(tmp_path):
    data = RNG.integers(0, 65536, (5, 7, 31)).astype(np.uint16)
    out = write_cave(Cube(data), tmp_path / "toy_ms")
    names = sorted(os.listdir(out))
    assert names == [f"toy_ms_{i:02d}.png" for i in range(1, 32)] and os.listdir(tmp_path) == ["toy_ms"]
    for i in (0, 30):
        decoded, depth, ctype = png_decode((out / names[i]).read_bytes())
        assert depth == 16 and ctype == 0
        np.testing.assert_array_equal(decoded[:, :, 0], data[:, :, i])
    np.testing.assert_array_equal(read_cave(out).data, data)


def test_cave_write_scaling_and_overwrite(tmp_path):
    x = np.linspace(0.0, 1.0, 2 * 3 * 2).reshape(2, 3, 2)
    with pytest.raises(InputError, match="scale="):
        write_cave(Cube(x), tmp_path / "a_ms")
    write_cave(Cube(x), tmp_path / "a_ms", scale=65535)
    np.testing.assert_array_equal(read_cave(tmp_path / "a_ms").data, np.round(x * 65535).astype(np.uint16))
    with pytest.raises(OutputExistsError):
        write_cave(Cube(x), tmp_path / "a_ms", scale=65535)
    write_cave(Cube(x[:, :, :1]), tmp_path / "a_ms", scale=65535, overwrite=True)
    assert os.listdir(tmp_path / "a_ms") == ["a_ms_01.png"]
    (tmp_path / "a_ms" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        write_cave(Cube(x), tmp_path / "a_ms", scale=65535, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["a_ms"]


def test_cave_errors(tmp_path):
    data = RNG.integers(0, 65536, (4, 6, 3)).astype(np.uint16)
    top = _cave_by_hand(tmp_path, "s", data, nested=False)
    (top / "s_ms_02.png").unlink()
    with pytest.raises(FileFormatError, match="missing"):
        read_cave(top)
    (top / "s_ms_02.png").write_bytes(png_encode(data[:3, :, 1]))
    with pytest.raises(FileFormatError, match="differ in size"):
        read_cave(top)
    raw = png_encode(data[:, :, 1])
    (top / "s_ms_02.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match="s_ms_02.png"):
        read_cave(top)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match="not a CAVE folder"):
        read_cave(tmp_path / "empty")
