"""Does the supernet rank architectures as training from scratch does? `python -m benchmarks.ranking`.

    python -m benchmarks.ranking --dataset mnist                  # 20 architectures, ~40 min on 2 CPU cores
    python -m benchmarks.ranking --dataset cifar10 --sampling uniform,fair --space micro

Draws `--architectures` children uniformly from a search space (`--space`:
the default search's macro space, or the micro space) and scores each two
ways on the same validation images:

- **shared weights**: a supernet trained for `--supernet-epochs` epochs of
  shared steps, one sampled child a step, as `random_ws` and ENAS's warm-up
  train it; each child scored on `--scoring-images` validation images with
  the shared weights, as the derivation scores them;
- **from scratch**: each child built alone and trained for `--trial-epochs`
  epochs with the final recipe (no flips) and its one cycle over them,
  scored on all the validation images; with `--scratch-seeds 2`, twice,
  which also measures how well the truth agrees with itself.

and prints the Kendall tau and Spearman correlation between the two, the
tau with a 90% bootstrap interval over the architectures (with 20 of them
one tau is a rough figure: the interval spans about 0.5), for the shared
accuracy and for the shared cross-entropy. Each
`--sampling` mode trains its own supernet from the same seed, and all of
them are compared against the same from-scratch scores, side by side:

- `uniform`: every decision drawn uniformly and independently at each step
  (the supernet before fair sampling);
- `fair`: FairNAS's fairness (Chu et al. 2021; `FairSampler` below): steps
  come in groups in which every choice of every decision is trained equally
  often, so the cheap parameter-free ops cannot win the early race by being
  sampled more. On MNIST it ranked worse than uniform (Kendall tau 0.022
  against 0.359, results/ranking_mnist_2026-12-04_8a121e2.md), so the
  search itself samples uniformly.

A mode may name the supernet's learning rate after an @ (`uniform@0.003`);
without one it is the search's. Each mode after the first is also compared
with the first on the same resamples (a paired bootstrap interval of the
difference in tau). `--truth-from TABLE` reuses the from-scratch scores of
a table this script wrote with the same command (it refuses any other), to
compare supernets without training the truth again: the truth is most of
the time (from scratch 1,447 s, a supernet 255 s on MNIST at 69557d4).

Data: `mnist` takes 10,000 training and 2,000 validation images of the MNIST
training file (stratified, seed 0), `cifar10` 8,000 and 2,000 of CIFAR-10's
`data_batch_1`; `--train-images` changes the first.
Also prints how each score follows the parameter count (Kendall tau against
parameters): the supernet's known bias is towards the small children.
Writes `benchmarks/results/ranking_<dataset>_<space>_<date>_<commit>.md`.
"""

import argparse
import datetime
import math
import os
import re
import time

import numpy as np

from benchmarks.search_at_budget import DEFAULT_DATA_DIR, RESULTS_DIR, git_commit, load


def fair_group(rng, sizes):
    """One group of lcm(`sizes`) steps (rows) of decisions (columns), each decision's choices equally often."""
    steps = math.lcm(*sizes)
    return np.stack([np.concatenate([rng.permutation(n) for _ in range(steps // n)]) for n in sizes], axis=1)


class FairSampler:
    """Draws decisions a step at a time from successive fair groups.

    >>> sampler = FairSampler(np.random.default_rng(0), [2, 5])
    >>> draws = np.array([sampler.sample() for _ in range(10)])
    >>> np.bincount(draws[:, 0]).tolist(), np.bincount(draws[:, 1]).tolist()
    ([5, 5], [2, 2, 2, 2, 2])
    """

    def __init__(self, rng, sizes):
        self.rng, self.sizes, self.group = rng, list(sizes), []

    def sample(self):
        if not len(self.group):
            self.group = list(fair_group(self.rng, self.sizes))[::-1]
        return [int(choice) for choice in self.group.pop()]


def split(dataset, data_dir, train_images):
    from sklearn.model_selection import train_test_split

    file = {"mnist": "mnist_train", "cifar10": "cifar10_train_batch1"}[dataset]
    x, y = load(data_dir, file)
    x = x[..., None] if x.ndim == 3 else x
    train_images = train_images or {"mnist": 10_000, "cifar10": 8_000}[dataset]
    x_train, x_val, y_train, y_val = train_test_split(x, y.astype(np.int64), train_size=train_images,
                                                      test_size=2_000, stratify=y, random_state=0)
    return x_train, y_train, x_val, y_val


def search_data(x_train, y_train, x_val, y_val):
    from automl_kit.data import InputSpec
    from automl_kit.tuner import SearchData

    shape = x_train.shape[1:]
    pixels = x_train.reshape(-1, shape[-1]).astype(np.float64)
    return SearchData(x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
                      input_spec=InputSpec(input_shape=shape, image_shape=shape), num_classes=10,
                      mean=tuple(pixels.mean(axis=0)), variance=tuple(pixels.var(axis=0)))


def shared_scores(space, data, encoded, sampling, epochs, batch_size, scoring_images, seed, score_at,
                  learning_rate=None):
    """({epoch: (accuracies of `encoded` on the first 512 scoring images, on all of them, their negated
    cross-entropies on all of them)}, seconds): a supernet trained with `sampling` (at `learning_rate`, default
    the search's), the children scored after each epoch of `score_at`."""
    import keras
    import tensorflow as tf

    from automl_kit.tuner.base import forgetting_custom_gradients, release_memory
    from automl_kit.tuner.enas import SCORING_SAMPLES
    from automl_kit.tuner.supernet import Supernet

    started = time.monotonic()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(data.x_train)
    steps = math.ceil(n / batch_size)
    weights = np.ones(n, np.float32)
    x_train, x_val = data.x_train.astype(np.float32), data.x_val.astype(np.float32)
    scoring = np.random.default_rng(seed + 1).choice(len(data.x_val), min(scoring_images, len(data.x_val)),
                                                      replace=False)
    # Batches of 256: the first SCORING_SAMPLES images are the search's own scoring set's size.
    batches = [scoring[i:i + 256] for i in range(0, len(scoring), 256)]
    first = max(1, SCORING_SAMPLES // 256)
    scores = {}
    with forgetting_custom_gradients():
        rate = {} if learning_rate is None else {"learning_rate": learning_rate}
        supernet = Supernet(space, data.input_spec, data.num_classes, data.mean, data.variance, **rate)
        # Probabilities with batch statistics, as the accuracy the search scores with.
        forward = tf.function(lambda x, arch: supernet.call((x, arch), training=True), reduce_retracing=True)
        fair = FairSampler(rng, space.decision_sizes)
        for epoch in range(1, epochs + 1):
            order = rng.permutation(n)
            losses = []
            for step in range(steps):
                rows = order[np.arange(step * batch_size, (step + 1) * batch_size) % n]
                if sampling == "fair":
                    decisions = fair.sample()
                else:
                    decisions = [int(rng.integers(size)) for size in space.decision_sizes]
                losses.append(supernet.train_step(x_train[rows], data.y_train[rows], weights[rows],
                                                  np.asarray(decisions, np.int32)))
            print(f"  {sampling} supernet epoch {epoch}: loss {np.mean([float(v) for v in losses]):.3f}",
                  flush=True)
            if epoch in score_at:
                correct, losses = np.zeros((len(encoded), len(batches))), np.zeros(len(encoded))
                for a, arch in enumerate(encoded):
                    for i, b in enumerate(batches):
                        p = forward(tf.constant(x_val[b]), tf.constant(arch)).numpy()
                        correct[a, i] = np.sum(np.argmax(p, axis=1) == data.y_val[b])
                        losses[a] -= np.sum(np.log(np.clip(p[np.arange(len(b)), data.y_val[b]], 1e-7, 1.0)))
                sizes = np.array([len(b) for b in batches])
                scores[epoch] = (list(correct[:, :first].sum(1) / sizes[:first].sum()),
                                 list(correct.sum(1) / sizes.sum()), list(-losses / sizes.sum()))
    supernet = None
    release_memory()
    return scores, time.monotonic() - started


def scratch_score(architecture, data, epochs, batch_size, seed):
    """(validation accuracy, parameters, seconds) of `architecture` trained alone for `epochs`.

    With the final recipe (without flips) and its one cycle over the epochs,
    not the trials' constant rate: a rate that ends low leaves a score that
    depends less on where the last steps happened to land, so the truth
    the shared weights are measured against is less noisy for its cost.
    """
    import keras

    from automl_kit.tuner import training
    from automl_kit.tuner.base import forgetting_custom_gradients, release_memory
    from automl_kit.tuner.recipe import Recipe

    started = time.monotonic()
    keras.utils.set_random_seed(seed)
    with forgetting_custom_gradients():
        model = data.build(architecture)
        history = training.train(model, data.x_train, data.y_train, epochs=epochs, batch_size=batch_size,
                                 validation_data=data.validation_data, decay="epochs",
                                 recipe=Recipe.for_final(data.image_shape, data.mean, epochs=epochs))
        params = model.count_params()
    model = None
    release_memory()
    return history["val_accuracy"][-1], params, time.monotonic() - started


BOOTSTRAPS = 2000


def truth_from(path, architectures, settings):
    """[(from-scratch score, parameters, 0.0)] of `architectures`, read from a table this script wrote.

    Refuses a table whose architectures are not these, in this order, or whose command lacks one of
    `settings` (e.g. "--trial-epochs 2").
    """
    rows = []
    with open(path) as f:
        text = f.read()
    missing = [setting for setting in settings if not re.search(re.escape(setting) + "[ `]", text)]
    if missing:
        raise SystemExit(f"{path} was measured without {', '.join(missing)}: run it without --truth-from.")
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]  # pipes not escaped
        if len(cells) >= 5 and cells[0].isdigit():
            rows.append((float(cells[1]), int(cells[2].replace(",", "")), cells[-1].replace("\\|", "|")))
    found = [r[2] for r in rows]
    expected = [str(a) for a in architectures]
    if found != expected:
        raise SystemExit(f"{path} scores other architectures than this command draws ({len(found)} rows, "
                         f"{sum(a == b for a, b in zip(found, expected))} matching): run it without --truth-from.")
    return [(score, params, 0.0) for score, params, _ in rows]


def bootstrap_tau(scores, truth, resamples=BOOTSTRAPS, seed=0):
    """Kendall tau of `scores` against `truth` over `resamples` resamples of the architectures (with replacement);
    the same `seed` draws the same resamples, so two scorings' taus pair up.

    >>> taus = bootstrap_tau([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 6, 5], resamples=200)
    >>> bool(0.3 < np.nanmedian(taus) <= 1.0)
    True
    """
    from scipy.stats import kendalltau

    scores, truth = np.asarray(scores, float), np.asarray(truth, float)
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(resamples):
        rows = rng.integers(len(scores), size=len(scores))
        taus.append(kendalltau(scores[rows], truth[rows])[0])  # NaN where a resample has no pair to rank
    return np.asarray(taus)


def with_interval(scores, truth):
    """Kendall tau of `scores` against `truth`, and its 90% bootstrap interval, as text."""
    from scipy.stats import kendalltau

    low, high = np.nanpercentile(bootstrap_tau(scores, truth), [5, 95])
    return f"{kendalltau(scores, truth)[0]:.3f} [{low:.2f}, {high:.2f}]"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("mnist", "cifar10"), default="mnist")
    parser.add_argument("--space", choices=("macro", "micro"), default="macro")
    parser.add_argument("--architectures", type=int, default=20)
    parser.add_argument("--sampling", default="uniform,fair",
                        help="comma-separated: uniform, fair; each optionally @ the supernet's learning rate, "
                             "e.g. uniform@0.003 (default: the search's)")
    parser.add_argument("--supernet-epochs", type=int, default=10)
    parser.add_argument("--trial-epochs", type=int, default=3)
    parser.add_argument("--scoring-images", type=int, default=2000)
    parser.add_argument("--score-at", default=None,
                        help="comma-separated supernet epochs after which to score (default: a quarter, half, all)")
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument("--scratch-seeds", type=int, default=1,
                        help="trainings from scratch per architecture (their mean is the truth; with 2 or more, "
                             "the Kendall tau between the first two seeds is the truth's own repeatability)")
    parser.add_argument("--truth-from", default=None,
                        help="a table this script wrote for the same architectures: reuse its from-scratch scores "
                             "instead of training them again, to compare supernets quickly")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", default=RESULTS_DIR)
    args = parser.parse_args(argv)

    from scipy.stats import kendalltau, spearmanr

    from automl_kit.blocks.search_space import search_space_for

    data = search_data(*split(args.dataset, args.data_dir, args.train_images))
    space = search_space_for(data.input_spec, args.space)
    rng = np.random.default_rng(args.seed)
    architectures, seen = [], set()
    while len(architectures) < args.architectures:
        architecture = space.sample(rng)
        if architecture not in seen:
            seen.add(architecture)
            architectures.append(architecture)
    encoded = [np.asarray(space.encode(a), np.int32) for a in architectures]
    commit = git_commit()
    print(f"{args.dataset}: {len(data.x_train):,} training, {len(data.x_val):,} validation images; "
          f"{len(architectures)} architectures; commit {commit}", flush=True)

    scratch = []
    if args.truth_from:  # read before the supernets train, so that a wrong table stops the run at once
        scratch = truth_from(args.truth_from, architectures, [
            f"--dataset {args.dataset}", f"--space {args.space}", f"--trial-epochs {args.trial_epochs}",
            f"--train-images {len(data.x_train)}", f"--scratch-seeds {args.scratch_seeds}"])
    score_at = sorted({int(e) for e in args.score_at.split(",")} if args.score_at else
                      {max(1, args.supernet_epochs // 4), max(1, args.supernet_epochs // 2), args.supernet_epochs})
    shared = {}
    for sampling in args.sampling.split(","):
        mode, _, rate = sampling.partition("@")
        shared[sampling] = shared_scores(space, data, encoded, mode, args.supernet_epochs, args.batch_size,
                                         args.scoring_images, args.seed, score_at,
                                         learning_rate=float(rate) if rate else None)
        print(f"{sampling}: supernet trained and scored in {shared[sampling][1]:.0f} s", flush=True)
    last = {sampling: scores[args.supernet_epochs][1] for sampling, (scores, _) in shared.items()}
    runs = []
    for index, architecture in enumerate(architectures):
        if args.truth_from:
            print(f"  architecture {index}: from scratch {scratch[index][0]:.4f} (from {args.truth_from}); shared "
                  + ", ".join(f"{s} {last[s][index]:.4f}" for s in last), flush=True)
            continue
        runs.append([scratch_score(architecture, data, args.trial_epochs, args.batch_size,
                                   args.seed + index + 1000 * repeat) for repeat in range(args.scratch_seeds)])
        scratch.append((float(np.mean([r[0] for r in runs[-1]])), runs[-1][0][1], sum(r[2] for r in runs[-1])))
        print(f"  architecture {index}: from scratch " + ", ".join(f"{r[0]:.4f}" for r in runs[-1])
              + f" ({scratch[-1][1]:,} params, {scratch[-1][2]:.0f} s); shared "
              + ", ".join(f"{s} {last[s][index]:.4f}" for s in last), flush=True)

    truth = [s[0] for s in scratch]
    repeatability = None
    if args.scratch_seeds > 1 and not args.truth_from:
        repeatability = kendalltau([r[0][0] for r in runs], [r[1][0] for r in runs])[0]
        print(f"from scratch, seed against seed: Kendall tau {repeatability:.3f}", flush=True)
    scoring_images = min(args.scoring_images, len(data.x_val))
    lines = [f"# Shared-weight ranking against training from scratch: {args.dataset}, {args.space} space", "",
             f"`python -m benchmarks.ranking --dataset {args.dataset} --space {args.space} "
             f"--architectures {args.architectures} --sampling {args.sampling} --supernet-epochs "
             f"{args.supernet_epochs} --trial-epochs {args.trial_epochs} --train-images {len(data.x_train)} "
             f"--scratch-seeds {args.scratch_seeds}"
             + (f" --truth-from {os.path.relpath(args.truth_from)}" if args.truth_from else "") + "` "
             f"on {datetime.date.today().isoformat()}, commit {commit}, {os.cpu_count()} CPUs. "
             f"{len(data.x_train):,} training and {len(data.x_val):,} validation images. From-scratch score: the "
             f"validation accuracy (all the validation images) after {args.trial_epochs} epochs of the final "
             f"recipe without flips, one cycle over the epochs; the mean over {args.scratch_seeds} "
             f"seed(s)" + (f", as measured for the table `{os.path.basename(args.truth_from)}` (same "
                           "architectures, same command; its truth is reused, not trained again)"
                           if args.truth_from else "") + ". Shared-weight score: after the supernet epoch in the table, on the first 512 "
             f"(the search's own number) and on all {scoring_images} of the same validation images.", "",
             "Kendall tau of the shared accuracy (on 512 and on all images) and of the shared cross-entropy "
             "(on all images, lower ranked better), each with its 90% bootstrap interval over the architectures "
             f"({BOOTSTRAPS} resamples): with {len(architectures)} architectures one tau is a rough figure.", "",
             "| sampling | supernet epochs | Kendall tau, accuracy (512 images) | Kendall tau, accuracy (all) "
             "| Kendall tau, cross-entropy (all) | Spearman, accuracy (all) |",
             "|---|---|---|---|---|---|"]
    for sampling, (scores, seconds) in shared.items():
        for epoch, (few, every, fit) in scores.items():
            cells = [with_interval(few, truth), with_interval(every, truth), with_interval(fit, truth)]
            rho = spearmanr(every, truth)[0]
            lines.append(f"| {sampling} | {epoch} | " + " | ".join(cells) + f" | {rho:.3f} |")
            print(f"{sampling} after {epoch} epoch(s): Kendall tau {cells[0]} (512 images), {cells[1]} (all), "
                  f"{cells[2]} (cross-entropy, all), Spearman {rho:.3f}", flush=True)
    modes = list(shared)
    for sampling in modes[1:]:  # each mode against the first, on the same architectures and truth
        ours, first = (np.asarray(shared[m][0][args.supernet_epochs][1]) for m in (sampling, modes[0]))
        differences = bootstrap_tau(ours, truth) - bootstrap_tau(first, truth)  # the same resamples
        low, high = np.nanpercentile(differences, [5, 95])
        lines += ["", f"{sampling} against {modes[0]} after {args.supernet_epochs} epochs, Kendall tau of the accuracy "
                  f"on all images: {kendalltau(ours, truth)[0] - kendalltau(first, truth)[0]:+.3f}, 90% paired "
                  f"bootstrap interval [{low:+.2f}, {high:+.2f}]."]
        print(lines[-1], flush=True)
    if repeatability is not None:
        lines += ["", f"The truth's own repeatability: Kendall tau {repeatability:.3f} between the from-scratch "
                  "scores of the first two seeds. No shared-weight ranking can be expected to agree with the "
                  "truth much better than the truth agrees with itself."]
    lines += ["", "Supernet seconds (training and scoring): "
              + ", ".join(f"{sampling} {seconds:.0f}" for sampling, (_, seconds) in shared.items()) + "; "
              + ("from scratch not trained in this run (its scores reused)." if args.truth_from else
                 f"from scratch {sum(s[2] for s in scratch):.0f} in all.")]
    params = [s[1] for s in scratch]
    lines += ["", "Kendall tau against the parameter count: from scratch "
              f"{kendalltau(params, truth)[0]:.3f}, " + ", ".join(
                  f"shared ({s}) {kendalltau(params, last[s])[0]:.3f}" for s in last) + "."]
    print(lines[-1], flush=True)
    lines += ["", "| # | from scratch | params | " + " | ".join(f"shared ({s})" for s in last) + " | architecture |",
              "|---|---|---|" + "---|" * len(last) + "---|"]
    for index, architecture in enumerate(architectures):
        lines.append(f"| {index} | {truth[index]:.4f} | {scratch[index][1]:,} | "
                     + " | ".join(f"{last[s][index]:.4f}" for s in last) + " | "
                     + str(architecture).replace("|", "\\|") + " |")
    os.makedirs(args.out, exist_ok=True)
    stamp = f"{datetime.date.today().isoformat()}_{commit}"
    path = os.path.join(args.out, f"ranking_{args.dataset}_{args.space}_{stamp}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
