"""A training's setup with Keras's AdamW against `fused_adamw`, side by side: `python -m benchmarks.optimizer_trace`.

    python -m benchmarks.optimizer_trace --repeats 3

Every trial and final model compiles and traces its own train step, so its
setup (from `training.train`'s call to the end of the first step) is paid
once per training, several times a search. This trains each search space's
prior (the network a short budget trains) on 256 random images of each
shape for one epoch, the two optimizers interleaved in one process
(Keras's train steps are traced anew for every model, so the order does
not favour either), and prints the median setup and whole training
seconds per configuration. Writes
`benchmarks/results/optimizer_trace_<date>_<commit>.md`.
"""

import argparse
import datetime
import os
import statistics
import subprocess
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGURATIONS = [("macro", (8, 8, 1)), ("macro", (28, 28, 1)), ("macro", (32, 32, 3)), ("micro", (8, 8, 1))]


def keras_adamw(learning_rate, weight_decay):
    """What `recipe.adamw` built before `fused_adamw`: Keras's AdamW, with the same exemptions."""
    import keras

    from automl_kit.tuner.recipe import NO_WEIGHT_DECAY

    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
    return optimizer


def train_once(space_name, image_shape, optimizer_factory):
    """(setup seconds, training seconds) of one epoch of the space's prior with the final recipe."""
    import keras

    from automl_kit.blocks.builder import build_model
    from automl_kit.blocks.search_space import MacroSearchSpace, MicroSearchSpace
    from automl_kit.data import InputSpec
    from automl_kit.tuner import recipe as recipes, training

    space = (MacroSearchSpace if space_name == "macro" else MicroSearchSpace)(image_shape)
    rng = np.random.default_rng(0)
    x = (rng.random((256, *image_shape)) * 255).astype(np.uint8)
    y = np.arange(256) % 10
    channels = image_shape[-1]
    keras.utils.set_random_seed(0)
    model = build_model(space.prior(), InputSpec(image_shape, image_shape), 10, [127.0] * channels,
                        [5000.0] * channels)
    recipe = recipes.Recipe.for_final(image_shape, [127.0] * channels, epochs=1)
    original, recipes.adamw = recipes.adamw, optimizer_factory
    try:
        started = time.monotonic()
        history = training.train(model, x, y, epochs=1, batch_size=32, decay="epochs", recipe=recipe)
        return history["setup_seconds"][0], time.monotonic() - started
    finally:
        recipes.adamw = original


def main(argv=None):
    from automl_kit.tuner.recipe import adamw

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    optimizers = {"Keras AdamW": keras_adamw, "fused_adamw": adamw}  # the second is the recipe's own
    rows = []
    for space_name, shape in CONFIGURATIONS:
        seconds = {name: [] for name in optimizers}
        for _ in range(args.repeats):
            for name, factory in optimizers.items():
                seconds[name].append(train_once(space_name, shape, factory))
        cells = []
        for name in optimizers:
            setup = statistics.median(s for s, _ in seconds[name])
            whole = statistics.median(w for _, w in seconds[name])
            cells.append(f"{setup:.2f} ({whole:.2f})")
        rows.append(f"| {space_name}, {'x'.join(map(str, shape))} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    today = datetime.date.today().isoformat()
    table = "\n".join([
        "# A training's setup: Keras's AdamW against fused_adamw",
        "",
        f"`python -m benchmarks.optimizer_trace --repeats {args.repeats}` on {today}, commit {commit}: seconds "
        f"from `training.train`'s call to the end of the first step (and to the end of one epoch of 256 images), "
        f"median of {args.repeats}, the two interleaved in one process.",
        "",
        "| space, images | " + " | ".join(optimizers) + " |",
        "|---|" + "---|" * len(optimizers),
        *rows,
        "",
    ])
    path = os.path.join(ROOT, "benchmarks", "results", f"optimizer_trace_{today}_{commit}.md")
    with open(path, "w") as f:
        f.write(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
