"""The text files of a Hugging Face model repository, realistic in shape and size.

Used by `registry_tree.py` and `tokenizer_json.py`. `tokenizer.json` files are written by
the `tokenizers` library itself (`Tokenizer.save`) from a synthetic vocabulary: BPE with
byte-level pre-tokenisation and one merge per learned token (Llama-3, GPT-2, Qwen style),
Unigram (T5, sentencepiece conversions) and WordPiece (BERT). The library is only needed
where a tokenizer is written; this machine has it in /work/realvenv (tokenizers 0.23) and
/work/realvenv2 (0.22), not in the project's .venv. Run as a script to write one file:

    /work/realvenv/bin/python benchmarks/hub_repo.py tokenizer --kind bpe --vocab 128000 OUT

Configs follow the published layouts of each family: llama, bert, t5, whisper, vit, and a
diffusers pipeline (model_index.json, unet/config.json, scheduler/scheduler_config.json).
Chat templates come from `real_artefacts/chat_templates.py` (verbatim public templates).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_artefacts.chat_templates import LLAMA3, LLAMA31, MISTRAL_V03, QWEN25

FAMILIES = ("llama", "bert", "t5", "whisper", "vit", "diffusers")
# (kind, vocabulary) of each family's tokenizer.json; sizes land at 2-35 MB like the real ones
# (bert 0.7 MB, t5 2.4 MB, whisper 2.5 MB, llama-3 9 MB, gemma 33 MB).
TOKENIZERS = {
    "llama": ("bpe", 128_000),
    "qwen": ("bpe", 151_000),
    "gemma": ("bpe", 262_000),
    "bert": ("wordpiece", 30_522),
    "t5": ("unigram", 32_100),
    "whisper": ("bpe", 50_257),
}


def tokenizer_json(kind: str, vocab_size: int, seed: int = 1) -> bytes:
    """A tokenizer.json written by the `tokenizers` library (imported here, on first use)."""
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    rng = random.Random(seed * 1_000_003 + vocab_size)
    if kind == "bpe":
        alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
        vocab = {c: i for i, c in enumerate(alphabet)}
        tokens = list(alphabet)
        merges: list[tuple[str, str]] = []
        letters = [c for c in alphabet if c.isascii() and c.isalpha()] + ["Ġ"]
        while len(vocab) < vocab_size:
            recent = tokens[-2000:] if len(tokens) > 3000 and rng.random() < 0.7 else tokens
            left = rng.choice(recent)
            right = rng.choice(letters) if rng.random() < 0.6 else rng.choice(tokens)
            new = left + right
            if new in vocab or len(new) > 24:
                continue
            vocab[new] = len(vocab)
            tokens.append(new)
            merges.append((left, right))
        tok = Tokenizer(models.BPE(vocab, merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                    *(f"<|reserved_special_token_{i}|>" for i in range(8))]
    elif kind == "unigram":
        pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
        seen = {p for p, _ in pieces}
        while len(pieces) < vocab_size:
            word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(
                rng.randint(1, 12)))
            piece = ("▁" + word) if rng.random() < 0.5 else word
            if piece not in seen:
                seen.add(piece)
                pieces.append((piece, -rng.uniform(2.0, 18.0)))
        tok = Tokenizer(models.Unigram(pieces, unk_id=2))
        tok.normalizer = normalizers.Sequence([normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        specials = ["</s>", *(f"<extra_id_{i}>" for i in range(100))]
    elif kind == "wordpiece":
        words = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
        while len(words) < vocab_size:
            word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(
                rng.randint(1, 10)))
            words.setdefault(("##" + word) if rng.random() < 0.3 else word, len(words))
        tok = Tokenizer(models.WordPiece(words, unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        tok.decoder = decoders.WordPiece()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    tok.add_special_tokens([AddedToken(s, special=True) for s in specials])
    return tok.to_str(pretty=True).encode()


def _dump(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def _llama(rng: random.Random) -> dict[str, Any]:
    layers = rng.choice([16, 28, 32, 80])
    return {"architectures": ["LlamaForCausalLM"], "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": 128000, "eos_token_id": [128001, 128009],
            "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
            "initializer_range": 0.02, "intermediate_size": 14336,
            "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
            "num_attention_heads": 32, "num_hidden_layers": layers, "num_key_value_heads": 8,
            "pretraining_tp": 1, "rms_norm_eps": 1e-05,
            "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                             "original_max_position_embeddings": 8192,
                             "rope_type": "llama3"},
            "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
            "transformers_version": "4.45.0", "use_cache": True, "vocab_size": 128256}


def _bert(rng: random.Random) -> dict[str, Any]:
    labels = rng.randint(2, 12)
    return {"architectures": ["BertForSequenceClassification"],
            "attention_probs_dropout_prob": 0.1, "classifier_dropout": None,
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
            "id2label": {str(i): f"LABEL_{i}" for i in range(labels)},
            "label2id": {f"LABEL_{i}": i for i in range(labels)},
            "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
            "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
            "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
            "transformers_version": "4.44.2", "type_vocab_size": 2, "use_cache": True,
            "vocab_size": 30522}


def _t5(rng: random.Random) -> dict[str, Any]:
    return {"architectures": ["T5ForConditionalGeneration"], "d_ff": 2048, "d_kv": 64,
            "d_model": 512, "decoder_start_token_id": 0, "dropout_rate": 0.1,
            "eos_token_id": 1, "feed_forward_proj": "relu", "initializer_factor": 1.0,
            "is_encoder_decoder": True, "layer_norm_epsilon": 1e-06, "model_type": "t5",
            "n_positions": 512, "num_decoder_layers": 6, "num_heads": 8, "num_layers": 6,
            "output_past": True, "pad_token_id": 0, "relative_attention_num_buckets": 32,
            "task_specific_params": {
                "summarization": {"early_stopping": True, "length_penalty": 2.0,
                                  "max_length": 200, "min_length": 30,
                                  "no_repeat_ngram_size": 3, "num_beams": 4,
                                  "prefix": "summarize: "},
                "translation_en_to_de": {"early_stopping": True, "max_length": 300,
                                         "num_beams": 4,
                                         "prefix": "translate English to German: "}},
            "vocab_size": rng.choice([32128, 32100])}


def _whisper(rng: random.Random) -> dict[str, Any]:
    return {"activation_dropout": 0.0, "activation_function": "gelu",
            "architectures": ["WhisperForConditionalGeneration"], "attention_dropout": 0.0,
            "begin_suppress_tokens": [220, 50257], "bos_token_id": 50257, "d_model": 768,
            "decoder_attention_heads": 12, "decoder_ffn_dim": 3072, "decoder_layers": 12,
            "decoder_start_token_id": 50258, "encoder_attention_heads": 12,
            "encoder_ffn_dim": 3072, "encoder_layers": 12, "eos_token_id": 50257,
            "forced_decoder_ids": [[1, None], [2, 50359]], "max_source_positions": 1500,
            "max_target_positions": 448, "model_type": "whisper", "num_mel_bins": 80,
            "suppress_tokens": sorted(rng.sample(range(1, 50000), 88)),
            "torch_dtype": "float32", "use_cache": True, "vocab_size": 51865}


def _vit(rng: random.Random) -> dict[str, Any]:
    labels = rng.choice([10, 100, 1000])
    return {"architectures": ["ViTForImageClassification"], "attention_probs_dropout_prob": 0.0,
            "encoder_stride": 16, "hidden_act": "gelu", "hidden_size": 768,
            "id2label": {str(i): f"class_{i}" for i in range(labels)},
            "label2id": {f"class_{i}": i for i in range(labels)},
            "image_size": 224, "intermediate_size": 3072, "model_type": "vit",
            "num_attention_heads": 12, "num_channels": 3, "num_hidden_layers": 12,
            "patch_size": 16, "qkv_bias": True, "torch_dtype": "float32"}


CONFIGS = {"llama": _llama, "bert": _bert, "t5": _t5, "whisper": _whisper, "vit": _vit}
TOKENIZER_OF = {"llama": "llama", "bert": "bert", "t5": "t5", "whisper": "whisper"}
TEMPLATES = (LLAMA3, LLAMA31, MISTRAL_V03, QWEN25)
GITATTRIBUTES = "".join(f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in (
    "7z", "arrow", "bin", "bz2", "ckpt", "ftz", "gz", "h5", "joblib", "tflite", "mlmodel",
    "model", "msgpack", "npy", "npz", "onnx", "ot", "parquet", "pb", "pickle", "pkl", "pt",
    "pth", "rar", "safetensors", "tar", "tgz", "wasm", "xz", "zip", "zst")) + \
    "*tfevents* filter=lfs diff=lfs merge=lfs -text\n"


def readme(rng: random.Random, family: str, name: str) -> bytes:
    body = "".join(
        f"\n## {section}\n\n" + " ".join(rng.choice(
            ["The model", "was trained", "on public data", "with a cosine schedule",
             "and evaluated", "on held-out sets", "for", "research use."])
            for _ in range(rng.randint(20, 120))) + "\n"
        for section in ("Model details", "Uses", "Training", "Evaluation", "Citation"))
    return (f"---\nlicense: apache-2.0\nlibrary_name: transformers\ntags:\n- {family}\n"
            f"pipeline_tag: text-generation\n---\n# {name}\n{body}").encode()


def repo_files(family: str, rng: random.Random, name: str,
               tokenizer: bytes | None) -> dict[str, bytes]:
    """The small files of one repository (plus `tokenizer.json` when given)."""
    files: dict[str, bytes] = {"README.md": readme(rng, family, name),
                               ".gitattributes": GITATTRIBUTES.encode()}
    if family == "diffusers":
        files["model_index.json"] = _dump({
            "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
            "feature_extractor": ["transformers", "CLIPImageProcessor"],
            "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
            "scheduler": ["diffusers", "PNDMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"]})
        files["unet/config.json"] = _dump({
            "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.30.0",
            "act_fn": "silu", "attention_head_dim": 8,
            "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False,
            "cross_attention_dim": 768,
            "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                 "CrossAttnDownBlock2D", "DownBlock2D"],
            "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0,
            "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
            "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4,
            "sample_size": rng.choice([64, 96]),
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                               "CrossAttnUpBlock2D"]})
        files["scheduler/scheduler_config.json"] = _dump({
            "_class_name": "PNDMScheduler", "_diffusers_version": "0.30.0",
            "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
            "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "epsilon",
            "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
            "timestep_spacing": "leading", "trained_betas": None})
        return files
    files["config.json"] = _dump(CONFIGS[family](rng))
    if family in ("llama", "t5", "whisper"):
        files["generation_config.json"] = _dump({
            "bos_token_id": 128000 if family == "llama" else 0,
            "do_sample": family == "llama", "eos_token_id": [128001, 128009]
            if family == "llama" else 1, "temperature": 0.6, "top_p": 0.9,
            "transformers_version": "4.45.0"})
    if family in ("vit", "whisper"):
        files["preprocessor_config.json"] = _dump(
            {"do_normalize": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
             "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": {"height": 224,
                                                                      "width": 224}}
            if family == "vit" else
            {"chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor",
             "feature_size": 80, "hop_length": 160, "n_fft": 400, "n_samples": 480000,
             "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0,
             "processor_class": "WhisperProcessor", "return_attention_mask": False,
             "sampling_rate": 16000})
    if family == "vit":
        return files
    specials = {"llama": ("<|begin_of_text|>", "<|eot_id|>"), "bert": ("[CLS]", "[SEP]"),
                "t5": ("<pad>", "</s>"), "whisper": ("<|endoftext|>", "<|endoftext|>")}[family]
    files["special_tokens_map.json"] = _dump({
        "bos_token": {"content": specials[0], "lstrip": False, "normalized": False,
                      "rstrip": False, "single_word": False},
        "eos_token": {"content": specials[1], "lstrip": False, "normalized": False,
                      "rstrip": False, "single_word": False}})
    tokenizer_config: dict[str, Any] = {
        "added_tokens_decoder": {str(128000 + i): {
            "content": f"<|reserved_special_token_{i}|>", "lstrip": False,
            "normalized": False, "rstrip": False, "single_word": False, "special": True}
            for i in range(256 if family == "llama" else 4)},
        "bos_token": specials[0], "clean_up_tokenization_spaces": True,
        "eos_token": specials[1], "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast"}
    if family == "llama":
        tokenizer_config["chat_template"] = rng.choice(TEMPLATES)
    files["tokenizer_config.json"] = _dump(tokenizer_config)
    if tokenizer is not None:
        files["tokenizer.json"] = tokenizer
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description="write one tokenizer.json")
    parser.add_argument("what", choices=["tokenizer"])
    parser.add_argument("--kind", choices=["bpe", "unigram", "wordpiece"], default="bpe")
    parser.add_argument("--vocab", type=int, default=128_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("out")
    args = parser.parse_args()
    Path(args.out).write_bytes(tokenizer_json(args.kind, args.vocab, args.seed))


if __name__ == "__main__":
    main()
