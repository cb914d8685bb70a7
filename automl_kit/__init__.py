"""automl_kit: neural architecture search for image classification in Keras 3."""

from automl_kit.image_classifier import ImageClassifier

__version__ = "0.1.0"
__all__ = ["ImageClassifier", "__version__"]
