"""The search state on disk: `directory/project_name/`, all JSON, written atomically.

Layout:

    project.json          fingerprint of data and settings, and the status
    trials/0000.json      one record per trial
    trials/0000.weights.h5  the trained weights, kept for the best few trials only (`keep_weights`)
    best_model.keras      the final model, once the search completed
    lock.json             the process searching here now, if any

Opening a project never executes code: there are no pickles, only JSON and
Keras's own weight formats.
"""

import contextlib
import datetime
import json
import os
import shutil
import socket
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


# By default, weights are kept for this many of the best trials, so disk use stays bounded.
KEEP_WEIGHTS = 2


class ProjectLocked(RuntimeError):
    """Another live process is searching in the same project directory."""


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Project:
    """One search's folder: `with project.locked(): project.start(fingerprint)` creates or resumes it."""

    def __init__(self, path):
        self.path = path
        self.trials_dir = os.path.join(path, "trials")
        self.state_path = os.path.join(path, "project.json")
        self.best_model_path = os.path.join(path, "best_model.keras")
        self.lock_path = os.path.join(path, "lock.json")

    def start(self, fingerprint, overwrite=False):
        """Creates the project, or resumes it if its fingerprint matches; returns self.

        Call it while holding `locked()`. With `overwrite`, everything the
        project held is deleted first. Raises ValueError when the folder
        holds a search on other data or settings.
        """
        if overwrite and os.path.isdir(self.path):
            for name in os.listdir(self.path):
                target = os.path.join(self.path, name)
                if target != self.lock_path:
                    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
        if os.path.exists(self.state_path):
            stored = self.state.get("fingerprint", {})
            if stored != fingerprint:
                changed = sorted(key for key in set(fingerprint) | set(stored) if fingerprint.get(key) != stored.get(key))
                raise ValueError(
                    f"The project at {self.path!r} holds a search on different data or settings "
                    f"(changed: {', '.join(changed)}). Pass overwrite=True to start it again, "
                    "or choose another project_name to keep both."
                )
        else:
            os.makedirs(self.trials_dir, exist_ok=True)
            write_json_atomic(self.state_path, {"fingerprint": fingerprint, "status": "searching"})
        return self

    @property
    def state(self):
        with open(self.state_path) as f:
            return json.load(f)

    def update_state(self, **fields):
        state = self.state
        state.update(fields)
        write_json_atomic(self.state_path, state)

    def search_history(self):
        """The search's own record, besides its trials: one dict per supernet epoch (`"enas"`,
        `"random_ws"`), per child the controller learned from (`"nas"`), or per step (`"progressive"`)."""
        state = self.state
        return (state.get("shared_weights", {}).get("history") or state.get("nas", {}).get("history")
                or state.get("progressive", {}).get("steps") or [])

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

    def weights_path(self, trial_id):
        return os.path.join(self.trials_dir, f"{trial_id}.weights.h5")

    def save_weights(self, trial_id, model, keep):
        """Saves `model`'s weights for `trial_id`, then deletes those of trials not in `keep`."""
        final_path = self.weights_path(trial_id)
        tmp_path = os.path.join(self.trials_dir, f".tmp-{trial_id}.weights.h5")
        model.save_weights(tmp_path)
        os.replace(tmp_path, final_path)
        for name in os.listdir(self.trials_dir):
            if name.endswith(".weights.h5") and not name.startswith(".") and name[: -len(".weights.h5")] not in keep:
                os.remove(os.path.join(self.trials_dir, name))

    @contextlib.contextmanager
    def locked(self):
        """Holds the project's lock for the duration of a `with` block.

        A second process gets `ProjectLocked` at once. A lock left by a
        process on this machine that no longer runs (a killed search) is
        stale and taken over.
        """
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.makedirs(self.path, exist_ok=True)
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
        except FileExistsError:
            holder = self._lock_holder()
            stale = holder is not None and holder.get("host") == me["host"] and not _process_alive(holder["pid"])
            if not stale:
                who = "an unknown process" if holder is None else (
                    f"process {holder['pid']} on {holder['host']} (since {holder.get('since')})"
                )
                raise ProjectLocked(
                    f"The project {self.path!r} is in use by {who}. Wait for that search to finish, or "
                    f"pass another project_name. If no such process runs, delete {self.lock_path!r}."
                ) from None
            write_json_atomic(self.lock_path, me)
            if self._lock_holder() != me:  # another process took the stale lock over first
                raise ProjectLocked(f"The project {self.path!r} was just taken over by another process.") from None
        try:
            yield self
        finally:
            if self._lock_holder() == me:
                os.remove(self.lock_path)

    def _lock_holder(self):
        try:
            with open(self.lock_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None
