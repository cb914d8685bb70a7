"""The networks of the two search spaces, written once for the child and the supernet.

The body functions read every architectural choice through a `Choices`
object. `FixedChoices` holds the plain ints of one Architecture and builds
only the chosen layers: that is the standalone child. `TensorChoices` reads
the choices from an int tensor and routes through `tf.switch_case`, so one
traced graph serves every architecture and runs only the chosen branch:
that is the supernet. `AllChoices` runs every branch once, to create every
candidate layer of the supernet before its first trace. Since both draw
their layers from a `LayerPool` under the same names, a child's layers and
its path through the supernet are the same layers.
"""

import tensorflow as tf
from keras import layers

from automl_kit.blocks import path
from automl_kit.blocks.ops import CELL_OP_NAMES, OP_NAMES, Op, calibrate, reduction, stem


class FixedChoices:
    """The choices of one architecture, as {decision key: int}: builds the child only."""

    def __init__(self, values, pool):
        self.values = values
        self.pool = pool

    def pick(self, key, candidates):
        return candidates[self.values[key]]

    def pick_op(self, key, x, ops, live=True):
        return ops[self.values[key]](x)

    def cells_live(self, kinds, num_nodes):
        return [True] * len(kinds)  # Keras leaves out the layers the output does not depend on

    def if_live(self, live, compute, batch_like, prefixes):
        return compute()

    def add_chosen(self, base, flagged, name):
        chosen = [tensor for key, tensor in flagged if self.values[key]]
        return self.pool(layers.Add, name)([base, *chosen]) if chosen else base

    def mean_of_loose_ends(self, nodes, input_keys, name):
        read = {self.values[key] for key in input_keys}
        loose = [node for k, node in enumerate(nodes) if k + 2 not in read]
        return self.pool(layers.Average, name)(loose) if len(loose) > 1 else loose[0]


class TensorChoices:
    """The choices as an int32 tensor ordered like `keys`: every architecture in one graph.

    `pool` is the supernet's LayerPool and `training` the mode of the call,
    which the ops recomputed in the backward pass must share.
    `update_path(variables, gradients)`, when given, applies the optimizer to
    the variables of a chosen op in the backward pass itself (see
    `pick_op`). Without it, the backward pass returns those gradients, and
    `sites` lists each op choice as (chosen index, each candidate op's
    variables), for a train step that must all-reduce the gradients across
    replicas before it updates the chosen ops.
    """

    def __init__(self, vector, keys, pool, training, update_path=None):
        self.vector = vector
        self.position = {key: i for i, key in enumerate(keys)}
        self.pool = pool
        self.training = training
        self.update_path = update_path
        self.sites = []

    def value(self, key):
        return self.vector[self.position[key]]

    def pick(self, key, candidates):
        """The chosen one of `candidates` (tensors of one shape), the gradient routed to it alone.

        `tf.switch_case`'s own gradient fills a tensor of zeros for every
        candidate not chosen; here one tensor of zeros serves them all.
        """
        index = self.value(key)

        @tf.custom_gradient
        def chosen(*candidates):
            def backward(dy):
                zeros = tf.zeros_like(dy)
                return [tf.cond(tf.equal(index, k), lambda: dy, lambda: zeros) for k in range(len(candidates))]

            return tf.switch_case(index, [(lambda t=t: t) for t in candidates]), backward

        return chosen(*candidates)

    def cells_live(self, kinds, num_nodes):
        """For each cell of `kinds` ("normal" or "reduce"), whether the network's output depends on it.

        A cell's output is the first input of the next cell and the second of
        the one after; a cell whose wiring reads neither is dead, and so is a
        cell that only dead cells read. The last cell is the output.
        """
        def reads(kind, source):  # whether a cell of `kind` reads its input `source` (0 or 1)
            return tf.reduce_any(tf.stack([tf.equal(self.value(f"{kind}/n{i}/in{slot}"), source)
                                           for i in range(num_nodes) for slot in (0, 1)]))

        live = [True] * len(kinds)
        for c in reversed(range(len(kinds) - 1)):
            read = tf.logical_and(live[c + 1], reads(kinds[c + 1], 0))
            if c + 2 < len(kinds):
                read = tf.logical_or(read, tf.logical_and(live[c + 2], reads(kinds[c + 2], 1)))
            live[c] = read
        return live

    def if_live(self, live, compute, batch_like, prefixes):
        """`compute()` (a list of tensors) where `live` holds, zeros of the same shapes where not.

        For the layers of a cell outside its op choices (its input
        calibrations, named `prefix_...` in the pool). Their variables form a site
        of their own, updated only where the cell is live, so a dead cell's
        layers keep their weights and Adam moments, as in a child that has
        no such layers. `batch_like` is a tensor with the batch's size first.
        """
        if live is True:
            return compute()
        if tf.executing_eagerly():  # only in inference (`Supernet.predict_child`): no state to keep
            return compute() if bool(live) else [tf.zeros_like(o) for o in compute()]
        shapes = []

        def computed():
            outputs = compute()
            shapes.extend((o.shape, o.dtype) for o in outputs)
            return outputs

        def skipped():  # traced after `computed`, so the shapes are known
            batch = tf.shape(batch_like)[:1]
            return [tf.zeros(tf.concat([batch, shape[1:]], 0), dtype) for shape, dtype in shapes]

        outputs = tf.cond(live, computed, skipped)
        starts = tuple(f"{prefix}_" for prefix in prefixes)
        own = [v.value for name, layer in self.pool.layers.items() if name.startswith(starts)
               for v in layer.trainable_variables]
        self.sites.append((tf.where(live, 0, 1), [own, ()]))
        return [tf.ensure_shape(o, shape) for o, (shape, _) in zip(outputs, shapes)]

    def pick_op(self, key, x, ops, live=True):
        """`ops[choice](x)`, differentiated in a backward branch of the chosen op alone.

        Plain `tf.switch_case` gradients make every branch export the
        intermediate tensors of every other branch, filled with zeros: the
        step then costs several times the child's. Here the forward branches
        return only what each op's backward pass needs (see `path.py`), and
        the backward pass runs the chosen op's branch alone, from those saved
        tensors (the macro space's residual block is recomputed under a
        tape). With `update_path`, that branch also updates the op's
        own variables with their gradients, so the step neither fills nor
        applies zero gradients for the other ops' variables: only the child's
        path trains.

        Without `update_path` the branch returns the op's gradients instead,
        and zeros for the other candidates' variables. That is slower on a
        CPU (measured: about twice the step time) but leaves the update to the
        caller: a replica must all-reduce gradients before it applies them,
        which `tf.distribute` cannot do inside a branch.

        Where `live` is False (a tensor: see `cells_live`), nothing runs:
        the choice takes a branch of its own that returns zeros.
        """
        index = self.value(key)
        if live is not True:
            index = tf.where(live, index, len(ops))
            ops = [*ops, path.Skipped(ops[0].filters)]
        site = [()] * len(ops)  # each candidate op's variables, filled in as the backward pass is traced
        self.sites.append((index, site))

        @tf.custom_gradient
        def chosen(x):
            y, saved = tf.switch_case(index, [(lambda op=op: path.forward(op, x)) for op in ops])

            def backward(dy, variables=None):
                variables = list(variables or [])

                def branch(j, op):
                    def gradient():
                        if path.differentiates(op):
                            dx, own, grads = path.backward(op, x, saved, dy)
                        else:
                            with tf.GradientTape() as tape:
                                tape.watch(x)
                                recomputed = op(x)
                            own = list(tape.watched_variables())
                            dx, *grads = tape.gradient(recomputed, [x, *own], output_gradients=dy,
                                                       unconnected_gradients=tf.UnconnectedGradients.ZERO)
                        site[j] = own
                        if self.update_path is not None:
                            if own:
                                self.update_path(own, grads)
                            return dx
                        by_variable = {v.ref(): g for v, g in zip(own, grads)}
                        return dx, [by_variable[v.ref()] if v.ref() in by_variable else tf.zeros_like(v)
                                    for v in variables]
                    return gradient

                outer, self.pool.training = self.pool.training, self.training
                try:
                    result = tf.switch_case(index, [branch(j, op) for j, op in enumerate(ops)])
                finally:
                    self.pool.training = outer
                if self.update_path is not None:
                    return result, [None] * len(variables)
                dx, variable_grads = result
                return dx, list(variable_grads)

            return y, backward

        return chosen(x)

    def add_chosen(self, base, flagged, name):
        for key, tensor in flagged:
            base = base + tf.cast(self.value(key), base.dtype) * tensor
        return base

    def mean_of_loose_ends(self, nodes, input_keys, name):
        values = tf.stack([self.value(key) for key in input_keys])
        loose = tf.cast(tf.stack([tf.reduce_all(values != k + 2) for k in range(len(nodes))]), nodes[0].dtype)
        weights = tf.unstack(loose / tf.reduce_sum(loose))  # 1/n for each of the n loose ends, else 0
        return tf.add_n([w * node for w, node in zip(weights, nodes)])


class AllChoices:
    """Runs every branch of every choice: creates and builds all the supernet's layers."""

    def pick(self, key, candidates):
        return candidates[0]

    def pick_op(self, key, x, ops, live=True):
        outputs = [op(x) for op in ops]
        return outputs[0]

    def cells_live(self, kinds, num_nodes):
        return [True] * len(kinds)

    def if_live(self, live, compute, batch_like, prefixes):
        return compute()

    def add_chosen(self, base, flagged, name):
        for _, tensor in flagged:
            base = base + tensor
        return base

    def mean_of_loose_ends(self, nodes, input_keys, name):
        return tf.add_n(nodes) / len(nodes)


def macro_body(x, filters, depths, stem_strides, choices, pool):
    """Stages of layers; each layer applies one op and adds the chosen earlier tensors of its stage."""
    x = stem(x, filters, stem_strides, pool)
    for s, depth in enumerate(depths):
        if s > 0:
            filters *= 2
            x = reduction(x, filters, f"reduce{s}", pool)
        tensors = [x]
        for p in range(depth):
            y = choices.pick_op(f"s{s}/l{p}/op", tensors[p],
                                [Op(op, filters, f"s{s}_l{p}_{op}", pool) for op in OP_NAMES])
            flagged = [(f"s{s}/l{p}/skip{j}", tensors[j]) for j in range(p + 1)]
            tensors.append(choices.add_chosen(y, flagged, name=f"s{s}_l{p}_skips"))
        x = tensors[-1]
    return x


def cell_body(x, filters, num_stages, cells_per_stage, num_nodes, stem_strides, choices, pool):
    """A stem and a stack of normal cells, with a reduction cell between stages."""
    x = stem(x, filters, stem_strides, pool)
    kinds = ["normal"] * cells_per_stage
    for _ in range(1, num_stages):
        kinds += ["reduce"] + ["normal"] * cells_per_stage
    live = choices.cells_live(kinds, num_nodes)
    previous, before = x, x
    for index, kind in enumerate(kinds):
        if kind == "reduce":
            filters *= 2
        output = _cell(kind, previous, before, filters, num_nodes, f"cell{index}", choices, pool, live[index])
        previous, before = output, previous
    return previous


def _cell(kind, previous, before, filters, num_nodes, name, choices, pool, live):
    side = previous.shape[1]
    if kind == "reduce":
        side = (side + 1) // 2
    calibrations = {f"{name}_in0": previous, f"{name}_in1": before}
    tensors = choices.if_live(live, lambda: [calibrate(x, filters, prefix, pool, halve=x.shape[1] != side)
                                             for prefix, x in calibrations.items()], previous, list(calibrations))
    input_keys = []
    for i in range(num_nodes):
        summands = []
        for slot in (0, 1):
            input_key = f"{kind}/n{i}/in{slot}"
            input_keys.append(input_key)
            source = choices.pick(input_key, list(tensors))
            summands.append(choices.pick_op(f"{kind}/n{i}/op{slot}", source,
                                            [Op(op, filters, f"{name}_n{i}_{slot}_{op}", pool) for op in CELL_OP_NAMES],
                                            live))
        tensors.append(pool(layers.Add, f"{name}_n{i}_add")(summands))
    return choices.mean_of_loose_ends(tensors[2:], input_keys, name=f"{name}_out")
