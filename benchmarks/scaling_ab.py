"""Is a wider final network worth its fewer epochs? The macro prior against itself x1.5 wide, at equal time.

The final stage (automl_kit/tuner/final.py) scales the found architecture as
far as the time left allows, so long as the scaled network still trains
`final.MIN_EPOCHS` epochs. This script measures that trade directly: the
macro search space's prior, plain or `scaled(width)`, trains with the final
recipe (`Recipe.for_final`, flips for colour images) for a given number of
epochs on one cycle, on all but 2,000 (a quarter, for smaller sets) of a
dataset's training images, 8,000 at most, and is scored on the images held
out; the test images are not touched.
One run per call, one thread, so that two share the cores and finish
together when their epochs cost the same time:

    python -m benchmarks.scaling_ab 1 30 0 cifar10 & python -m benchmarks.scaling_ab 1.5 15 0 cifar10

x1.5 wide costs about twice the base per epoch (`builder.step_cost` predicted
2.05), so 15 epochs of it take the time of 30 of the base (which train with
cutout, the recipe's choice at 30 epochs; without it the base scored 0.8070
and 0.8145 on CIFAR-10, 0.9175 and 0.9160 on Fashion-MNIST). At 1fe7e35,
two seeds each (seconds on one thread):

| dataset | x1, 30 epochs | x1.5, 15 epochs |
|---|---|---|
| CIFAR-10 (`data_batch_1`) | 0.8095, 0.8165 (544, 567 s) | 0.8175, 0.8200 (575, 580 s) |
| Fashion-MNIST split | 0.9175, 0.9170 (300, 305 s) | 0.9155, 0.9180 (304, 300 s) |

Fifteen epochs of the wider network match thirty of the base on
Fashion-MNIST and beat them on CIFAR-10, so `final.MIN_EPOCHS` is 15 (it was 20).
The scores are without test-time flips, and both networks start from scratch;
in the product the unscaled network goes on from its trial's weights, and a
colour network predicts with test-time flips. One product run on CIFAR-10
(README) had the wider network ahead without test-time flips and behind with
them.

Narrower, for a found size with too little time (`final.NARROWINGS`): at
equal predicted time (x0.75 wide costs 0.61 of the base a step, x0.5 0.32),
measured 2026-12-07 at 99532b4, two runs at a time (seconds on one thread):

| dataset, seed | x1, 4 epochs | x0.5, 12 | x1, 8 | x0.75, 13 | x0.5, 24 |
|---|---|---|---|---|---|
| Fashion-MNIST, 0 | 0.8940 (307 s) | 0.9030 (350 s) | 0.9040 (533 s) | 0.9095 (610 s) | 0.9030 (508 s) |
| Fashion-MNIST, 1 | 0.8875 (260 s) | 0.9065 (242 s) | 0.8970 (525 s) | 0.9130 (485 s) | 0.9120 (565 s) |
| CIFAR-10, 0 | 0.6765 (382 s) | 0.7165 (519 s) | 0.7535 (782 s) | 0.7735 (880 s) | 0.7710 (900 s) |

The size whose epochs come nearest 15 (x0.5 for the base's 4, x0.75 for
its 8) won or tied every time. The seconds overlap other runs and are
rough: on CIFAR-10 the narrower networks took 12 to 36% longer than
predicted, so some of their lead there is time.
"""

import sys


def main(argv=None):
    from benchmarks.run import prior_trained_on_held_out_split

    argv = sys.argv[1:] if argv is None else argv
    width, epochs, seed = float(argv[0]), int(argv[1]), int(argv[2])
    dataset = argv[3] if len(argv) > 3 else "cifar10"
    data_dir = argv[4] if len(argv) > 4 else "../shared/datasets"
    model, _, _, x, y, val, seconds = prior_trained_on_held_out_split(dataset, data_dir, epochs, seed, width)
    accuracy = (model.predict(x[val], verbose=0).argmax(-1) == y[val]).mean()
    print(f"{dataset} x{width:g} epochs={epochs} seed={seed} params={model.count_params()} val={accuracy:.4f} "
          f"seconds={seconds:.0f}", flush=True)


if __name__ == "__main__":
    main()
