"""Each search space's prior trained for the same wall time with the final recipe: which space is the default.

    python -m benchmarks.priors --dataset cifar10 --seconds 300

When the budget buys no supernet, the search confirms the prior first and
the final model usually grows from it, so the prior's accuracy per second is
the product's floor. Each prior is built, trained on the training images
with `Recipe.for_final` (flips for colour images) and a one-cycle rate that
ends at `--seconds`, then scored on the test images; the priors run one
after the other in this one process. Prints one JSON line per prior and
writes `benchmarks/results/priors_<dataset>_<seconds>s.md`.
"""

import argparse
import datetime
import json
import os
import time

import numpy as np

from benchmarks.run import load_dataset
from benchmarks.search_at_budget import DEFAULT_DATA_DIR, RESULTS_DIR, git_commit

SPACES = ("macro", "micro")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cifar10", choices=("digits", "fashion_mnist", "mnist", "cifar10"))
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras

    from automl_kit import pipeline
    from automl_kit.blocks.search_space import search_space_for
    from automl_kit.tuner import training
    from automl_kit.tuner.recipe import Recipe

    x_train, y_train, x_test, y_test = load_dataset(args.dataset, args.data_dir)
    data, coder, _ = pipeline.adapt(x_train, y_train, None, 0.2, None, input_shape=None, image_size=None,
                                    skip_unreadable=False, seed=args.seed, class_weight=None, dtype_policy=None,
                                    strategy=None, jit_compile="auto")
    x, y = np.concatenate([data.x_train, data.x_val]), np.concatenate([data.y_train, data.y_val])
    x_test = x_test.reshape((-1, *data.image_shape))
    rows = []
    for name in SPACES:
        architecture = search_space_for(data.input_spec, name).prior()
        keras.utils.set_random_seed(args.seed)
        started = time.monotonic()
        model = data.build(architecture)
        recipe = Recipe.for_final(data.image_shape, data.mean, flip=data.image_shape[-1] == 3, epochs=20)
        history = training.train(model, x, y, epochs=100_000, batch_size=args.batch_size,
                                 deadline=started + args.seconds, decay="deadline", recipe=recipe, started=started)
        predicted = np.argmax(model.predict(x_test, verbose=0, batch_size=500), 1)
        row = {"space": name, "test_accuracy": round(float(np.mean(predicted == coder.encode(y_test, name="y"))), 4),
               "params": int(model.count_params()), "epochs": len(history["loss"]),
               "epoch_seconds": round(float(np.nanmedian(history["epoch_seconds"])), 1),
               "wall_seconds": round(time.monotonic() - started, 1), "architecture": str(architecture)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        model = None
        keras.backend.clear_session()

    path = os.path.join(RESULTS_DIR, f"priors_{args.dataset}_{args.seconds:g}s.md")
    with open(path, "w") as f:
        f.write(f"Each space's prior trained {args.seconds:g} s with the final recipe on {args.dataset} "
                f"({len(x)} training images, {len(x_test)} test), batch {args.batch_size}, {os.cpu_count()} CPUs; "
                f"commit {git_commit()}, {datetime.date.today()}. "
                f"`python -m benchmarks.priors --dataset {args.dataset} --seconds {args.seconds:g}`.\n\n"
                "| space | test accuracy | params | epochs | s per epoch | wall s | prior |\n|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['space']} | {r['test_accuracy']:.4f} | {r['params']:,} | {r['epochs']} | "
                    f"{r['epoch_seconds']} | {r['wall_seconds']} | {r['architecture'].replace('|', '/')} |\n")
    print(f"written to {os.path.abspath(path)}")


if __name__ == "__main__":
    main()
