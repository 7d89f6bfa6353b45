"""ONNX, GGUF, MLflow, Lightning, fastai, stable-baselines3, gensim and spaCy."""

from __future__ import annotations

from typing import Any

from benchmarks.real_artefacts import Out


def write_onnx(out: Out) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 2), np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(2, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]),
         helper.make_node("Add", ["XW", "B"], ["Y0"]),
         helper.make_node("Relu", ["Y0"], ["Y"])],
        "mlp", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])], [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="benchmarks")
    model.metadata_props.append(onnx.StringStringEntryProto(key="author", value="bench"))
    onnx.save(model, out.path("mlp.onnx", "onnx.helper graph + onnx.save"))
    onnx.save(model, out.path("external/mlp.onnx", "onnx.save(save_as_external_data=True)"),
              save_as_external_data=True, all_tensors_to_one_file=True, location="mlp.onnx.data",
              size_threshold=0)
    try:
        import torch

        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                  torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                  torch.nn.Linear(4, 2)).eval()
        torch.onnx.export(net, (torch.randn(1, 3, 8, 8),), str(out.path(
            "torch_cnn.onnx", "torch.onnx.export")), dynamo=False)
        lstm = torch.nn.LSTM(4, 4).eval()
        torch.onnx.export(lstm, (torch.randn(2, 1, 4),), str(out.path(
            "torch_lstm.onnx", "torch.onnx.export LSTM")), dynamo=False)
    except Exception as exc:
        print(f"torch.onnx.export: {exc}")
    try:
        from skl2onnx import to_onnx
        from sklearn.linear_model import LogisticRegression

        x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
        clf = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
        onnx.save(to_onnx(clf, x[:1]), out.path("sklearn_logreg.onnx", "skl2onnx.to_onnx"))
    except ImportError:
        pass


def write_gguf(out: Out) -> None:
    import gguf
    import numpy as np

    from benchmarks.real_artefacts.chat_templates import TEMPLATES

    for arch, template in (("llama", "llama-3"), ("qwen2", "qwen2.5"), ("gemma", "gemma"),
                           ("phi3", "phi-3"), ("mistral", "mistral-v0.3")):
        writer = gguf.GGUFWriter(str(out.path(f"{arch}-tiny.gguf", "gguf.GGUFWriter")), arch)
        writer.add_name(f"tiny-{arch}")
        writer.add_context_length(64)
        writer.add_embedding_length(8)
        writer.add_block_count(1)
        writer.add_head_count(2)
        writer.add_tokenizer_model("gpt2")
        tokens = ["<s>", "</s>", "a", "b", "ab"]
        writer.add_token_list(tokens)
        writer.add_token_types([3, 3, 1, 1, 1])
        writer.add_token_merges(["a b"])
        writer.add_bos_token_id(0)
        writer.add_eos_token_id(1)
        text = TEMPLATES[template]
        writer.add_chat_template(text if isinstance(text, str) else text["default"])
        writer.add_tensor("token_embd.weight", np.ones((5, 8), np.float32))
        writer.add_tensor("blk.0.attn_q.weight", np.ones((8, 8), np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()


def write_mlflow(out: Out) -> None:
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).standard_normal((20, 3))
    clf = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    signature = mlflow.models.infer_signature(x, clf.predict(x))
    mlflow.sklearn.save_model(clf, str(out.path("sklearn_model", "mlflow.sklearn.save_model")),
                              signature=signature)
    mlflow.sklearn.save_model(clf, str(out.path("sklearn_cloudpickle", "mlflow.sklearn "
                                                                       "serialization_format="
                                                                       "cloudpickle")),
                              serialization_format="cloudpickle")

    class AddN(mlflow.pyfunc.PythonModel):
        def __init__(self, n: int) -> None:
            self.n = n

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input + self.n

    mlflow.pyfunc.save_model(str(out.path("pyfunc_model", "mlflow.pyfunc.save_model(python_"
                                                          "model=...) (cloudpickled class)")),
                             python_model=AddN(5))
    out.ships_code("pyfunc_model/python_model.pkl")  # AddN is a local class: by value
    try:
        import torch

        mlflow.pytorch.save_model(torch.nn.Linear(2, 1), str(out.path(
            "pytorch_model", "mlflow.pytorch.save_model")))
    except Exception as exc:
        print(f"mlflow.pytorch: {exc}")


def write_lightning(out: Out) -> None:
    import lightning as L
    import torch

    class Regressor(L.LightningModule):
        def __init__(self, hidden: int = 4, lr: float = 1e-2) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, 1))

        def training_step(self, batch: Any, _: int) -> Any:
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self) -> Any:
            opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1)}

    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    root = out.path("run", "Trainer.fit with ModelCheckpoint (last.ckpt, epoch=N.ckpt)")
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=str(root / "checkpoints"),
                                                     save_last=True, save_top_k=1,
                                                     monitor=None)
    trainer = L.Trainer(max_epochs=2, default_root_dir=str(root), callbacks=[checkpoint],
                        logger=L.pytorch.loggers.CSVLogger(str(root / "logs")),
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu")
    trainer.fit(Regressor(), loader)
    trainer.save_checkpoint(out.path("manual.ckpt", "Trainer.save_checkpoint"))
    trainer.save_checkpoint(out.path("weights_only.ckpt", "save_checkpoint(weights_only=True)"),
                            weights_only=True)


def write_fastai(out: Out) -> None:
    import numpy as np
    import pandas as pd
    from fastai.tabular.all import (
        Categorify,
        FillMissing,
        Normalize,
        TabularDataLoaders,
        tabular_learner,
    )

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.standard_normal(40), "b": rng.choice(["x", "y"], 40),
                       "y": rng.choice(["yes", "no"], 40)})
    dls = TabularDataLoaders.from_df(df, path=str(out.base), procs=[Categorify, FillMissing,
                                                                    Normalize],
                                     cat_names=["b"], cont_names=["a"], y_names="y", bs=8)
    learn = tabular_learner(dls, layers=[4])
    learn.export(out.path("tabular_export.pkl", "Learner.export()"))
    learn.save(out.path("models/tabular_weights", "Learner.save (model + opt)").resolve()
               .with_suffix(""))


def write_sb3(out: Out) -> None:
    import gymnasium as gym
    from stable_baselines3 import A2C, DQN, PPO

    for name, algo, env_id in (("ppo_cartpole", PPO, "CartPole-v1"),
                               ("a2c_cartpole", A2C, "CartPole-v1"),
                               ("dqn_cartpole", DQN, "CartPole-v1"),
                               ("ppo_pendulum", PPO, "Pendulum-v1")):
        env = gym.make(env_id)
        kwargs: dict[str, Any] = {"policy_kwargs": {"net_arch": [8]}, "verbose": 0, "seed": 0}
        if algo is DQN:
            kwargs["buffer_size"] = 100
            kwargs["learning_starts"] = 10
        model = algo("MlpPolicy", env, **kwargs)
        model.learn(total_timesteps=32 if algo is not PPO else 64)
        model.save(out.path(f"{name}.zip", f"{algo.__name__}.save"))
        if algo is DQN:
            model.save_replay_buffer(out.path(f"{name}_replay_buffer.pkl",
                                              "save_replay_buffer"))


def write_gensim(out: Out) -> None:
    from gensim.models import FastText, KeyedVectors, Word2Vec

    sentences = [["the", "cat", "sat"], ["the", "dog", "ran"], ["a", "cat", "ran"]] * 5
    w2v = Word2Vec(sentences, vector_size=8, min_count=1, epochs=2, seed=0)
    w2v.save(str(out.path("word2vec.model", "Word2Vec.save (pickle)")))
    w2v.wv.save(str(out.path("vectors.kv", "KeyedVectors.save")))
    w2v.wv.save_word2vec_format(str(out.path("vectors.txt", "save_word2vec_format text")))
    w2v.wv.save_word2vec_format(str(out.path("vectors.bin", "save_word2vec_format binary")),
                                binary=True)
    ft = FastText(sentences, vector_size=8, min_count=1, epochs=2, bucket=100)
    ft.save(str(out.path("fasttext.model", "FastText.save (pickle + npy)")))
    big = Word2Vec([[f"w{i}" for i in range(300)]] * 2, vector_size=16, min_count=1, epochs=1)
    big.save(str(out.path("word2vec_large.model", "Word2Vec.save with separate .npy arrays")))
    _ = KeyedVectors


def write_spacy(out: Out) -> None:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "ORG", "pattern": "batchscan"}])
    nlp.to_disk(out.path("blank_en_ruler", "spacy.blank + nlp.to_disk"))
    out.path("blank_en_ruler.bytes", "nlp.to_bytes()").write_bytes(nlp.to_bytes())
    nlp2 = spacy.blank("en")
    textcat = nlp2.add_pipe("textcat")
    textcat.add_label("POS")
    textcat.add_label("NEG")
    nlp2.initialize()
    nlp2.to_disk(out.path("blank_en_textcat", "textcat pipeline nlp.to_disk"))
    doc = nlp("batchscan scans files. It never loads them.")
    from spacy.tokens import DocBin

    DocBin(docs=[doc]).to_disk(out.path("docs.spacy", "DocBin.to_disk"))
