"""The `automl-kit` command: a folder of images in, a model out, without writing Python.

    automl-kit fit DATA_DIR --time-limit 10m --output model.keras
    automl-kit predict model.keras FILE_OR_DIR ... [--csv predictions.csv]
    automl-kit summary PROJECT_DIR

`fit` searches and trains on a folder with one subfolder of images per class
and saves the exported model; the search lives in a project folder beside
the model (`model_search/` for `model.keras`), so running the same command
again after an interruption resumes it. `predict` needs only the saved
model: it decodes each file with `tf.io.decode_image` and prints one line
per file. Bad input stops with one line naming the problem, and exit status 2.

argparse serves here: three subcommands with a handful of options each, and
`--help` on every one, without another dependency.
"""

import argparse
import contextlib
import csv
import os
import re
import sys

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$", re.IGNORECASE)
_SECONDS_PER = {"": 1, "s": 1, "m": 60, "h": 3600}


def duration(text):
    """Seconds in `text`: a number of seconds, or a number with `s`, `m` or `h`.

    >>> duration("90"), duration("10m"), duration("1.5h")
    (90.0, 600.0, 5400.0)
    """
    match = _DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give seconds (600) or a number with s, m "
                                         "or h (90s, 10m, 1.5h).")
    return float(match.group(1)) * _SECONDS_PER[match.group(2).lower()]


def image_size(text):
    """`32` or `32x48` (height x width) as the `image_size` of ImageClassifier."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[x,]\s*(\d+))?\s*", str(text))
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise argparse.ArgumentTypeError(f"{text!r} is not an image size: give 32 or 32x48 (height x width).")
    height = int(match.group(1))
    return (height, int(match.group(2) or height))


def _parser():
    parser = argparse.ArgumentParser(prog="automl-kit", description=__doc__.split("\n\n")[0],
                                     epilog="Run `automl-kit COMMAND --help` for each command's options.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", help="search and train on a class folder; save the model",
                              description="Search for and train a model on DATA_DIR, a folder with one subfolder "
                                          "of images (JPEG, PNG, GIF, BMP) per class, and save it as a .keras "
                                          "file. Run it again to resume an interrupted search.")
    fit.add_argument("data_dir", metavar="DATA_DIR", help="folder with one subfolder of images per class")
    fit.add_argument("--time-limit", type=duration, default=600.0, metavar="DURATION",
                     help="budget for the whole fit: seconds, or with s, m or h (default 10m)")
    fit.add_argument("--output", default="model.keras", help="where to save the model (default model.keras)")
    fit.add_argument("--project", default=None, metavar="DIR",
                     help="where the search lives, to resume it (default: the output's name + '_search')")
    fit.add_argument("--overwrite", action="store_true", help="start the search again instead of resuming it")
    fit.add_argument("--validation-dir", default=None, metavar="DIR",
                     help="class folder to score candidates on (default: 20%% of DATA_DIR, stratified)")
    fit.add_argument("--image-size", type=image_size, default=None, metavar="HxW",
                     help="size the network sees, e.g. 32 or 32x48 (default: the median size, at most 64 px)")
    fit.add_argument("--tuner", default="enas", choices=("enas", "random_ws", "random", "nas", "progressive"),
                     help="search strategy (default enas; see the README's table of tuners)")
    fit.add_argument("--max-trials", type=int, default=10, help="architectures trained from scratch (default 10)")
    fit.add_argument("--seed", type=int, default=None, help="makes the split and the search reproducible")
    fit.add_argument("--skip-unreadable", action="store_true",
                     help="leave files that cannot be decoded out, with a warning, instead of stopping")
    fit.add_argument("--quiet", action="store_true", help="no progress bars")

    predict = commands.add_parser("predict", help="label image files with a saved model",
                                  description="Print one line per image file: its path, the predicted label and "
                                              "its probability. Folders stand for every image under them.")
    predict.add_argument("model", metavar="MODEL", help="a .keras file saved by `automl-kit fit` or export_model()")
    predict.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="image files or folders of them")
    predict.add_argument("--csv", default=None, metavar="PATH",
                         help="also write path, label, probability and each class's probability to a CSV file")

    summary = commands.add_parser("summary", help="print the report of a search",
                                  description="Print the report of the search stored in PROJECT_DIR: the best "
                                              "architecture, the trials, the ranking, where the time went.")
    summary.add_argument("project", metavar="PROJECT_DIR", help="the project folder of a search (--project of fit)")
    return parser


def _fit(args):
    from automl_kit import ImageClassifier

    if not args.output.endswith(".keras"):
        raise ValueError(f"--output must end in .keras; got {args.output!r}.")
    project = args.project or args.output[: -len(".keras")] + "_search"
    clf = ImageClassifier(max_trials=args.max_trials, tuner=args.tuner, directory=os.path.dirname(project) or ".",
                          project_name=os.path.basename(os.path.normpath(project)), overwrite=args.overwrite,
                          seed=args.seed, time_limit=args.time_limit, image_size=args.image_size,
                          skip_unreadable=args.skip_unreadable)
    clf.fit(args.data_dir, validation_data=args.validation_dir, verbose=0 if args.quiet else 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    clf.export_model(args.output)
    print(f"Saved the model to {args.output} ({len(clf.classes_)} classes, {clf.model_.count_params():,} "
          f"parameters, images {clf.input_spec_.image_shape[0]} x {clf.input_spec_.image_shape[1]} x "
          f"{clf.input_spec_.image_shape[2]}). Search report: automl-kit summary {project}")


def predictions(model, paths):
    """(label, probabilities) of each image file for a model from `export_model`, decoded as it expects."""
    import keras
    import numpy as np

    from automl_kit.data import files, sources

    shape = model.input_shape[1:]
    if len(shape) not in (2, 3):
        raise ValueError(f"The model takes samples of shape {shape}, not images; predict with it in Python.")
    channels = shape[2] if len(shape) == 3 else 1
    for path in paths:
        image = files.decode(path, channels)
        if shape[0] is not None and tuple(image.shape[:2]) != tuple(shape[:2]):
            image = sources.resize(image, shape[:2])  # a model fitted on arrays takes one size only
        out = model(np.asarray(image, np.float32).reshape((1, *image.shape[:2], *shape[2:])))
        label = keras.ops.convert_to_numpy(out["label"])[0]
        yield (label.decode() if isinstance(label, bytes) else label.item()), keras.ops.convert_to_numpy(
            out["probabilities"])[0]


def _predict(args):
    import keras

    from automl_kit.data import files

    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"MODEL {args.model!r} does not exist; pass the .keras file that fit saved.")
    paths = files.image_files(args.inputs, name="FILE_OR_DIR")
    model = keras.models.load_model(args.model)
    classes = [label.decode() if isinstance(label, bytes) else str(label)
               for label in model.get_layer("label").get_vocabulary()]
    with open(args.csv, "w", newline="") if args.csv else contextlib.nullcontext() as out:
        writer = csv.writer(out) if args.csv else None
        if writer:
            writer.writerow(["path", "label", "probability", *(f"p_{c}" for c in classes)])
        for path, (label, probabilities) in zip(paths, predictions(model, paths)):
            print(f"{path}\t{label}\t{probabilities.max():.4f}")
            if writer:
                writer.writerow([path, label, f"{probabilities.max():.6f}", *(f"{p:.6f}" for p in probabilities)])


def _summary(args):
    from automl_kit import report

    print(report.project_summary_text(args.project))


def main(argv=None):
    """Runs the command in `argv` (default: the command line); returns the exit status."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines are not for this audience
    try:
        {"fit": _fit, "predict": _predict, "summary": _summary}[args.command](args)
    except (ValueError, TypeError, OSError, MemoryError) as error:
        print(f"automl-kit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        again = "; run the same command again to resume the search" if args.command == "fit" else ""
        print(f"automl-kit {args.command}: interrupted{again}.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
