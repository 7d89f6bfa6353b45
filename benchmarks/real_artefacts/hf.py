"""Hugging Face: transformers (4 and 5), tokenizers, chat templates, safetensors, diffusers,
peft and sentence-transformers, all from tiny configs with random weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.real_artefacts import Out
from benchmarks.real_artefacts.chat_templates import TEMPLATES

CORPUS = (
    "the quick brown fox jumps over the lazy dog. a model file is data, not code. "
    "tokenizers learn merges from text; small vocabularies keep artefacts tiny. "
) * 20


def _tokenizer(kind: str = "bpe") -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<unk>", "<s>", "</s>", "<pad>", "[CLS]", "[SEP]", "[MASK]"]
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer: Any = trainers.BpeTrainer(vocab_size=300, special_tokens=specials)
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=100, special_tokens=specials,
                                          unk_token="<unk>")
    else:
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(special_tokens=specials)
    tok.train_from_iterator([CORPUS], trainer=trainer)
    return tok


def _fast_tokenizer(kind: str = "bpe", chat_template: str | None = None) -> Any:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=_tokenizer(kind), bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def write_tokenizers(out: Out) -> None:
    for kind in ("bpe", "wordpiece", "unigram", "wordlevel"):
        _tokenizer(kind).save(str(out.path(f"{kind}/tokenizer.json", f"tokenizers {kind} .save")))
    bpe = _tokenizer("bpe")
    folder = out.path("bpe_model", "tokenizers BPE model.save (vocab.json, merges.txt)")
    folder.mkdir(exist_ok=True)
    bpe.model.save(str(folder))


def _tiny_configs() -> dict[str, Any]:
    import transformers as tf

    small = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 32, "vocab_size": 300}
    configs: dict[str, Any] = {
        "bert": tf.BertConfig(**small, max_position_embeddings=64),
        "roberta": tf.RobertaConfig(**small, max_position_embeddings=64),
        "distilbert": tf.DistilBertConfig(dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                                          vocab_size=300),
        "gpt2": tf.GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=300, n_positions=64),
        "llama": tf.LlamaConfig(**small, num_key_value_heads=1, max_position_embeddings=64),
        "mistral": tf.MistralConfig(**small, num_key_value_heads=1, max_position_embeddings=64),
        "qwen2": tf.Qwen2Config(**small, num_key_value_heads=1, max_position_embeddings=64),
        "gemma": tf.GemmaConfig(**small, num_key_value_heads=1, head_dim=8,
                                max_position_embeddings=64),
        "phi3": tf.Phi3Config(**small, num_key_value_heads=2, max_position_embeddings=64,
                              pad_token_id=0),
        "t5": tf.T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=300),
        "bart": tf.BartConfig(d_model=16, encoder_layers=1, decoder_layers=1,
                              encoder_attention_heads=2, decoder_attention_heads=2,
                              encoder_ffn_dim=32, decoder_ffn_dim=32, vocab_size=300,
                              max_position_embeddings=64),
        "vit": tf.ViTConfig(**{k: v for k, v in small.items() if k != "vocab_size"},
                            image_size=32, patch_size=8),
        "whisper": tf.WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1,
                                    encoder_attention_heads=2, decoder_attention_heads=2,
                                    encoder_ffn_dim=32, decoder_ffn_dim=32, vocab_size=300,
                                    num_mel_bins=8, max_source_positions=32,
                                    max_target_positions=32, pad_token_id=0, bos_token_id=1,
                                    eos_token_id=2, decoder_start_token_id=1,
                                    begin_suppress_tokens=[2], suppress_tokens=[]),
    }
    return configs


_HEADS = {
    "bert": ("AutoModelForSequenceClassification", "AutoModelForMaskedLM"),
    "roberta": ("AutoModelForTokenClassification",),
    "distilbert": ("AutoModelForQuestionAnswering",),
    "gpt2": ("AutoModelForCausalLM",),
    "llama": ("AutoModelForCausalLM",),
    "mistral": ("AutoModelForCausalLM",),
    "qwen2": ("AutoModelForCausalLM",),
    "gemma": ("AutoModelForCausalLM",),
    "phi3": ("AutoModelForCausalLM",),
    "t5": ("AutoModelForSeq2SeqLM",),
    "bart": ("AutoModelForSeq2SeqLM",),
    "vit": ("AutoModelForImageClassification",),
    "whisper": ("AutoModelForSpeechSeq2Seq",),
}


def _save_transformers(out: Out) -> None:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    major = int(tf.__version__.split(".")[0])
    for name, config in _tiny_configs().items():
        for head in _HEADS[name]:
            try:
                model = getattr(tf, head).from_config(config)
            except Exception as exc:
                print(f"{name} {head}: {exc}")
                continue
            folder = f"{name}-{head.removeprefix('AutoModelFor').lower()}"
            model.save_pretrained(out.path(folder, f"{head}.from_config(...).save_pretrained"))
            try:
                model.save_pretrained(out.path(f"{folder}-bin", "save_pretrained("
                                               "safe_serialization=False)"),
                                      safe_serialization=False)
            except TypeError:
                # transformers 5 writes safetensors only; pytorch_model.bin as v4 wrote it
                target = out.path(f"{folder}-bin/pytorch_model.bin",
                                  "torch.save(state_dict) as pytorch_model.bin (v5 has no .bin)")
                torch.save(model.state_dict(), target)
                config.save_pretrained(target.parent)
            if name in ("llama", "gpt2"):
                model.generation_config.save_pretrained(out.path(folder, "generation_config"))
            if name in ("llama", "gpt2", "bert", "t5"):
                tok = _fast_tokenizer("bpe" if name != "bert" else "wordpiece",
                                      TEMPLATES["llama-3"] if name == "llama" else None)
                tok.save_pretrained(out.path(folder, "tokenizer save_pretrained"))
    # a sharded checkpoint and its index
    model = tf.AutoModelForCausalLM.from_config(_tiny_configs()["llama"])
    model.save_pretrained(out.path("llama-sharded", "save_pretrained(max_shard_size='20KB')"),
                          max_shard_size="20KB")
    # Trainer output: training_args.bin, optimizer.pt, scheduler.pt, rng_state.pth
    try:
        _trainer_checkpoint(out, tf)
    except Exception as exc:
        print(f"trainer checkpoint skipped: {exc}")
    # processors / feature extractors (the image one needs Pillow)
    try:
        tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(
            out.path("vit-imageclassification", "ViTImageProcessor.save_pretrained"))
        tf.WhisperFeatureExtractor(feature_size=8).save_pretrained(
            out.path("whisper-speechseq2seq", "WhisperFeatureExtractor.save_pretrained"))
    except ImportError as exc:
        print(f"processors skipped: {exc}")
    _ = major


def _trainer_checkpoint(out: Out, tf: Any) -> None:
    import torch

    config = _tiny_configs()["gpt2"]
    model = tf.AutoModelForCausalLM.from_config(config)

    class Data(torch.utils.data.Dataset[dict[str, Any]]):
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> dict[str, Any]:
            ids = torch.arange(8) + i
            return {"input_ids": ids, "labels": ids}

    folder = out.path("trainer", "Trainer.train() with save_steps (checkpoint-N folders)")
    args = tf.TrainingArguments(output_dir=str(folder), max_steps=2, save_steps=2,
                                per_device_train_batch_size=4, report_to=[], use_cpu=True,
                                logging_steps=1)
    tf.Trainer(model=model, args=args, train_dataset=Data()).train()


def write_transformers(out: Out) -> None:
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        raise ImportError(f"transformers {transformers.__version__} here; this entry is v5")
    _save_transformers(out)


def write_transformers4(out: Out) -> None:
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        raise ImportError(f"transformers {transformers.__version__} here; this entry is v4")
    _save_transformers(out)


def write_chat_templates(out: Out) -> None:
    for family, template in TEMPLATES.items():
        tok = _fast_tokenizer("bpe")
        tok.chat_template = template
        tok.save_pretrained(out.path(family, "PreTrainedTokenizerFast.save_pretrained "
                                             "with chat_template"))
        # the older layout: the template inside tokenizer_config.json only
        config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast",
                                  "bos_token": "<s>", "eos_token": "</s>",
                                  "model_max_length": 4096}
        if isinstance(template, dict):
            config["chat_template"] = [{"name": k, "template": v} for k, v in template.items()]
        else:
            config["chat_template"] = template
        out.path(f"{family}-inline/tokenizer_config.json",
                 "tokenizer_config.json with inline chat_template").write_text(
            json.dumps(config, indent=2, ensure_ascii=False))
        first = template if isinstance(template, str) else template["default"]
        out.path(f"{family}-standalone/chat_template.jinja",
                 "chat_template.jinja as shipped beside GGUF / llama.cpp").write_text(first)


def write_safetensors(out: Out) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    for dtype in ("float32", "float16", "int64", "uint8", "bool"):
        tensors = {"a": rng.standard_normal((4, 4)).astype(dtype), "b": np.zeros(3, dtype)}
        save_file(tensors, str(out.path(f"numpy_{dtype}.safetensors", "safetensors.numpy")),
                  metadata={"format": "np"})
    save_file({}, str(out.path("empty.safetensors", "no tensors")))
    try:
        import torch
        from safetensors.torch import save_file as save_torch

        save_torch({"w": torch.ones(2, 2, dtype=torch.bfloat16), "e": torch.zeros(0)},
                   str(out.path("torch_bf16_empty_tensor.safetensors", "safetensors.torch")),
                   metadata={"format": "pt", "note": "made by benchmarks/real_artefacts"})
    except ImportError:
        pass


def write_diffusers(out: Out) -> None:
    import diffusers as d
    import torch

    torch.manual_seed(0)
    unet = d.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
                         block_out_channels=(8, 16), norm_num_groups=4,
                         down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                         up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    unet.save_pretrained(out.path("unet2d", "UNet2DModel.save_pretrained"))
    unet.save_pretrained(out.path("unet2d-bin", "save_pretrained(safe_serialization=False)"),
                         safe_serialization=False)
    cond = d.UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4,
                                  layers_per_block=1, block_out_channels=(8, 16),
                                  norm_num_groups=4, cross_attention_dim=8,
                                  attention_head_dim=2,
                                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    cond.save_pretrained(out.path("unet2d-condition", "UNet2DConditionModel.save_pretrained"))
    vae = d.AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4)
    vae.save_pretrained(out.path("vae", "AutoencoderKL.save_pretrained"))
    vae.save_pretrained(out.path("vae-bin", "safe_serialization=False"), safe_serialization=False)
    for name in ("DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler",
                 "DPMSolverMultistepScheduler", "PNDMScheduler", "LMSDiscreteScheduler"):
        getattr(d, name)().save_pretrained(out.path(f"schedulers/{name}",
                                                    f"{name}.save_pretrained"))
    pipe = d.DDPMPipeline(unet=unet, scheduler=d.DDPMScheduler())
    pipe.save_pretrained(out.path("ddpm-pipeline", "DDPMPipeline.save_pretrained"))
    pipe.save_pretrained(out.path("ddpm-pipeline-bin", "DDPMPipeline safe_serialization=False"),
                         safe_serialization=False)


def write_peft(out: Out) -> None:
    import peft
    import torch
    import transformers as tf

    torch.manual_seed(0)
    configs = _tiny_configs()
    variants: dict[str, Any] = {
        "lora": peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                task_type="CAUSAL_LM"),
        "lora-dora": peft.LoraConfig(r=2, use_dora=True, target_modules=["q_proj"],
                                     task_type="CAUSAL_LM"),
        "ia3": peft.IA3Config(target_modules=["k_proj", "down_proj"],
                              feedforward_modules=["down_proj"], task_type="CAUSAL_LM"),
        "prefix": peft.PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"),
        "prompt": peft.PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"),
        "loha": peft.LoHaConfig(r=2, target_modules=["q_proj"]),
    }
    for name, config in variants.items():
        base = tf.AutoModelForCausalLM.from_config(configs["llama"])
        model = peft.get_peft_model(base, config)
        model.save_pretrained(out.path(name, f"{type(config).__name__} adapter save_pretrained"))
        model.save_pretrained(out.path(f"{name}-bin", "adapter safe_serialization=False"),
                              safe_serialization=False)
    bert = tf.AutoModelForSequenceClassification.from_config(configs["bert"])
    model = peft.get_peft_model(bert, peft.LoraConfig(r=2, target_modules=["query", "value"],
                                                      task_type="SEQ_CLS",
                                                      modules_to_save=["classifier"]))
    model.save_pretrained(out.path("lora-seqcls-modules-to-save", "LoRA with modules_to_save"))


def write_sentence_transformers(out: Out) -> None:
    import tempfile

    import transformers as tf
    from sentence_transformers import SentenceTransformer, models

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "bert"
        tf.AutoModel.from_config(_tiny_configs()["bert"]).save_pretrained(base)
        _fast_tokenizer("wordpiece").save_pretrained(base)
        word = models.Transformer(str(base), max_seq_length=32)
        pooling = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
        st = SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu")
        st.save(str(out.path("mean-normalize", "SentenceTransformer.save (Transformer, "
                                               "Pooling, Normalize)")))
        dense = models.Dense(16, 8)
        st2 = SentenceTransformer(modules=[models.Transformer(str(base), max_seq_length=32),
                                           models.Pooling(16, pooling_mode="cls"), dense],
                                  device="cpu")
        st2.save(str(out.path("cls-dense", "SentenceTransformer.save with Dense")))
        st2.save(str(out.path("cls-dense-bin", "SentenceTransformer.save safe_serialization="
                                               "False")), safe_serialization=False)
