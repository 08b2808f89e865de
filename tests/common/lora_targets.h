/* lora_targets.h — a small model's worth of LoRA targets (names and shapes
 * of tiny-sd1's canonical weights) for the LoRA tests and fuzz target that
 * need no checkpoint: tests/unit/test_lora_files.c, tests/fuzz/fuzz_lora.c
 * and the lora replay in tests/fuzz/test_fuzz_regress.c; and an SDXL-shaped
 * list (two text encoders, a UNet whose LDM names kohya's SDXL files use:
 * input_blocks.1.0 = down_blocks.0.resnets.0, input_blocks.2.0.op = its
 * downsampler, input_blocks.3.1 = down_blocks.1.attentions.0) for
 * fuzz_lora.c. */
#ifndef SD_TEST_LORA_TARGETS_H
#define SD_TEST_LORA_TARGETS_H

#include "../../src/engine/lora/lora.h"

static const lora_target lora_test_targets[] = {
    {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", 2, {32, 32}},
    {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", 2, {32, 64}},
    {"unet.down_blocks.0.attentions.0.proj_in.weight", 4, {32, 32, 1, 1}},
    {"unet.down_blocks.0.resnets.0.conv1.weight", 4, {32, 32, 3, 3}},
    {"unet.down_blocks.0.resnets.0.norm1.weight", 1, {32}},
    {"unet.mid_block.resnets.1.time_emb_proj.weight", 2, {64, 128}},
    {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight", 2, {64, 64}},
    {"text_encoder.text_model.encoder.layers.0.mlp.fc1.weight", 2, {256, 64}},
    {"vae.decoder.conv_in.weight", 4, {64, 4, 3, 3}},
};
#define LORA_TEST_NTARGETS (sizeof lora_test_targets / sizeof lora_test_targets[0])

static const lora_target lora_test_targets_xl[] __attribute__((unused)) = {
    {"unet.down_blocks.0.resnets.0.conv1.weight", 4, {32, 32, 3, 3}},
    {"unet.down_blocks.0.downsamplers.0.conv.weight", 4, {32, 32, 3, 3}},
    {"unet.down_blocks.1.resnets.0.conv1.weight", 4, {64, 32, 3, 3}},
    {"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", 2, {64, 40}},
    {"unet.down_blocks.1.attentions.0.proj_in.weight", 2, {64, 64}},
    {"unet.up_blocks.0.resnets.0.conv1.weight", 4, {64, 128, 3, 3}},
    {"unet.up_blocks.0.attentions.0.proj_out.weight", 2, {64, 64}},
    {"unet.up_blocks.0.upsamplers.0.conv.weight", 4, {64, 64, 3, 3}},
    {"unet.mid_block.attentions.0.proj_in.weight", 2, {64, 64}},
    {"unet.add_embedding.linear_1.weight", 2, {128, 112}},
    {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight", 2, {16, 16}},
    {"text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.weight", 2, {24, 24}},
    {"text_encoder_2.text_model.encoder.layers.0.mlp.fc1.weight", 2, {96, 24}},
};
#define LORA_TEST_NTARGETS_XL (sizeof lora_test_targets_xl / sizeof lora_test_targets_xl[0])

#endif
