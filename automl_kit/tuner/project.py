"""The search state on disk: `directory/project_name/`, all JSON, written atomically.

Layout:

    project.json          fingerprint of data and settings, and the status
    trials/0000.json      one record per trial
    best_model.keras      the final model, once the search completed

Opening a project never executes code: there are no pickles, only JSON and
Keras's own weight formats.
"""

import json
import os
import shutil
import tempfile

from automl_kit.tuner.trial import Trial


def write_json_atomic(path, obj):
    """Writes `obj` as JSON to `path` so readers see the old or the new file, never half."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


class Project:
    """One search's folder. Use `Project.open` to create or resume one."""

    def __init__(self, path):
        self.path = path
        self.trials_dir = os.path.join(path, "trials")
        self.state_path = os.path.join(path, "project.json")
        self.best_model_path = os.path.join(path, "best_model.keras")

    @classmethod
    def open(cls, path, fingerprint, overwrite=False):
        """Creates the project at `path`, or resumes it if its fingerprint matches.

        Raises ValueError when `path` holds a search on other data or settings.
        """
        if overwrite and os.path.exists(path):
            shutil.rmtree(path)
        project = cls(path)
        if os.path.exists(project.state_path):
            with open(project.state_path) as f:
                state = json.load(f)
            if state.get("fingerprint") != fingerprint:
                changed = sorted(
                    key for key in set(fingerprint) | set(state.get("fingerprint", {}))
                    if fingerprint.get(key) != state.get("fingerprint", {}).get(key)
                )
                raise ValueError(
                    f"The project at {path!r} holds a search on different data or settings "
                    f"(changed: {', '.join(changed)}). Pass overwrite=True to start it again, "
                    "or choose another project_name to keep both."
                )
        else:
            os.makedirs(project.trials_dir, exist_ok=True)
            write_json_atomic(project.state_path, {"fingerprint": fingerprint, "status": "searching"})
        return project

    @property
    def state(self):
        with open(self.state_path) as f:
            return json.load(f)

    def update_state(self, **fields):
        state = self.state
        state.update(fields)
        write_json_atomic(self.state_path, state)

    def load_trials(self):
        """Returns the recorded trials, in trial order."""
        if not os.path.isdir(self.trials_dir):
            return []
        trials = []
        for name in sorted(os.listdir(self.trials_dir)):
            if name.endswith(".json") and not name.startswith("."):
                with open(os.path.join(self.trials_dir, name)) as f:
                    trials.append(Trial.from_dict(json.load(f)))
        return trials

    def save_trial(self, trial):
        write_json_atomic(os.path.join(self.trials_dir, f"{trial.trial_id}.json"), trial.to_dict())
