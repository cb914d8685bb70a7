"""Do horizontal flips help a short training on Fashion-MNIST, where the recipe's flip test keeps them out?

The recipe (automl_kit/tuner/recipe.py) flips only where a trial trained
without flips keeps most of its accuracy on mirrored validation images. On
the Fashion-MNIST split it keeps 70 to 80% of it above chance, below the 90%
the rule asks, so the final training does not flip. This script checks that
decision directly: the benchmarks' hand-written ResNet (`systems.resnet_cnn`)
trains for 20 epochs on one cycle, with and without flips, on 6,000 of the
split's 8,000 training images, scored on the other 2,000 (the test images are
not touched). One (flip, seed) per run, one thread, so two can share the cores:

    python -m benchmarks.flip_ab 0 0; python -m benchmarks.flip_ab 1 0

At c7e9165 (seeds 0 and 1): without flips 0.9160 and 0.9145, with flips
0.9095 and 0.9045. At this length of training, flips cost Fashion-MNIST about
0.8 point, so the flip test's "no" is the right one here.
"""

import sys

import numpy as np


def main(argv=None):
    import keras

    from benchmarks.run import held_out_split
    from benchmarks.systems import resnet_cnn

    argv = sys.argv[1:] if argv is None else argv
    flip, seed = argv[0] == "1", int(argv[1])
    data_dir = argv[2] if len(argv) > 2 else "../shared/datasets"
    x, y, train, val = held_out_split("fashion_mnist", data_dir)
    keras.utils.set_random_seed(seed)
    epochs = 20
    steps = epochs * int(np.ceil(len(train) / 64))
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps - steps // 10, warmup_target=3e-3,
                                                      warmup_steps=steps // 10)
    model = resnet_cnn(x.shape[1:], 10, x[train], flip=flip, learning_rate=schedule)
    model.fit(x[train], keras.utils.to_categorical(y[train], 10), batch_size=64, epochs=epochs, verbose=0)
    accuracy = (model.predict(x[val], verbose=0).argmax(-1) == y[val]).mean()
    print(f"flip={flip} seed={seed} val={accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main()
