/* host/train/options.c: the option tables of the host sections [train], [optim] and [eval]
 * (structs in trainer.h; listed in host/sections.c). Data only: linking a table pulls in
 * no code of the trainer. */
#include "config.h"

#include <stddef.h>

#include "train/trainer.h"

#define TO(f) offsetof(train_opts, f)
const eqm_param_spec train_section_spec[] = {
    {"epochs", EQM_PARAM_INT, TO(epochs), "800", 1, 1e9, NULL, "training epochs"},
    {"threads", EQM_PARAM_INT, TO(threads), "0", 0, 4096, NULL,
     "compute threads (0 = every online CPU)"},
    {"equimod", EQM_PARAM_BOOL, TO(equimod), "true", 0, 0, NULL,
     "use the [equimod] module (false: the plain SimCLR/BYOL baseline on 2N rows)"},
    {"max_samples", EQM_PARAM_INT, TO(max_samples), "0", 0, 1e15, NULL,
     "train on the first M samples of the train split only (0 = all)"},
    {"max_steps", EQM_PARAM_INT, TO(max_steps), "0", 0, 1e15, NULL,
     "stop after this many steps in all, saving a checkpoint (0 = run to the end)"},
    {"checkpoint_every", EQM_PARAM_INT, TO(checkpoint_every), "1", 0, 1e9, NULL,
     "save a checkpoint every E epochs (0 = only at the end and on stop)"},
    {"checkpoint_steps", EQM_PARAM_INT, TO(checkpoint_steps), "0", 0, 1e15, NULL,
     "also save every S steps (0 = off)"},
    {"log_every", EQM_PARAM_INT, TO(log_every), "20", 1, 1e9, NULL,
     "steps between progress lines when stderr is not a terminal"},
    {"steps_per_epoch", EQM_PARAM_INT, TO(steps_per_epoch), "0", 0, 1e12, NULL,
     "schedule length per epoch for streaming data (0 = from the loader, or from the "
     "dataset's sample count, e.g. an imagenet_tar index)"},
    {"sync_bn", EQM_PARAM_BOOL, TO(sync_bn), "true", 0, 0, NULL,
     "under MPI: batch norm uses the statistics of the whole global batch (SyncBN; false: "
     "each rank its own slice, and the checkpoint keeps rank 0's running statistics)"},
    {"grad_overlap", EQM_PARAM_ENUM, TO(grad_overlap), "thread", 0, -1, "thread|test|none",
     "under MPI: gradient all-reduce overlapped with backward by a communication thread, "
     "by MPI_Test polling, or not at all"},
    {"grad_bucket_mb", EQM_PARAM_INT, TO(grad_bucket_mb), "4", 1, 4096, NULL,
     "under MPI: megabytes of gradient per all-reduce"},
    {"check_params_every", EQM_PARAM_INT, TO(check_params_every), "0", 0, 1e12, NULL,
     "under MPI, debugging: every K steps check that all ranks hold bit-identical "
     "parameters (0 = only at the start)"},
    {"precision", EQM_PARAM_ENUM, TO(precision), "fp32", 0, -1, "fp32|bf16",
     "bf16: convolutions and linear layers (forward, dX, dW) multiply in bfloat16 with fp32 "
     "accumulation (AMX-BF16 or AVX512_BF16, picked at start; a CPU with neither is an "
     "error unless EQM_NN_BF16_NATIVE=0 asks for the slow emulation); weights, gradients, "
     "batch norm, losses and the optimizer stay fp32, checkpoints too"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};
const size_t train_section_size = sizeof(train_opts);

#define OO(f) offsetof(optim_opts, f)
const eqm_param_spec optim_section_spec[] = {
    {"name", EQM_PARAM_ENUM, OO(name), "lars", 0, -1, "lars|sgd",
     "LARS (method-reference.md §5) or SGD with momentum"},
    {"lr", EQM_PARAM_FLOAT, OO(lr), "4.0", 0, 1e4, NULL,
     "base learning rate (absolute, not scaled with the batch)"},
    {"momentum", EQM_PARAM_FLOAT, OO(momentum), "0.9", 0, 0.9999, NULL, "momentum"},
    {"weight_decay", EQM_PARAM_FLOAT, OO(weight_decay), "1e-6", 0, 1, NULL,
     "weight decay of conv/linear weights (BN and biases: none)"},
    {"eta", EQM_PARAM_FLOAT, OO(eta), "1e-3", 0, 1, NULL, "LARS trust coefficient"},
    {"nesterov", EQM_PARAM_BOOL, OO(nesterov), "false", 0, 0, NULL, "SGD: Nesterov momentum"},
    {"warmup_epochs", EQM_PARAM_FLOAT, OO(warmup_epochs), "10", 0, 1e9, NULL,
     "linear warmup length in epochs (per-step)"},
    {"warmup_start", EQM_PARAM_FLOAT, OO(warmup_start), "1e-8", 0, 1, NULL,
     "warmup starts at lr * this factor"},
    {"final_lr", EQM_PARAM_FLOAT, OO(final_lr), "1e-8", 0, 1e4, NULL,
     "end of the cosine decay (eta_min)"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};
const size_t optim_section_size = sizeof(optim_opts);

#define EO(f) offsetof(eval_opts, f)
const eqm_param_spec eval_section_spec[] = {
    {"knn_k", EQM_PARAM_INT, EO(knn_k), "200", 1, 1e6, NULL, "kNN neighbours"},
    {"knn_t", EQM_PARAM_FLOAT, EO(knn_t), "0.1", 1e-6, 1e3, NULL, "kNN temperature"},
    {"knn_every", EQM_PARAM_INT, EO(knn_every), "0", 0, 1e9, NULL,
     "online kNN every N epochs during training (0 = off)"},
    {"knn_at_end", EQM_PARAM_BOOL, EO(knn_at_end), "false", 0, 0, NULL,
     "kNN at the end of training, printed and added to the report"},
    {"knn_baseline", EQM_PARAM_BOOL, EO(knn_baseline), "false", 0, 0, NULL,
     "also measure the kNN of the untrained backbone before step 0"},
    {"train_limit", EQM_PARAM_INT, EO(train_limit), "0", 0, 1e15, NULL,
     "kNN bank / linear train rows: first M samples of the train split (0 = all)"},
    {"test_limit", EQM_PARAM_INT, EO(test_limit), "0", 0, 1e15, NULL,
     "test rows: first M samples of the test split (0 = all)"},
    {"batch", EQM_PARAM_INT, EO(batch), "256", 1, 1e6, NULL, "rows per feature forward"},
    {"linear_epochs", EQM_PARAM_INT, EO(linear_epochs), "90", 1, 1e6, NULL,
     "linear probe epochs (method-reference.md §6)"},
    {"linear_lr", EQM_PARAM_FLOAT, EO(linear_lr), "0.2", 0, 1e3, NULL, "linear probe lr"},
    {"linear_final_lr", EQM_PARAM_FLOAT, EO(linear_final_lr), "1e-4", 0, 1e3, NULL,
     "linear probe cosine floor"},
    {"linear_momentum", EQM_PARAM_FLOAT, EO(linear_momentum), "0.9", 0, 0.9999, NULL,
     "linear probe momentum"},
    {"linear_wd", EQM_PARAM_FLOAT, EO(linear_wd), "0", 0, 1, NULL, "linear probe weight decay"},
    {"linear_nesterov", EQM_PARAM_BOOL, EO(linear_nesterov), "true", 0, 0, NULL,
     "linear probe Nesterov momentum"},
    {"linear_batch", EQM_PARAM_INT, EO(linear_batch), "256", 1, 1e6, NULL,
     "linear probe batch"},
    {"linear_at_end", EQM_PARAM_ENUM, EO(linear_at_end), "off", 0, -1, "off|fast|full",
     "linear probe at the end of training (fast: cached un-augmented features; full: the "
     "method-reference.md §6 protocol), on the test set data.test_set names; in metrics.jsonl and "
     "report.md"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};
const size_t eval_section_size = sizeof(eval_opts);
