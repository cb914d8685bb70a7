"""Reading a class folder of image files: seconds and peak memory, `python -m benchmarks.read_folder`.

    python -m benchmarks.read_folder                 # 10,000 CIFAR-10 images as PNG files
    python -m benchmarks.read_folder --count 2000 --format jpg

Writes the first `--count` images of `cifar10_train_batch1.npz` (from
`--data-dir`, default `../shared/datasets/`) as files in a class folder
(`<tmp>/<label>/<index>.png`), then reads the folder back in a fresh process
with `automl_kit.data.sources.read`, exactly as `ImageClassifier.fit(folder)`
does: headers first (Pillow), then every file decoded by `tf.io.decode_image`
and held once as uint8 at the chosen size. It prints the seconds to list
and read the headers, the seconds to decode, the peak resident memory of the
reading process against the process's memory after importing TensorFlow,
and the bytes of the array it holds.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.search_at_budget import DEFAULT_DATA_DIR, git_commit, load

READER = r"""
import json, resource, sys, time
import numpy as np
import tensorflow as tf  # imported before the clock starts: its import is not reading
from automl_kit.data import files, sources

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

before = rss_mb()
started = time.monotonic()
paths, labels = files.class_folder(sys.argv[1])
headers = [files.header(p) for p in paths]
listed = time.monotonic() - started
started = time.monotonic()
images = sources.read(sys.argv[1])
read = time.monotonic() - started
print(json.dumps({"files": len(paths), "list_and_headers_s": listed, "read_s": read,
                  "shape": list(images.pixels.shape), "array_mb": images.pixels.nbytes / 1e6,
                  "rss_before_mb": before, "peak_rss_mb": rss_mb()}))
"""


def write_folder(x, y, root, extension):
    from PIL import Image

    for index, (image, label) in enumerate(zip(x, y)):
        folder = os.path.join(root, str(int(label)))
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).save(os.path.join(folder, f"{index:05d}.{extension}"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--format", default="png", choices=("png", "jpg"))
    args = parser.parse_args(argv)

    x, y = load(args.data_dir, "cifar10_train_batch1")
    x, y = x[:args.count], y[:args.count]
    with tempfile.TemporaryDirectory(prefix="automl_kit_read_") as root:
        started = time.monotonic()
        write_folder(x, y, root, args.format)
        written = time.monotonic() - started
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(root) for f in names)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run([sys.executable, "-c", READER, root], env=env, capture_output=True, text=True,
                             check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(f"commit {git_commit()}, {len(x):,} CIFAR-10 images as {args.format.upper()} "
          f"({size / 1e6:.1f} MB on disk, written in {written:.1f} s)")
    print(f"list + headers: {result['list_and_headers_s']:.2f} s")
    print(f"read (headers + decode + hold):  {result['read_s']:.2f} s "
          f"({result['files'] / result['read_s']:.0f} files/s), array {result['shape']} uint8, "
          f"{result['array_mb']:.1f} MB")
    print(f"peak resident memory: {result['peak_rss_mb']:.0f} MB "
          f"({result['peak_rss_mb'] - result['rss_before_mb']:.0f} MB above the process after importing TensorFlow)")
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
