"""The ENAS controller: an LSTM policy over a search space's decisions, trained by REINFORCE.

The controller makes the space's decisions in order. At each step the LSTM
reads the embedding of the previous choice, and a head turns its output into
logits over the current decision's choices, squashed as in the reference
code (`tanh_constant * tanh(logits / temperature)`). An architecture's
reward is its validation accuracy plus an entropy bonus; the advantage is
the reward minus an exponential moving average of past rewards. For skip
decisions (the macro space) a KL penalty pulls their probability towards
`skip_target`, as ENAS does.

Example:

>>> import numpy as np
>>> controller = Controller(decision_sizes=(3, 2, 4), seed=0)
>>> rng = np.random.default_rng(0)
>>> actions, log_prob, entropy = controller.sample(rng)
>>> [int(a) < n for a, n in zip(actions, (3, 2, 4))]
[True, True, True]
>>> before = controller.log_prob([2, 1, 3])
>>> for _ in range(5):
...     _ = controller.update([2, 1, 3], reward=1.0)
...     _ = controller.update(list(actions), reward=0.0)
>>> controller.log_prob([2, 1, 3]) > before
True
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers


class Controller(keras.Model):
    """An LSTM policy over `decision_sizes`, each decision choosing one of that many options.

    Args:
        decision_sizes: the number of choices of each decision, in order.
        skip_positions: indices of the binary skip-connection decisions.
        units: LSTM size.
        tanh_constant, temperature: logit squashing of the reference code.
        entropy_weight: weight of the policy's entropy in the reward.
        baseline_decay: decay of the moving-average reward baseline.
        skip_target, skip_weight: target probability of a skip and weight of its KL penalty.
        learning_rate: of the controller's Adam optimizer.
        seed: seeds the initial weights.
    """

    def __init__(self, decision_sizes, skip_positions=(), units=64, tanh_constant=1.5, temperature=5.0,
                 entropy_weight=1e-4, baseline_decay=0.99, skip_target=0.4, skip_weight=0.8,
                 learning_rate=3.5e-3, seed=0):
        super().__init__(name="controller")
        self.decision_sizes = tuple(int(n) for n in decision_sizes)
        self.skip_positions = tuple(skip_positions)
        self.tanh_constant, self.temperature = float(tanh_constant), float(temperature)
        self.entropy_weight, self.baseline_decay = float(entropy_weight), float(baseline_decay)
        self.skip_target, self.skip_weight = float(skip_target), float(skip_weight)
        self.baseline = None
        init = keras.initializers.RandomUniform(-0.1, 0.1, seed=seed)
        self.lstm = layers.LSTMCell(units, kernel_initializer=init, recurrent_initializer=init, name="lstm")
        self.heads = [layers.Dense(n, kernel_initializer=init, name=f"head{k}") for k, n in enumerate(self.decision_sizes)]
        # The embedding of choice k is the LSTM's input for decision k + 1.
        self.embeddings = [layers.Embedding(n, units, embeddings_initializer=init, name=f"embedding{k}")
                           for k, n in enumerate(self.decision_sizes[:-1])]
        self.first_input = self.add_weight(shape=(1, units), initializer=init, name="first_input")
        self._policy(tf.zeros(len(self.decision_sizes), tf.int32))  # builds every layer
        self.built = True
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.trainable_variables)
        size = len(self.decision_sizes)
        # Without AutoGraph, as the supernet's steps: the loop over decisions is Python's, unrolled as it
        # traces, and converting it cost 1.6 s of the three traces' 9.4 s here, for the same graphs.
        self._sample = tf.function(self._sample_fn, input_signature=[tf.TensorSpec((size,), tf.float32)],
                                   autograph=False)
        self._log_prob = tf.function(self._policy, input_signature=[tf.TensorSpec((size,), tf.int32)],
                                     autograph=False)
        self._update = tf.function(self._update_fn, input_signature=[
            tf.TensorSpec((size,), tf.int32), tf.TensorSpec((), tf.float32)], autograph=False)

    def _policy(self, actions=None, noise=None):
        """Runs the LSTM over the decisions; samples with `noise` or scores given `actions`.

        Returns (actions, log-probability, entropy, skip penalty).
        """
        x = self.first_input
        states = [tf.zeros_like(x), tf.zeros_like(x)]
        chosen, log_prob, entropy, skip_penalty = [], 0.0, 0.0, 0.0
        for k, size in enumerate(self.decision_sizes):
            output, states = self.lstm(x, states)
            logits = self.tanh_constant * tf.tanh(self.heads[k](output)[0] / self.temperature)
            log_p = tf.nn.log_softmax(logits)
            p = tf.exp(log_p)
            if noise is not None:  # inverse-CDF sampling from the numpy generator's uniform draw
                action = tf.minimum(tf.reduce_sum(tf.cast(tf.cumsum(p) < noise[k], tf.int32)), size - 1)
            else:
                action = actions[k]
            chosen.append(action)
            log_prob += log_p[action]
            entropy -= tf.reduce_sum(p * log_p)
            if k in self.skip_positions:
                q, t = p[1], self.skip_target
                skip_penalty += q * tf.math.log(q / t) + (1 - q) * tf.math.log((1 - q) / (1 - t))
            if k + 1 < len(self.decision_sizes):
                x = self.embeddings[k](action[None])
        if self.skip_positions:
            skip_penalty /= len(self.skip_positions)
        return tf.stack(chosen), log_prob, entropy, skip_penalty

    def _sample_fn(self, noise):
        actions, log_prob, entropy, _ = self._policy(noise=noise)
        return actions, log_prob, entropy

    def _update_fn(self, actions, advantage):
        with tf.GradientTape() as tape:
            _, log_prob, _, skip_penalty = self._policy(actions)
            loss = -log_prob * advantage + self.skip_weight * skip_penalty
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    def sample(self, rng):
        """Samples one architecture's decisions with the numpy Generator `rng`.

        Returns (decisions as a list of ints, log-probability, entropy).
        """
        actions, log_prob, entropy = self._sample(rng.random(len(self.decision_sizes)).astype(np.float32))
        return [int(a) for a in actions.numpy()], float(log_prob), float(entropy)

    def log_prob(self, actions):
        return float(self._log_prob(np.asarray(actions, np.int32))[1])

    def entropy(self, actions):
        """The policy's entropy summed over the decisions, along the path of `actions`."""
        return float(self._log_prob(np.asarray(actions, np.int32))[2])

    def update(self, actions, reward):
        """One REINFORCE step for the sampled `actions` that earned `reward`; returns the advantage.

        The reward should already include the entropy bonus (`entropy_weight * entropy`).
        """
        if self.baseline is None:
            self.baseline = reward
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        advantage = reward - self.baseline
        self._update(np.asarray(actions, np.int32), np.float32(advantage))
        return advantage
