"""A trial: one architecture, trained and scored, recorded as JSON."""

import dataclasses
import math

from automl_kit.blocks.architecture import architecture_from_dict

COMPLETED = "completed"
FAILED = "failed"


@dataclasses.dataclass
class Trial:
    """The record of one evaluated architecture.

    `score` is the best value of the objective over the trial's epochs and
    `best_epoch` (1-based) the epoch that reached it; the final model trains
    for that many epochs.
    """

    trial_id: str
    architecture: object  # an Architecture or DenseArchitecture
    status: str
    score: float = None
    best_epoch: int = None
    epochs_run: int = 0
    params: int = None
    seconds: float = 0.0
    failure_reason: str = None
    history: dict = dataclasses.field(default_factory=dict)
    shared_score: float = None  # with shared weights, the score that made it a candidate
    predicted_score: float = None  # with tuner="progressive", the surrogate's prediction that made it a candidate
    rung: int = None  # with shared weights, the successive-halving rung it trained in (tuner/halving.py)
    rss_mb: float = None  # resident memory of the searching process when the trial ended
    batch_size: int = None  # the batch size it trained at: below the one asked for after running out of memory
    started_at: str = None
    finished_at: str = None

    def to_dict(self):
        record = dataclasses.asdict(self)
        record["architecture"] = self.architecture.to_dict()
        # JSON has no NaN: a diverged loss is stored as null.
        record["history"] = {
            key: [None if (v is None or not math.isfinite(v)) else float(v) for v in values]
            for key, values in self.history.items()
        }
        return record

    @classmethod
    def from_dict(cls, record):
        record = dict(record)
        record["architecture"] = architecture_from_dict(record["architecture"])
        return cls(**record)
