"""The training layer: the loop over a resumable state, compiled steps and strategies, the
tf.data pipeline, checkpoints, schedules and the run directory. Imports TensorFlow."""
