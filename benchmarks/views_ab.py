"""Does averaging test-time views pay? One network, scored on plain images and as the final model predicts.

The final stage (automl_kit/tuner/final.py) wraps the final network in
`builder.augmented_at_test_time`: its probabilities are averaged over each
image (half the weight) and its copies shifted `Recipe.test_time_shift`
pixels down-right and up-left (a quarter each), and, where the training
flipped, over their mirror images too: airbench's `infer_mirror_translate`.
This script measures what that buys. The macro search space's prior trains
with the final recipe (`Recipe.for_final`, flips for colour images) for a
given number of epochs on one cycle, on the training rows of
`benchmarks.run.held_out_split` (all but 2,000 of a dataset's training
images, a quarter for smaller sets; 8,000 at most), and is scored on the
rows held out, three ways: plain, with test-time flips alone (colour images),
and with the product's views. The test images are not touched. One run per
call, one thread, so that two share the cores:

    python -m benchmarks.views_ab fashion_mnist 25 0 & python -m benchmarks.views_ab cifar10 20 0

At 9506923, on this 2-core machine (accuracy on the held-out rows):

| dataset, epochs | seed 0: plain / flips alone / views | seed 1: plain / flips alone / views |
|---|---|---|
| digits (314 held out), 40 | 0.9968 / - / **1.0000** | 1.0000 / - / 1.0000 |
| MNIST, 15 | 0.9950 / - / **0.9965** | 0.9940 / - / **0.9955** |
| Fashion-MNIST split, 25 | 0.9075 / - / **0.9145** | 0.9095 / - / **0.9150** |
| CIFAR-10 (`data_batch_1`), 20 | 0.8090 / 0.8170 / **0.8240** | 0.8055 / 0.8170 / **0.8270** |

CIFAR-10 seed 0 is this script's run. The others came from an experiment
script that trained the same way and averaged the same views with numpy
(where both ran, CIFAR-10 seed 0, they trained the same network: 0.8090
plain and 0.8170 with flips in each). Seven of the eight gained and none lost: +0.7 point on Fashion-MNIST
and, over flips alone, on CIFAR-10, +0.15 on MNIST. In the same runs,
the four one-pixel shifts plus the image (five views) or all nine gained
about as much; airbench's three (six with mirrors) cost the least.
"""

import json
import sys


def main(argv=None):
    import numpy as np

    from automl_kit.blocks.builder import augmented_at_test_time
    from benchmarks.run import prior_trained_on_held_out_split

    argv = sys.argv[1:] if argv is None else argv
    dataset, epochs, seed = argv[0], int(argv[1]), int(argv[2])
    data_dir = argv[3] if len(argv) > 3 else "../shared/datasets"
    model, recipe, spec, x, y, val, seconds = prior_trained_on_held_out_split(dataset, data_dir, epochs, seed)

    def accuracy(network):
        return round(float(np.mean(network.predict(x[val], verbose=0, batch_size=500).argmax(-1) == y[val])), 4)

    views = {"flip": recipe.flip, "shift": recipe.test_time_shift}
    row = {"dataset": dataset, "epochs": epochs, "seed": seed, "views": views, "plain": accuracy(model),
           "flips_alone": accuracy(augmented_at_test_time(model, spec, flip=True)) if recipe.flip else None,
           "views_averaged": accuracy(augmented_at_test_time(model, spec, **views)), "seconds": round(seconds)}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
