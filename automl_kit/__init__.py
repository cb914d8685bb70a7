"""automl_kit: neural architecture search for image classification in Keras 3."""

__version__ = "0.1.0"
__all__ = ["ImageClassifier", "__version__"]


def __getattr__(name):
    # Imported on first use, so that `automl-kit --help` answers without loading TensorFlow.
    if name == "ImageClassifier":
        from automl_kit.image_classifier import ImageClassifier

        return ImageClassifier
    raise AttributeError(f"module 'automl_kit' has no attribute {name!r}")
