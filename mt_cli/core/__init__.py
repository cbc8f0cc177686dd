"""Foundation: errors, config, text I/O, tokenizers, files, the machine. Never TensorFlow."""
