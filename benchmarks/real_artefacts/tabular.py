"""scikit-learn, XGBoost, LightGBM and CatBoost: native formats and pickles."""

from __future__ import annotations

import pickle
from typing import Any

from benchmarks.real_artefacts import Out


def _data() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return x, y


def _pickles(out: Out, name: str, obj: Any, how: str) -> None:
    import joblib

    for proto in (2, 4, 5):
        with out.path(f"{name}_p{proto}.pkl", f"pickle.dump protocol {proto}: {how}").open(
                "wb") as fh:
            pickle.dump(obj, fh, protocol=proto)
    joblib.dump(obj, out.path(f"{name}.joblib", f"joblib.dump: {how}"))
    joblib.dump(obj, out.path(f"{name}.z.joblib", f"joblib.dump(compress=3): {how}"), compress=3)


def write_sklearn(out: Out) -> None:
    import numpy as np
    from sklearn import (
        cluster,
        decomposition,
        ensemble,
        feature_extraction,
        linear_model,
        naive_bayes,
        neighbors,
        neural_network,
        pipeline,
        preprocessing,
        svm,
        tree,
    )
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer

    x, y = _data()
    estimators: dict[str, Any] = {
        "logreg": linear_model.LogisticRegression(),
        "ridge": linear_model.Ridge(),
        "random_forest": ensemble.RandomForestClassifier(n_estimators=3, max_depth=3),
        "gradient_boosting": ensemble.GradientBoostingClassifier(n_estimators=3, max_depth=2),
        "hist_gb": ensemble.HistGradientBoostingClassifier(max_iter=3),
        "svc": svm.SVC(probability=True),
        "knn": neighbors.KNeighborsClassifier(3),
        "tree": tree.DecisionTreeClassifier(max_depth=3),
        "mlp": neural_network.MLPClassifier(hidden_layer_sizes=(4,), max_iter=20),
        "naive_bayes": naive_bayes.GaussianNB(),
        "kmeans": cluster.KMeans(2, n_init=1),
        "pca": decomposition.PCA(2),
        "pipeline": pipeline.make_pipeline(preprocessing.StandardScaler(),
                                           SimpleImputer(), linear_model.LogisticRegression()),
        "column_transformer": pipeline.Pipeline([
            ("ct", ColumnTransformer([("scale", preprocessing.StandardScaler(), [0, 1]),
                                      ("onehot", preprocessing.KBinsDiscretizer(
                                          3, encode="onehot"), [2])],
                                     remainder="passthrough")),
            ("clf", linear_model.LogisticRegression())]),
        "voting": ensemble.VotingClassifier([("a", tree.DecisionTreeClassifier(max_depth=2)),
                                             ("b", naive_bayes.GaussianNB())]),
    }
    for name, est in estimators.items():
        if name in ("kmeans", "pca"):
            est.fit(x)
        else:
            est.fit(x, y)
        _pickles(out, name, est, f"fitted {type(est).__name__}")
    texts = ["the cat sat", "the dog ran", "a cat ran", "dogs and cats"]
    labels = [0, 1, 0, 1]
    text_models: dict[str, Any] = {
        "tfidf_pipeline": pipeline.make_pipeline(feature_extraction.text.TfidfVectorizer(),
                                                 linear_model.LogisticRegression()),
        "countvectorizer_str_split": pipeline.make_pipeline(
            feature_extraction.text.CountVectorizer(tokenizer=str.split, token_pattern=None),
            naive_bayes.MultinomialNB()),
        "hashing": pipeline.make_pipeline(feature_extraction.text.HashingVectorizer(
            n_features=16), linear_model.SGDClassifier(max_iter=5)),
    }
    for name, est in text_models.items():
        est.fit(texts, labels)
        _pickles(out, name, est, f"fitted text {name}")
    ft = pipeline.make_pipeline(preprocessing.FunctionTransformer(np.log1p),
                                linear_model.LinearRegression()).fit(np.abs(x), y)
    _pickles(out, "function_transformer_log1p", ft, "FunctionTransformer(np.log1p)")
    le = preprocessing.LabelEncoder().fit(["a", "b", "c"])
    _pickles(out, "label_encoder", le, "LabelEncoder on strings")
    try:
        from skops.io import dump as skops_dump

        skops_dump(estimators["pipeline"], out.path("pipeline.skops", "skops.io.dump"))
    except ImportError:
        pass


def write_xgboost(out: Out) -> None:
    import xgboost as xgb

    x, y = _data()
    clf = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y)
    booster = clf.get_booster()
    for ext in ("json", "ubj"):
        booster.save_model(str(out.path(f"booster.{ext}", f"Booster.save_model .{ext}")))
        clf.save_model(str(out.path(f"classifier.{ext}", f"XGBClassifier.save_model .{ext}")))
    reg = xgb.XGBRegressor(n_estimators=3, max_depth=2).fit(x, y)
    reg.save_model(str(out.path("regressor.json", "XGBRegressor.save_model")))
    out.path("booster_raw.bin", "bytes(Booster.save_raw('ubj'))").write_bytes(
        bytes(booster.save_raw("ubj")))
    booster.dump_model(str(out.path("booster_dump.txt", "Booster.dump_model text")))
    booster.dump_model(str(out.path("booster_dump.json", "Booster.dump_model json")),
                       dump_format="json")
    _pickles(out, "classifier", clf, "XGBClassifier")
    _pickles(out, "booster", booster, "xgboost Booster")


def write_lightgbm(out: Out) -> None:
    import lightgbm as lgb

    x, y = _data()
    clf = lgb.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1).fit(x, y)
    clf.booster_.save_model(str(out.path("model.txt", "Booster.save_model (text)")))
    out.path("model.json", "json.dumps(Booster.dump_model())").write_text(
        __import__("json").dumps(clf.booster_.dump_model()))
    _pickles(out, "classifier", clf, "LGBMClassifier")
    _pickles(out, "booster", clf.booster_, "lightgbm Booster")


def write_catboost(out: Out) -> None:
    import catboost as cb

    x, y = _data()
    clf = cb.CatBoostClassifier(iterations=3, depth=2, verbose=False,
                                train_dir=str(out.base / "catboost_info")).fit(x, y)
    for fmt, ext in (("cbm", "cbm"), ("json", "json"), ("onnx", "onnx"), ("cpp", "cpp"),
                     ("python", "py"), ("coreml", "mlmodel")):
        try:
            clf.save_model(str(out.path(f"model.{ext}", f"save_model(format='{fmt}')")),
                           format=fmt)
        except Exception as exc:
            print(f"catboost {fmt}: {exc}")
    _pickles(out, "classifier", clf, "CatBoostClassifier")
