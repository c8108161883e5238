"""Real files as they come: photographs with EXIF orientation, 16-bit, palette, CMYK and transparent PNGs, gray and
colour mixed, pictures far from square, and what the data set says about them (specs/images.py, specs/datasets.py).

Each case first shows the failure the old reading had (PIL's plain `convert` and `resize`), then that the reading
now gives the right pixels and says what it changed. The photographs are scikit-learn's two sample images; every
other file is written here with PIL.
"""

import errno
import logging

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

import specs.datasets as datasets
from specs import logs
from specs.datasets import DataError, data_identity, get_spec
from specs.images import Conversions, to_pixels


@pytest.fixture(scope="module")
def photos():
    """china.jpg and flower.jpg, uint8 (427, 640, 3) each."""
    return load_sample_images().images


def old_reading(path, size, channels):
    """What the reading was: PIL's convert to L or RGB, then the bilinear resize; nothing else."""
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(image).reshape(size, size, channels)


def load(root, size, channels=3, **fields):
    return get_spec("folder", path=str(root), image_size=size, channels=channels,
                    cache_dir=str(root.parent / "cache"), **fields).load()


# ----------------------------------------------------------------------------------------------------- 16 bits


def test_16_bit_gray_is_scaled_not_clipped(tmp_path):
    levels = np.linspace(0, 65535, 16 * 16).round().astype(np.uint16).reshape(16, 16)
    (tmp_path / "photos").mkdir()
    Image.fromarray(levels).save(tmp_path / "photos" / "a.png")  # a 16-bit grayscale PNG
    with Image.open(tmp_path / "photos" / "a.png") as image:
        assert image.mode == "I;16"
    assert (old_reading(tmp_path / "photos" / "a.png", 16, 1) == 255).mean() > 0.99  # the old reading: all white
    data = load(tmp_path / "photos", 16, channels=1)
    expected = np.floor(levels / 257 + 0.5).astype(np.uint8)  # round(x / 257): 65535 -> 255, 32896 -> 128
    assert np.array_equal(data.images[0, ..., 0], expected)
    assert data.images.min() == 0 and data.images.max() == 255 and len(np.unique(data.images)) > 200
    assert "1 16-bit scaled to 8 bits (x / 257, rounded)" in data.note


# ------------------------------------------------------------------------------------------ EXIF orientation


@pytest.mark.parametrize("orientation, turn", [(6, lambda a: np.rot90(a, -1)), (3, lambda a: np.rot90(a, 2)),
                                               (8, lambda a: np.rot90(a, 1)), (2, lambda a: a[:, ::-1])])
def test_exif_orientation_is_applied_to_a_photograph(tmp_path, photos, orientation, turn):
    """A phone photograph stores its pixels sideways and says in EXIF how to show them."""
    crop = photos[0][100:148, 200:248]  # a square crop of china.jpg: no resizing, so pixels compare exactly
    (tmp_path / "photos").mkdir()
    Image.fromarray(crop).save(tmp_path / "plain.jpg", quality=95)
    picture = Image.fromarray(crop)
    exif = picture.getexif()
    exif[0x0112] = orientation
    picture.save(tmp_path / "photos" / "phone.jpg", quality=95, exif=exif)
    with Image.open(tmp_path / "plain.jpg") as plain:
        stored = np.asarray(plain.convert("RGB"))  # the same JPEG bytes, decoded as they are stored
    assert np.array_equal(old_reading(tmp_path / "photos" / "phone.jpg", 48, 3), stored)  # the old reading ignored it
    data = load(tmp_path / "photos", 48)
    assert np.array_equal(data.images[0], turn(stored))
    assert not np.array_equal(data.images[0], stored)
    assert "1 turned upright as their EXIF orientation says" in data.note


# ----------------------------------------------------------------------------------------------- Transparency


def transparent_png(path, photos):
    """A photograph crop whose left half is fully transparent and right half half-transparent (alpha 128); the
    transparent pixels keep the photograph's colours, as PNG editors leave them."""
    rgb = photos[1][200:216, 300:316]
    alpha = np.full((16, 16), 128, np.uint8)
    alpha[:, :8] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return rgb.astype(np.int64), alpha.astype(np.int64)[..., None]


@pytest.mark.parametrize("alpha, background", [("white", 255), ("black", 0)])
def test_transparency_is_composited_on_the_chosen_background(tmp_path, photos, alpha, background):
    rgb, weight = transparent_png(tmp_path / "photos" / "logo.png", photos)
    assert np.array_equal(old_reading(tmp_path / "photos" / "logo.png", 16, 3), rgb)  # alpha was dropped
    data = load(tmp_path / "photos", 16, alpha=alpha)
    expected = (rgb * weight + background * (255 - weight)) / 255
    assert np.abs(data.images[0].astype(np.int64) - expected).max() <= 1
    assert (data.images[0, :, :8] == background).all()
    assert f"1 with transparency composited on {alpha}" in data.note


def test_transparency_can_be_refused(tmp_path, photos):
    transparent_png(tmp_path / "photos" / "logo.png", photos)
    with pytest.raises(DataError, match=r"logo.png: it has transparent pixels; choose .* --alpha white or --alpha "
                                        "black"):
        load(tmp_path / "photos", 16, alpha="refuse")


def test_an_opaque_alpha_channel_changes_nothing_and_says_nothing(tmp_path, photos):
    rgb = photos[0][:16, :16]
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.dstack([rgb, np.full((16, 16), 255, np.uint8)]), "RGBA").save(tmp_path / "photos" / "a.png")
    data = load(tmp_path / "photos", 16, alpha="refuse")
    assert np.array_equal(data.images[0], rgb) and data.note == ""


# ----------------------------------------------------------------------------------- Palette, CMYK, channels


def test_palette_and_cmyk_are_converted_to_rgb(tmp_path, photos):
    crop = photos[1][150:182, 250:282]
    (tmp_path / "photos").mkdir()
    palette = Image.fromarray(crop).quantize(64)
    palette.save(tmp_path / "photos" / "a_palette.png")
    Image.fromarray(crop).convert("CMYK").save(tmp_path / "photos" / "b_cmyk.jpg", quality=95)
    with Image.open(tmp_path / "photos" / "b_cmyk.jpg") as image:
        assert image.mode == "CMYK"
    data = load(tmp_path / "photos", 32)
    assert np.array_equal(data.images[0], np.asarray(palette.convert("RGB")))
    assert np.abs(data.images[1].astype(int) - crop).mean() < 4  # the photograph again, through JPEG
    assert "1 palette, 1 CMYK converted to RGB" in data.note or "1 CMYK, 1 palette converted to RGB" in data.note


def test_gray_for_an_rgb_model_and_colour_for_a_gray_one_are_noted(tmp_path, photos):
    (tmp_path / "photos").mkdir()
    Image.fromarray(photos[0][:32, :32]).save(tmp_path / "photos" / "colour.png")
    Image.fromarray(photos[0][:32, :32, 0]).save(tmp_path / "photos" / "gray.png")
    Image.fromarray(np.repeat(photos[0][:32, :32, :1], 3, axis=2)).save(tmp_path / "photos" / "gray_as_rgb.png")
    rgb = load(tmp_path / "photos", 32, channels=3)
    assert rgb.note == ("3 images: 1 grayscale repeated to 3 channels for this RGB model (--channels 1 trains on "
                        "gray)")
    gray = load(tmp_path / "photos", 32, channels=1)
    assert gray.note == ("3 images: 1 in colour turned gray (L = 0.299 R + 0.587 G + 0.114 B) for this 1-channel "
                         "model (--channels 3 keeps the colour)")  # an RGB file of gray pixels loses nothing
    digits = get_spec("digits", image_size=8, channels=3, cache_dir=str(tmp_path / "cache")).load()
    assert "1797 grayscale repeated to 3 channels" in digits.note


# ---------------------------------------------------------------------------------------------------- Fitting


def test_a_picture_far_from_square_is_noted_with_how_it_was_fitted(tmp_path, photos):
    strip = photos[1][200:208, :400]  # 400 x 8
    (tmp_path / "photos").mkdir()
    Image.fromarray(strip).save(tmp_path / "photos" / "strip.png")
    Image.fromarray(photos[0][:64, :64]).save(tmp_path / "photos" / "square.png")
    stretched = load(tmp_path / "photos", 8)
    assert stretched.note == ("2 images: 1 far from square (up to 50:1, strip.png 400x8) stretched to 8x8 "
                              "(--fit crop or --fit pad to change)")
    cropped = load(tmp_path / "photos", 8, fit="crop")
    centre = Image.fromarray(strip[:, 196:204]).resize((8, 8), Image.BILINEAR)
    assert np.array_equal(cropped.images[1], np.asarray(centre)) and "centre-cropped to a square" in cropped.note
    padded = load(tmp_path / "photos", 40, fit="pad")
    assert (padded.images[1][:16] == 0).all() and (padded.images[1][-16:] == 0).all()  # black above and below
    assert padded.images[1][20].std() > 0 and "padded with black to a square" in padded.note


def test_real_photographs_of_ordinary_shape_read_without_a_note(tmp_path, photos):
    (tmp_path / "photos").mkdir()
    for name, photo in zip(("china", "flower"), photos):
        Image.fromarray(photo).save(tmp_path / "photos" / f"{name}.jpg", quality=95)
    data = load(tmp_path / "photos", 32)
    assert data.note == "" and data.images.shape == (2, 32, 32, 3)
    with Image.open(tmp_path / "photos" / "china.jpg") as image:
        assert np.array_equal(data.images[0], to_pixels(image, 32, 3))
    assert data.images.std() > 30  # pictures, not a flat colour


def test_floating_point_pixels_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="floating-point pixels"):
        to_pixels(Image.fromarray(np.zeros((4, 4), np.float32)), 4, 1, conversions=Conversions())


# -------------------------------------------------------------------------------------- What a data set says


def test_the_data_line_names_images_classes_and_how_they_were_derived(tmp_path, photos):
    for folder in ("china/day", "china/night", "flower"):
        (tmp_path / "photos" / folder).mkdir(parents=True)
    for index in range(3):
        Image.fromarray(photos[0][index:index + 8, :8]).save(tmp_path / "photos" / "china" / "day" / f"{index}.png")
    Image.fromarray(photos[0][:8, :8]).save(tmp_path / "photos" / "china" / "night" / "0.png")
    Image.fromarray(photos[1][:8, :8]).save(tmp_path / "photos" / "flower" / "0.png")
    spec = get_spec("folder", path=str(tmp_path / "photos"), image_size=8, cache_dir=str(tmp_path / "cache"))
    line = spec.describe(spec.load())
    assert line == (f"folder {tmp_path / 'photos'}: 5 images, 2 classes from the names of the top-level folders "
                    "(nested folders: each image belongs to the top-level folder it lies under): china 4, flower 1")
    digits = get_spec("digits", image_size=8, cache_dir=str(tmp_path / "cache"))
    assert digits.describe(digits.load()).startswith("digits: 1797 images, 10 classes from scikit-learn's digit "
                                                     "labels: 0 178, 1 182,")


def test_the_identity_changes_with_any_pixel_and_names_its_classes():
    images = np.zeros((4, 2, 2, 1), np.uint8)
    labels = np.array([0, 1, 1, 0])
    first = data_identity(images, labels, ("a", "b"))
    assert first["images"] == 4 and [count for count, _ in first["classes"].values()] == [2, 2]
    images[2, 1, 1, 0] = 1
    second = data_identity(images, labels, ("a", "b"))
    assert second["digest"] != first["digest"] and second["classes"]["a"] == first["classes"]["a"]
    assert second["classes"]["b"] != first["classes"]["b"]


def test_a_celeba_row_with_too_few_columns_is_named(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "img_align_celeba" / "000001.jpg")
    (tmp_path / "list_attr_celeba.csv").write_text("image_id,Smiling,Blond_Hair\n000001.jpg,1\n")
    with pytest.raises(DataError, match=r"list_attr_celeba.csv, line 2: 2 columns where the header has 3 "
                                        r"\(row '000001.jpg 1'\); repair or remove that row"):
        get_spec("celeba", path=str(tmp_path), cache_dir=str(tmp_path / "cache")).load()


@pytest.mark.parametrize("code, advice", [(errno.EACCES, "make it writable, or choose another --cache-dir"),
                                          (errno.ENOSPC, "free some space, or choose another --cache-dir")])
def test_an_unwritable_cache_says_what_helps(tmp_path, monkeypatch, code, advice):
    def fail(path, write):
        raise OSError(code, "refused", str(path))

    monkeypatch.setattr(datasets, "write_atomically", fail)
    with pytest.raises(DataError) as error:
        get_spec("digits", image_size=8, cache_dir=str(tmp_path / "cache")).load()
    assert advice in str(error.value) and ("free some space" in str(error.value)) == (code == errno.ENOSPC)


def test_a_cache_folder_under_a_file_is_not_a_full_disk(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="cannot write the cache .*; make it writable, or choose another --cache-dir"):
        get_spec("digits", image_size=8, cache_dir=str(tmp_path / "file" / "cache")).load()


@pytest.mark.parametrize("quiet", [False, True])
def test_the_caching_bar_follows_quiet(tmp_path, capsys, quiet):
    logs.setup("gan-torch", quiet=quiet)
    try:
        get_spec("digits", image_size=8, cache_dir=str(tmp_path / "cache")).load()  # 1,797 images: a bar
    finally:
        logs.setup("gan-torch")
    assert ("caching digits" in capsys.readouterr().err) is not quiet
    assert logging.getLogger("specs").level == logging.INFO
