"""Keras 3 (.keras, .h5, .weights.h5, export) and TensorFlow (SavedModel, frozen .pb, TFLite)."""

from __future__ import annotations

from typing import Any

from benchmarks.real_artefacts import Out


def _keras_models() -> dict[str, Any]:
    import keras
    import numpy as np
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = layers.Dense(4, activation="relu")(inputs)
    functional = keras.Model(inputs, [layers.Dense(1)(hidden), layers.Dense(2)(hidden)])
    texts = np.array(["the cat sat", "a dog ran", "the dog sat"])
    vectorizer = layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorizer.adapt(texts)
    lookup = layers.StringLookup(vocabulary=["a", "b", "c"])
    norm = layers.Normalization()
    norm.adapt(np.arange(12, dtype="float32").reshape(6, 2))
    return {
        "dense": keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="relu"),
                                   layers.Dense(2, activation="softmax")]),
        "cnn": keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(2, 3),
                                 layers.BatchNormalization(), layers.MaxPooling2D(),
                                 layers.Flatten(), layers.Dropout(0.2), layers.Dense(2)]),
        "lstm": keras.Sequential([keras.Input((5, 3)), layers.LSTM(4), layers.Dense(1)]),
        "embedding_gru": keras.Sequential([keras.Input((6,)), layers.Embedding(20, 4),
                                           layers.GRU(4), layers.Dense(1)]),
        "functional_two_heads": functional,
        "attention": _attention_model(),
        "text_vectorization": keras.Sequential([keras.Input((1,), dtype="string"), vectorizer,
                                                layers.Embedding(20, 4),
                                                layers.GlobalAveragePooling1D()]),
        "string_lookup": keras.Sequential([keras.Input((1,), dtype="string"), lookup]),
        "normalization": keras.Sequential([keras.Input((2,)), norm, layers.Dense(1)]),
        "preprocessing_image": keras.Sequential([keras.Input((8, 8, 3)), layers.Rescaling(
            1 / 255), layers.RandomFlip(), layers.Resizing(4, 4), layers.Flatten()]),
    }


def _attention_model() -> Any:
    import keras
    from keras import layers

    inp = keras.Input((4, 8))
    att = layers.MultiHeadAttention(2, 4)(inp, inp)
    return keras.Model(inp, layers.LayerNormalization()(att + inp))


def write_keras(out: Out) -> None:
    import keras

    for name, model in _keras_models().items():
        model.compile(optimizer="adam", loss="mse")
        model.save(out.path(f"{name}.keras", "model.save(.keras)"))
        try:
            model.save(out.path(f"{name}.h5", "model.save(.h5) legacy HDF5"))
        except Exception as exc:
            print(f"h5 {name}: {exc}")
        model.save_weights(out.path(f"{name}.weights.h5", "model.save_weights"))
    model = _keras_models()["dense"]
    model.compile(optimizer="adam", loss="mse")
    import numpy as np

    model.fit(np.zeros((4, 4)), np.zeros((4, 2)), epochs=1, verbose=0)
    model.save(out.path("dense_trained.keras", "model.save after fit (optimizer state)"))
    try:
        model.export(str(out.path("dense_export", "model.export (SavedModel)")))
    except Exception as exc:
        print(f"export: {exc}")
    _ = keras


def write_tensorflow(out: Out) -> None:
    import tensorflow as tf

    class Adder(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones((3,)))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x: Any) -> Any:
            return tf.nn.relu(x * self.w + 1.0)

    module = Adder()
    tf.saved_model.save(module, str(out.path("module_savedmodel", "tf.saved_model.save")))
    concrete = module.__call__.get_concrete_function()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(concrete)
    tf.io.write_graph(frozen.graph.as_graph_def(), str(out.base), "frozen_graph.pb",
                      as_text=False)
    out.notes["frozen_graph.pb"] = "convert_variables_to_constants_v2 + tf.io.write_graph"
    tf.io.write_graph(frozen.graph.as_graph_def(), str(out.base), "frozen_graph.pbtxt",
                      as_text=True)
    out.notes["frozen_graph.pbtxt"] = "tf.io.write_graph(as_text=True)"
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    out.path("adder.tflite", "TFLiteConverter").write_bytes(converter.convert())
    ckpt = tf.train.Checkpoint(module=module)
    ckpt.write(str(out.path("checkpoint/ckpt", "tf.train.Checkpoint.write")))
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    tf.saved_model.save(model, str(out.path("keras_savedmodel", "tf.saved_model.save(keras)")))
