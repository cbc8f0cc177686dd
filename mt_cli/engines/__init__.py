"""Engines: what turns lines into hypotheses (native TensorFlow, CTranslate2), and the model
directory they read. TensorFlow only in the native modules, imported lazily by the choice."""
