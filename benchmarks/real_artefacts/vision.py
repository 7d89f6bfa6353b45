"""timm and torchvision models (random init, tiny variants), saved the ways their users save."""

from __future__ import annotations

from benchmarks.real_artefacts import Out

TIMM_MODELS = (
    ("resnet18", {"num_classes": 3}), ("vit_tiny_patch16_224", {"img_size": 32, "depth": 1}),
    ("mobilenetv3_small_050", {"num_classes": 3}), ("efficientnet_b0", {"num_classes": 3}),
    ("convnext_atto", {"num_classes": 3}), ("deit_tiny_patch16_224", {"img_size": 32, "depth": 1}),
    ("regnetx_002", {"num_classes": 3}), ("mixer_s16_224", {"img_size": 32}),
)


def write_timm(out: Out) -> None:
    import timm
    import torch
    from safetensors.torch import save_file

    for name, kwargs in TIMM_MODELS:
        model = timm.create_model(name, pretrained=False, **kwargs).eval()
        torch.save(model.state_dict(), out.path(f"{name}.pth", "torch.save(state_dict)"))
        torch.save(model, out.path(f"{name}_full.pt", "torch.save(timm model)"))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(out.path(f"{name}.safetensors", "safetensors of the state_dict")))
        try:
            timm.models.push_to_hf_hub  # noqa: B018 - present on timm >= 0.9
            from timm.models._hub import save_for_hf

            save_for_hf(model, str(out.path(f"{name}-hf", "timm save_for_hf (config.json + "
                                                           "model.safetensors)")))
        except Exception as exc:
            print(f"save_for_hf {name}: {exc}")
        if name in ("resnet18", "mobilenetv3_small_050"):
            scripted = torch.jit.script(model)
            torch.jit.save(scripted, str(out.path(f"{name}_scripted.pt", "torch.jit.script")))
        if name in ("vit_tiny_patch16_224", "convnext_atto"):
            traced = torch.jit.trace(model, torch.randn(1, 3, 32, 32) if "vit" in name
                                     else torch.randn(1, 3, 64, 64))
            torch.jit.save(traced, str(out.path(f"{name}_traced.pt", "torch.jit.trace")))
    checkpoint = {"epoch": 1, "arch": "resnet18",
                  "state_dict": timm.create_model("resnet18", num_classes=3).state_dict(),
                  "optimizer": {}, "version": 2, "args": None}
    torch.save(checkpoint, out.path("train_checkpoint-1.pth.tar",
                                    "timm train.py-style checkpoint dict"))


def write_torchvision(out: Out) -> None:
    import torch
    import torchvision

    builders = {
        "resnet18": lambda: torchvision.models.resnet18(num_classes=3),
        "vit_b_16": lambda: torchvision.models.VisionTransformer(
            image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
            mlp_dim=32, num_classes=3),
        "mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(num_classes=3),
        "squeezenet1_1": lambda: torchvision.models.squeezenet1_1(num_classes=3),
        "swin_t": lambda: torchvision.models.SwinTransformer(
            patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2],
            window_size=[2, 2], num_classes=3),
        "convnext_tiny": lambda: torchvision.models.convnext_tiny(num_classes=3),
        "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(num_classes=3),
    }
    for name, build in builders.items():
        model = build().eval()
        torch.save(model.state_dict(), out.path(f"{name}_state_dict.pth", "torch.save(sd)"))
        torch.save(model, out.path(f"{name}_full.pt", "torch.save(model): functools.partial "
                                                      "norm layers in the pickle"))
        if name in ("resnet18", "vit_b_16", "mobilenet_v3_small", "squeezenet1_1"):
            try:
                scripted = torch.jit.script(model)
                torch.jit.save(scripted, str(out.path(f"{name}_scripted.pt", "jit.script")))
            except Exception as exc:
                print(f"script {name}: {exc}")
    detector = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3).eval()
    torch.save(detector.state_dict(), out.path("fasterrcnn_state_dict.pth", "detection sd"))
    torch.save(detector, out.path("fasterrcnn_full.pt", "torch.save(detection model)"))
    transforms = torch.nn.Sequential(torchvision.transforms.Resize(16),
                                     torchvision.transforms.Normalize([0.5] * 3, [0.5] * 3))
    try:
        torch.jit.save(torch.jit.script(transforms),
                       str(out.path("transforms_scripted.pt", "jit.script(transforms)")))
    except RuntimeError as exc:  # transforms v2 do not script on every version
        print(f"script transforms: {exc}")
