"""One worker of a two-process MultiWorkerMirroredStrategy run (started by test_train_multiworker.py).

Usage: ``python multiworker_program.py TF_CONFIG_JSON OUT_JSON CHECKPOINT_DIR``. The strategy is
chosen by cvpipe (:func:`components.train.strategy.select_strategy` reads ``TF_CONFIG``); the
model is a tiny regression trained with a ``strategy.run`` loop, the pattern of cvpipe's training loop
(Keras 3's ``model.fit`` refuses MultiWorkerMirroredStrategy batches: it cannot convert ``PerReplica``).
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    tf_config, out, checkpoints = sys.argv[1], sys.argv[2], sys.argv[3]
    os.environ["TF_CONFIG"] = tf_config
    from components.core.spec import AcceleratorSpec
    from components.train.strategy import select_strategy

    strategy, description = select_strategy(AcceleratorSpec())
    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32") + 0.1).astype("float32")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32).with_options(options)
    keras.utils.set_random_seed(0)
    with strategy.scope():  # as cvpipe's training loop does (components.train.loop): strategy.run over a distributed dataset
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        optimizer = keras.optimizers.SGD(0.05)
        optimizer.build(model.trainable_variables)
    batches = iter(strategy.experimental_distribute_dataset(data))

    @tf.function
    def train_step(batch):  # type: ignore[no-untyped-def]
        def step(xb, yb):  # type: ignore[no-untyped-def]
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True))
            return loss

        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(step, args=batch), axis=None)

    losses = []
    for _ in range(4):
        epoch = [float(train_step(next(batches))) for _ in range(8)]
        losses.append(sum(epoch) / len(epoch))
    history = {"loss": losses}
    task = json.loads(tf_config)["task"]
    if task["index"] == 0:  # the chief writes the one checkpoint; a worker's copy goes to a scratch path
        os.makedirs(checkpoints, exist_ok=True)
        model.save_weights(os.path.join(checkpoints, "final.weights.h5"))
    with open(out, "w") as f:
        json.dump(
            {
                "description": description,
                "workers": strategy.num_replicas_in_sync,
                "loss": history["loss"],
                "shapes": [list(w.shape) for w in model.get_weights()],
                "weights_sum": float(sum(float(np.sum(w)) for w in model.get_weights())),
            },
            f,
        )


if __name__ == "__main__":
    main()
