"""The data layer: sources, cache, messages, and the proof that both backends see the same batches."""

import gzip
import os
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from PIL import Image

import specs.datasets as datasets
from specs.datasets import DATASETS, Cached, DataError, DatasetSpec, get_spec, read_idx, to_uint8, to_unit
from specs.images import save_grid, to_pixels
from torch_impl.data import batches as torch_batches
from torch_impl.data import to_unit as torch_to_unit

# isort: split
from keras_impl.data import batches as keras_batches  # after torch_impl: torch before TensorFlow
from keras_impl.data import to_unit as keras_to_unit

# isort: split
import tensorflow as tf

# --------------------------------------------------------------------------------------------------- Fixtures


def save_image(path, pixels, format=None):
    """uint8 (h, w) is saved as grayscale 'L', uint8 (h, w, 3) as 'RGB'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=format)


@pytest.fixture
def image_folder(tmp_path):
    """Two classes in nested folders: PNG and JPEG, grayscale and RGB, upper- and lower-case suffixes."""
    generator = np.random.default_rng(0)
    root = tmp_path / "bricks"
    for index in range(8):
        rgb = generator.integers(0, 256, (12, 10, 3), dtype=np.uint8)
        save_image(root / "brick" / f"rgb_{index}.png", rgb)
        save_image(root / "brick" / "nested" / f"gray_{index}.JPG", rgb[..., 0], "JPEG")
        save_image(root / "plate" / f"gray_{index}.png", rgb[..., 1])
        save_image(root / "plate" / f"rgb_{index}.jpeg", rgb, "JPEG")
    (root / "plate" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


def write_idx(path, array):
    """An IDX file written by hand: 0 0 <type code> <ndim>, big-endian uint32 sizes, big-endian data."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[array.dtype]
    content = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    content += array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as handle:
        handle.write(content)


def write_celeba(root, ids_in_csv_order, blond, suffix="csv"):
    """Faces whose grey level encodes their id, created in reverse order; attribute rows in another order."""
    for image_id in sorted(ids_in_csv_order, reverse=True):
        grey = np.full((20, 16), int(image_id[:6]) * 10, dtype=np.uint8)
        save_image(root / "img_align_celeba" / image_id, grey, "PNG")  # PNG bytes: exact pixels
    columns = ["5_o_Clock_Shadow", "Blond_Hair", "Smiling"]
    rows = [[image_id, "-1", "1" if image_id in blond else "-1", "1"] for image_id in ids_in_csv_order]
    if suffix == "csv":
        lines = [",".join(["image_id", *columns]), *(",".join(row) for row in rows)]
    else:  # the original whitespace-separated list_attr_celeba.txt
        lines = [str(len(rows)), " ".join(columns), *("  ".join(row) for row in rows)]
    (root / f"list_attr_celeba.{suffix}").write_text("\n".join(lines) + "\n")


def first_batches(cached, spec, batch_size, count=3, kind="tf.data"):
    """The first `count` batches of epoch 0 from torch and from one Keras pipeline (tf.data on TensorFlow, the
    PyDataset on JAX and PyTorch), as NHWC numpy arrays."""
    torch_epoch = list(torch_batches(cached, spec, batch_size, 0, one_hot=True))[:count]
    keras_epoch = list(keras_batches(cached, spec, batch_size, one_hot=True, kind=kind))[:count]
    torch_side = [(images.numpy().transpose(0, 2, 3, 1), labels.numpy()) for images, labels in torch_epoch]
    keras_side = [(np.asarray(images), np.asarray(labels)) for images, labels in keras_epoch]
    return torch_side, keras_side


# ----------------------------------------------------------------------------------- Same batches, both sides


@pytest.mark.parametrize("kind", ["tf.data", "PyDataset"])
@pytest.mark.parametrize("source", ["digits", "folder"])
def test_first_three_batches_are_identical_in_both_backends(source, kind, image_folder, cache_dir):
    path = str(image_folder) if source == "folder" else None
    spec = get_spec(source, path=path, image_size=16, channels=3, seed=7, cache_dir=cache_dir)
    cached = spec.load()
    torch_side, keras_side = first_batches(cached, spec, batch_size=8, kind=kind)
    assert len(torch_side) == len(keras_side) == 3
    order = spec.batch_order(0, len(cached.labels), 8)
    for index, (torch_batch, keras_batch) in enumerate(zip(torch_side, keras_side)):
        (torch_images, torch_labels), (keras_images, keras_labels) = torch_batch, keras_batch
        assert torch_images.dtype == keras_images.dtype == np.float32
        assert np.array_equal(torch_images, keras_images)
        assert np.array_equal(torch_labels, keras_labels)
        assert np.array_equal(torch_images, to_unit(cached.images[order[index]]))
        assert np.array_equal(torch_labels.argmax(1), cached.labels[order[index]])


def test_torch_batches_are_channels_last_nchw_float32(cache_dir):
    """(N, C, H, W) float32 laid out channels-last, as the trainers' kernels are (RGB: a layout of its own)."""
    spec = get_spec("fake", image_size=12, channels=3, fake_size=64, seed=0)
    images = next(torch_batches(spec.load(), spec, 32, epoch=0))
    assert images.shape == (32, 3, 12, 12) and images.dtype == torch.float32
    assert images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()


def test_keras_dataset_walks_several_epochs_with_a_static_batch_dimension(cache_dir):
    spec = get_spec("fake", image_size=8, channels=3, fake_size=50, seed=3)
    cached = spec.load()
    dataset = keras_batches(cached, spec, 16, first_epoch=2, epochs=2)
    assert dataset.element_spec == tf.TensorSpec((16, 8, 8, 3), tf.float32)
    assert int(dataset.cardinality()) == 6
    keras_side = [images.numpy() for images in dataset]
    torch_side = [images.numpy().transpose(0, 2, 3, 1) for epoch in (2, 3) for images in torch_batches(
        cached, spec, 16, epoch)]
    assert len(keras_side) == len(torch_side) == 6
    assert all(np.array_equal(keras, torch_) for keras, torch_ in zip(keras_side, torch_side))
    sequence = keras_batches(cached, spec, 16, first_epoch=2, epochs=2, kind="PyDataset")  # JAX's and torch's
    assert len(sequence) == 6 and sequence[5].shape == (16, 8, 8, 3)
    assert all(np.array_equal(sequence[index], torch_) for index, torch_ in enumerate(torch_side))
    with pytest.raises(IndexError):
        sequence[6]


def test_batch_order_is_seeded_per_epoch_and_drops_the_remainder():
    spec = DatasetSpec("fake", seed=5)
    order = spec.batch_order(0, 10, 3)
    assert order.shape == (3, 3) and order.dtype == np.int64 and len(set(order.ravel())) == 9
    assert np.array_equal(order.ravel(), np.random.default_rng([5, 0]).permutation(10)[:9])
    assert np.array_equal(order, spec.batch_order(0, 10, 3))
    assert not np.array_equal(order, spec.batch_order(1, 10, 3))


# ---------------------------------------------------------------------------------------------------- Sources


def test_folder_reads_png_and_jpeg_in_nested_folders(image_folder, cache_dir):
    gray = get_spec("folder", path=str(image_folder), image_size=10, channels=1, cache_dir=cache_dir).load()
    rgb = get_spec("folder", path=str(image_folder), image_size=10, channels=3, cache_dir=cache_dir).load()
    assert gray.images.shape == (32, 10, 10, 1) and rgb.images.shape == (32, 10, 10, 3)
    assert gray.class_names == rgb.class_names == ("brick", "plate") and gray.num_classes == 2
    assert list(gray.labels) == [0] * 16 + [1] * 16
    first = image_folder / "brick" / "nested" / "gray_0.JPG"  # sorted by relative path: nested/ before rgb_
    with Image.open(first) as image:
        assert np.array_equal(gray.images[0], to_pixels(image, 10, 1))
    with Image.open(image_folder / "plate" / "gray_0.png") as image:
        assert np.array_equal(rgb.images[16], to_pixels(image, 10, 3))


def test_flat_folder_is_one_class(tmp_path, cache_dir):
    for index in range(3):
        save_image(tmp_path / "flat" / f"{index}.bmp", np.full((4, 4), index, np.uint8))
    cached = get_spec("folder", path=str(tmp_path / "flat"), image_size=4, cache_dir=cache_dir).load()
    assert cached.class_names == ("flat",) and list(cached.labels) == [0, 0, 0]
    assert [int(image[0, 0, 0]) for image in cached.images] == [0, 1, 2]


@pytest.mark.parametrize("suffix", ["csv", "txt"])
def test_celeba_labels_are_joined_by_image_id(tmp_path, cache_dir, suffix):
    ids = ["000004.jpg", "000002.jpg", "000003.jpg", "000001.jpg"]  # neither sorted nor creation order
    write_celeba(tmp_path, ids, blond={"000001.jpg", "000002.jpg"}, suffix=suffix)
    cached = get_spec("celeba", path=str(tmp_path), image_size=8, cache_dir=cache_dir).load()
    assert cached.class_names == ("not Blond_Hair", "Blond_Hair")
    assert [int(image[0, 0, 0]) // 10 for image in cached.images] == [1, 2, 3, 4]  # sorted by file name
    assert list(cached.labels) == [1, 1, 0, 0]  # listing order would give 0 0 1 1, CSV order 0 1 0 1
    smiling = get_spec("celeba", path=str(tmp_path), image_size=8, attribute="Smiling", cache_dir=cache_dir)
    assert list(smiling.load().labels) == [1, 1, 1, 1]


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_reads_idx_files(tmp_path, cache_dir, suffix):
    generator = np.random.default_rng(1)
    pixels = generator.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = generator.integers(0, 10, 20).astype(np.uint8)
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", pixels)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels)
    cached = get_spec("fashion_mnist", path=str(tmp_path), image_size=28, cache_dir=cache_dir).load()
    assert np.array_equal(cached.images[..., 0], pixels) and np.array_equal(cached.labels, labels)
    assert cached.class_names[9] == "Ankle boot"
    resized = get_spec("mnist", path=str(tmp_path), image_size=16, channels=3, cache_dir=cache_dir).load()
    assert resized.images.shape == (20, 16, 16, 3) and resized.class_names[3] == "3"


def test_read_idx_handles_wider_types_and_rejects_garbage(tmp_path):
    array = np.arange(-6, 6, dtype=np.int32).reshape(2, 3, 2)
    write_idx(tmp_path / "ints.idx", array)
    assert np.array_equal(read_idx(tmp_path / "ints.idx"), array)
    (tmp_path / "bad.idx").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(DataError, match="bad magic number"):
        read_idx(tmp_path / "bad.idx")
    (tmp_path / "short.idx").write_bytes((tmp_path / "ints.idx").read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short.idx")


def test_fake_is_seeded_and_not_cached(cache_dir):
    first = get_spec("fake", seed=4, fake_size=12, image_size=6, cache_dir=cache_dir).load()
    again = get_spec("fake", seed=4, fake_size=12, image_size=6, cache_dir=cache_dir).load()
    assert first.images.shape == (12, 6, 6, 1) and first.num_classes == 10
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    assert not os.path.exists(cache_dir)


def test_registry_lists_every_source():
    assert list(DATASETS) == ["digits", "folder", "celeba", "mnist", "fashion_mnist", "fake"]


# --------------------------------------------------------------------------------------------------- Messages


@pytest.mark.parametrize(
    ("name", "expected"),
    [("folder", "lego-brick-images"), ("celeba", "celeba-dataset"), ("mnist", "--download")],
)
def test_missing_path_says_what_was_expected_and_where_to_get_it(tmp_path, cache_dir, name, expected):
    with pytest.raises(DataError, match=expected) as error:
        get_spec(name, path=str(tmp_path / "nowhere"), cache_dir=cache_dir).load()
    assert "nowhere" in str(error.value)


def test_empty_folder_is_an_error(tmp_path, cache_dir):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        get_spec("folder", path=str(tmp_path / "empty"), cache_dir=cache_dir).load()


def test_corrupt_image_is_named_and_leaves_no_cache(image_folder, cache_dir):
    (image_folder / "plate" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="broken.png"):
        get_spec("folder", path=str(image_folder), cache_dir=cache_dir).load()
    assert not os.path.exists(cache_dir) or os.listdir(cache_dir) == []


def test_failed_cache_write_leaves_no_file(cache_dir, monkeypatch):
    def write_half_then_fail(handle, cached):
        handle.write(b"half a cache")
        raise OSError("disk full")

    monkeypatch.setattr(datasets, "write_cache", write_half_then_fail)
    with pytest.raises(DataError, match="cannot write the cache .*disk full"):
        get_spec("digits", image_size=8, cache_dir=cache_dir).load()
    assert os.listdir(cache_dir) == []


def test_unknown_celeba_attribute_lists_the_available_ones(tmp_path, cache_dir):
    write_celeba(tmp_path, ["000001.jpg"], blond=set())
    with pytest.raises(DataError, match="'Bald'.*available: 5_o_Clock_Shadow, Blond_Hair, Smiling"):
        get_spec("celeba", path=str(tmp_path), attribute="Bald", cache_dir=cache_dir).load()


def test_celeba_image_without_a_row_is_named(tmp_path, cache_dir):
    write_celeba(tmp_path, ["000001.jpg", "000002.jpg"], blond=set())
    save_image(tmp_path / "img_align_celeba" / "000009.jpg", np.zeros((4, 4), np.uint8), "JPEG")
    with pytest.raises(DataError, match="000009.jpg has no row"):
        get_spec("celeba", path=str(tmp_path), cache_dir=cache_dir).load()


def test_data_set_smaller_than_one_batch(cache_dir):
    spec = get_spec("fake", fake_size=10)
    cached = spec.load()
    message = "data set has 10 examples, fewer than one batch of 16; lower --batch-size"
    for make_batches in (lambda: spec.batch_order(0, 10, 16), lambda: torch_batches(cached, spec, 16, 0),
                         lambda: keras_batches(cached, spec, 16)):
        with pytest.raises(DataError, match=message):
            make_batches()


def test_unknown_data_set_lists_the_known_ones():
    with pytest.raises(DataError, match="'lsun'.*known data sets: digits, folder, celeba, mnist"):
        get_spec("lsun")


def test_failed_download_is_a_clear_error(tmp_path, cache_dir, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="could not download train-images-idx3-ubyte.gz .*no network"):
        get_spec("mnist", path=str(tmp_path / "mnist"), download=True, cache_dir=cache_dir).load()
    assert not (tmp_path / "mnist").exists() or list((tmp_path / "mnist").iterdir()) == []


# ------------------------------------------------------------------------------------------------------ Cache


def test_cache_is_read_without_decoding_and_rebuilt_when_a_file_changes(image_folder, cache_dir, monkeypatch):
    spec = get_spec("folder", path=str(image_folder), image_size=8, cache_dir=cache_dir)
    first = spec.load()

    def no_decoding(*args):
        raise AssertionError("an existing cache must not decode images")

    with monkeypatch.context() as patch:
        patch.setattr(datasets, "read_image_file", no_decoding)
        assert np.array_equal(spec.load().images, first.images)

    changed = image_folder / "brick" / "rgb_0.png"
    save_image(changed, np.full((12, 10, 3), 255, np.uint8))
    os.utime(changed, ns=(1, 1))  # a different mtime_ns however coarse the file system clock
    rebuilt = spec.load()
    assert not np.array_equal(rebuilt.images, first.images) and (rebuilt.images[8] == 255).all()
    assert len(os.listdir(cache_dir)) == 2  # the old one stays: another checkout may still use it


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("GAN_PARITY_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert DatasetSpec("digits").cache_root() == tmp_path / "xdg" / "gan-parity"
    monkeypatch.setenv("GAN_PARITY_CACHE", str(tmp_path / "mine"))
    assert DatasetSpec("digits").cache_root() == tmp_path / "mine"
    assert DatasetSpec("digits", cache_dir=str(tmp_path / "given")).cache_root() == tmp_path / "given"


def test_save_grid_writes_one_png_atomically(tmp_path):
    images = np.stack([np.full((4, 5, 3), value, np.uint8) for value in (10, 20, 30, 40, 50)])
    path = save_grid(images, tmp_path / "grids" / "epoch_1.png", rows=2)
    with Image.open(path) as grid:
        assert grid.size == (3 * (5 + 2) + 2, 2 * (4 + 2) + 2) and grid.mode == "RGB"
        assert grid.getpixel((2 + 7, 2)) == (20, 20, 20)
    assert os.listdir(tmp_path / "grids") == ["epoch_1.png"]


# ---------------------------------------------------------------------------------------------------- Scaling


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=4, max_dims=4, max_side=6)))
def test_scaling_round_trips_and_is_bitwise_equal_in_both_backends(u8):
    unit = to_unit(u8)
    assert unit.dtype == np.float32 and np.array_equal(to_uint8(unit), u8)
    assert np.array_equal(torch_to_unit(torch.from_numpy(u8)).numpy().view(np.uint32), unit.view(np.uint32))
    assert np.array_equal(keras_to_unit(tf.constant(u8)).numpy().view(np.uint32), unit.view(np.uint32))


def test_every_byte_scales_to_the_same_float32_inside_tf_data():
    every_byte = np.arange(256, dtype=np.uint8).reshape(16, 4, 4, 1)
    cached = Cached(every_byte, np.zeros(16, np.int64), 1, ("all",))
    spec = DatasetSpec("fake")
    keras_side = np.concatenate([images.numpy() for images in keras_batches(cached, spec, 16)])
    order = spec.batch_order(0, 16, 16)[0]
    assert np.array_equal(keras_side.view(np.uint32), to_unit(every_byte[order]).view(np.uint32))
