/* lora_targets.h — a small model's worth of LoRA targets (names and shapes
 * of tiny-sd1's canonical weights) for the LoRA tests and fuzz target that
 * need no checkpoint: tests/unit/test_lora_files.c, tests/fuzz/fuzz_lora.c
 * and the lora replay in tests/fuzz/test_fuzz_regress.c. */
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

#endif
