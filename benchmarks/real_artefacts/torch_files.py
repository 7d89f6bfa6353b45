"""torch: torch.save (zip and legacy), TorchScript, torch.export, distributed checkpoints."""

from __future__ import annotations

import argparse
import random
from typing import Any

from benchmarks.real_artefacts import Out


def _models() -> dict[str, Any]:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return {
        "mlp": nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 4)),
        "cnn": nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)),
        "lstm": nn.LSTM(8, 8, num_layers=2, batch_first=True),
        "gru": nn.GRU(4, 4),
        "transformer": nn.TransformerEncoder(
            nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True), 2),
        "embedding": nn.Sequential(nn.Embedding(50, 8), nn.LayerNorm(8)),
        "moduledict": nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.GELU()}),
        "groupnorm": nn.Sequential(nn.Conv1d(4, 4, 3), nn.GroupNorm(2, 4), nn.SiLU()),
    }


def write_torch(out: Out) -> None:
    import numpy as np
    import torch
    from torch import nn

    models = _models()
    for name, model in models.items():
        sd = model.state_dict()
        torch.save(sd, out.path(f"{name}_state_dict.pt", "torch.save(model.state_dict())"))
        torch.save(sd, out.path(f"{name}_state_dict.bin", "torch.save(state_dict) as .bin"))
        torch.save(sd, out.path(f"{name}_state_dict.legacy.pt",
                                "torch.save(_use_new_zipfile_serialization=False)"),
                   _use_new_zipfile_serialization=False)
        torch.save(model, out.path(f"{name}_full_module.pt", "torch.save(model)"))
        torch.save(model, out.path(f"{name}_full_module.legacy.pth", "torch.save(model) legacy"),
                   _use_new_zipfile_serialization=False)
    mlp = models["mlp"]
    for proto in (2, 4, 5):
        torch.save(mlp.state_dict(), out.path(f"mlp_p{proto}.pt", f"pickle_protocol={proto}"),
                   pickle_protocol=proto)
    for dtype in (torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8,
                  torch.complex64, torch.bool):
        tensors = {"t": torch.ones(3, 3).to(dtype), "scalar": torch.tensor(1).to(dtype)}
        torch.save(tensors, out.path(f"tensors_{str(dtype).split('.')[-1]}.pt", "dtype tensors"))
    torch.save({"sparse": torch.eye(4).to_sparse(), "csr": torch.eye(4).to_sparse_csr()},
               out.path("sparse.pt", "sparse COO and CSR tensors"))
    torch.save({"view": torch.arange(10)[2:5], "shared": [torch.ones(2)] * 2},
               out.path("views_shared.pt", "views and shared storages"))
    for opt_name, opt_cls in (("adam", torch.optim.Adam), ("sgd", torch.optim.SGD),
                              ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop)):
        model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm1d(3), nn.Linear(3, 2))
        kwargs: dict[str, Any] = {"lr": 1e-3}
        if opt_name == "sgd":
            kwargs["momentum"] = 0.9
        optimizer = opt_cls(model.parameters(), **kwargs)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
        model(torch.randn(5, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
        checkpoint = {
            "epoch": 3, "global_step": 120, "best_metric": 0.91,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "lr_scheduler": scheduler.state_dict(),
            "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
            "args": argparse.Namespace(lr=1e-3, name="run-1", layers=[4, 3, 2]),
            "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        }
        torch.save(checkpoint, out.path(f"checkpoint_{opt_name}.pt",
                                        f"training checkpoint with {opt_cls.__name__}"))
        torch.save(checkpoint, out.path(f"checkpoint_{opt_name}.legacy.pth",
                                        "training checkpoint, legacy format"),
                   _use_new_zipfile_serialization=False)
    quantized = torch.ao.quantization.quantize_dynamic(
        nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)), {nn.Linear}, dtype=torch.qint8)
    torch.save(quantized.state_dict(), out.path("quantized_dynamic_state_dict.pt",
                                                "quantize_dynamic(...).state_dict()"))
    torch.save(quantized, out.path("quantized_dynamic_full.pt", "torch.save(quantized model)"))
    try:
        exported = torch.export.export(mlp.eval(), (torch.randn(2, 8),))
        torch.export.save(exported, out.path("mlp_exported.pt2", "torch.export.save"))
    except Exception as exc:
        print(f"torch.export skipped: {exc}")


def _scripted_models() -> dict[str, Any]:
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.linear(x)) * 2

    class WithList(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
            self.scales = nn.ParameterList([nn.Parameter(torch.ones(4)) for _ in range(3)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = layer(x)
            for scale in self.scales:
                x = x * scale
            return x

    class WithDict(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 2)})

        def forward(self, x: torch.Tensor, which: str) -> torch.Tensor:
            out = torch.zeros(1)
            for name, head in self.heads.items():
                if name == which:
                    out = head(x)
            return out

    class Checks(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dim() != 2:
                raise ValueError("expected a 2-d input")
            return torch.nn.functional.softmax(x, dim=-1)

    class Interp(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")

    models = _models()
    return {
        "tiny": Tiny(), "modulelist_parameterlist": WithList(), "moduledict": WithDict(),
        "checks_raise": Checks(), "interpolate": Interp(),
        "sequential_mlp": models["mlp"], "sequential_cnn": models["cnn"],
        "lstm": models["lstm"], "gru": models["gru"], "transformer_encoder": models["transformer"],
        "sequential_embedding": models["embedding"], "groupnorm": models["groupnorm"],
        "multihead_attention": nn.MultiheadAttention(8, 2, batch_first=True),
        "conv_transpose": nn.Sequential(nn.ConvTranspose2d(2, 2, 2), nn.Upsample(scale_factor=2)),
        "layer_norm_gelu": nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.GELU()),
        "pixel_shuffle": nn.Sequential(nn.Conv2d(4, 16, 1), nn.PixelShuffle(2)),
    }


def write_torchscript(out: Out) -> None:
    import torch
    from torch import nn

    for name, model in _scripted_models().items():
        model.eval()
        try:
            scripted = torch.jit.script(model)
        except Exception as exc:
            print(f"script {name}: {exc}")
            continue
        torch.jit.save(scripted, str(out.path(f"scripted_{name}.pt", "torch.jit.script + save")))
        if name in ("sequential_mlp", "sequential_cnn", "tiny"):
            frozen = torch.jit.freeze(scripted)
            torch.jit.save(frozen, str(out.path(f"frozen_{name}.pt", "torch.jit.freeze")))
            try:
                scripted._save_for_lite_interpreter(
                    str(out.path(f"lite_{name}.ptl", "_save_for_lite_interpreter")))
            except Exception as exc:
                print(f"lite {name}: {exc}")
    traced_inputs = {
        "mlp": (nn.Sequential(nn.Linear(8, 4), nn.Tanh()), torch.randn(2, 8)),
        "cnn": (_models()["cnn"].eval(), torch.randn(1, 3, 8, 8)),
        "embedding": (_models()["embedding"].eval(), torch.randint(0, 50, (2, 5))),
        "lstm": (_models()["lstm"].eval(), torch.randn(1, 3, 8)),
    }
    for name, (model, example) in traced_inputs.items():
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(out.path(f"traced_{name}.pt", "torch.jit.trace + save")))


def write_dcp(out: Out) -> None:
    import torch
    import torch.distributed.checkpoint as dcp

    models = _models()
    for name in ("mlp", "transformer"):
        model = models[name]
        optimizer = torch.optim.Adam(model.parameters())
        state = {"model": model.state_dict(), "step": 7}
        folder = out.path(f"{name}_dcp", "torch.distributed.checkpoint.save (no process group)")
        dcp.save(state, checkpoint_id=str(folder))
        with_opt = {"model": model.state_dict(), "optim": optimizer.state_dict()}
        folder = out.path(f"{name}_with_optim_dcp", "dcp.save of model + optimizer state")
        dcp.save(with_opt, checkpoint_id=str(folder))
