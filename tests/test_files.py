"""Real data in: class folders of image files at mixed sizes, file lists, tf.data, mixed-size lists."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from automl_kit import ImageClassifier
from automl_kit.data import files, sources
from tests.conftest import QUICK

# One worker for the module: its fitted fixture is then fitted once.
pytestmark = pytest.mark.xdist_group("files")

CLASSES = ("five", "one", "zero")  # folder names: the labels, sorted
DIGIT_OF = {"zero": 0, "one": 1, "five": 5}


def write_image_tree(root, per_class=24, seed=0):
    """Digits saved as PNG and JPEG files at mixed sizes (12 to 22 px), one subfolder per class.

    Most files are RGB (the grey digit in three channels); one is greyscale
    and one RGBA. Returns the paths, in sorted order, and their labels.
    """
    digits = load_digits()
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for label in CLASSES:
        os.makedirs(os.path.join(root, label), exist_ok=True)
        for i, index in enumerate(np.flatnonzero(digits.target == DIGIT_OF[label])[:per_class]):
            height, width = (int(side) for side in rng.integers(12, 23, size=2))
            grey = Image.fromarray((digits.images[index] * 255 / 16).astype(np.uint8)).resize((width, height))
            image, extension = grey.convert("RGB"), ("png" if i % 2 else "jpg")
            if (label, i) == (CLASSES[0], 0):
                image = grey
            elif (label, i) == (CLASSES[0], 1):
                image, extension = grey.convert("RGBA"), "png"
            path = os.path.join(root, label, f"{i:03d}.{extension}")
            image.save(path)
            paths.append(path)
            labels.append(label)
    return paths, labels


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("images"))
    paths, labels = write_image_tree(root)
    return root, paths, labels


@pytest.fixture(scope="module")
def folder_fit(tree):
    root, _, _ = tree
    return ImageClassifier(max_trials=1, seed=0, epochs=3, **QUICK).fit(root, verbose=0)


# ------------------------------------------------------------------ reading --
def test_a_class_folder_reads_as_one_uint8_array_with_folder_names_as_labels(tree):
    root, paths, labels = tree
    images = sources.read(root)
    assert images.paths == sorted(paths) == paths
    assert images.labels.tolist() == labels
    assert images.pixels.dtype == np.uint8
    # The median of the sizes drawn, in colour because most files are RGB.
    heights, widths = zip(*(files.header(p)[:2] for p in paths))
    assert images.pixels.shape == (len(paths), int(round(np.median(heights))), int(round(np.median(widths))), 3)


def test_grey_and_rgba_files_become_the_chosen_channels_as_tf_decodes_them(tree):
    _, paths, _ = tree
    grey, rgba = paths[0], paths[1]
    assert files.header(grey)[2] == 1 and files.header(rgba)[2] == 3
    assert files.decode(grey, 3).shape[2] == 3 and files.decode(rgba, 3).shape[2] == 3
    decoded = files.decode(grey, 3)
    assert np.array_equal(decoded[..., 0], decoded[..., 2])  # grey repeated, not coloured


def test_lists_of_arrays_and_pil_images_of_several_sizes_are_resized():
    small, large = np.full((10, 12), 200, np.uint8), np.full((20, 14, 4), 100, np.uint8)
    images = sources.read([small, large, Image.fromarray(small)], ["a", "b", "a"], image_size=(16, 16))
    assert images.pixels.shape == (3, 16, 16, 3)
    assert images.pixels[0].min() == images.pixels[0].max() == 200  # a flat image stays flat
    assert images.pixels[1].max() == 100  # alpha dropped, not averaged in
    assert sources.is_source([small, large]) and not sources.is_source([small, small])


def test_a_dataset_of_batches_or_of_pairs_reads_the_same():
    import tensorflow as tf

    x = np.random.default_rng(0).integers(0, 255, (10, 9, 9, 1)).astype(np.uint8)
    y = np.arange(10) % 2
    batched = sources.read(tf.data.Dataset.from_tensor_slices((x, y)).batch(4))
    pairs = sources.read(tf.data.Dataset.from_tensor_slices((x, y)))
    assert np.array_equal(batched.pixels, x) and np.array_equal(pairs.pixels, x)
    assert batched.labels.tolist() == pairs.labels.tolist() == y.tolist()


# ---------------------------------------------------------------------- fit --
def test_fit_on_a_folder_predicts_folder_names_and_takes_any_size(folder_fit, tree):
    root, paths, labels = tree
    assert folder_fit.classes_.tolist() == sorted(CLASSES)
    assert folder_fit.input_spec_.any_size and folder_fit.input_spec_.image_shape[2] == 3
    assert set(folder_fit.predict(root)) <= set(CLASSES)
    assert folder_fit.score(root) == pytest.approx(np.mean(folder_fit.predict(paths) == np.asarray(labels)))
    # An array at another size, and one file, predict too.
    other = np.zeros((2, 30, 25, 3), np.uint8)
    assert folder_fit.predict_proba(other).shape == (2, len(CLASSES))
    assert folder_fit.predict(paths[5]).shape == (1,)


def test_fit_on_files_with_labels_and_on_a_dataset(tree):
    import tensorflow as tf

    root, paths, labels = tree
    on_files = ImageClassifier(max_trials=1, seed=0, epochs=1, **QUICK).fit(paths, labels, verbose=0)
    assert on_files.classes_.tolist() == sorted(CLASSES)
    pixels = sources.read(root).pixels
    codes = np.array([DIGIT_OF[label] for label in labels])
    dataset = tf.data.Dataset.from_tensor_slices((pixels, codes)).shuffle(100, seed=0).batch(16)
    on_dataset = ImageClassifier(max_trials=1, seed=0, epochs=1, **QUICK).fit(dataset, verbose=0)
    assert on_dataset.classes_.tolist() == [0, 1, 5]
    assert on_dataset.predict(tf.data.Dataset.from_tensor_slices(pixels[:7]).batch(3)).shape == (7,)


def test_exported_model_predicts_raw_files_in_a_fresh_process(folder_fit, tree, tmp_path):
    """The .keras file from raw decoded files at their own sizes, one at a time, and the SavedModel
    from the encoded bytes, both match predict_proba, without automl_kit imported."""
    _, paths, _ = tree
    folder_fit.export_model(str(tmp_path / "model.keras"))
    folder_fit.export_model(str(tmp_path / "saved"), format="saved_model")
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras, tensorflow as tf
        paths = {paths!r}
        model = keras.models.load_model({str(tmp_path / 'model.keras')!r})
        channels = model.input_shape[-1]
        decoded = [tf.io.decode_image(open(p, "rb").read(), channels=channels, expand_animations=False)
                   for p in paths]
        assert len({{tuple(image.shape[:2]) for image in decoded}}) > 1, "the files should differ in size"
        one_at_a_time = [np.asarray(model(image[None])["probabilities"])[0] for image in decoded]
        np.save("keras.npy", np.stack(one_at_a_time))
        loaded = tf.saved_model.load({str(tmp_path / 'saved')!r})
        out = loaded.serve_bytes(tf.constant([open(p, "rb").read() for p in paths]))
        np.save("bytes.npy", out["probabilities"].numpy())
        np.save("labels.npy", out["label"].numpy().astype(str))
        assert "automl_kit" not in sys.modules
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    expected = folder_fit.predict_proba(paths)
    for name in ("keras.npy", "bytes.npy"):
        got = np.load(tmp_path / name)
        assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1)), name
        np.testing.assert_allclose(got, expected, atol=1e-3, err_msg=name)
    assert np.load(tmp_path / "labels.npy").tolist() == folder_fit.predict(paths).tolist()


# ---------------------------------------------------------------- bad input --
def _copy_tree(tree, tmp_path):
    import shutil

    root = str(tmp_path / "copy")
    shutil.copytree(tree[0], root)
    return root


@pytest.mark.parametrize("problem", ["broken file", "empty class", "one class", "missing path"])
def test_bad_folders_fail_before_training_naming_the_file_or_folder(problem, tree, tmp_path, no_training):
    root = _copy_tree(tree, tmp_path)
    if problem == "broken file":
        named = os.path.join(root, "one", "broken.png")
        with open(named, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n this is not the rest of a PNG")
    elif problem == "empty class":
        named = os.path.join(root, "seven")
        os.makedirs(named)
    elif problem == "one class":
        import shutil

        for label in CLASSES[1:]:
            shutil.rmtree(os.path.join(root, label))
        named = root
    else:
        named = root = os.path.join(root, "nowhere")
    clf = ImageClassifier(max_trials=1, seed=0, epochs=1, directory=str(tmp_path / "search"), **QUICK)
    with pytest.raises((ValueError, OSError)) as error:
        clf.fit(root, verbose=0)
    assert named in str(error.value)
    assert not os.path.exists(tmp_path / "search")  # nothing started


def test_skip_unreadable_leaves_the_broken_file_out_with_a_warning(tree, tmp_path):
    root = _copy_tree(tree, tmp_path)
    broken = os.path.join(root, "zero", "broken.jpg")
    with open(broken, "wb") as f:
        f.write(b"\xff\xd8\xff not a jpeg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = sources.read(root, skip_unreadable=True)
    assert any(broken in str(w.message) for w in caught)
    assert len(images.pixels) == len(images.labels) == len(tree[1])
    with pytest.raises(ValueError, match="skip_unreadable=True"):
        sources.read(root)


def test_a_folder_with_y_and_a_dataset_with_y_are_refused(tree):
    import tensorflow as tf

    with pytest.raises(ValueError, match="omit y"):
        sources.read(tree[0], ["a"])
    with pytest.raises(ValueError, match="omit y"):
        sources.read(tf.data.Dataset.from_tensor_slices((np.zeros((2, 4, 4)), [0, 1])), [0, 1])
    with pytest.raises(ValueError, match="image_size"):
        ImageClassifier(image_size=(0, 8)).fit(tree[0])


def test_images_that_would_not_fit_in_memory_are_refused_saying_how_much_they_need(tree, monkeypatch):
    free_pages = {"SC_AVPHYS_PAGES": 16, "SC_PAGE_SIZE": 4096}  # 64 KiB free
    monkeypatch.setattr(sources.os, "sysconf", lambda name: free_pages[name])
    with pytest.raises(MemoryError, match=r"needs \d+\.\d GiB.*smaller image_size"):
        sources.read(tree[0], image_size=(2048, 2048))
